//! What the fake API server answers to delegated authentication and
//! authorization, as kube-rbac-proxy and metrics-server ask the real one:
//!
//! - `authentication.k8s.io/v1` TokenReview: the tokens a test registered
//!   ([`Token`]), each with its user, groups, audiences, expiry and, for a
//!   ServiceAccount token bound to a pod, the `extra` keys the real API
//!   server sets (`authentication.kubernetes.io/pod-name`, `pod-uid`,
//!   `node-name`). A review naming audiences authenticates a token only
//!   when they share one (the API server's rule); an expired or unknown
//!   token is unauthenticated with an error saying why.
//! - `authorization.k8s.io/v1` SubjectAccessReview: decided by RBAC from
//!   the Role, ClusterRole, RoleBinding and ClusterRoleBinding objects
//!   applied to the fake, as the RBAC authorizer does: a ClusterRoleBinding
//!   grants its role everywhere, a RoleBinding only in its namespace; a
//!   rule matches on verb, API group, resource (`pods/log` for a
//!   subresource) and resource name, `*` matching any. A question about a
//!   non-resource URL (`nonResourceAttributes`, `get /metrics`) matches a
//!   rule's `nonResourceURLs` (`*` or a `prefix*` matching more) and
//!   verbs, and only through a ClusterRoleBinding, as in RBAC.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// A bearer token the fake authenticates ([`super::FakeKube::add_token`]).
#[derive(Debug, Clone)]
pub struct Token {
    /// User name (`alice`, `system:serviceaccount:NS:NAME`).
    pub user: String,
    /// The user's UID.
    pub uid: String,
    /// Groups (`system:authenticated` is added on review, as the API server
    /// does).
    pub groups: Vec<String>,
    /// Audiences the token is valid for ([`API_AUDIENCE`] for a person's).
    pub audiences: Vec<String>,
    /// When it expires.
    pub expires: SystemTime,
    /// Extra user information.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The API server's own audience: a review that names none asks for it,
/// and a person's token is for it.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc";

/// The `extra` key naming the pod a ServiceAccount token is bound to.
pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The `extra` key with the bound pod's UID.
pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The `extra` key naming the bound pod's node.
pub const NODE_NAME: &str = "authentication.kubernetes.io/node-name";

impl Token {
    /// A person's token, valid for an hour, for the API server's audience.
    pub fn user(name: &str) -> Token {
        Token {
            user: name.to_owned(),
            uid: format!("uid-{name}"),
            groups: Vec::new(),
            audiences: vec![API_AUDIENCE.to_owned()],
            expires: SystemTime::now() + Duration::from_secs(3600),
            extra: BTreeMap::new(),
        }
    }

    /// A projected ServiceAccount token of `namespace/service_account`
    /// bound to `pod` on `node`, for `audience`, valid for an hour.
    pub fn bound(
        namespace: &str,
        service_account: &str,
        pod: &str,
        node: &str,
        audience: &str,
    ) -> Token {
        let mut t = Token::user(&format!(
            "system:serviceaccount:{namespace}:{service_account}"
        ));
        t.groups = vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
        ];
        t.audiences = vec![audience.to_owned()];
        for (k, v) in [
            (POD_NAME, pod.to_owned()),
            (POD_UID, format!("uid-{pod}")),
            (NODE_NAME, node.to_owned()),
        ] {
            t.extra.insert(k.to_owned(), vec![v]);
        }
        t
    }

    /// The token with these groups.
    pub fn groups(mut self, groups: &[&str]) -> Token {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }

    /// The token valid for these audiences.
    pub fn audiences(mut self, audiences: &[&str]) -> Token {
        self.audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// The token expiring at `at`.
    pub fn expires(mut self, at: SystemTime) -> Token {
        self.expires = at;
        self
    }
}

/// A token shaped as the API server's ServiceAccount tokens are
/// (`header.claims.signature`, each base64url): claims `iss`, `sub`,
/// `aud`, `iat`, `exp` (from `t.expires`) and `jti` (`serial`). The
/// signature is not one: only the fake's TokenReview vouches for it.
pub fn jwt(t: &Token, serial: u64) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let secs = |at: SystemTime| {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let header = json!({"alg": "RS256", "kid": "fake"});
    let claims = json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": t.user,
        "aud": t.audiences,
        "iat": secs(SystemTime::now()),
        "exp": secs(t.expires),
        "jti": format!("fake-{serial}"),
    });
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("not a signature {serial}"));
    format!("{}.{}.{signature}", b64(&header), b64(&claims))
}

/// The groups served besides the core one (discovery: `/apis`).
pub(super) fn group_list() -> Value {
    let group = |name: &str| {
        let v = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
        json!({"name": name, "versions": [v], "preferredVersion": v})
    };
    json!({"kind": "APIGroupList", "apiVersion": "v1",
        "groups": [group("authentication.k8s.io"), group("authorization.k8s.io")]})
}

