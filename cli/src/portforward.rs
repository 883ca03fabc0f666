//! Reaching the aggregator through the API server, as `kubectl
//! port-forward svc/...` does, so a user needs no route into the cluster.
//!
//! The mechanism: the API server's `pods/{name}/portforward` subresource,
//! upgraded to a WebSocket (subprotocol `v4.channel.k8s.io`), is relayed
//! by the API server to the pod's kubelet, which connects to the port
//! inside the pod's network namespace. Each forwarded port has a data
//! channel and an error channel; the first frame of each carries the port
//! (2 bytes, little-endian); the kubelet writes a message on the error
//! channel when it cannot connect. kube-rs speaks this protocol
//! (`Api::<Pod>::portforward`) and hands back one byte stream per port.
//!
//! Like kubectl, the Service is only used to find a pod: its selector lists
//! the pods, the first Running and Ready one (not being deleted, in name
//! order) is taken, and the Service port's `targetPort` (a number, or the
//! name of one of that pod's container ports) is the port forwarded.
//!
//! Why not the API server's service proxy
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/`): gRPC needs HTTP/2
//! end to end, with trailers carrying each call's status; the proxy
//! speaks HTTP/1.1 to the client side and does not carry trailers
//! reliably. A port-forward is a plain byte stream, so tonic runs HTTP/2
//! (and TLS, when the aggregator serves it) over it unchanged.
//!
//! This module resolves the Service to a pod and port, and is the tower
//! connector tonic dials through: one port-forward per HTTP/2 connection
//! (the first one opened up front, so a refusal is reported before any
//! call). The bearer token the CLI sends is the aggregator's business; the
//! same kubeconfig credentials authorize the port-forward itself, which
//! needs `create pods/portforward` in the aggregator's namespace (plus `get
//! services` and `list pods` there to find the pod).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use gpuscope_proto::client::{ClientTls, EndpointError, endpoint};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::io::DuplexStream;
use tokio::sync::watch;

/// The Service `kubectl gpuscope` reaches without `--aggregator`: the
/// manifests' (`deploy/kustomize/base/aggregator.yaml`), on its
/// Query-only port.
pub const DEFAULT_SERVICE: &str = "gpuscope/gpuscope-aggregator:query";

/// How long a failed connection waits for the port-forward to say why
/// (the error channel's message, the WebSocket's end), which may arrive
/// just after the byte stream closed.
const WHY_WAIT: Duration = Duration::from_secs(2);

/// A Service port: its number or its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    /// `port:` of one of the Service's ports.
    Number(u16),
    /// `name:` of one of the Service's ports.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

/// `NAMESPACE/NAME[:PORT]`: the aggregator's Service and, optionally, which
/// of its ports (by number or name; without one, the Service's only port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// Which port; `None`: the only one.
    pub port: Option<PortRef>,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        match &self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl FromStr for ServiceRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not NAMESPACE/NAME[:PORT]");
        let (namespace, rest) = s.split_once('/').ok_or_else(bad)?;
        let (name, port) = match rest.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (rest, None),
        };
        let port = match port {
            None => None,
            Some(p) if p.is_empty() || p.contains(['/', ':']) => return Err(bad()),
            Some(p) => Some(
                p.parse()
                    .map_or_else(|_| PortRef::Name(p.to_owned()), PortRef::Number),
            ),
        };
        let valid = |part: &str| !part.is_empty() && !part.contains(['/', ':']);
        if !valid(namespace) || !valid(name) {
            return Err(bad());
        }
        Ok(ServiceRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }
}

