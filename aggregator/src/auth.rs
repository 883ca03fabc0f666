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
//! The metrics endpoint asks the question kube-rbac-proxy asks for it: `get`
//! on the non-resource URL `/metrics` ([`Access::path`]).
//!
//! Both answers are cached, like the kubelet's webhook authenticator and
//! authorizer: tokens for [`Ttls::token`] (never past the token's own
//! `exp`), refused tokens for [`Ttls::token_deny`], allowed decisions for
//! [`Ttls::allow`], denials for [`Ttls::deny`]. Every entry expires: when
//! the API server cannot be reached, a request whose answer is not cached
//! is refused (UNAVAILABLE), never allowed. Denials are logged with the
//! user and the resource.
//!
//! A token nobody has presented before costs one TokenReview, so a flood
//! of distinct made-up tokens would be a flood of TokenReviews. Two bounds
//! ([`AuthLimits`]): each peer address has a budget of failed
//! authentications (a token bucket); once it is spent, that address's
//! uncached tokens are refused with RESOURCE_EXHAUSTED before any review
//! (its cached valid tokens still work, other addresses are not
//! affected). And at most [`AuthLimits::reviews_in_flight`] TokenReviews
//! run at once in all; a caller that waits longer than
//! [`AuthLimits::review_wait`] for one gets UNAVAILABLE.
//!
//! A user may also be known by a TLS client certificate
//! ([`Authorizer::accepting_client_certificates`], `--client-ca-file`), as
//! the API server knows its x509 users: the TLS handshake verified it
//! against the configured CA, the user is the subject's CN and the groups
//! its O values ([`Authorizer::certificate_caller`]); what the user may
//! do is asked with SubjectAccessReviews like a token's user. A request
//! that carries a bearer token is authenticated by the token.
//!
//! When a token expires: TokenReview's answer says who the token is but
//! not until when (its status has no expiry), so [`Caller::expires`] is
//! the token's own JWT `exp` claim, read after the API server accepted
//! the token (the claims are those it signed). Long-lived ingest streams
//! end then ([`crate::ingest`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::sync::lock;

/// The audience of the agents' projected ServiceAccount tokens.
pub const AGENT_AUDIENCE: &str = "gpuscope";

/// The `extra` key the API server sets to the pod a ServiceAccount token
/// is bound to.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The key of a bound ServiceAccount token's pod UID in a TokenReview's
/// `extra`.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The `extra` key the API server sets to the bound pod's node.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";

/// Entries kept per cache; beyond it the expired ones are dropped, then
/// all (a flood of distinct tokens cannot grow memory without bound).
const CACHE_MAX: usize = 10_000;

/// How long answers of the API server are kept.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// An accepted TokenReview. Default 2 min, the API server's own
    /// webhook token cache: a revoked token keeps working at most this
    /// long (and never past its `exp`).
    pub token: Duration,
    /// A refused TokenReview. Default 10 s: the same bad token sent again
    /// and again costs one review per 10 s, and a token the API server
    /// had not yet seen (a fresh ServiceAccount) works soon.
    pub token_deny: Duration,
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
            token_deny: Duration::from_secs(10),
            allow: Duration::from_secs(300),
            deny: Duration::from_secs(30),
        }
    }
}

/// Bounds on what failed authentications may cost (the defaults and the
/// statuses are in docs/limits.md).
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Failed authentications per peer address per second, on average.
    /// Default 1: a person who mistypes or a misconfigured agent fails a
    /// few times a minute at most.
    pub failures_per_peer_rate: f64,
    /// Failed authentications a peer may have at once above the rate.
    /// Default 20.
    pub failures_per_peer_burst: u32,
    /// TokenReviews in flight at once, in all. Default 64: a fresh
    /// aggregator authenticating thousands of reconnecting agents asks
    /// the API server at most this many questions at a time.
    pub reviews_in_flight: u32,
    /// Longest a caller waits for a place among them before UNAVAILABLE.
    /// Default 2 s.
    pub review_wait: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            failures_per_peer_rate: 1.0,
            failures_per_peer_burst: 20,
            reviews_in_flight: 64,
            review_wait: Duration::from_secs(2),
        }
    }
}

