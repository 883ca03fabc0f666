//! Every rule over arbitrary text where Kubernetes and programs put free
//! text (status and event messages, log tails, image names) and arbitrary
//! exit codes and reasons: the rules slice and parse these strings, and
//! must never panic on any of them.
#![no_main]

use gpuscope_diagnose::{Config, Evidence, LogTail, PodKey};
use k8s_openapi::api::core::v1::{Event, Pod};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const PHASES: [&str; 4] = ["Pending", "Running", "Failed", "Succeeded"];
const WAITING: [&str; 6] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "ContainerCreating",
    "CreateContainerError",
];
const TERMINATED: [&str; 4] = ["OOMKilled", "Error", "Completed", "ContainerStatusUnknown"];
const EVENTS: [&str; 12] = [
    "FailedScheduling",
    "Failed",
    "FailedMount",
    "FailedCreatePodSandBox",
    "Unhealthy",
    "Killing",
    "BackOff",
    "UnexpectedAdmissionError",
    "Evicted",
    "OOMKilling",
    "SystemOOM",
    "Preempted",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (pick, rest) = data.split_at(4);
    let text = String::from_utf8_lossy(rest).into_owned();
    let phase = PHASES[pick[0] as usize % PHASES.len()];
    let waiting = WAITING[pick[1] as usize % WAITING.len()];
    let terminated = TERMINATED[pick[2] as usize % TERMINATED.len()];
    let reason = EVENTS[pick[3] as usize % EVENTS.len()];
    let exit_code = i32::from(pick[0]) - 64;
    let bound = pick[1] % 2 == 0;
    let pod: Pod = match serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
            "creationTimestamp": "2026-11-20T10:00:00Z"},
        "spec": {
            "nodeName": if bound { Some("n") } else { None },
            "containers": [{"name": "c", "image": text,
                "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "1Gi"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": 8080}}}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": text}}]
        },
        "status": {
            "phase": phase, "reason": text, "message": text,
            "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": text}],
            "containerStatuses": [{"name": "c", "image": text, "imageID": "",
                "ready": false, "restartCount": 5,
                "containerID": "containerd://abc",
                "state": {"waiting": {"reason": waiting, "message": text}},
                "lastState": {"terminated": {"exitCode": exit_code, "reason": terminated,
                    "message": text,
                    "startedAt": "2026-11-20T10:01:00Z",
                    "finishedAt": "2026-11-20T10:02:00Z",
                    "containerID": "containerd://old"}}}]
        }
    })) {
        Ok(p) => p,
        Err(_) => return,
    };
    let event = |kind: &str, name: &str| -> Option<Event> {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("e-{kind}"), "namespace": "ns"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "ns", "uid": if kind == "Pod" { "u-1" } else { "" },
                "fieldPath": "spec.containers{c}"},
            "reason": reason, "message": text, "type": "Warning", "count": 3,
            "lastTimestamp": "2026-11-20T10:02:00Z"
        }))
        .ok()
    };
    let evidence = Evidence {
        pods: vec![pod],
        events: [event("Pod", "p"), event("Node", "n")].into_iter().flatten().collect(),
        logs: vec![LogTail {
            container: "c".into(),
            previous: true,
            text: text.clone(),
            ..LogTail::default()
        }],
        ..Evidence::default()
    };
    let key = PodKey {
        namespace: "ns".into(),
        name: "p".into(),
    };
    let _ = gpuscope_diagnose::explain(&evidence, &Config::default(), &key);
    let _ = gpuscope_diagnose::diagnose(&evidence, &Config::default());
});
