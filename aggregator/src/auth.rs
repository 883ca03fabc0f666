//! Who may ask what: callers authenticated and authorized by the
//! Kubernetes API server, as metrics-server and kube-rbac-proxy delegate.
//!
//! A caller presents `authorization: Bearer TOKEN` in the gRPC metadata.
//! [`Authorizer::authenticate`] asks the API server who that is with an
//! `authentication.k8s.io/v1` TokenReview (agents' tokens for the
//! [`AGENT_AUDIENCE`] audience), and [`Gate`] asks whether that user may do
//! what a request needs with `authorization.k8s.io/v1`
//! SubjectAccessReviews, mapped to the same question the API server
//! would answer: a pod's findings, incidents and samples need `get pods`
//! in its namespace ([`Access::pods`]), log tails `get pods/log`
//! ([`Access::logs`]), node and GPU views `list nodes` ([`Access::nodes`]).
//!
//! Both answers are cached, like the kubelet's webhook authenticator and
//! authorizer: tokens for [`Ttls::token`], allowed decisions for
//! [`Ttls::allow`], denials for [`Ttls::deny`]. Every entry expires: when
//! the API server cannot be reached, a request whose answer is not cached
//! is refused (UNAVAILABLE), never allowed. Denials are logged with the
//! user and the resource.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::sync::lock;

/// The audience of the agents' projected ServiceAccount tokens.
pub const AGENT_AUDIENCE: &str = "gpuscope";

/// The `extra` key the API server sets to the pod a ServiceAccount token
/// is bound to.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The `extra` key the API server sets to the bound pod's node.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";

/// Entries kept per cache; beyond it the expired ones are dropped, then
/// all (a flood of distinct tokens cannot grow memory without bound).
const CACHE_MAX: usize = 10_000;

/// How long answers of the API server are kept.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// A TokenReview's answer (authenticated or not). Default 2 min, the
    /// API server's own webhook token cache: a revoked token keeps
    /// working at most this long.
    pub token: Duration,
    /// An allowed SubjectAccessReview. Default 5 min, the kubelet's
    /// `--authorization-webhook-cache-authorized-ttl`.
    pub allow: Duration,
    /// A denied SubjectAccessReview. Default 30 s, the kubelet's
    /// `--authorization-webhook-cache-unauthorized-ttl`: a new
    /// RoleBinding takes effect within it.
    pub deny: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            token: Duration::from_secs(120),
            allow: Duration::from_secs(300),
            deny: Duration::from_secs(30),
        }
    }
}

/// An authenticated caller, as TokenReview named it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// User name (`alice`, `system:serviceaccount:gpuscope:gpuscope-agent`).
    pub user: String,
    /// The user's UID.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra information (for a bound ServiceAccount token: its pod and
    /// node).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Caller {
    /// The first value of an `extra` key.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// One question for the API server: may the caller `verb` the core
/// `resource` (`/subresource`) in `namespace` ("" cluster-wide)?
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Access {
    /// `get`, `list`.
    pub verb: &'static str,
    /// `pods`, `nodes`.
    pub resource: &'static str,
    /// `log`, or "".
    pub subresource: &'static str,
    /// The namespace; "": every namespace (or a cluster-scoped resource).
    pub namespace: String,
}

impl Access {
    /// `get pods` in `namespace` ("": in every namespace): a pod's
    /// findings, incidents and samples.
    pub fn pods(namespace: &str) -> Self {
        Self {
            verb: "get",
            resource: "pods",
            subresource: "",
            namespace: namespace.to_owned(),
        }
    }

    /// `get pods/log` in `namespace`: log tails.
    pub fn logs(namespace: &str) -> Self {
        Self {
            subresource: "log",
            ..Self::pods(namespace)
        }
    }

    /// `list nodes`: node and GPU views, node-wide incidents.
    pub fn nodes() -> Self {
        Self {
            verb: "list",
            resource: "nodes",
            subresource: "",
            namespace: String::new(),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.subresource.is_empty() {
            write!(f, "/{}", self.subresource)?;
        }
        match self.namespace.as_str() {
            "" if self.resource == "nodes" => Ok(()),
            "" => f.write_str(" in every namespace"),
            ns => write!(f, " in namespace {ns}"),
        }
    }
}

/// A cached answer and when it stops counting.
type Cached<T> = (T, Instant);

/// TokenReview answers by (token, audience): the caller, or why not.
type TokenCache = HashMap<(String, &'static str), Cached<Result<Arc<Caller>, String>>>;

/// SubjectAccessReview answers by (user, groups, access).
type DecisionCache = HashMap<(String, Vec<String>, Access), Cached<bool>>;

/// Asks the API server who callers are and what they may do, and caches
/// the answers.
pub struct Authorizer {
    client: kube::Client,
    ttls: Ttls,
    tokens: Mutex<TokenCache>,
    decisions: Mutex<DecisionCache>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("ttls", &self.ttls)
            .finish_non_exhaustive()
    }
}

/// Drops expired entries once a cache is full, and everything if that is
/// not enough.
fn bound<K, V>(cache: &mut HashMap<K, Cached<V>>, now: Instant) {
    if cache.len() >= CACHE_MAX {
        cache.retain(|_, (_, until)| *until > now);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
    }
}

/// The bearer token of a request's metadata.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated(
            "no credentials: send `authorization: Bearer TOKEN` (gpuscope and kubectl gpuscope \
             send the kubeconfig's)",
        )
    })?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(Status::unauthenticated(
            "the authorization header is not `Bearer TOKEN`",
        )),
    }
}

