//! `GET /metrics` over HTTP/1.1 (hyper), on a thread and runtime of its
//! own, so that rendering a scrape never takes a worker of the runtime
//! that serves the agents' streams. Scrapes are rendered one at a time
//! (one [`Renderer`], whose buffers are reused); a second scraper waits
//! for the first, and a scraper that reads slowly holds only its own
//! response's bytes.
//!
//! `?shard=I&shards=N` renders one part of the nodes ([`Shard`]).
//!
//! With `--auth kubernetes` ([`Exporter::with_auth`]) a scrape is
//! authorized as kube-rbac-proxy and metrics-server authorize theirs: its
//! `Authorization: Bearer` token must be one the API server accepts
//! (TokenReview, the API server's own audience: a ServiceAccount token
//! such as Prometheus'), and its user must be allowed `get` on the
//! non-resource URL `/metrics` (SubjectAccessReview with
//! `nonResourceAttributes`; a ClusterRole rule `nonResourceURLs:
//! ["/metrics"], verbs: ["get"]`). No token or a refused one: 401 with
//! `WWW-Authenticate: Bearer`; not allowed: 403; the API server not
//! answering: 503; a peer over its budget of failed authentications: 429.
//! The body says which. Both answers are cached ([`crate::auth`]), so a
//! scrape every 15 s costs no API call after the first.
//!
//! Memory is bounded: a response (the whole text of a scrape) is held
//! only while its connection is open, and at most [`MAX_CONNECTIONS`]
//! connections are served at once; a connection beyond them is closed at
//! once (and logged), so scrapers that never read cannot pile up answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use tokio::sync::watch;

use crate::auth::{Access, Authorizer, Gate};
use crate::error::{Error, Result};
use crate::export::findings;
use crate::export::prometheus::{Inputs, Options, Renderer, Shard};
use crate::state::State;
use crate::sync::lock;

/// Connections served at once (Prometheus scrapes a target over one).
pub const MAX_CONNECTIONS: usize = 4;

/// What the endpoint reads.
#[derive(Clone)]
pub struct Exporter {
    /// The live state.
    pub state: Arc<State>,
    /// The Kubernetes side, for names, node objects and device plugins.
    pub kube: Option<Arc<crate::kube::Kube>>,
    /// The latest cluster diagnosis.
    pub findings: findings::Latest,
    /// How series are rendered.
    pub options: Options,
    renderer: Arc<Mutex<Renderer>>,
    last: Arc<Mutex<LastScrape>>,
    /// The OTLP exporter's counts, exported with the series when it runs.
    otlp: Option<Arc<crate::export::otlp::Stats>>,
    /// Who may scrape; `None`: anyone who reaches the port.
    auth: Option<Arc<Authorizer>>,
}

/// The previous scrape's cost, exported with the next one.
#[derive(Debug, Default, Clone, Copy)]
struct LastScrape {
    scrapes: u64,
    seconds: f64,
    bytes: usize,
    samples: usize,
}

impl Exporter {
    /// An exporter of `state`.
    pub fn new(
        state: Arc<State>,
        kube: Option<Arc<crate::kube::Kube>>,
        findings: findings::Latest,
        options: Options,
    ) -> Self {
        Self {
            state,
            kube,
            findings,
            options,
            renderer: Arc::default(),
            last: Arc::default(),
            otlp: None,
            auth: None,
        }
    }

    /// Serves a scrape only to a caller whose bearer token the API server
    /// accepts and whose user may `get /metrics`.
    pub fn with_auth(mut self, auth: Option<Arc<Authorizer>>) -> Self {
        self.auth = auth;
        self
    }

    /// Also exports the OTLP exporter's counts (`gpuscope_otlp_*`).
    pub fn with_otlp(mut self, stats: Option<Arc<crate::export::otlp::Stats>>) -> Self {
        self.otlp = stats;
        self
    }

