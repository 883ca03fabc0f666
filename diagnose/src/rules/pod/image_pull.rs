//! Images that cannot be pulled: the cause, read from the runtime's
//! error text, and the registry and repository to check.

use k8s_openapi::api::core::v1::{Event, Pod};

use super::{container_events, spec_container};
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{event_count, event_fact, message, reason_is, waiting};
use crate::{Context, k8s};

/// Waiting reasons the kubelet sets when an image cannot be pulled.
pub(super) const PULL_REASONS: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// Why a pull failed, from the runtime's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullCause {
    /// The name or tag does not exist (`not found`, `manifest unknown`).
    NotFound,
    /// Docker Hub's answer for both a missing repository and a private one.
    NotFoundOrDenied,
    /// 401/403: missing or wrong credentials.
    Unauthorized,
    /// 429 / `toomanyrequests`.
    RateLimited,
    /// DNS, TCP or TLS failure on the way to the registry.
    Unreachable,
    /// Not a valid image reference.
    InvalidName,
    /// `imagePullPolicy: Never` and the image is not on the node.
    NeverPull,
    /// The error text is missing or unknown.
    Unknown,
}

fn classify_pull(reason: &str, text: &str) -> PullCause {
    let t = text.to_ascii_lowercase();
    let has = |s: &str| t.contains(s);
    if reason == "InvalidImageName" {
        PullCause::InvalidName
    } else if reason == "ErrImageNeverPull" {
        PullCause::NeverPull
    } else if has("toomanyrequests") || has("429 too many requests") || has("rate limit") {
        PullCause::RateLimited
    } else if has("no basic auth credentials") {
        // The registry allows no anonymous pulls and the node had nothing
        // to offer: credentials are missing, whatever else the text says.
        PullCause::Unauthorized
    } else if has("pull access denied") && has("may require authorization") {
        PullCause::NotFoundOrDenied
    } else if has("401 unauthorized")
        || has("403 forbidden")
        || has("unauthorized:")
        || has("authentication required")
        || has("denied:")
    {
        PullCause::Unauthorized
    } else if has("not found") || has("manifest unknown") || has("name unknown") {
        PullCause::NotFound
    } else if has("no such host")
        || has("i/o timeout")
        || has("connection refused")
        || has("network is unreachable")
        || has("tls handshake timeout")
        || has("x509:")
        || has("context deadline exceeded")
        || has("dial tcp")
        || has("connection reset")
    {
        PullCause::Unreachable
    } else {
        PullCause::Unknown
    }
}

/// The registry host of an image reference (`docker.io` when none).
fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The repository of an image reference, without tag or digest.
fn repository_of(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => no_digest,
    }
}

