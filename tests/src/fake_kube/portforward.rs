//! `pods/{name}/portforward` over WebSocket, as the API server and the
//! kubelet serve it to kube-rs (`Api::<Pod>::portforward`) and to kubectl.
//!
//! The request: a GET (or POST) upgrading to `websocket`, the ports in the
//! query (`ports=7471`, repeated or comma-separated), the subprotocols the
//! client takes in `Sec-WebSocket-Protocol`. As the API server does, the
//! caller is authenticated (its bearer token, as TokenReview would) and
//! authorized (`create` on `pods/portforward` in the pod's namespace, from
//! the RBAC objects fed to the fake, as a SubjectAccessReview would):
//! 401 and 403 Status responses otherwise, before any upgrade; a missing
//! pod is a 404. The subprotocol is chosen as the kubelet's `wsstream`
//! does: the first the client lists among `v4.channel.k8s.io` (binary
//! frames) and none at all (the same framing); anything else (including
//! the base64 variant, which this fake does not speak) is a 400.
//!
//! The protocol, per forwarded port `i`: channel `2i` carries data both
//! ways and channel `2i+1` errors from the server; every binary frame
//! starts with its channel byte, and the first frame of each channel the
//! server writes is the port, 2 bytes little-endian. For each port the
//! fake connects to the local address the test mapped for that pod and
//! port ([`FakeKube::forward_pod_port`]), standing in for the kubelet
//! connecting inside the pod's network namespace; when it cannot (no
//! mapping, connection refused) it writes the kubelet's message on the
//! error channel (`error forwarding port P to pod NS/NAME, uid UID: ...`).
//! When every port's connection has ended, the server closes the
//! WebSocket (with the closing handshake, so the client reads every frame
//! before the connection goes); when the client closes it, the
//! connections are dropped. [`FakeKube::disconnect_port_forwards`] drops
//! them all at once, without a closing handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    AUTHORIZATION, CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use super::{Body, FakeKube, Shared, review, status, str_at};

/// The binary channel subprotocol the kubelet's port-forward accepts (with
/// no subprotocol at all, which frames the same).
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";

impl FakeKube {
    /// Makes a port-forward to `port` of pod `namespace/pod` connect to
    /// `to` (the test's listener standing in for the pod's port).
    pub fn forward_pod_port(&self, namespace: &str, pod: &str, port: u16, to: SocketAddr) {
        let key = (namespace.to_owned(), pod.to_owned(), port);
        self.shared.lock().forwards.insert(key, to);
    }

    /// Drops every open port-forward's connection at once, without a
    /// closing handshake, as when the API server or the kubelet goes away.
    pub fn disconnect_port_forwards(&self) {
        self.shared.cut.send_modify(|generation| *generation += 1);
    }
}

/// Serves `pods/{pod}/portforward` in `ns`: the refusals as Status
/// responses, else `101 Switching Protocols` and the forwarding on a task
/// of its own.
pub(super) fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (uid, targets) = {
        let st = shared.lock();
        let reviewed = review::token_review(&st.tokens, &json!({"spec": {"token": token}}));
        if reviewed.pointer("/status/authenticated") != Some(&json!(true)) {
            return status(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        let user = &reviewed["status"]["user"];
        let name = user["username"].as_str().unwrap_or("");
        let asked = json!({"spec": {"user": name, "groups": user["groups"],
            "resourceAttributes": {"namespace": ns, "verb": "create", "group": "",
                "resource": "pods", "subresource": "portforward", "name": pod}}});
        let decided = review::access_review(&st.rbac, &asked);
        if decided.pointer("/status/allowed") != Some(&json!(true)) {
            let message = format!(
                "pods {pod:?} is forbidden: User {name:?} cannot create resource \
                 \"pods/portforward\" in API group \"\" in the namespace {ns:?}"
            );
            return status(StatusCode::FORBIDDEN, message);
        }
        let key = ("Pod", ns.to_owned(), pod.to_owned());
        let Some(object) = st.objects.get(&key) else {
            return status(StatusCode::NOT_FOUND, format!("pods {pod:?} not found"));
        };
        let uid = str_at(object, "/metadata/uid").unwrap_or("").to_owned();
        let ports = match ports(req.uri().query().unwrap_or("")) {
            Ok(ports) => ports,
            Err(message) => return status(StatusCode::BAD_REQUEST, message),
        };
        let targets: Vec<(u16, Option<SocketAddr>)> = ports
            .into_iter()
            .map(|p| {
                (
                    p,
                    st.forwards
                        .get(&(ns.to_owned(), pod.to_owned(), p))
                        .copied(),
                )
            })
            .collect();
        (uid, targets)
    };
    let upgrading = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| upgrading) else {
        let message = "the fake API server forwards ports over WebSocket only (no SPDY)";
        return status(StatusCode::BAD_REQUEST, message);
    };
    let accept = derive_accept_key(key.as_bytes());
    let offered = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let offered: Vec<&str> = offered
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let protocol = if offered.is_empty() {
        ""
    } else if offered.contains(&V4_CHANNEL) {
        V4_CHANNEL
    } else {
        let message = format!(
            "unable to upgrade websocket connection: requested protocol(s) are not \
             supported: {offered:?}; supports [\"\" {V4_CHANNEL:?}]"
        );
        return status(StatusCode::BAD_REQUEST, message);
    };
    let target = format!("{ns}/{pod}, uid {uid}");
    let cut = shared.cut.subscribe();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None);
        forward(ws.await, &target, targets, cut).await;
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if !protocol.is_empty() {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(V4_CHANNEL));
    }
    resp
}

