//! The subcommands, one file each, over the aggregator's query service.

mod bundle;
mod events;
mod explain;
mod findings;
mod gpus;
mod nodes;
mod oom;
mod pods;

pub use bundle::{Ranked, diagnose, explain_bundle, load_config};
pub use events::events;
pub use explain::{bundle, explain};
pub use gpus::gpus;
pub use nodes::nodes;
pub use oom::oom;
pub use pods::pods;

use anyhow::Context;
use gpuscope_model::text::short_name;
use gpuscope_model::wire::event_from_wire;
use gpuscope_model::{ContainerRef, Event, Timestamp};
use gpuscope_proto::client::{ClientTls, endpoint};
use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::query_client::QueryClient;

/// The channel to the aggregator, with the kubeconfig's credentials
/// attached to each call.
pub type Authenticated = tower::util::BoxCloneService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tower::BoxError,
>;

/// The aggregator's query client.
pub type Client = QueryClient<Authenticated>;

/// Where the aggregator is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Dialled directly (`--aggregator URL`).
    Url(String),
    /// Reached through the API server: a port-forward to a ready pod of
    /// this Service (`--aggregator-service`, the default of `kubectl
    /// gpuscope`).
    Service(crate::portforward::ServiceRef),
}

/// Connects to the aggregator. Unless `anonymous`, each call carries the
/// user's own Kubernetes credentials as `authorization: Bearer`: those of
/// the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or of the pod's
/// ServiceAccount, resolved by kube-rs as kubectl does (a token, a token
/// file, an exec plugin such as `aws eks get-token`, refreshed when it
/// expires). Without a kubeconfig, no credentials are sent. A kubeconfig
/// user with only a client certificate presents it over TLS
/// ([`with_client_certificate`]).
pub async fn connect(target: &Target, tls: &ClientTls, anonymous: bool) -> anyhow::Result<Client> {
    use tower::{Layer, ServiceExt};
    let layer = if anonymous {
        None
    } else {
        credentials().await?
    };
    let tls = match (anonymous, &layer) {
        (false, None) => with_client_certificate(tls).await?,
        _ => tls.clone(),
    };
    let (channel, health) = match target {
        Target::Url(url) => {
            let channel = endpoint(url, &tls)?.connect().await.with_context(|| {
                format!(
                    "cannot reach the aggregator at {url} (set --aggregator or GPUSCOPE_AGGREGATOR)"
                )
            })?;
            (channel, None)
        }
        Target::Service(service) => {
            let (channel, health) = crate::portforward::channel(service, &tls).await?;
            (channel, Some(health))
        }
    };
    // kube's layer is an `Either` of two services that must fail alike. A
    // call (or a streamed answer) that fails over a port-forward says why
    // the port-forward ended.
    let (for_bodies, for_calls) = (health.clone(), health);
    let channel = channel
        .map_response(move |response: http::Response<tonic::body::Body>| {
            let Some(health) = for_bodies.clone() else {
                return response;
            };
            response.map(|body| {
                use http_body_util::BodyExt;
                tonic::body::Body::new(body.map_err(move |status| health.explain_status(status)))
            })
        })
        .map_err(move |e| {
            let e = tower::BoxError::from(e);
            match &for_calls {
                Some(health) => health.explain(e),
                None => e,
            }
        });
    let service: Authenticated = match layer {
        Some(layer) => tower::util::BoxCloneService::new(layer.layer(channel)),
        None => tower::util::BoxCloneService::new(channel),
    };
    Ok(QueryClient::new(service).max_decoding_message_size(64 << 20))
}

/// Every item of a paged list: `page(token)` answers one page and the
/// next page's token (empty after the last), starting from "".
pub async fn pages<T, F, Fut>(mut page: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Vec<T>, String)>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

/// `tls` with the kubeconfig user's client certificate, when the user
/// has one (and no token or exec plugin) and no --tls-client-cert is
/// given: an aggregator with `--client-ca-file` knows the user by it, as
/// the API server does (user = CN, groups = O). It can only be presented
/// over TLS: without --tls-ca, an error says what to do.
async fn with_client_certificate(tls: &ClientTls) -> anyhow::Result<ClientTls> {
    let mut tls = tls.clone();
    if tls.tls_client_cert.is_some() {
        return Ok(tls);
    }
    let Some(identity) = kubeconfig_certificate().await? else {
        return Ok(tls);
    };
    anyhow::ensure!(
        tls.tls_ca.is_some(),
        "the kubeconfig's user has a client certificate and no token: gpuscope can present it \
         only over TLS. Give --tls-ca (the aggregator's CA) and an https:// --aggregator, to an \
         aggregator started with --client-ca-file (your cluster's client CA); or use a \
         kubeconfig user with a token or an exec plugin; or --anonymous"
    );
    tls.identity = Some(identity);
    Ok(tls)
}