/// The resources of a group served besides the core one, `None` for
/// another group.
pub(super) fn resource_list(group: &str) -> Option<Value> {
    let (name, kind) = match group {
        "authentication.k8s.io" => ("tokenreviews", "TokenReview"),
        "authorization.k8s.io" => ("subjectaccessreviews", "SubjectAccessReview"),
        _ => return None,
    };
    let resource = json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": false,
        "kind": kind, "verbs": ["create"]});
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/v1"), "resources": [resource]}))
}

/// The TokenReview `review` answered from `tokens`.
pub(super) fn token_review(tokens: &BTreeMap<String, Token>, review: &Value) -> Value {
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut asked: Vec<&str> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if asked.is_empty() {
        asked.push(API_AUDIENCE);
    }
    let status = match tokens.get(token) {
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
        Some(t) if t.expires <= SystemTime::now() => {
            json!({"authenticated": false, "error": "invalid bearer token, token has expired"})
        }
        Some(t) => {
            let audiences: Vec<&str> = asked
                .iter()
                .copied()
                .filter(|a| t.audiences.iter().any(|ta| ta == a))
                .collect();
            if audiences.is_empty() {
                json!({"authenticated": false,
                       "error": "invalid bearer token, token audiences don't match the review's"})
            } else {
                let mut groups = t.groups.clone();
                groups.push("system:authenticated".into());
                json!({
                    "authenticated": true,
                    "user": {"username": t.user, "uid": t.uid, "groups": groups, "extra": t.extra},
                    "audiences": audiences,
                })
            }
        }
    };
    let mut out = review.clone();
    out["status"] = status;
    out
}

/// The SubjectAccessReview `review` decided by the RBAC objects `rbac`
/// (by kind, namespace, name).
pub(super) fn access_review(
    rbac: &BTreeMap<(String, String, String), Value>,
    review: &Value,
) -> Value {
    let spec = &review["spec"];
    let user = spec["user"].as_str().unwrap_or("");
    let groups: Vec<&str> = spec["groups"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let attrs = non_resource.unwrap_or(&spec["resourceAttributes"]);
    let namespace = match non_resource {
        Some(_) => "",
        None => attrs["namespace"].as_str().unwrap_or(""),
    };
    let allowed = rbac
        .iter()
        .filter(|((kind, ns, _), b)| {
            let binds = kind == "ClusterRoleBinding"
                || (kind == "RoleBinding" && !namespace.is_empty() && ns == namespace);
            binds && subject_matches(b, user, &groups)
        })
        .filter_map(|((_, ns, _), b)| {
            let role_kind = b.pointer("/roleRef/kind")?.as_str()?;
            let role_ns = if role_kind == "Role" {
                ns.clone()
            } else {
                String::new()
            };
            let name = b.pointer("/roleRef/name")?.as_str()?;
            rbac.get(&(role_kind.to_owned(), role_ns, name.to_owned()))
        })
        .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
        .any(|rule| match non_resource {
            Some(attrs) => non_resource_rule_matches(&rule, attrs),
            None => rule_matches(&rule, attrs),
        });
    let reason = if allowed {
        "allowed by RBAC"
    } else {
        "no RBAC rule allows it"
    };
    let mut out = review.clone();
    out["status"] = json!({"allowed": allowed, "reason": reason});
    out
}

fn subject_matches(binding: &Value, user: &str, groups: &[&str]) -> bool {
    let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
    subjects.iter().any(|s| {
        let name = s["name"].as_str().unwrap_or("");
        match s["kind"].as_str() {
            Some("User") => name == user,
            Some("Group") => groups.contains(&name),
            Some("ServiceAccount") => {
                let ns = s["namespace"].as_str().unwrap_or("");
                user == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn non_resource_rule_matches(rule: &Value, attrs: &Value) -> bool {
    let path = attrs["path"].as_str().unwrap_or("");
    let verb = attrs["verb"].as_str().unwrap_or("");
    let listed = |field: &str, matches: &dyn Fn(&str) -> bool| {
        rule[field]
            .as_array()
            .is_some_and(|a| a.iter().filter_map(Value::as_str).any(matches))
    };
    listed("verbs", &|v| v == "*" || v == verb)
        && listed("nonResourceURLs", &|u| {
            u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        })
}

fn rule_matches(rule: &Value, attrs: &Value) -> bool {
    let listed = |field: &str, want: &str| {
        rule[field]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "*" || v == want))
    };
    let resource = match attrs["subresource"].as_str().unwrap_or("") {
        "" => attrs["resource"].as_str().unwrap_or("").to_owned(),
        sub => format!("{}/{sub}", attrs["resource"].as_str().unwrap_or("")),
    };
    let name = attrs["name"].as_str().unwrap_or("");
    let names_ok = match rule["resourceNames"].as_array() {
        None => true,
        Some(a) if a.is_empty() => true,
        Some(a) => a.iter().any(|v| v == name),
    };
    listed("verbs", attrs["verb"].as_str().unwrap_or(""))
        && listed("apiGroups", attrs["group"].as_str().unwrap_or(""))
        && listed("resources", &resource)
        && names_ok
}
