//! Joins between what the agents report (pod UIDs and container IDs from
//! cgroup paths) and what Kubernetes names (namespace, pod, container,
//! owner).

use std::collections::HashMap;

use gpuscope_diagnose::k8s;
use k8s_openapi::api::core::v1::Pod;

/// A pod as people name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Top owner, `Kind/name`.
    pub owner: Option<String>,
    /// The node it is bound to.
    pub node: Option<String>,
}

/// The identity of a pod object.
pub fn identity(p: &Pod) -> PodIdentity {
    PodIdentity {
        namespace: k8s::namespace(p).to_owned(),
        name: k8s::name(p).to_owned(),
        owner: k8s::owner(p),
        node: k8s::node_name(p).map(str::to_owned),
    }
}

/// The pod with this UID.
pub fn pod_by_uid<'a, P>(pods: impl IntoIterator<Item = &'a P>, uid: &str) -> Option<&'a P>
where
    P: AsRef<Pod> + 'a,
{
    if uid.is_empty() {
        return None;
    }
    pods.into_iter().find(|p| k8s::uid(p.as_ref()) == Some(uid))
}

/// Container ID (bare, as the agent reports it: no `containerd://`) ->
/// container name, for the current and the previous instance of every
/// init and app container whose status names an ID.
pub fn container_names(p: &Pod) -> HashMap<String, String> {
    container_names_of(k8s::container_statuses(p).map(|c| {
        let last = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.container_id.as_deref());
        (c.name.as_str(), c.container_id.as_deref(), last)
    }))
}

/// [`container_names`] of (name, current container ID, the terminated
/// previous instance's container ID) of each init and app container
/// status, in that order.
pub fn container_names_of<'a>(
    statuses: impl IntoIterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)>,
) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (name, current, last) in statuses {
        if let Some(id) = current {
            let id = k8s::bare_container_id(id);
            if !id.is_empty() {
                out.insert(id.to_owned(), name.to_owned());
            }
        }
        if let Some(id) = last {
            let id = k8s::bare_container_id(id);
            if !id.is_empty() {
                out.entry(id.to_owned()).or_insert_with(|| name.to_owned());
            }
        }
    }
    out
}

/// The `persistentVolumeClaim.claimName`s the pod mounts.
pub fn claim_names(p: &Pod) -> Vec<String> {
    p.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

/// A container that ended abnormally: its name, and whether the ended
/// instance is the previous one (it restarted) or the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Container name.
    pub container: String,
    /// The terminated instance is the previous one (`--previous`).
    pub previous: bool,
}

/// Containers whose last instance terminated with a non-zero exit code or a
/// reason other than `Completed`: whose log tail may say why.
pub fn abnormally_ended(p: &Pod) -> Vec<Ended> {
    let abnormal = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| {
        t.exit_code != 0 || t.reason.as_deref().is_some_and(|r| r != "Completed")
    };
    let mut out = Vec::new();
    for c in k8s::container_statuses(p) {
        let current = c.state.as_ref().and_then(|s| s.terminated.as_ref());
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        if current.is_some_and(abnormal) {
            out.push(Ended {
                container: c.name.clone(),
                previous: false,
            });
        } else if last.is_some_and(abnormal) {
            out.push(Ended {
                container: c.name.clone(),
                previous: true,
            });
        }
    }
    out
}

/// A label selector of equality terms (`a=b,c==d,e!=f,g,!h`), the forms
/// the device-plugin selectors use; matched locally against pods already
/// in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    text: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

impl std::str::FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for t in s.split(',').map(str::trim) {
            let bad = || {
                format!(
                    "label selector {s:?}: term {t:?} is not key=value, key!=value, key or !key"
                )
            };
            let valid = |k: &str| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            };
            let term = if let Some((k, v)) = t.split_once("!=") {
                Term::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some(k) = t.strip_prefix('!') {
                Term::Absent(k.trim().into())
            } else {
                Term::Exists(t.into())
            };
            let (k, v) = match &term {
                Term::Eq(k, v) | Term::Ne(k, v) => (k, Some(v)),
                Term::Exists(k) | Term::Absent(k) => (k, None),
            };
            if !valid(k)
                || v.is_some_and(|v| v.contains(|c: char| c.is_whitespace() || "()".contains(c)))
            {
                return Err(bad());
            }
            terms.push(term);
        }
        Ok(Self {
            text: s.to_owned(),
            terms,
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Selector {
    /// The selector as the API server takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a pod's labels match every term.
    pub fn matches(&self, p: &Pod) -> bool {
        let labels = p.metadata.labels.as_ref();
        self.matches_labels(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
    }

    /// Whether labels read by `get` (label key -> value) match.
    pub fn matches_labels<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => get(k) == Some(v.as_str()),
            Term::Ne(k, v) => get(k) != Some(v.as_str()),
            Term::Exists(k) => get(k).is_some(),
            Term::Absent(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "trainer-0", "namespace": "ml", "uid": "u-1",
                "labels": {"app": "nvidia-device-plugin-daemonset", "tier": "gpu"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "j", "controller": true}]},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "main"}, {"name": "side"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}, {"name": "tmp", "emptyDir": {}}]},
            "status": {"containerStatuses": [
                {"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
                 "containerID": "containerd://aaaa",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "containerID": "containerd://9999"}}},
                {"name": "side", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "containerID": "cri-o://bbbb", "state": {"running": {}}}
            ]}
        }))
        .expect("pod")
    }

    #[test]
    fn joins_uid_and_container_ids_to_names() {
        let p = pod();
        assert_eq!(
            identity(&p),
            PodIdentity {
                namespace: "ml".into(),
                name: "trainer-0".into(),
                owner: Some("Job/train".into()),
                node: Some("gpu-1".into()),
            }
        );
        let pods = [std::sync::Arc::new(p.clone())];
        assert!(pod_by_uid(&pods, "u-1").is_some());
        assert!(pod_by_uid(&pods, "u-2").is_none());
        assert!(pod_by_uid(&pods, "").is_none());
        let names = container_names(&p);
        assert_eq!(names.get("aaaa").map(String::as_str), Some("main"));
        assert_eq!(names.get("9999").map(String::as_str), Some("main"));
        assert_eq!(names.get("bbbb").map(String::as_str), Some("side"));
        assert_eq!(names.len(), 3);
        assert_eq!(claim_names(&p), ["datasets"]);
        assert_eq!(
            abnormally_ended(&p),
            [Ended {
                container: "main".into(),
                previous: true
            }]
        );
    }

    #[test]
    fn selectors_match_labels() {
        let p = pod();
        let sel = |s: &str| s.parse::<Selector>().expect(s);
        assert!(sel("app=nvidia-device-plugin-daemonset").matches(&p));
        assert!(sel("app==nvidia-device-plugin-daemonset,tier=gpu").matches(&p));
        assert!(!sel("app.kubernetes.io/name=nvidia-device-plugin").matches(&p));
        assert!(sel("tier!=cpu").matches(&p));
        assert!(sel("tier").matches(&p));
        assert!(!sel("!tier").matches(&p));
        assert!("app in (a,b)".parse::<Selector>().is_err());
        assert!("".parse::<Selector>().is_err());
    }
}