pub(super) fn image_pull(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    for cs in k8s::container_statuses(pod) {
        let Some((reason, wmsg)) = waiting(cs) else {
            continue;
        };
        if !PULL_REASONS.contains(&reason) {
            continue;
        }
        let cevents = container_events(events, &cs.name);
        let pull_error = cevents
            .iter()
            .rev()
            .find(|e| reason_is(e, "Failed") && message(e).contains("Failed to pull image"))
            .copied();
        let text = pull_error.map_or(wmsg, message);
        let image = spec_container(pod, &cs.name)
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| cs.image.clone());
        let secrets: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .map(|v| v.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default();
        let secrets_text = if secrets.is_empty() {
            "none".to_owned()
        } else {
            secrets.join(", ")
        };
        let cause = classify_pull(reason, text);
        let registry = registry_of(&image);
        let repo = repository_of(&image);
        let c = &cs.name;
        let (confidence, summary) = match cause {
            PullCause::NotFound => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: image \"{image}\" does not exist in {registry} (the name or tag is wrong, or it was never pushed)."
                ),
            ),
            PullCause::NotFoundOrDenied => (
                Confidence::Medium,
                format!(
                    "Container {c} cannot start: {registry} refused image \"{image}\" with \"pull access denied\", which it answers both for a repository that does not exist and for a private one pulled without credentials (imagePullSecrets: {secrets_text})."
                ),
            ),
            PullCause::Unauthorized if text.to_ascii_lowercase().contains("403 forbidden") => (
                // 403: the registry (or a proxy before it) understood the
                // request and refused it: credentials without access to
                // this repository, or a policy or proxy in the way; not a
                // missing tag, not a network failure.
                Confidence::High,
                format!(
                    "Container {c} cannot start: {registry} answered 403 Forbidden for image \"{image}\": the request was refused (credentials without access to {repo}, or a proxy or registry policy refusing it; imagePullSecrets: {secrets_text})."
                ),
            ),
            PullCause::Unauthorized => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: {registry} refused to serve image \"{image}\" without valid credentials{} (imagePullSecrets: {secrets_text}).",
                    if text.to_ascii_lowercase().contains("401 unauthorized") {
                        " (401 Unauthorized)"
                    } else {
                        ""
                    }
                ),
            ),
            PullCause::RateLimited => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: {registry} rate-limited the pull of image \"{image}\" (too many pulls from this node's address)."
                ),
            ),
            PullCause::Unreachable => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: the node cannot reach registry {registry} to pull image \"{image}\" ({}).",
                    unreachable_detail(text)
                ),
            ),
            PullCause::InvalidName => (
                Confidence::High,
                format!("Container {c} cannot start: \"{image}\" is not a valid image reference."),
            ),
            PullCause::NeverPull => (
                Confidence::High,
                format!(
                    "Container {c} cannot start: image \"{image}\" is not on the node and its imagePullPolicy is Never."
                ),
            ),
            PullCause::Unknown if text.is_empty() || text.starts_with("Back-off pulling image") => {
                (
                    Confidence::Low,
                    format!(
                        "Container {c} cannot start: image \"{image}\" cannot be pulled ({reason}), and the registry's error is not in the evidence{}.",
                        if ctx.evidence.lacks("events") {
                            " (no events in the bundle)"
                        } else {
                            " (its Failed event has expired or was not collected)"
                        }
                    ),
                )
            }
            PullCause::Unknown => (
                Confidence::Medium,
                format!(
                    "Container {c} cannot start: image \"{image}\" cannot be pulled ({reason}) for a reason gpuscope does not recognise."
                ),
            ),
        };
        let mut f = Finding::new(
            Kind::ImagePull,
            ctx.subject(pod, Some(c)),
            confidence,
            summary,
        )
        .fact(Fact::new("waiting reason", reason))
        .fact(Fact::new("image", image.clone()))
        .fact(Fact::new("imagePullSecrets", secrets_text.clone()));
        if let Some(e) = pull_error {
            f = f.fact(event_fact("pull error", e));
            f = f.fact(Fact::new("failed pulls", event_count(e).to_string()));
        } else if !text.is_empty() {
            f = f.fact(Fact::new("waiting message", text));
        }
        if let Some(e) = cevents
            .iter()
            .rev()
            .find(|e| reason_is(e, "BackOff") && message(e).contains("Back-off pulling"))
        {
            f = f.fact(event_fact("back-off", e));
        }
        let inspect = format!("crane ls {repo}   # or: docker manifest inspect {image}");
        let ns = k8s::namespace(pod);
        let steps: Vec<String> = match cause {
            PullCause::NotFound | PullCause::InvalidName => vec![
                inspect,
                format!("Fix spec.containers[{c}].image in the manifest to a name and tag that exist."),
            ],
            PullCause::NotFoundOrDenied => vec![
                inspect,
                "If the repository is private, create a pull secret and list it under imagePullSecrets (or on the ServiceAccount); otherwise fix the name or tag.".to_owned(),
                format!("kubectl create secret docker-registry regcred -n {ns} --docker-server={registry} --docker-username=USER --docker-password=TOKEN"),
            ],
            PullCause::Unauthorized if is_ecr(registry) => vec![
                format!("ECR tokens expire after 12 hours, so a static pull secret stops working: let the node's IAM role pull (ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, e.g. AmazonEC2ContainerRegistryReadOnly) or configure the kubelet's ecr-credential-provider for {registry}."),
                format!("aws ecr describe-images --registry-id {} --repository-name {}   # check the image exists; for another account's registry its repository policy must allow this account", registry.split('.').next().unwrap_or(""), repo.split_once('/').map_or(repo, |r| r.1)),
            ],
            PullCause::Unauthorized => vec![
                format!("kubectl get secret {} -n {ns} -o jsonpath='{{.data.\\.dockerconfigjson}}' | base64 -d   # check it names {registry}", secrets.first().map_or("regcred", String::as_str)),
                format!("kubectl create secret docker-registry regcred -n {ns} --docker-server={registry} --docker-username=USER --docker-password=TOKEN, then add `imagePullSecrets: [{{name: regcred}}]` to the pod spec or its ServiceAccount."),
            ],
            PullCause::RateLimited => vec![
                format!("Authenticate pulls from {registry} (an imagePullSecret for an account with a higher limit) or pull through a registry mirror / pull-through cache."),
                "Set imagePullPolicy: IfNotPresent and pin tags so that nodes reuse cached images.".to_owned(),
            ],
            PullCause::Unreachable => vec![
                format!("kubectl debug node/{} -it --image=busybox -- nslookup {registry}", k8s::node_name(pod).unwrap_or("NODE")),
                "Check the node's DNS, HTTP(S)_PROXY/NO_PROXY in the container runtime's config, firewall rules, and the registry's CA certificate; or use a reachable mirror.".to_owned(),
            ],
            PullCause::NeverPull => vec![
                format!("Set imagePullPolicy: IfNotPresent, or pre-load {image} on the node (crictl pull {image})."),
            ],
            PullCause::Unknown => vec![
                format!("kubectl describe pod {} -n {ns}   # the Events section names the pull error", k8s::name(pod)),
                inspect,
            ],
        };
        for s in steps {
            f = f.step(s);
        }
        out.push(f);
    }
    out
}