/// Why the aggregator could not be reached through the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig (or in-cluster ServiceAccount) to reach the API server
    /// with.
    #[error(
        "cannot reach the API server to find the aggregator: {0} \
         (set KUBECONFIG, or give --aggregator URL)"
    )]
    Kubeconfig(String),
    /// The Service does not exist.
    #[error(
        "no Service {namespace}/{name}: is gpuscope installed in this cluster \
         (kubectl apply -k deploy/kustomize/overlays/plain)? Name another with \
         --aggregator-service NAMESPACE/NAME[:PORT], or give --aggregator URL"
    )]
    NoService {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
    },
    /// The API server refused a request for lack of a permission.
    #[error(
        "the API server refused: you lack `{permission}` in namespace {namespace}, \
         which reaching the aggregator through the API server needs ({message})"
    )]
    Forbidden {
        /// The missing permission (`create pods/portforward`).
        permission: &'static str,
        /// Where.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// Any other failure of an API request.
    #[error("cannot {what}: {source}")]
    Api {
        /// What was asked (`get Service gpuscope/gpuscope-aggregator`).
        what: String,
        /// Why it failed.
        source: kube::Error,
    },
    /// The Service has no such port.
    #[error("Service {service} has no port {port} (it has: {ports})")]
    NoPort {
        /// The Service.
        service: String,
        /// The port asked for.
        port: String,
        /// The ports it has, as `name=number`.
        ports: String,
    },
    /// The Service selects no pods (ExternalName, or endpoints managed by
    /// hand).
    #[error("Service {service} has no selector, so no pod to forward to: give --aggregator URL")]
    NoSelector {
        /// The Service.
        service: String,
    },
    /// No pod behind the Service is Running and Ready.
    #[error("no ready pod behind Service {service} (selector {selector}): {why}")]
    NoReadyPod {
        /// The Service.
        service: String,
        /// Its selector.
        selector: String,
        /// What was found instead.
        why: String,
    },
    /// The Service's named targetPort is none of the pod's container ports.
    #[error(
        "pod {namespace}/{pod} has no container port named {name:?} (the targetPort of Service {service})"
    )]
    NoTargetPort {
        /// The Service.
        service: String,
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// The targetPort's name.
        name: String,
    },
    /// The address or TLS settings of the channel were refused.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The port-forward opened, but the pod's side refused or failed
    /// (the kubelet's message on the error channel) or it ended.
    #[error("the port-forward to pod {target} through the API server {why}")]
    Ended {
        /// `namespace/pod port N`.
        target: String,
        /// Why it ended.
        why: String,
    },
    /// The HTTP/2 (or TLS) handshake with the aggregator over the
    /// port-forward failed.
    #[error("cannot talk gRPC to the aggregator over the port-forward to pod {target}: {source}")]
    Handshake {
        /// `namespace/pod port N`.
        target: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// The pod and port the Service resolved to.
#[derive(Debug, Clone)]
struct Target {
    namespace: String,
    pod: String,
    port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} port {}", self.namespace, self.pod, self.port)
    }
}

/// A tonic channel to the aggregator behind `service`, through port-forwards
/// opened with the kubeconfig's credentials, and the watch on them that
/// says why a call failed ([`Health::explain`]). With a `--tls-ca`, TLS runs
/// over the port-forward and the certificate is checked against
/// `NAME.NAMESPACE.svc` (or `--tls-server-name`).
pub async fn channel(
    service: &ServiceRef,
    tls: &ClientTls,
) -> Result<(tonic::transport::Channel, Health), Error> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let client = kube::Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let target = resolve(&client, service).await?;
    let (ended, health) = watch::channel(None);
    let forwarder = Forwarder {
        client,
        target: target.clone(),
        first: Arc::new(Mutex::new(None)),
        ended: Arc::new(ended),
    };
    let first = forwarder.forward().await?;
    *forwarder
        .first
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(first);
    let scheme = if tls.tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let uri = format!(
        "{scheme}://{}.{}.svc:{}",
        service.name, service.namespace, target.port
    );
    let health = Health {
        target: target.to_string(),
        ended: health,
    };
    match endpoint(&uri, tls)?.connect_with_connector(forwarder).await {
        Ok(channel) => Ok((channel, health)),
        Err(source) => Err(health.why().await.unwrap_or(Error::Handshake {
            target: target.to_string(),
            source,
        })),
    }
}

/// Says why the port-forwards of a channel ended, to name the cause of a
/// failed call.
#[derive(Debug, Clone)]
pub struct Health {
    target: String,
    ended: watch::Receiver<Option<String>>,
}

impl Health {
    /// Why the latest port-forward ended, waiting briefly for it to say;
    /// `None` while it is open.
    async fn why(&self) -> Option<Error> {
        let mut ended = self.ended.clone();
        let said = tokio::time::timeout(WHY_WAIT, ended.wait_for(Option::is_some)).await;
        let why = said.ok()?.ok()?.clone()?;
        Some(Error::Ended {
            target: self.target.clone(),
            why,
        })
    }

    /// "connection to the aggregator lost: ..." when a port-forward has
    /// ended, saying why; `None` while it is open.
    fn lost(&self) -> Option<String> {
        let why = self.ended.borrow().clone()?;
        Some(format!(
            "connection to the aggregator lost: the port-forward to pod {} through the API server {why}",
            self.target
        ))
    }

    /// A failed call's `error`, with why the port-forward ended when it has.
    pub fn explain(&self, error: tower::BoxError) -> tower::BoxError {
        match self.lost() {
            Some(lost) => format!("{lost} ({error})").into(),
            None => error,
        }
    }

    /// A streamed answer's failure `status`, with why the port-forward
    /// ended when it has (the code kept).
    pub fn explain_status(&self, status: tonic::Status) -> tonic::Status {
        match self.lost() {
            Some(lost) => {
                tonic::Status::new(status.code(), format!("{lost} ({})", status.message()))
            }
            None => status,
        }
    }
}

