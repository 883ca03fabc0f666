//! `CreateContainerConfigError`: missing ConfigMaps, Secrets and keys.

use k8s_openapi::api::core::v1::{Event, Pod};

use super::container_events;
use crate::finding::{Confidence, Fact, Finding, Kind};
use crate::k8s::{event_fact, message, quoted_after, reason_is, waiting};
use crate::{Context, k8s};

/// The object a config error names: kind, name, key.
pub(super) fn missing_object(msg: &str) -> Option<(&'static str, String, Option<String>)> {
    if let Some(rest) = msg.split("couldn't find key ").nth(1) {
        let (key, rest) = rest.split_once(" in ")?;
        let (kind, obj) = rest.split_once(' ')?;
        let obj = obj.trim().trim_end_matches('.');
        let obj = obj.rsplit('/').next().unwrap_or(obj).to_owned();
        let kind = if kind.eq_ignore_ascii_case("secret") {
            "Secret"
        } else {
            "ConfigMap"
        };
        return Some((kind, obj, Some(key.to_owned())));
    }
    if let Some(n) = quoted_after(msg, "configmap \"")
        && msg.contains("not found")
    {
        return Some(("ConfigMap", n, None));
    }
    if let Some(n) = quoted_after(msg, "secret \"")
        && msg.contains("not found")
    {
        return Some(("Secret", n, None));
    }
    None
}

/// Where the pod's containers reference a ConfigMap or Secret.
fn references(pod: &Pod, kind: &str, obj: &str, key: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for c in pod.spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    }) {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            let hit = match kind {
                "ConfigMap" => from
                    .config_map_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == obj && key.is_none_or(|k| r.key == k)),
                _ => from
                    .secret_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == obj && key.is_none_or(|k| r.key == k)),
            };
            if hit {
                out.push(format!("env {} of container {}", e.name, c.name));
            }
        }
        for e in c.env_from.iter().flatten() {
            let hit = match kind {
                "ConfigMap" => e.config_map_ref.as_ref().is_some_and(|r| r.name == obj),
                _ => e.secret_ref.as_ref().is_some_and(|r| r.name == obj),
            };
            if hit && key.is_none() {
                out.push(format!("envFrom of container {}", c.name));
            }
        }
    }
    out
}

pub(super) fn config_missing(ctx: &Context<'_>, pod: &Pod, events: &[&Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let (ns, name) = (k8s::namespace(pod), k8s::name(pod));
    for cs in k8s::container_statuses(pod) {
        let Some((reason, wmsg)) = waiting(cs) else {
            continue;
        };
        if reason != "CreateContainerConfigError" {
            continue;
        }
        let c = &cs.name;
        let event = container_events(events, c)
            .into_iter()
            .rev()
            .find(|e| reason_is(e, "Failed") && message(e).starts_with("Error: "));
        let text = if wmsg.is_empty() {
            event.map_or("", |e| message(e).trim_start_matches("Error: "))
        } else {
            wmsg
        };
        let mut f = match missing_object(text) {
            Some((kind, obj, key)) => {
                let what = match &key {
                    Some(k) => format!("key \"{k}\" is missing from {kind} {ns}/{obj}"),
                    None => format!("{kind} \"{obj}\" does not exist in namespace {ns}"),
                };
                let lower = kind.to_ascii_lowercase();
                let mut f = Finding::new(
                    Kind::ConfigMissing,
                    ctx.subject(pod, Some(c)),
                    Confidence::High,
                    format!("Container {c} cannot be created: {what}."),
                )
                .fact(Fact::new("kind", kind))
                .fact(Fact::new("name", obj.clone()));
                if let Some(k) = &key {
                    f = f.fact(Fact::new("key", k.clone()));
                }
                for r in references(pod, kind, &obj, key.as_deref()) {
                    f = f.fact(Fact::new("referenced by", r));
                }
                f = f.step(match &key {
                    Some(_) if kind == "Secret" => format!(
                        "kubectl get secret {obj} -n {ns} -o jsonpath='{{.data}}'   # the keys it has"
                    ),
                    Some(_) => format!(
                        "kubectl get configmap {obj} -n {ns} -o jsonpath='{{.data}}'   # the keys it has"
                    ),
                    None => format!("kubectl get {lower} -n {ns}   # is it named differently, or in another namespace?"),
                });
                f.step(format!(
                    "Create the {kind} (kubectl create {lower} {obj} -n {ns} ...) or fix the reference in the pod spec; mark it `optional: true` if the container can start without it."
                ))
            }
            None if text.is_empty() => Finding::new(
                Kind::ConfigMissing,
                ctx.subject(pod, Some(c)),
                Confidence::Low,
                format!(
                    "Container {c} cannot be created (CreateContainerConfigError), and the message naming the missing object is not in the evidence."
                ),
            )
            .step(format!("kubectl describe pod {name} -n {ns}")),
            None => Finding::new(
                Kind::ConfigMissing,
                ctx.subject(pod, Some(c)),
                Confidence::Medium,
                format!(
                    "Container {c} cannot be created: the kubelet cannot build its configuration ({text})."
                ),
            )
            .step(format!("kubectl get pod {name} -n {ns} -o yaml   # compare the spec with the message")),
        };
        f = f.fact(Fact::new("waiting reason", reason));
        if !text.is_empty() {
            f = f.fact(match event {
                Some(e) => event_fact("message", e),
                None => Fact::new("message", text),
            });
        }
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_object_and_key() {
        assert_eq!(
            missing_object("configmap \"model-config\" not found"),
            Some(("ConfigMap", "model-config".into(), None))
        );
        assert_eq!(
            missing_object("couldn't find key HF_TOKEN in Secret ml/hf-credentials"),
            Some(("Secret", "hf-credentials".into(), Some("HF_TOKEN".into())))
        );
    }
}