/// Whether a registry host is Amazon ECR's (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`).
fn is_ecr(registry: &str) -> bool {
    registry.contains(".dkr.ecr.") && registry.contains(".amazonaws.com")
}

fn unreachable_detail(text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if t.contains("no such host") {
        "DNS lookup of the registry failed"
    } else if t.contains("x509:") {
        "the registry's TLS certificate is not trusted"
    } else if t.contains("connection refused") {
        "connection refused"
    } else {
        "the connection timed out: DNS, proxy or firewall"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_errors_are_classified() {
        let c = |s: &str| classify_pull("ErrImagePull", s);
        assert_eq!(
            c(
                "failed to resolve reference \"docker.io/library/pytorch:9.9\": docker.io/library/pytorch:9.9: not found"
            ),
            PullCause::NotFound
        );
        assert_eq!(
            c(
                "pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
            ),
            PullCause::NotFoundOrDenied
        );
        assert_eq!(
            c("unexpected status: 401 Unauthorized"),
            PullCause::Unauthorized
        );
        assert_eq!(
            c(
                "pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials"
            ),
            PullCause::Unauthorized
        );
        assert!(is_ecr("123456789012.dkr.ecr.us-west-2.amazonaws.com"));
        assert_eq!(
            c("toomanyrequests: You have reached your pull rate limit"),
            PullCause::RateLimited
        );
        assert_eq!(
            c("dial tcp: lookup registry.example.com on 10.96.0.10:53: no such host"),
            PullCause::Unreachable
        );
        assert_eq!(registry_of("nvcr.io/nvidia/pytorch:24.01-py3"), "nvcr.io");
        assert_eq!(registry_of("pytorch/pytorch:2.1"), "docker.io");
        assert_eq!(
            repository_of("nvcr.io/nvidia/pytorch:24.01-py3"),
            "nvcr.io/nvidia/pytorch"
        );
        assert_eq!(repository_of("localhost:5000/x"), "localhost:5000/x");
    }
}