/// Looks up the Service, picks its first ready pod and the port to forward.
async fn resolve(client: &kube::Client, service: &ServiceRef) -> Result<Target, Error> {
    let ns = &service.namespace;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let what = format!("get Service {ns}/{}", service.name);
    let svc = match services.get_opt(&service.name).await {
        Ok(Some(svc)) => svc,
        Ok(None) => {
            return Err(Error::NoService {
                namespace: ns.clone(),
                name: service.name.clone(),
            });
        }
        Err(e) => return Err(api_error(what, "get services", ns, e)),
    };
    let spec = svc.spec.unwrap_or_default();
    let name = format!("{ns}/{}", service.name);
    let ports = spec.ports.unwrap_or_default();
    let port = match &service.port {
        None if ports.len() == 1 => ports.first(),
        None => None,
        Some(PortRef::Number(n)) => ports.iter().find(|p| p.port == i32::from(*n)),
        Some(PortRef::Name(n)) => ports.iter().find(|p| p.name.as_deref() == Some(n)),
    };
    let Some(port) = port else {
        let listed: Vec<String> = ports
            .iter()
            .map(|p| format!("{}={}", p.name.as_deref().unwrap_or(""), p.port))
            .collect();
        return Err(Error::NoPort {
            service: name,
            port: service.port.as_ref().map_or(
                "(none given, and it has several)".into(),
                ToString::to_string,
            ),
            ports: listed.join(", "),
        });
    };
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(Error::NoSelector { service: name });
    }
    let selector = label_selector(&selector);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(format!("list pods {selector} in {ns}"), "list pods", ns, e))?;
    let mut items = listed.items;
    items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let Some(pod) = items.iter().find(|p| ready(p)) else {
        let why = if items.is_empty() {
            "no pod matches it".to_owned()
        } else {
            let states: Vec<String> = items.iter().map(pod_state).collect();
            format!("none is Running and Ready ({})", states.join("; "))
        };
        return Err(Error::NoReadyPod {
            service: name,
            selector,
            why,
        });
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(target)) => pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(target))
            .map(|p| p.container_port)
            .ok_or_else(|| Error::NoTargetPort {
                service: name.clone(),
                namespace: ns.clone(),
                pod: pod_name.clone(),
                name: target.clone(),
            })?,
    };
    let port = u16::try_from(number).map_err(|_| Error::NoPort {
        service: name,
        port: number.to_string(),
        ports: "(a port number out of range)".into(),
    })?;
    Ok(Target {
        namespace: ns.clone(),
        pod: pod_name,
        port,
    })
}

/// `k=v,k2=v2`.
fn label_selector(selector: &BTreeMap<String, String>) -> String {
    let terms: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    terms.join(",")
}

/// Running, Ready, and not being deleted: what kubectl would forward to.
fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    pod.metadata.deletion_timestamp.is_none()
        && status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `name: Phase, not Ready` (or `being deleted`).
fn pod_state(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let state = match (pod.metadata.deletion_timestamp.is_some(), phase) {
        (true, _) => "being deleted",
        (false, Some("Running")) => "Running, not Ready",
        (false, Some(phase)) => phase,
        (false, None) => "no status",
    };
    format!("{name}: {state}")
}

/// A refused request as [`Error::Forbidden`] naming `permission`, others as
/// [`Error::Api`].
fn api_error(what: String, permission: &'static str, namespace: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) if status.code == 403 => Error::Forbidden {
            permission,
            namespace: namespace.to_owned(),
            message: status.message,
        },
        source => Error::Api { what, source },
    }
}

/// The connector tonic dials through: each call opens a port-forward to the
/// target pod and port and yields its byte stream.
#[derive(Clone)]
struct Forwarder {
    client: kube::Client,
    target: Target,
    /// The stream opened up front, handed to the first connection.
    first: Arc<Mutex<Option<DuplexStream>>>,
    /// Why the latest port-forward ended, once it has.
    ended: Arc<watch::Sender<Option<String>>>,
}

impl Forwarder {
    /// Opens one port-forward (the WebSocket upgrade of
    /// `pods/{pod}/portforward?ports=PORT`) and relays it to the returned
    /// stream on a task of its own.
    async fn forward(&self) -> Result<DuplexStream, Error> {
        use kube::Resource;
        let Target {
            namespace,
            pod,
            port,
        } = &self.target;
        let what = || {
            format!(
                "open a port-forward to pod {} through the API server",
                self.target
            )
        };
        let request = kube::core::Request::new(Pod::url_path(&(), Some(namespace)))
            .portforward(pod, &[*port])
            .map_err(|e| Error::Api {
                what: what(),
                source: kube::Error::BuildRequest(e),
            })?;
        let connection = self
            .client
            .connect(request)
            .await
            .map_err(|e| api_error(what(), "create pods/portforward", namespace, e))?;
        let (ours, theirs) = tokio::io::duplex(RELAY_BUFFER);
        self.ended.send_replace(None);
        let ended = Arc::clone(&self.ended);
        let port = *port;
        tokio::spawn(async move {
            if let Some(why) = relay(connection.into_stream(), port, theirs).await {
                ended.send_replace(Some(why));
            }
        });
        Ok(ours)
    }
}

