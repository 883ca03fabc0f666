//! The aggregator's address and TLS settings, as the agent and the CLI
//! both connect to it.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Client-side TLS: trust, identity (for mutual TLS) and the name to
/// verify.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTls {
    /// CA certificate (PEM) the aggregator's certificate must chain to;
    /// turns TLS on. Without it, `https://` URLs use no custom trust and
    /// fail: give the CA.
    #[arg(long, env = "GPUSCOPE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --tls-client-key.
    #[arg(long, env = "GPUSCOPE_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-client-cert.
    #[arg(long, env = "GPUSCOPE_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// Name to verify the aggregator's certificate against (default: the
    /// URL's host).
    #[arg(long, env = "GPUSCOPE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// A client certificate and key held in memory (a kubeconfig's
    /// `client-certificate-data`), used when --tls-client-cert is not
    /// given.
    #[arg(skip)]
    pub identity: Option<IdentityPem>,
}

/// A client certificate chain and its private key, PEM, in memory.
#[derive(Clone)]
pub struct IdentityPem {
    /// The certificate chain.
    pub cert: Vec<u8>,
    /// The private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for IdentityPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityPem")
            .field("cert_bytes", &self.cert.len())
            .finish_non_exhaustive()
    }
}

/// Why an endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL is not one.
    #[error("aggregator address {url}: {source}")]
    Url {
        /// The address given.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A TLS file could not be read.
    #[error("cannot read TLS file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS settings were refused.
    #[error("TLS settings for {url}: {source}")]
    Tls {
        /// The address.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// An endpoint for `url` with `tls` applied (TLS when a CA is given).
pub fn endpoint(url: &str, tls: &ClientTls) -> Result<Endpoint, EndpointError> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| EndpointError::Url {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = &tls.tls_ca {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|source| EndpointError::File {
                path: p.clone(),
                source,
            })
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&tls.tls_client_cert, &tls.tls_client_key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        } else if let Some(id) = &tls.identity {
            config = config.identity(Identity::from_pem(&id.cert, &id.key));
        }
        if let Some(name) = &tls.tls_server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(|source| EndpointError::Tls {
                url: url.to_owned(),
                source,
            })?;
    }
    Ok(endpoint)
}
