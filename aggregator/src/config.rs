//! How the aggregator runs: the binary's flags as a value ([`Config`]),
//! and the server's TLS files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kube::KubeConfig;
use crate::state::HistoryConfig;

/// How the aggregator runs: the binary's flags, as a value.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to serve Ingest and Query on.
    pub listen: SocketAddr,
    /// Also serve Query (only) here, on a runtime of its own thread, so
    /// that answers do not wait in line behind the reports of thousands of
    /// agents on `listen`'s runtime.
    pub query_listen: Option<SocketAddr>,
    /// Also serve the health service (only) here, in plain text even when
    /// `tls` is set: the kubelet's gRPC probes speak no TLS.
    pub health_listen: Option<SocketAddr>,
    /// Directory holding the incident database (`incidents.redb`).
    pub data_dir: PathBuf,
    /// Incidents older than this are deleted.
    pub retention: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// History sizes (newest points, coarse step and points) and how long
    /// vanished containers/GPUs are kept.
    pub history: HistoryConfig,
    /// Largest message accepted on any stream, bytes.
    pub max_message_bytes: usize,
    /// How long a new ingest stream may take to send its Hello.
    pub hello_timeout: Duration,
    /// Incidents buffered per WatchIncidents watcher before it lags.
    pub watch_buffer: usize,
    /// Serve TLS (and, with a client CA, require client certificates).
    pub tls: Option<TlsFiles>,
    /// Watch Kubernetes with this configuration; `None`: no Kubernetes
    /// (the library's default; the binary watches unless `--no-kube`).
    pub kube: Option<KubeConfig>,
    /// Thresholds of the diagnosis rules.
    pub diagnose: gpuscope_diagnose::Config,
    /// Diagnose each pod an incident names this long after the incident
    /// and store the findings ([`record`]); `None`: do not.
    pub record_diagnosis_after: Option<Duration>,
    /// Serve Prometheus metrics (`GET /metrics`) here, on a thread of its
    /// own; `None`: do not.
    pub metrics_listen: Option<SocketAddr>,
    /// How the metrics are rendered (dcgm-exporter names, which
    /// containers).
    pub metrics: crate::export::prometheus::Options,
    /// Diagnose the whole cluster this often for the metrics' findings and
    /// idle GPU-hours (with Kubernetes, and a metrics listener or OTLP
    /// export, only).
    pub metrics_findings_interval: Duration,
    /// Push the metrics, incidents and findings to an OpenTelemetry
    /// collector over OTLP/gRPC ([`crate::export::otlp`]); `None`: do not.
    pub otlp: Option<crate::export::otlp::OtlpConfig>,
    /// Authenticate and authorize every caller with the Kubernetes API
    /// server (needs `kube`); `None`: anyone who reaches the port may ask
    /// anything and report as any node.
    pub auth: Option<AuthConfig>,
    /// Per-caller query limits, stream bounds and the RPC deadline.
    pub limits: crate::limits::Limits,
}

/// How callers are authenticated and authorized ([`crate::auth`]).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// How long the API server's answers are cached.
    pub ttls: crate::auth::Ttls,
    /// The ServiceAccounts (`namespace:name`) whose pod-bound tokens may
    /// open ingest streams, each for its own pod's node only. Default
    /// `gpuscope:gpuscope-agent`, the manifests' agent.
    pub agent_service_accounts: Vec<String>,
    /// What failed authentications may cost: per peer, and TokenReviews
    /// in flight.
    pub limits: crate::auth::AuthLimits,
    /// PEM bundle of the CA whose client certificates identify users
    /// (user = the subject's CN, groups = its O values), as the API
    /// server's `--client-ca-file`; needs TLS. `None`: users are known by
    /// their bearer tokens only.
    pub client_ca: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            ttls: crate::auth::Ttls::default(),
            limits: crate::auth::AuthLimits::default(),
            client_ca: None,
            agent_service_accounts: vec!["gpuscope:gpuscope-agent".to_owned()],
        }
    }
}

/// PEM files of the server's TLS identity.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA whose certificates clients must present (mutual TLS); `None`:
    /// any client may connect.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The server's TLS settings; with `users_ca` (`--client-ca-file`),
    /// client certificates signed by it are asked for but optional.
    pub(crate) fn server_config(
        &self,
        users_ca: Option<&PathBuf>,
    ) -> Result<tonic::transport::ServerTlsConfig> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|source| Error::TlsFile {
                path: p.clone(),
                source,
            })
        };
        let mut tls = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(read(&self.cert)?, read(&self.key)?),
        );
        match (&self.client_ca, users_ca) {
            (Some(_), Some(_)) => return Err(Error::ClientCaFile),
            (Some(ca), None) => {
                tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
            }
            (None, Some(ca)) => {
                tls = tls
                    .client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?))
                    .client_auth_optional(true);
            }
            (None, None) => {}
        }
        Ok(tls)
    }
}

impl Config {
    /// A configuration with the binary's defaults, listening on `listen`
    /// and storing in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            query_listen: None,
            health_listen: None,
            data_dir,
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_interval: Duration::from_secs(60),
            history: HistoryConfig::default(),
            max_message_bytes: 16 * 1024 * 1024,
            hello_timeout: Duration::from_secs(30),
            watch_buffer: 4096,
            tls: None,
            kube: None,
            diagnose: gpuscope_diagnose::Config::default(),
            record_diagnosis_after: Some(Duration::from_secs(10)),
            metrics_listen: None,
            metrics: crate::export::prometheus::Options::default(),
            metrics_findings_interval: Duration::from_secs(60),
            otlp: None,
            auth: None,
            limits: crate::limits::Limits::default(),
        }
    }
}