/// The buffer between the WebSocket and the HTTP/2 connection.
const RELAY_BUFFER: usize = 256 << 10;

/// Relays between the port-forward's WebSocket and `local` until either
/// ends, and says why it ended unless `local` ended it (the connection
/// was done with it). The data channel (0) carries the bytes
/// both ways; the error channel (1) the kubelet's message when it cannot
/// connect to the port; the first frame of each is the port. When
/// sending fails (the server closed after writing its error), the
/// frames already received are still read, so the kubelet's message is
/// not lost.
async fn relay<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    port: u16,
    local: DuplexStream,
) -> Option<String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut frames) = ws.split();
    let (mut from_local, mut to_local) = tokio::io::split(local);
    let mut buf = vec![0u8; 32 << 10];
    let mut started = [false; 2];
    let mut message = Vec::new();
    let mut failure: Option<String> = None;
    let mut sending = true;
    let mut ours = false;
    loop {
        tokio::select! {
            read = from_local.read(&mut buf), if sending => match read {
                Ok(0) | Err(_) => {
                    // The connection is done with it: close the WebSocket
                    // (v4 has no half-close).
                    let _ = sink.send(Message::Close(None)).await;
                    ours = true;
                    break;
                }
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0);
                    frame.extend_from_slice(&buf[..n]);
                    if let Err(e) = sink.send(Message::binary(frame)).await {
                        failure.get_or_insert(format!("broke: {e}"));
                        sending = false;
                    }
                }
            },
            frame = frames.next() => match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let Some((&channel, data)) = bytes.split_first() else { continue };
                    match channel {
                        0 | 1 if !started[usize::from(channel)] => {
                            let said = <[u8; 2]>::try_from(data).ok().map(u16::from_le_bytes);
                            if said != Some(port) {
                                failure = Some(format!(
                                    "broke: channel {channel} began with {data:?}, not port {port}"
                                ));
                                break;
                            }
                            started[usize::from(channel)] = true;
                        }
                        0 => {
                            if to_local.write_all(data).await.is_err() {
                                // The connection is gone: it was done.
                                ours = true;
                                break;
                            }
                        }
                        1 => message.extend_from_slice(data),
                        other => {
                            failure = Some(format!("broke: a frame on unknown channel {other}"));
                            break;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Flushes the reply tungstenite queued.
                    let _ = sink.close().await;
                    break;
                }
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    failure.get_or_insert(format!("broke: {e}"));
                    break;
                }
            },
        }
    }
    let _ = to_local.shutdown().await;
    if !message.is_empty() {
        let message = String::from_utf8_lossy(&message);
        return Some(format!("failed in the pod: {message}"));
    }
    match (failure, ours) {
        (Some(failure), _) => Some(failure),
        (None, true) => None,
        (None, false) => Some("was closed by the API server".to_owned()),
    }
}

impl tower::Service<http::Uri> for Forwarder {
    type Response = TokioIo<DuplexStream>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let first = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let this = self.clone();
        Box::pin(async move {
            match first {
                Some(stream) => Ok(TokioIo::new(stream)),
                None => this.forward().await.map(TokioIo::new),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_refs_parse() {
        let s: ServiceRef = DEFAULT_SERVICE.parse().expect("default");
        assert_eq!(s.namespace, "gpuscope");
        assert_eq!(s.name, "gpuscope-aggregator");
        assert_eq!(s.port, Some(PortRef::Name("query".into())));
        assert_eq!(s.to_string(), DEFAULT_SERVICE);
        let s: ServiceRef = "ops/agg:7471".parse().expect("numbered");
        assert_eq!(s.port, Some(PortRef::Number(7471)));
        let s: ServiceRef = "ops/agg".parse().expect("no port");
        assert_eq!(s.port, None);
        for bad in ["agg", "/agg", "ops/", "ops/agg:", "a/b/c", "ops/agg:1:2"] {
            let err = bad.parse::<ServiceRef>().expect_err(bad);
            assert!(err.contains("NAMESPACE/NAME[:PORT]"), "{bad}: {err}");
        }
    }

    #[test]
    fn selectors_join_in_order() {
        let sel = BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(label_selector(&sel), "a=1,b=2");
    }
}
