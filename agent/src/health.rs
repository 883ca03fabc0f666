//! The agent's liveness and readiness, over HTTP for the kubelet's probes
//! (`run --health-listen ADDR`).
//!
//! What they mean:
//!
//! - `GET /livez`: the collection loop is turning. Every full collection
//!   (`--interval`) ends in a node sample that the sampler thread hands to
//!   the pipeline thread and the pipeline to the shipper; [`Health::observe`]
//!   sees it there. No node sample for `--health-stale` (a read stuck in a
//!   hung filesystem, a deadlocked thread) is 503: the kubelet restarts
//!   the container. Before the first collection the agent is live for
//!   `--health-stale` after start.
//! - `GET /readyz`: the agent is doing its job: a collection within three
//!   intervals (at least 5 s), the `cgroup` source not `unavailable` (no
//!   cgroup hierarchy where `--cgroup-root` says: a wrong mount), and the
//!   stream to the aggregator open. A DaemonSet's rolling update waits for
//!   each new pod to be ready, so an agent that cannot collect or cannot
//!   reach the aggregator stops a bad rollout instead of spreading it.
//!
//! Both answer a JSON body with each check, so `curl` says why.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpuscope_model::{Event, SourceState};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

use crate::runtime::Output;

/// What the probes read, updated by the collection callback.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds from `start` to the last full collection, plus one; 0:
    /// none yet.
    last_collection: AtomicU64,
    /// The `cgroup` source's last reported state and reason.
    cgroup: Mutex<(SourceState, Option<String>)>,
    /// Whether the stream to the aggregator is open (the shipper's flag).
    connected: Arc<AtomicBool>,
    interval: Duration,
    stale: Duration,
}

/// One probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 200 when true, 503 otherwise.
    pub ok: bool,
    /// The JSON body: each check and its value.
    pub body: String,
}

impl Health {
    /// Probes for an agent collecting every `interval`, live while a
    /// collection ended within `stale`, with the stream state in
    /// `connected`.
    pub fn new(interval: Duration, stale: Duration, connected: Arc<AtomicBool>) -> Self {
        Self {
            start: Instant::now(),
            last_collection: AtomicU64::new(0),
            cgroup: Mutex::new((SourceState::Ok, None)),
            connected,
            interval,
            stale,
        }
    }

    /// Notes what the collection loop produced: a node sample ends a full
    /// collection; a `source` event of `cgroup` changes its state.
    pub fn observe(&self, output: &Output<'_>) {
        match output {
            Output::Node(_) => {
                let ms = self.start.elapsed().as_millis() as u64 + 1;
                self.last_collection.store(ms, Ordering::Relaxed);
            }
            Output::Event(Event::Source { status, .. }) if status.source == "cgroup" => {
                let mut c = self.cgroup.lock().unwrap_or_else(|p| p.into_inner());
                *c = (status.state, status.reason.clone());
            }
            _ => {}
        }
    }

    /// Time since the last full collection; `None` before the first.
    fn since_collection(&self) -> Option<Duration> {
        match self.last_collection.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }

    /// `/livez`: a collection ended within `stale` (or the agent started
    /// less than `stale` ago).
    pub fn live(&self) -> Verdict {
        let since = self.since_collection();
        let ok = since.unwrap_or_else(|| self.start.elapsed()) <= self.stale;
        Verdict {
            ok,
            body: serde_json::json!({
                "live": ok,
                "last_collection_seconds_ago": since.map(|d| d.as_secs_f64()),
                "stale_after_seconds": self.stale.as_secs_f64(),
            })
            .to_string(),
        }
    }

    /// `/readyz`: collecting, the cgroup source usable, the stream open.
    pub fn ready(&self) -> Verdict {
        let since = self.since_collection();
        let fresh = (self.interval * 3).max(Duration::from_secs(5));
        let collecting = since.is_some_and(|d| d <= fresh);
        let (cgroup_state, cgroup_reason) = self
            .cgroup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let cgroup_ok = cgroup_state != SourceState::Unavailable;
        let connected = self.connected.load(Ordering::Relaxed);
        let ok = collecting && cgroup_ok && connected;
        Verdict {
            ok,
            body: serde_json::json!({
                "ready": ok,
                "collecting": collecting,
                "last_collection_seconds_ago": since.map(|d| d.as_secs_f64()),
                "cgroup": cgroup_state,
                "cgroup_reason": cgroup_reason,
                "aggregator_connected": connected,
            })
            .to_string(),
        }
    }
}

/// Why the health endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The address could not be bound.
    #[error("cannot listen for health probes on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `addr` and answers `/livez` and `/readyz` from `health` on a
/// thread of its own (a current-thread runtime: probes are rare and
/// small). Returns the address bound (useful with port 0).
pub fn serve(addr: SocketAddr, health: Arc<Health>) -> Result<SocketAddr, HealthError> {
    let err = move |source| HealthError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "Health endpoint cannot start.");
                        return;
                    }
                };
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let health = health.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let answer = answer(&health, &req);
                            async move { Ok::<_, std::convert::Infallible>(answer) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })
        .map_err(err)?;
    Ok(bound)
}

/// The response to one request.
fn answer<B>(health: &Health, req: &Request<B>) -> Response<Full<Bytes>> {
    let verdict = match req.uri().path() {
        "/livez" | "/healthz" => health.live(),
        "/readyz" => health.ready(),
        _ => {
            return respond(
                StatusCode::NOT_FOUND,
                "not found: /livez or /readyz\n".into(),
            );
        }
    };
    let status = if verdict.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(status, verdict.body + "\n")
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_model::{SourceStatus, Timestamp};

    fn node() -> gpuscope_model::NodeSample {
        gpuscope_model::NodeSample {
            time: Timestamp::now(),
            boot_id: "b".into(),
            kernel_release: "6.1".into(),
            cgroup_mode: None,
            mem_total_bytes: 1,
            mem_available_bytes: 1,
            pressure: Default::default(),
        }
    }

    #[test]
    fn ready_needs_a_collection_a_cgroup_tree_and_the_stream() {
        let connected = Arc::new(AtomicBool::new(false));
        let h = Health::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            connected.clone(),
        );
        // Started, nothing collected: live (within stale), not ready.
        assert!(h.live().ok);
        assert!(!h.ready().ok);
        h.observe(&Output::Node(&node()));
        assert!(!h.ready().ok, "{}", h.ready().body);
        connected.store(true, Ordering::Relaxed);
        assert!(h.ready().ok, "{}", h.ready().body);
        let gone = Event::Source {
            time: Timestamp::now(),
            status: SourceStatus {
                source: "cgroup".into(),
                state: SourceState::Unavailable,
                reason: Some("/host/sys/fs/cgroup: no such directory".into()),
            },
        };
        h.observe(&Output::Event(&gone));
        let r = h.ready();
        assert!(!r.ok);
        assert!(r.body.contains("no such directory"), "{}", r.body);
        assert!(h.live().ok);
    }

    #[test]
    fn not_live_when_collections_stop() {
        let h = Health::new(
            Duration::from_millis(10),
            Duration::from_millis(50),
            Arc::new(AtomicBool::new(true)),
        );
        h.observe(&Output::Node(&node()));
        assert!(h.live().ok);
        std::thread::sleep(Duration::from_millis(80));
        let v = h.live();
        assert!(!v.ok, "{}", v.body);
    }
}
