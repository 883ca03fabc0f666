//! The aggregator library's one error type: what failed (the store, a TLS
//! file, a listener, the Kubernetes side) and the path or address it
//! failed on.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the aggregator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The incident store under `path` could not be opened or created.
    #[error("cannot open incident store {path}: {source}")]
    OpenStore {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: redb::DatabaseError,
    },
    /// The incident store is closed: a reopen after failed writes did not
    /// succeed.
    #[error("incident store {path} is closed after failed writes (reopening did not succeed)")]
    StoreClosed {
        /// The database file.
        path: PathBuf,
    },
    /// A damaged incident store could not be moved aside.
    #[error("cannot keep the damaged incident store {path} aside: {source}")]
    KeepAside {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration was refused (bad certificate or key).
    #[error("TLS configuration: {0}")]
    Tls(#[source] tonic::transport::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A read or write of the incident store failed.
    #[error("incident store: {0}")]
    Store(#[from] redb::Error),
    /// The last batch of events could not be committed: ingest is not
    /// accepting events until one is.
    #[error("the last batch of events could not be stored")]
    WritesFailing,
    /// A stored incident could not be decoded (a corrupt or foreign record).
    #[error("stored incident {key} is not a valid Incident: {source}")]
    Decode {
        /// The record's (node, boot, seq) key.
        key: String,
        /// Why.
        #[source]
        source: prost::DecodeError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server reflection service could not be built from the
    /// descriptor sets.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The Kubernetes side could not start.
    #[error(transparent)]
    Kube(#[from] crate::kube::KubeError),
    /// The OpenTelemetry exporter could not start.
    #[error("OTLP export: {0}")]
    Otlp(String),
    /// Authorization by Kubernetes was asked for without Kubernetes.
    #[error(
        "--auth kubernetes needs the Kubernetes API server: drop --no-kube, or use --auth none on a loopback address"
    )]
    AuthWithoutKube,
    /// Client certificates as user identities without TLS, or beside the
    /// mutual-TLS client CA.
    #[error(
        "--client-ca-file identifies users by their TLS client certificates: it needs --tls-cert \
         and --tls-key, and cannot be combined with --tls-client-ca"
    )]
    ClientCaFile,
    /// A blocking store task panicked or was cancelled.
    #[error("store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

macro_rules! store_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Store(e.into())
            }
        }
    )*};
}
store_error_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The aggregator library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
