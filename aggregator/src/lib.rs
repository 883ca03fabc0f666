//! gpuscope's aggregator: ingests the agents' streams (`gpuscope.v1.Ingest`),
//! keeps the latest state and a bounded recent history of every node,
//! container and GPU, stores events durably as incidents (redb), and serves
//! `gpuscope.v1.Query`.
//!
//! Data flows one way: [`ingest`] -> [`state`] (samples) and [`store`]
//! (events) -> [`query`]. The Kubernetes watchers ([`kube`]) keep the
//! cluster's objects; [`evidence`] joins them with the state and the store
//! into the diagnosis engine's evidence for the Explain, Diagnose and
//! GetBundle queries. [`Aggregator::start`] wires them to one listener,
//! and Query also to a listener of its own on a thread of its own when
//! [`Config::query_listen`] is set; both also serve the standard health
//! service and server reflection ([`grpc`]).
//!
//! The crate root is the top: it wires the modules and nothing imports it
//! back. What they share sits below them, in modules of its own:
//! [`config`] (the flags as a value), [`error`] (the one error type), and
//! the clock and shutdown/lock helpers.

pub mod auth;
mod clock;
pub mod config;
pub mod error;
pub mod evidence;
pub mod export;
pub mod grpc;
mod history;
pub mod ingest;
pub mod kube;
pub mod limits;
pub mod query;
pub mod record;
pub mod redact;
pub mod state;
pub mod store;
mod sync;
pub mod tally;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gpuscope_proto::v1::query_server::QueryServer;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use config::{AuthConfig, Config, TlsFiles};
pub use error::{Error, Result};
pub use kube::KubeConfig;
pub use state::HistoryConfig;
pub use store::Store;
/// A running aggregator.
pub struct Aggregator {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<()>>,
    /// The Query-only listener's address and thread, when there is one.
    query_server: Option<(SocketAddr, std::thread::JoinHandle<Result<()>>)>,
    retention: JoinHandle<()>,
    /// The plain-text health listener's address, when there is one.
    health_addr: Option<SocketAddr>,
    /// The health service's checker ([`grpc::health_loop`]).
    health: JoinHandle<()>,
    recorder: Option<JoinHandle<()>>,
    kube: Option<Arc<kube::Kube>>,
    /// The metrics listener's address and thread.
    metrics: Option<(SocketAddr, std::thread::JoinHandle<()>)>,
    /// The cluster diagnosis for the exporters' findings.
    findings: Option<JoinHandle<()>>,
    /// The OpenTelemetry exporter.
    otlp: Option<export::otlp::Otlp>,
    /// Set when the store found at start was damaged beyond repair.
    store_reset: Option<store::StoreReset>,
}