    /// Renders one scrape of `shard`: the text as chunks, and its size.
    pub fn scrape(&self, shard: Shard) -> (Vec<Bytes>, usize) {
        let started = Instant::now();
        let k = crate::export::KubeInputs::of(self.kube.as_deref());
        let inputs = Inputs {
            pods: &k.pods,
            nodes: &k.nodes,
            device_plugins: &k.device_plugins,
            counts: self.state.tally().counts(),
            findings: lock(&self.findings).clone(),
        };
        let (mut chunks, rendered) = {
            let mut r = lock(&self.renderer);
            r.render(&self.state, &inputs, self.options, shard)
        };
        // The exporter's own cost: the previous scrape's (this one's is
        // not known until it is written).
        let prev = {
            let mut last = lock(&self.last);
            let prev = *last;
            *last = LastScrape {
                scrapes: prev.scrapes + 1,
                seconds: started.elapsed().as_secs_f64(),
                bytes: rendered.bytes,
                samples: rendered.samples,
            };
            prev
        };
        let own = format!(
            "# HELP gpuscope_exporter_scrapes_total Scrapes of /metrics served.\n\
             # TYPE gpuscope_exporter_scrapes_total counter\n\
             gpuscope_exporter_scrapes_total {}\n\
             # HELP gpuscope_exporter_last_scrape_duration_seconds How long rendering the previous scrape took, seconds.\n\
             # TYPE gpuscope_exporter_last_scrape_duration_seconds gauge\n\
             gpuscope_exporter_last_scrape_duration_seconds {}\n\
             # HELP gpuscope_exporter_last_scrape_bytes Size of the previous scrape's text, bytes.\n\
             # TYPE gpuscope_exporter_last_scrape_bytes gauge\n\
             gpuscope_exporter_last_scrape_bytes {}\n\
             # HELP gpuscope_exporter_last_scrape_samples Samples in the previous scrape.\n\
             # TYPE gpuscope_exporter_last_scrape_samples gauge\n\
             gpuscope_exporter_last_scrape_samples {}\n",
            prev.scrapes + 1,
            prev.seconds,
            prev.bytes,
            prev.samples
        );
        let mut total = rendered.bytes + own.len();
        chunks.push(Bytes::from(own));
        if let Some(otlp) = &self.otlp {
            let text = otlp.prometheus_text();
            total += text.len();
            chunks.push(Bytes::from(text));
        }
        if let Some(auth) = &self.auth {
            let text = auth_text(auth.counts());
            total += text.len();
            chunks.push(Bytes::from(text));
        }
        (chunks, total)
    }
}

/// What authentication has cost, as series.
fn auth_text(c: crate::auth::AuthCounts) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "token_reviews",
            "TokenReviews sent to the API server.",
            c.token_reviews,
        ),
        (
            "tokens_refused",
            "TokenReviews that did not accept the token.",
            c.token_refused,
        ),
        (
            "peer_limited",
            "Authentications refused without a review: the address spent its budget of failures.",
            c.peer_limited,
        ),
        (
            "reviews_busy",
            "Authentications refused for want of a place among the TokenReviews in flight.",
            c.reviews_busy,
        ),
    ] {
        out.push_str(&format!(
            "# HELP gpuscope_auth_{name}_total {help}\n# TYPE gpuscope_auth_{name}_total counter\n\
             gpuscope_auth_{name}_total {value}\n"
        ));
    }
    out
}

type Body = BoxBody<Bytes, Infallible>;

/// The `shard` and `shards` query parameters; `None`: malformed.
fn shard_of(query: Option<&str>) -> Option<Shard> {
    let (mut index, mut of) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("shard", v)) => index = Some(v.parse::<u32>().ok()?),
            Some(("shards", v)) => of = Some(v.parse::<u32>().ok()?),
            _ => {}
        }
    }
    match (index, of) {
        (None, None) => Some(Shard::ALL),
        (Some(index), Some(of)) if of > 0 && index < of => Some(Shard { index, of }),
        _ => None,
    }
}

fn text(status: StatusCode, s: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(s.into()).boxed());
    *r.status_mut() = status;
    r
}

/// The question a scrape must be allowed.
const SCRAPE: (&str, &str) = ("get", "/metrics");

/// `Ok` when the scrape's caller may `get /metrics`, else the answer
/// that says why not.
async fn authorize<B>(
    auth: &Arc<Authorizer>,
    req: &Request<B>,
    peer: std::net::IpAddr,
) -> std::result::Result<(), Response<Body>> {
    let refused = |status: tonic::Status| {
        let code = match status.code() {
            tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut r = text(code, format!("{}\n", status.message()));
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"gpuscope\""),
            );
        }
        r
    };
    let Some(header) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return Err(refused(tonic::Status::unauthenticated(
            "no credentials: send `Authorization: Bearer TOKEN` with a ServiceAccount token whose \
             user may get the non-resource URL /metrics (Prometheus: the ServiceMonitor's \
             authorization or bearerTokenFile)",
        )));
    };
    let token = crate::auth::bearer_of(header.as_bytes()).map_err(refused)?;
    let caller = auth
        .authenticate_token(token, "", Some(peer))
        .await
        .map_err(refused)?;
    let gate = Gate::Checked {
        auth: auth.clone(),
        caller,
    };
    gate.require(&Access::path(SCRAPE.0, SCRAPE.1))
        .await
        .map_err(refused)
}

async fn handle<B>(
    exporter: &Exporter,
    req: &Request<B>,
    peer: std::net::IpAddr,
) -> Response<Body> {
    if req.uri().path() != SCRAPE.1 {
        return text(
            StatusCode::NOT_FOUND,
            "gpuscope aggregator: metrics at /metrics (?shard=I&shards=N for a part of the nodes)\n",
        );
    }
    let Some(shard) = shard_of(req.uri().query()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "shard and shards must both be given, with 0 <= shard < shards\n",
        );
    };
    if let Some(auth) = &exporter.auth
        && let Err(refused) = authorize(auth, req, peer).await
    {
        return refused;
    }
    let (chunks, _) = exporter.scrape(shard);
    let stream = tokio_stream::iter(chunks.into_iter().map(|c| Ok(Frame::data(c))));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Binds `addr` and serves `/metrics` on a thread of its own until