impl Authorizer {
    /// An authorizer asking the API server `client` talks to.
    pub fn new(client: kube::Client, ttls: Ttls) -> Self {
        Self {
            client,
            ttls,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// Who presented the request's bearer token, for `audience` (`""`: the
    /// API server's own). UNAUTHENTICATED when there is no token or the
    /// API server does not accept it (expired, another audience, unknown),
    /// UNAVAILABLE when the API server cannot be asked.
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        audience: &'static str,
    ) -> Result<Arc<Caller>, Status> {
        let token = bearer(metadata)?;
        let key = (token.to_owned(), audience);
        let now = Instant::now();
        if let Some((answer, until)) = lock(&self.tokens).get(&key)
            && *until > now
        {
            return answer.clone().map_err(Status::unauthenticated);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!audience.is_empty()).then(|| vec![audience.to_owned()]),
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot authenticate: the Kubernetes API server did not answer the \
                     TokenReview: {e}"
                ))
            })?;
        let status = answer.status.unwrap_or_default();
        let answer = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Ok(Arc::new(Caller {
                user: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            })),
            _ => Err(format!(
                "the Kubernetes API server did not accept the token{}: {}",
                match audience {
                    "" => String::new(),
                    a => format!(" for audience {a:?}"),
                },
                status.error.as_deref().unwrap_or("no reason given")
            )),
        };
        let mut tokens = lock(&self.tokens);
        bound(&mut tokens, now);
        tokens.insert(key, (answer.clone(), now + self.ttls.token));
        answer.map_err(Status::unauthenticated)
    }

    /// Whether `caller` may do `access`; UNAVAILABLE when the API server
    /// cannot be asked and no unexpired answer is cached.
    pub async fn allowed(&self, caller: &Caller, access: &Access) -> Result<bool, Status> {
        let key = (caller.user.clone(), caller.groups.clone(), access.clone());
        let now = Instant::now();
        if let Some((allowed, until)) = lock(&self.decisions).get(&key)
            && *until > now
        {
            return Ok(*allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.user.clone()),
                uid: Some(caller.uid.clone()),
                groups: Some(caller.groups.clone()),
                extra: Some(caller.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(access.namespace.clone()),
                    verb: Some(access.verb.to_owned()),
                    group: Some(String::new()),
                    version: Some("v1".to_owned()),
                    resource: Some(access.resource.to_owned()),
                    subresource: Some(access.subresource.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "cannot authorize: the Kubernetes API server did not answer the \
                     SubjectAccessReview ({access}): {e}"
                ))
            })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed {
            self.ttls.allow
        } else {
            self.ttls.deny
        };
        let mut decisions = lock(&self.decisions);
        bound(&mut decisions, now);
        decisions.insert(key, (allowed, now + ttl));
        Ok(allowed)
    }
}

/// The namespaces a caller may read.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// Every namespace (`get pods` cluster-wide, or no authorization).
    pub all: bool,
    /// The readable ones among those asked about.
    pub readable: HashSet<String>,
    /// The ones asked about that are not readable, sorted.
    pub left_out: Vec<String>,
}

impl Namespaces {
    /// Whether pods of `namespace` may be shown.
    pub fn contains(&self, namespace: &str) -> bool {
        self.all || self.readable.contains(namespace)
    }
}

/// What one request's caller may see: everything (`--auth none`), or what
/// the API server allows the caller.
#[derive(Debug, Clone)]
pub enum Gate {
    /// No authorization: every question is answered.
    Open,
    /// Each question asked of the API server (cached).
    Checked {
        /// Who asks.
        auth: Arc<Authorizer>,
        /// The caller.
        caller: Arc<Caller>,
    },
}

impl Gate {
    /// The caller's user name ("" without authorization).
    pub fn user(&self) -> &str {
        match self {
            Gate::Open => "",
            Gate::Checked { caller, .. } => &caller.user,
        }
    }

    /// Whether the caller may do `access`.
    pub async fn may(&self, access: &Access) -> Result<bool, Status> {
        match self {
            Gate::Open => Ok(true),
            Gate::Checked { auth, caller } => auth.allowed(caller, access).await,
        }
    }

    /// PERMISSION_DENIED (logged with the user and the resource) unless
    /// the caller may do `access`.
    pub async fn require(&self, access: &Access) -> Result<(), Status> {
        if self.may(access).await? {
            return Ok(());
        }
        tracing::warn!(user = %self.user(), verb = access.verb, resource = access.resource,
            subresource = access.subresource, namespace = %access.namespace, "Access denied.");
        Err(Status::permission_denied(format!(
            "{} may not {access} (ask for an RBAC Role that allows it)",
            self.user()
        )))
    }

    /// Which of `namespaces` the caller may read (`get pods`): all of
    /// them when it may get pods cluster-wide.
    pub async fn namespaces(&self, asked: BTreeSet<String>) -> Result<Namespaces, Status> {
        if self.may(&Access::pods("")).await? {
            return Ok(Namespaces {
                all: true,
                ..Namespaces::default()
            });
        }
        let mut out = Namespaces::default();
        for ns in asked.into_iter().filter(|ns| !ns.is_empty()) {
            if self.may(&Access::pods(&ns)).await? {
                out.readable.insert(ns);
            } else {
                out.left_out.push(ns);
            }
        }
        if !out.left_out.is_empty() {
            tracing::info!(user = %self.user(), left_out = ?out.left_out,
                "Namespaces left out of an answer: access denied.");
        }
        Ok(out)
    }
}
