//! How much one caller may ask, and how many streams a peer may hold, so
//! that a flood from one client neither delays another's answers nor the
//! agents' acknowledgements.
//!
//! Queries: each caller (its user name with `--auth kubernetes`, else its
//! IP address) has a token bucket ([`Limits::query_rate`] per second,
//! bursts of [`Limits::query_burst`]) and at most
//! [`Limits::query_concurrency`] calls in progress; a call beyond either is
//! refused at once with RESOURCE_EXHAUSTED, never queued, so it holds no
//! memory and no task. Ingest: at most [`Limits::streams_per_peer`] open
//! streams per IP address and [`Limits::streams_total`] in all
//! (RESOURCE_EXHAUSTED beyond). Bytes in flight are bounded by HTTP/2 flow
//! control (each stream's and connection's window) and the message size
//! limit; every call by [`Limits::rpc_timeout`]. The defaults and the
//! statuses are in docs/limits.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::sync::lock;

/// The limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Query calls per second per caller, on average. Default 50: a
    /// person's CLI makes a handful per command, a dashboard a few per
    /// refresh.
    pub query_rate: f64,
    /// Query calls a caller may make at once above the rate. Default 100.
    pub query_burst: u32,
    /// Query calls of one caller in progress at once. Default 16: an
    /// Explain costs up to milliseconds of a core (README, Performance).
    pub query_concurrency: u32,
    /// Open ingest streams per IP address. Default 4: one agent per node
    /// needs one (two while it reconnects).
    pub streams_per_peer: u32,
    /// Open ingest streams in all. Default 20,000 (the largest measured
    /// cluster is 12,500 nodes).
    pub streams_total: u32,
    /// Longest any call may take until its answer starts (a unary call's
    /// whole answer; a stream's first message). Default 30 s. A client's
    /// shorter `grpc-timeout` wins.
    pub rpc_timeout: Duration,
    /// HTTP/2 window of each stream and of each connection, bytes: what a
    /// peer may have in flight before it must wait for the aggregator to
    /// read. Default 1 MiB each (hyper's defaults, which the ingest
    /// figures were measured with).
    pub stream_window: u32,
    /// See `stream_window`.
    pub connection_window: u32,
    /// Concurrent HTTP/2 streams per connection. Default 1,024: an agent
    /// opens one; the ingest benchmark multiplexes 782 simulated nodes on
    /// one connection.
    pub streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            query_rate: 50.0,
            query_burst: 100,
            query_concurrency: 16,
            streams_per_peer: 4,
            streams_total: 20_000,
            rpc_timeout: Duration::from_secs(30),
            stream_window: 1 << 20,
            connection_window: 1 << 20,
            streams_per_connection: 1024,
        }
    }
}

/// One caller's bucket and calls in progress.
struct Bucket {
    tokens: f64,
    refilled: Instant,
    running: Arc<Semaphore>,
}

/// Callers remembered at most; beyond it the idle ones are forgotten.
const CALLERS_MAX: usize = 10_000;

/// Admits query calls per caller.
pub struct QueryLimiter {
    limits: Limits,
    callers: Mutex<HashMap<String, Bucket>>,
}

impl std::fmt::Debug for QueryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl QueryLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            callers: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one call of `caller`, or RESOURCE_EXHAUSTED. The call counts
    /// as in progress until the permit is dropped.
    pub fn admit(&self, caller: &str) -> Result<OwnedSemaphorePermit, Status> {
        let now = Instant::now();
        let l = &self.limits;
        let mut callers = lock(&self.callers);
        if callers.len() >= CALLERS_MAX && !callers.contains_key(caller) {
            callers.retain(|_, b| {
                b.running.available_permits() < l.query_concurrency as usize
                    || now.duration_since(b.refilled).as_secs_f64() * l.query_rate
                        < f64::from(l.query_burst)
            });
        }
        let b = callers.entry(caller.to_owned()).or_insert_with(|| Bucket {
            tokens: f64::from(l.query_burst),
            refilled: now,
            running: Arc::new(Semaphore::new(l.query_concurrency as usize)),
        });
        let elapsed = now.duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * l.query_rate).min(f64::from(l.query_burst));
        b.refilled = now;
        if b.tokens < 1.0 {
            return Err(Status::resource_exhausted(format!(
                "{caller} is over {} queries per second (bursts of {}): retry later",
                l.query_rate, l.query_burst
            )));
        }
        let permit = b.running.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{caller} has {} queries in progress already: wait for one to end",
                l.query_concurrency
            ))
        })?;
        b.tokens -= 1.0;
        Ok(permit)
    }
}