/// What authentication has cost so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuthCounts {
    /// TokenReviews sent to the API server.
    pub token_reviews: u64,
    /// Of them, those that did not accept the token.
    pub token_refused: u64,
    /// Authentications refused because their peer had spent its budget
    /// of failures (no TokenReview sent).
    pub peer_limited: u64,
    /// Authentications refused for want of a place among the TokenReviews
    /// in flight.
    pub reviews_busy: u64,
}

#[derive(Debug, Default)]
struct Counters {
    token_reviews: AtomicU64,
    token_refused: AtomicU64,
    peer_limited: AtomicU64,
    reviews_busy: AtomicU64,
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
    /// When the token expires: its JWT `exp` claim; `None` for a token
    /// that is not a JWT or has no `exp` (TokenReview does not say).
    pub expires: Option<SystemTime>,
}

/// The `exp` claim of a JWT (`header.payload.signature`, base64url), not
/// verified: only read of a token the API server has accepted.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    use base64::Engine;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
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
/// `resource` (`/subresource`) in `namespace` ("" cluster-wide), or, for
/// a non-resource URL, `verb` its `path`?
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
    /// A non-resource URL (`/metrics`): the question is about it, not
    /// about `resource`; "" otherwise.
    pub path: &'static str,
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
            path: "",
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
            path: "",
        }
    }

    /// `verb` on the non-resource URL `path`: `get /metrics` for a scrape,
    /// as kube-rbac-proxy and metrics-server ask.
    pub fn path(verb: &'static str, path: &'static str) -> Self {
        Self {
            verb,
            resource: "",
            subresource: "",
            namespace: String::new(),
            path,
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.path.is_empty() {
            return write!(f, "{} {}", self.verb, self.path);
        }
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
    limits: AuthLimits,
    tokens: Mutex<TokenCache>,
    decisions: Mutex<DecisionCache>,
    /// Each peer's budget of failed authentications: tokens left, when
    /// last refilled.
    failures: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// Places among the TokenReviews in flight.
    reviews: Arc<Semaphore>,
    counters: Counters,
    /// Whether verified TLS client certificates identify users.
    client_certificates: bool,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("ttls", &self.ttls)
            .field("limits", &self.limits)
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
    bearer_of(value.as_bytes())
}

/// The token of an `authorization` header's value (`Bearer TOKEN`).
pub fn bearer_of(value: &[u8]) -> Result<&str, Status> {
    let value = std::str::from_utf8(value)
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
    /// An authorizer asking the API server `client` talks to, with the
    /// default [`AuthLimits`].
    pub fn new(client: kube::Client, ttls: Ttls) -> Self {
        Self::with_limits(client, ttls, AuthLimits::default())
    }

    /// An authorizer bounding failed authentications by `limits`.
    pub fn with_limits(client: kube::Client, ttls: Ttls, limits: AuthLimits) -> Self {
        Self {
            client,
            ttls,
            limits,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            reviews: Arc::new(Semaphore::new(limits.reviews_in_flight.max(1) as usize)),
            counters: Counters::default(),
            client_certificates: false,
        }
    }

    /// Lets a TLS client certificate (verified by the TLS layer against
    /// `--client-ca-file`) identify a user who sends no bearer token.
    pub fn accepting_client_certificates(mut self, accept: bool) -> Self {
        self.client_certificates = accept;
        self
    }

    /// Who calls: the bearer token's user; without a token, the verified
    /// client certificate's, when those are accepted.
    pub async fn authenticate_request<T>(
        &self,
        request: &tonic::Request<T>,
        audience: &'static str,
    ) -> Result<Arc<Caller>, Status> {
        let chain = self
            .client_certificates
            .then(|| request.peer_certs())
            .flatten()
            .filter(|_| request.metadata().get("authorization").is_none());
        match chain.as_ref().and_then(|chain| chain.first()) {
            Some(cert) => Self::certificate_caller(cert).map(Arc::new),
            None => {
                let peer = request.remote_addr().map(|a| a.ip());
                self.authenticate(request.metadata(), audience, peer).await
            }
        }
    }

    /// The user a client certificate (DER) names, as the API server reads
    /// x509 users: the subject's CN, its O values as groups (and
    /// `system:authenticated`). Only for a certificate the TLS layer
    /// verified.
    pub fn certificate_caller(der: &[u8]) -> Result<Caller, Status> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            Status::unauthenticated(format!("the client certificate does not parse: {e}"))
        })?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .filter(|cn| !cn.is_empty())
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "the client certificate's subject ({subject}) has no CN to name its user"
                ))
            })?;
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_owned)
            .collect();
        groups.push("system:authenticated".to_owned());
        Ok(Caller {
            user: user.to_owned(),
            uid: String::new(),
            groups,
            extra: BTreeMap::new(),
            expires: None,
        })
    }

    /// How long answers are cached.
    pub fn ttls(&self) -> Ttls {
        self.ttls
    }

    /// What authentication has cost so far.
    pub fn counts(&self) -> AuthCounts {
        let c = &self.counters;
        AuthCounts {
            token_reviews: c.token_reviews.load(Ordering::Relaxed),
            token_refused: c.token_refused.load(Ordering::Relaxed),
            peer_limited: c.peer_limited.load(Ordering::Relaxed),
            reviews_busy: c.reviews_busy.load(Ordering::Relaxed),
        }
    }

    /// Who presented the request's bearer token, for `audience` (`""`: the
    /// API server's own), from `peer`. See [`Authorizer::authenticate_token`].
    pub async fn authenticate(
        &self,
        metadata: &MetadataMap,
        audience: &'static str,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Caller>, Status> {
        self.authenticate_token(bearer(metadata)?, audience, peer)
            .await
    }

    /// Who presented `token`, for `audience`, from `peer` (unknown: no
    /// per-peer budget). UNAUTHENTICATED when the API server does not
    /// accept the token (expired, another audience, unknown),
    /// RESOURCE_EXHAUSTED when `peer` has spent its budget of failures,
    /// UNAVAILABLE when the API server cannot be asked (or too many
    /// TokenReviews are in flight).
    pub async fn authenticate_token(
        &self,
        token: &str,
        audience: &'static str,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Caller>, Status> {
        let key = (token.to_owned(), audience);
        let now = Instant::now();
        if let Some((answer, until)) = lock(&self.tokens).get(&key)
            && *until > now
        {
            return answer.clone().map_err(Status::unauthenticated);
        }
        if let Some(ip) = peer {
            self.failure_budget(ip, now, 0.0)?;
        }
        let _place = tokio::time::timeout(self.limits.review_wait, self.reviews.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                self.counters.reviews_busy.fetch_add(1, Ordering::Relaxed);
                Status::unavailable(format!(
                    "cannot authenticate now: {} TokenReviews are in flight already and none \
                     ended within {:?}; retry",
                    self.limits.reviews_in_flight, self.limits.review_wait
                ))
            })?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!audience.is_empty()).then(|| vec![audience.to_owned()]),
            },
            ..TokenReview::default()
        };
        self.counters.token_reviews.fetch_add(1, Ordering::Relaxed);
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
        let expires = jwt_expiry(token);
        let (answer, until) = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => {
                let mut until = now + self.ttls.token;
                if let Some(left) = expires.map(|e| e.duration_since(SystemTime::now())) {
                    until = until.min(now + left.unwrap_or_default());
                }
                let caller = Caller {
                    user: user.username.unwrap_or_default(),
                    uid: user.uid.unwrap_or_default(),
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default(),
                    expires,
                };
                (Ok(Arc::new(caller)), until)
            }
            _ => {
                self.counters.token_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(ip) = peer {
                    // Charged after the review: the answer is cached and
                    // returned even when this spends the last of it.
                    let _ = self.failure_budget(ip, Instant::now(), 1.0);
                }
                let why = format!(
                    "the Kubernetes API server did not accept the token{}: {}",
                    match audience {
                        "" => String::new(),
                        a => format!(" for audience {a:?}"),
                    },
                    status.error.as_deref().unwrap_or("no reason given")
                );
                (Err(why), now + self.ttls.token_deny)
            }
        };
        let mut tokens = lock(&self.tokens);
        bound(&mut tokens, now);
        tokens.insert(key, (answer.clone(), until));
        answer.map_err(Status::unauthenticated)
    }

    /// Takes `cost` failures from `ip`'s budget (it may go below zero:
    /// failures of reviews that were in flight count too), or with `cost`
    /// 0 checks it: RESOURCE_EXHAUSTED when less than one is left.
    fn failure_budget(&self, ip: IpAddr, now: Instant, cost: f64) -> Result<(), Status> {
        let l = &self.limits;
        let burst = f64::from(l.failures_per_peer_burst);
        let mut failures = lock(&self.failures);
        if failures.len() >= CACHE_MAX && !failures.contains_key(&ip) {
            // Forget the peers whose budget is whole again.
            failures.retain(|_, (left, at)| {
                *left + now.saturating_duration_since(*at).as_secs_f64() * l.failures_per_peer_rate
                    < burst
            });
            if failures.len() >= CACHE_MAX {
                failures.clear();
            }
        }
        let (left, at) = failures.entry(ip).or_insert((burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * l.failures_per_peer_rate;
        *left = (*left + refill).min(burst);
        *at = (*at).max(now);
        if cost > 0.0 {
            *left -= cost;
            return Ok(());
        }
        if *left < 1.0 {
            self.counters.peer_limited.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %ip, "Authentication refused: too many failures.");
            return Err(Status::resource_exhausted(format!(
                "{ip} presented {} tokens the API server refused in a short time (more than \
                 {}/s on average): no more are checked from it for now; fix the credentials and \
                 retry in a few seconds",
                l.failures_per_peer_burst, l.failures_per_peer_rate
            )));
        }
        Ok(())
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
                resource_attributes: access.path.is_empty().then(|| ResourceAttributes {
                    namespace: Some(access.namespace.clone()),
                    verb: Some(access.verb.to_owned()),
                    group: Some(String::new()),
                    version: Some("v1".to_owned()),
                    resource: Some(access.resource.to_owned()),
                    subresource: Some(access.subresource.to_owned()),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: (!access.path.is_empty()).then(|| NonResourceAttributes {
                    path: Some(access.path.to_owned()),
                    verb: Some(access.verb.to_owned()),
                }),
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
        tracing::warn!(user = %self.user(), verb = access.verb, resource = access.resource, path = access.path,
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    /// An API server that accepts connections and never answers: every
    /// TokenReview stays in flight.
    async fn silent_api_server() -> (kube::Client, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accept = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = kube::Config::new(url.parse().expect("url"));
        (kube::Client::try_from(config).expect("client"), accept)
    }

    #[tokio::test]
    async fn token_reviews_in_flight_are_bounded_and_the_next_caller_is_told_so() {
        let (client, _server) = silent_api_server().await;
        let limits = AuthLimits {
            reviews_in_flight: 2,
            review_wait: Duration::from_millis(200),
            ..AuthLimits::default()
        };
        let auth = Arc::new(Authorizer::with_limits(client, Ttls::default(), limits));
        let stuck: Vec<_> = (0..2)
            .map(|i| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    let token = format!("token-{i}");
                    auth.authenticate_token(&token, "", None).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let s = auth
            .authenticate_token("token-2", "", None)
            .await
            .expect_err("no place among the reviews in flight");
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        assert!(
            s.message().contains("2 TokenReviews are in flight"),
            "{s:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            auth.counts(),
            AuthCounts {
                token_reviews: 2,
                reviews_busy: 1,
                ..AuthCounts::default()
            }
        );
        for s in stuck {
            s.abort();
        }
    }

    #[test]
    fn a_jwt_expiry_is_its_exp_claim_and_other_tokens_have_none() {
        let token = format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"aud":["gpuscope"],"exp":1700000000,"sub":"system:serviceaccount:a:b"}"#)
        );
        assert_eq!(
            jwt_expiry(&token),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        let no_exp = format!("{}.{}.c2ln", b64("{}"), b64(r#"{"sub":"x"}"#));
        for opaque in ["alice-token", "a.b", "a.!!!.c", no_exp.as_str()] {
            assert_eq!(jwt_expiry(opaque), None, "{opaque}");
        }
    }
}