impl Aggregator {
    /// Opens the store, starts the Kubernetes watchers (when
    /// `config.kube` is set), binds `config.listen` and starts serving
    /// Ingest and Query on the current tokio runtime.
    ///
    /// A missing Kubernetes configuration is an error ([`Error::Kube`]); an
    /// API server that cannot be reached or refuses is not: the watchers
    /// retry, and the query answers say which data is missing.
    pub async fn start(config: Config) -> Result<Self> {
        let (kube, auth) = match &config.kube {
            Some(k) => {
                let client = kube::Kube::client(k).await?;
                let auth = config.auth.as_ref().map(|a| {
                    let authorizer =
                        auth::Authorizer::with_limits(client.clone(), a.ttls, a.limits)
                            .accepting_client_certificates(a.client_ca.is_some());
                    (Arc::new(authorizer), a)
                });
                (Some(Arc::new(kube::Kube::start(client, k)?)), auth)
            }
            None if config.auth.is_some() => return Err(Error::AuthWithoutKube),
            None => (None, None),
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Arc::new(Store::open(&config.data_dir.join("incidents.redb"))?);
        let store_reset = store.reset().cloned();
        let state = Arc::new(state::State::new(config.history.clone()));
        let (incidents_tx, _) = broadcast::channel(config.watch_buffer.max(1));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;

        let mut ingest = ingest::IngestService::new(
            store.clone(),
            state.clone(),
            incidents_tx.clone(),
            config.hello_timeout,
            shutdown_rx.clone(),
        );
        ingest = ingest.with_limits(config.limits);
        if let Some((authorizer, a)) = &auth {
            ingest = ingest.with_auth(ingest::AgentAuth {
                authorizer: authorizer.clone(),
                service_accounts: a.agent_service_accounts.clone(),
                kube: kube.clone(),
            });
        }
        let assembler = Arc::new(evidence::Assembler::new(
            state.clone(),
            store.clone(),
            kube.clone(),
        ));
        let diagnose = Arc::new(config.diagnose.clone());
        let latest = export::findings::Latest::default();
        let otlp = config
            .otlp
            .as_ref()
            .map(|c| {
                export::otlp::Otlp::start(
                    c,
                    export::otlp::Source {
                        state: state.clone(),
                        kube: kube.clone(),
                        findings: latest.clone(),
                        options: export::prometheus::Options {
                            containers: c.containers.unwrap_or(config.metrics.containers),
                            ..config.metrics
                        },
                    },
                    shutdown_rx.clone(),
                )
            })
            .transpose()?;
        let otlp_logs = otlp.as_ref().and_then(|o| o.logs().cloned());
        if let Some(o) = &otlp {
            o.log_incidents(incidents_tx.subscribe(), kube.clone(), shutdown_rx.clone());
        }
        let recorder = config.record_diagnosis_after.map(|after| {
            tokio::spawn(record::record_loop(
                query::Diagnosis::new(assembler.clone(), diagnose.clone()),
                incidents_tx.subscribe(),
                after,
                otlp_logs.clone(),
                shutdown_rx.clone(),
            ))
        });
        // The whole cluster's findings, for the Prometheus endpoint and the
        // OTLP export (only with Kubernetes: without pod objects there is
        // nothing to diagnose by namespace).
        let findings = (kube.is_some() && (config.metrics_listen.is_some() || otlp.is_some()))
            .then(|| {
                tokio::spawn(export::findings::findings_loop(
                    assembler.clone(),
                    diagnose.clone(),
                    latest.clone(),
                    config.metrics_findings_interval,
                    otlp_logs.clone(),
                    shutdown_rx.clone(),
                ))
            });
        let metrics = config
            .metrics_listen
            .map(|addr| {
                let exporter = export::serve::Exporter::new(
                    state.clone(),
                    kube.clone(),
                    latest.clone(),
                    config.metrics,
                )
                .with_otlp(otlp.as_ref().map(|o| o.stats().clone()))
                .with_auth(auth.as_ref().map(|(a, _)| a.clone()));
                export::serve::serve_thread(addr, exporter, shutdown_rx.clone())
            })
            .transpose()?;
        let mut query = query::QueryService::new(
            store.clone(),
            state.clone(),
            incidents_tx,
            shutdown_rx.clone(),
        )
        .with_diagnosis(assembler, diagnose)
        .with_limits(config.limits);
        if let Some((authorizer, _)) = &auth {
            query = query.with_auth(authorizer.clone());
        }
        let max = config.max_message_bytes;
        let (health_reporter, health_server) = grpc::health().await;
        let query_server = config
            .query_listen
            .map(|addr| {
                let (reflect, reflect_alpha) = grpc::reflection(&["gpuscope.v1.Query"])?;
                serve_query_thread(
                    addr,
                    &config,
                    query.clone(),
                    shutdown_rx.clone(),
                    (health_server.clone(), reflect, reflect_alpha),
                )
            })
            .transpose()?;
        let (reflect, reflect_alpha) = grpc::reflection(&grpc::SERVICES)?;
        let health_addr = match config.health_listen {
            Some(addr) => {
                Some(serve_health(addr, health_server.clone(), shutdown_rx.clone()).await?)
            }
            None => None,
        };
        let mut signal = shutdown_rx.clone();
        let mut builder = server_builder(&config)?;
        let server = tokio::spawn(async move {
            builder
                .add_service(ingest::IngestServer::new(ingest, max))
                .add_service(query_server_of(query, max))
                .add_service(health_server)
                .add_service(reflect)
                .add_service(reflect_alpha)
                .serve_with_incoming_shutdown(incoming(listener), async move {
                    sync::stopped(&mut signal).await;
                })
                .await?;
            Ok(())
        });
        let health = tokio::spawn(grpc::health_loop(
            health_reporter,
            store.clone(),
            grpc::HEALTH_INTERVAL,
            shutdown_rx.clone(),
        ));
        let retention = tokio::spawn(store::retention_loop(
            store,
            config.retention,
            config.retention_interval,
            shutdown_rx,
        ));
        let query_addr = query_server.as_ref().map(|(addr, _)| *addr);
        let metrics_addr = metrics.as_ref().map(|(addr, ..)| *addr);
        tracing::info!(addr = %local_addr, query_addr = ?query_addr, metrics_addr = ?metrics_addr, data_dir = %config.data_dir.display(), "Listening.");
        Ok(Self {
            local_addr,
            shutdown,
            server,
            query_server,
            retention,
            health_addr,
            health,
            recorder,
            kube,
            store_reset,
            metrics,
            findings,
            otlp,
        })
    }

    /// The OTLP exporter's counts, when it runs.
    pub fn otlp_stats(&self) -> Option<export::otlp::StatsSnapshot> {
        self.otlp.as_ref().map(|o| o.stats().snapshot())
    }

    /// The address the metrics listener actually bound, when there is
    /// one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The address the Query-only listener actually bound, when there is
    /// one.
    pub fn query_addr(&self) -> Option<SocketAddr> {
        self.query_server.as_ref().map(|(addr, _)| *addr)
    }

    /// The address the plain-text health listener bound, when there is
    /// one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// Whether the incident store found at start was damaged beyond
    /// repair and started empty (and where the damaged file was kept).
    pub fn store_reset(&self) -> Option<&store::StoreReset> {
        self.store_reset.as_ref()
    }

    /// The Kubernetes side, when it runs (its watchers' health).
    pub fn kube(&self) -> Option<&Arc<kube::Kube>> {
        self.kube.as_ref()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reports NOT_SERVING on the health service (ending its watches),
    /// ends every open stream with UNAVAILABLE, stops accepting, and waits
    /// for the server to finish (at most `grace`).
    pub async fn shutdown(self, grace: Duration) -> Result<()> {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(grace, self.health).await;
        let server = self.server;
        let res = match tokio::time::timeout(grace, server).await {
            Ok(joined) => joined?,
            Err(_) => {
                tracing::warn!(grace = ?grace, "Server did not finish in time; exiting anyway.");
                Ok(())
            }
        };
        self.retention.abort();
        if let Some(r) = self.recorder {
            r.abort();
        }
        if let Some(f) = self.findings {
            f.abort();
        }
        if let Some((_, thread)) = self.metrics {
            // The thread sees the shutdown and ends; it is not joined, so
            // that a scrape being written cannot hold the exit.
            drop(thread);
        }
        if let Some(otlp) = self.otlp {
            // A last export of what is queued, within the grace period.
            otlp.shutdown(grace).await;
        }
        if let Some((_, thread)) = self.query_server {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            match tokio::time::timeout(grace, joined).await {
                Ok(Ok(Ok(query_res))) => query_res?,
                Ok(_) => tracing::warn!("The query server's thread panicked."),
                Err(_) => tracing::warn!(grace = ?grace, "Query server did not finish in time."),
            }
        }
        res
    }

    /// Waits until the server ends on its own (only on an error). Call
    /// either this or [`Aggregator::shutdown`], not both after it returned.
    pub async fn wait(&mut self) -> Result<()> {
        (&mut self.server).await?
    }
}

/// A server builder with the configured TLS.
fn server_builder(config: &Config) -> Result<tonic::transport::Server> {
    let l = &config.limits;
    let mut builder = tonic::transport::Server::builder()
        .timeout(l.rpc_timeout)
        .initial_stream_window_size(l.stream_window)
        .initial_connection_window_size(l.connection_window)
        .max_concurrent_streams(l.streams_per_connection);
    let users_ca = config.auth.as_ref().and_then(|a| a.client_ca.as_ref());
    match &config.tls {
        Some(tls) => {
            builder = builder
                .tls_config(tls.server_config(users_ca)?)
                .map_err(Error::Tls)?;
        }
        None if users_ca.is_some() => return Err(Error::ClientCaFile),
        None => {}
    }
    Ok(builder)
}

/// The Query service with the message size limits.
fn query_server_of(query: query::QueryService, max: usize) -> QueryServer<query::QueryService> {
    QueryServer::new(query)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

/// A listener's connections. No Nagle: small query answers must not wait
/// for the client's delayed ACK (~40 ms).
fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Binds `addr` and serves the health service alone there, in plain text
/// (the kubelet's `grpc` probes speak no TLS), until `shutdown`.
async fn serve_health<H: tonic_health::pb::health_server::Health>(
    addr: SocketAddr,
    health: tonic_health::pb::health_server::HealthServer<H>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let bind_err = move |source| Error::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let bound = listener.local_addr().map_err(bind_err)?;
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming(listener), async move {
                sync::stopped(&mut shutdown).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "Health listener failed.");
        }
    });
    Ok(bound)
}