/// Admits ingest streams per peer and in all.
pub struct StreamLimiter {
    limits: Limits,
    total: Arc<Semaphore>,
    peers: Mutex<HashMap<std::net::IpAddr, Arc<Semaphore>>>,
}

impl std::fmt::Debug for StreamLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLimiter")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// An admitted stream; dropping it frees its place.
#[derive(Debug)]
pub struct StreamPermit {
    _total: OwnedSemaphorePermit,
    _peer: Option<OwnedSemaphorePermit>,
}

impl StreamLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            total: Arc::new(Semaphore::new(limits.streams_total as usize)),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one stream from `peer` (unknown: counted in the total only),
    /// or RESOURCE_EXHAUSTED.
    pub fn admit(&self, peer: Option<std::net::IpAddr>) -> Result<StreamPermit, Status> {
        let total = self.total.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the aggregator has {} ingest streams open already (--max-streams)",
                self.limits.streams_total
            ))
        })?;
        let peer = match peer {
            None => None,
            Some(ip) => {
                let mut peers = lock(&self.peers);
                let per = self.limits.streams_per_peer as usize;
                if peers.len() >= 2 * self.limits.streams_total as usize {
                    peers.retain(|_, s| s.available_permits() < per);
                }
                let sem = peers
                    .entry(ip)
                    .or_insert_with(|| Arc::new(Semaphore::new(per)));
                Some(sem.clone().try_acquire_owned().map_err(|_| {
                    Status::resource_exhausted(format!(
                        "{ip} has {per} ingest streams open already (--max-streams-per-peer)"
                    ))
                })?)
            }
        };
        Ok(StreamPermit {
            _total: total,
            _peer: peer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_over_its_burst_is_refused_and_another_is_not() {
        let limiter = QueryLimiter::new(Limits {
            query_rate: 0.001,
            query_burst: 3,
            ..Limits::default()
        });
        for _ in 0..3 {
            drop(limiter.admit("bob").expect("within the burst"));
        }
        let s = limiter.admit("bob").expect_err("over the burst");
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(limiter.admit("alice").is_ok());
    }

    #[test]
    fn calls_in_progress_are_bounded_per_caller() {
        let limiter = QueryLimiter::new(Limits {
            query_concurrency: 2,
            ..Limits::default()
        });
        let held = [limiter.admit("bob"), limiter.admit("bob")];
        assert!(held.iter().all(Result::is_ok));
        assert!(limiter.admit("bob").is_err());
        drop(held);
        assert!(limiter.admit("bob").is_ok());
    }

    #[test]
    fn streams_are_bounded_per_peer_and_in_all() {
        let limiter = StreamLimiter::new(Limits {
            streams_per_peer: 1,
            streams_total: 2,
            ..Limits::default()
        });
        let a: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
        let b: std::net::IpAddr = "10.0.0.2".parse().expect("ip");
        let first = limiter.admit(Some(a)).expect("first of a");
        assert!(limiter.admit(Some(a)).is_err(), "second of a");
        let _second = limiter.admit(Some(b)).expect("first of b");
        assert!(limiter.admit(None).is_err(), "over the total");
        drop(first);
        assert!(limiter.admit(Some(a)).is_ok());
    }
}