/// The `ports` of the query, repeated or comma-separated, each 1-65535.
fn ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',') {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(format!("unable to parse {v:?} as a port")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"ports\" is required".into());
    }
    Ok(ports)
}

/// What a port's connection task tells the WebSocket writer.
enum Out {
    /// A frame to send (channel byte first).
    Frame(Vec<u8>),
    /// That port's connection ended.
    Done,
}

/// Runs the protocol over `ws`: the port frames, one connection per port,
/// data both ways, the error message of a port whose connection failed.
async fn forward<S>(
    mut ws: WebSocketStream<S>,
    target: &str,
    targets: Vec<(u16, Option<SocketAddr>)>,
    mut cut: tokio::sync::watch::Receiver<u64>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let mut writers = Vec::with_capacity(targets.len());
    for (i, (port, to)) in targets.iter().copied().enumerate() {
        let (data, error) = (2 * i as u8, 2 * i as u8 + 1);
        for ch in [data, error] {
            let [lo, hi] = port.to_le_bytes();
            if ws.send(Message::binary(vec![ch, lo, hi])).await.is_err() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        writers.push(tx);
        let out = out_tx.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            let connected = match to {
                Some(addr) => TcpStream::connect(addr).await.map_err(|e| e.to_string()),
                None => Err("connection refused (nothing listens on that port)".into()),
            };
            match connected {
                Ok(stream) => pump(stream, data, rx, &out).await,
                Err(e) => {
                    let message = format!("error forwarding port {port} to pod {target}: {e}");
                    let mut frame = vec![error];
                    frame.extend_from_slice(message.as_bytes());
                    let _ = out.send(Out::Frame(frame)).await;
                }
            }
            let _ = out.send(Out::Done).await;
        });
    }
    drop(out_tx);
    let mut open = targets.len();
    while open > 0 {
        tokio::select! {
            _ = cut.changed() => return,
            out = out_rx.recv() => match out {
                Some(Out::Frame(frame)) => {
                    if ws.send(Message::binary(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Out::Done) => open -= 1,
                None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Binary(frame))) => {
                    let Some((&ch, data)) = frame.split_first() else { continue };
                    let port = usize::from(ch / 2);
                    if ch % 2 == 0 && !data.is_empty()
                        && let Some(w) = writers.get(port)
                    {
                        let _ = w.send(Bytes::copy_from_slice(data)).await;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    // The closing handshake: the Close frame, then whatever the client
    // still sends until its Close (closing with unread bytes would reset
    // the connection and lose the frames it has not read yet).
    let _ = ws.close(None).await;
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

/// Copies between a port's TCP connection and its data channel until the
/// pod's side closes (or the client's side goes away).
async fn pump(stream: TcpStream, data: u8, mut rx: mpsc::Receiver<Bytes>, out: &mpsc::Sender<Out>) {
    let (mut read, mut write) = stream.into_split();
    let to_pod = async move {
        while let Some(bytes) = rx.recv().await {
            if write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let from_pod = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(data);
                    frame.extend_from_slice(&buf[..n]);
                    if out.send(Out::Frame(frame)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = to_pod => {}
        () = from_pod => {}
    }
}

#[cfg(test)]
mod tests {
    use super::ports;

    #[test]
    fn ports_are_read_as_the_api_server_reads_them() {
        assert_eq!(ports("ports=7471"), Ok(vec![7471]));
        assert_eq!(ports("&ports=80%2C1234"), Ok(vec![80, 1234]));
        assert_eq!(ports("ports=80&ports=81"), Ok(vec![80, 81]));
        assert!(ports("").is_err());
        assert!(ports("ports=0").is_err());
        assert!(ports("ports=x").is_err());
    }
}