/// Binds `addr` and serves Query there on a current-thread runtime of a
/// thread of its own until `shutdown`. The listener is bound before this
/// returns, so a bad address is an error here.
fn serve_query_thread<H, R, A>(
    addr: SocketAddr,
    config: &Config,
    query: query::QueryService,
    mut shutdown: watch::Receiver<bool>,
    (health, reflect, reflect_alpha): (
        tonic_health::pb::health_server::HealthServer<H>,
        tonic_reflection::server::v1::ServerReflectionServer<R>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<A>,
    ),
) -> Result<(SocketAddr, std::thread::JoinHandle<Result<()>>)>
where
    H: tonic_health::pb::health_server::Health,
    R: tonic_reflection::server::v1::ServerReflection,
    A: tonic_reflection::server::v1alpha::ServerReflection,
{
    let bind_err = move |source| Error::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let bound = std_listener.local_addr().map_err(bind_err)?;
    let mut builder = server_builder(config)?;
    let max = config.max_message_bytes;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(bind_err)?;
    let thread = std::thread::Builder::new()
        .name("query".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).map_err(bind_err)?;
                builder
                    .add_service(query_server_of(query, max))
                    .add_service(health)
                    .add_service(reflect)
                    .add_service(reflect_alpha)
                    .serve_with_incoming_shutdown(incoming(listener), async move {
                        sync::stopped(&mut shutdown).await;
                    })
                    .await?;
                Ok(())
            })
        })
        .map_err(bind_err)?;
    Ok((bound, thread))
}