/// `shutdown`; the bound address and the thread.
pub fn serve_thread(
    addr: SocketAddr,
    exporter: Exporter,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let bind_err = move |source| Error::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let bound = std_listener.local_addr().map_err(bind_err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(bind_err)?;
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "The metrics listener failed.");
                        return;
                    }
                };
                let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                loop {
                    let (stream, peer) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(e) => {
                                tracing::warn!(error = %e, "Accepting a metrics connection failed.");
                                continue;
                            }
                        },
                        _ = crate::sync::stopped(&mut shutdown) => return,
                    };
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = MAX_CONNECTIONS,
                            "Too many metrics connections at once; closing this one.");
                        continue;
                    };
                    let exporter = exporter.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let service = hyper::service::service_fn(move |req| {
                            let exporter = exporter.clone();
                            async move { Ok::<_, Infallible>(handle(&exporter, &req, peer.ip()).await) }
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(error = %e, "A metrics connection ended with an error.");
                        }
                    });
                }
            });
        })
        .map_err(bind_err)?;
    Ok((bound, thread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_proto::v1 as pb;
    use std::io::{Read, Write};

    /// `nodes` nodes of 32 containers each.
    fn big_state(nodes: usize) -> Arc<State> {
        let state = Arc::new(State::new(crate::state::HistoryConfig::default()));
        for n in 0..nodes {
            let mut r = report(n, 32);
            state.apply_report(&format!("node-{n}"), &mut r);
        }
        state
    }

    fn report(n: usize, containers: usize) -> pb::NodeReport {
        pb::NodeReport {
            containers: (0..containers)
                .map(|c| pb::ContainerSample {
                    container: Some(pb::ContainerRef {
                        cgroup_path: format!("/kubepods/pod{n}-{c}/c{c}"),
                        pod_uid: format!("uid-{n}-{c}"),
                        container_id: format!("{c:064x}"),
                        ..Default::default()
                    }),
                    memory: Some(pb::MemoryStats {
                        usage_bytes: 1 << 20,
                        limit_bytes: Some(1 << 30),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn get(addr: SocketAddr) -> std::net::TcpStream {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        s
    }

    #[test]
    fn a_scraper_that_does_not_read_holds_neither_ingest_nor_other_scrapers() {
        let state = big_state(1000);
        let exporter = Exporter::new(
            state.clone(),
            None,
            findings::Latest::default(),
            Options::default(),
        );
        let (_stop, rx) = watch::channel(false);
        let (addr, _thread) =
            serve_thread("127.0.0.1:0".parse().expect("addr"), exporter, rx).expect("serve");
        // The first scraper asks and never reads: its answer (about 10 MB)
        // fills the socket buffers and waits.
        let _stalled = get(addr);
        std::thread::sleep(std::time::Duration::from_millis(500));
        // Ingest of a node goes on, at its usual pace.
        let started = Instant::now();
        for _ in 0..50 {
            let mut r = report(7, 32);
            state.apply_report("node-7", &mut r);
        }
        let ingest = started.elapsed();
        assert!(
            ingest < std::time::Duration::from_secs(2),
            "50 reports took {ingest:?}"
        );
        // A second scraper is answered in full.
        let mut second = get(addr);
        second
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        let mut body = Vec::new();
        second
            .read_to_end(&mut body)
            .expect("read the second scrape");
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "{}",
            &text[..text.len().min(200)]
        );
        let usage = text
            .lines()
            .filter(|l| l.starts_with("gpuscope_container_memory_usage_bytes{"))
            .count();
        assert_eq!(usage, 1000 * 32);
        drop(second);
        // With MAX_CONNECTIONS stalled answers held, another scraper is
        // turned away instead of adding one more.
        let _stalled: Vec<_> = (1..MAX_CONNECTIONS).map(|_| get(addr)).collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut extra = get(addr);
        extra
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut got = Vec::new();
        let _ = extra.read_to_end(&mut got);
        assert!(
            got.is_empty(),
            "a connection beyond MAX_CONNECTIONS was answered"
        );
    }

    #[test]
    fn shard_parameters_are_both_or_neither() {
        assert_eq!(shard_of(None), Some(Shard::ALL));
        assert_eq!(
            shard_of(Some("shard=1&shards=4")),
            Some(Shard { index: 1, of: 4 })
        );
        assert_eq!(shard_of(Some("shard=4&shards=4")), None);
        assert_eq!(shard_of(Some("shard=1")), None);
        assert_eq!(shard_of(Some("shards=0&shard=0")), None);
    }
}