/// The kubeconfig user's client certificate and key (inline data or
/// files); `None` without a kubeconfig or without a certificate.
async fn kubeconfig_certificate() -> anyhow::Result<Option<gpuscope_proto::client::IdentityPem>> {
    use base64::Engine;
    use secrecy::ExposeSecret;
    let Ok(config) = kube::Config::infer().await else {
        return Ok(None);
    };
    let user = &config.auth_info;
    let load = |data: Option<&str>, file: Option<&String>, what: &str| match (data, file) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .with_context(|| format!("the kubeconfig's {what}-data is not base64")),
        (None, Some(file)) => std::fs::read(file)
            .map(Some)
            .with_context(|| format!("reading the kubeconfig's {what} {file}")),
        (None, None) => Ok(None),
    };
    let cert = load(
        user.client_certificate_data.as_deref(),
        user.client_certificate.as_ref(),
        "client-certificate",
    )?;
    let key_data = user.client_key_data.as_ref().map(|k| k.expose_secret());
    let key = load(key_data, user.client_key.as_ref(), "client-key")?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(gpuscope_proto::client::IdentityPem { cert, key })),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "the kubeconfig's user has a client certificate without its key, or a key without \
             its certificate"
        ),
    }
}

/// The layer that adds the kubeconfig's bearer token; `None` without a
/// kubeconfig, or with one whose user has no token (client certificates).
async fn credentials() -> anyhow::Result<Option<kube::client::middleware::AuthLayer>> {
    use kube::client::ConfigExt;
    let Ok(config) = kube::Config::infer().await else {
        return Ok(None);
    };
    config.auth_layer().context(
        "cannot get credentials from the kubeconfig (an exec plugin failed?); \
         pass --anonymous to send none",
    )
}

/// One incident as the CLI prints it in JSON: where it came from and the
/// event in the agent's own JSON shape.
#[derive(serde::Serialize)]
pub struct IncidentJson {
    /// Node name.
    pub node: String,
    /// Boot of the node.
    pub boot_id: String,
    /// Sequence number within that boot.
    pub seq: u64,
    /// When the aggregator stored it.
    pub received: Timestamp,
    /// An OOM kill's container as Kubernetes names it, when the
    /// aggregator knows the pod.
    #[serde(flatten)]
    pub names: Option<KubeNames>,
    /// The event (`kind` and its fields).
    #[serde(flatten)]
    pub event: Event,
}

/// A container as Kubernetes names it (the aggregator's join of pod UID
/// and container ID with the pod objects it watches).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KubeNames {
    /// The pod's namespace.
    pub pod_namespace: String,
    /// The pod's name.
    pub pod_name: String,
    /// The container's name; empty when its ID is no longer among the
    /// pod's current or previous containers.
    pub container_name: String,
}

impl KubeNames {
    /// The wire's three fields; `None` when the aggregator did not know
    /// the pod.
    pub fn from_wire(
        pod_namespace: String,
        pod_name: String,
        container_name: String,
    ) -> Option<Self> {
        (!pod_name.is_empty()).then_some(Self {
            pod_namespace,
            pod_name,
            container_name,
        })
    }
}

/// How tables show a container: `namespace/pod/container` when Kubernetes
/// names it (the container ID's first 12 characters when only the pod is
/// known), else the agent's short pod UID/container ID.
pub fn container_label(names: Option<&KubeNames>, c: &ContainerRef) -> String {
    match names {
        Some(n) if !n.container_name.is_empty() => {
            format!("{}/{}/{}", n.pod_namespace, n.pod_name, n.container_name)
        }
        Some(n) => {
            let id = c.container_id.as_deref().unwrap_or("?");
            format!(
                "{}/{}/{}",
                n.pod_namespace,
                n.pod_name,
                id.get(..12).unwrap_or(id)
            )
        }
        None => short_name(c),
    }
}

/// Converts a wire incident; `None` for an event kind this CLI does not
/// know.
pub fn incident(i: pb::Incident) -> Option<IncidentJson> {
    let event = i.event?;
    let seq = event.seq;
    Some(IncidentJson {
        node: i.node_name,
        boot_id: i.boot_id,
        seq,
        received: Timestamp(i.received_unix_nanos),
        names: KubeNames::from_wire(i.pod_namespace, i.pod_name, i.container_name),
        event: event_from_wire(event)?,
    })
}

/// A pod named on the command line: `namespace/name`, or a name (or UID)
/// in `-n`'s namespace (empty: the aggregator's default, `default`).
pub fn pod_ref<'a>(pod: &'a str, namespace: Option<&'a str>) -> (&'a str, &'a str) {
    match (pod.split_once('/'), namespace) {
        (Some((ns, name)), None) => (ns, name),
        _ => (namespace.unwrap_or(""), pod),
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `since` as Unix nanoseconds before now.
pub fn since_nanos(since: std::time::Duration) -> u64 {
    Timestamp::now().saturating_sub(since).as_nanos()
}
