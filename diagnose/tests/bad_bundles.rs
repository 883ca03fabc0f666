//! Bundles as people really assemble them: cut short, holding the wrong
//! object, or missing most of their parts. Each must give a clear error
//! naming the file, or findings plus the gaps, never a panic.

use std::path::Path;

use gpuscope_diagnose::bundle::{Bundle, BundleError};
use gpuscope_diagnose::{Config, Kind};

/// A crash-looping pod as `kubectl get pod -o json` prints it.
const POD: &str = r#"{
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "train-bert-0",
        "namespace": "ml",
        "uid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
        "creationTimestamp": "2026-11-20T10:00:00Z",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train-bert",
                             "uid": "0a1b2c3d-1111-2222-3333-444455556666", "controller": true, "blockOwnerDeletion": true}]
    },
    "spec": {
        "nodeName": "gpu-node-1",
        "restartPolicy": "OnFailure",
        "containers": [{"name": "trainer", "image": "ghcr.io/acme/trainer:1.8.0",
                        "command": ["/bin/sh", "-c", "pyhton train.py"],
                        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}]
    },
    "status": {
        "phase": "Running",
        "startTime": "2026-11-20T10:00:00Z",
        "containerStatuses": [{
            "name": "trainer",
            "image": "ghcr.io/acme/trainer:1.8.0",
            "imageID": "ghcr.io/acme/trainer@sha256:9c1e5b0c6a7d4f3e2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a",
            "containerID": "containerd://3f5a9c1e7b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a",
            "ready": false,
            "started": false,
            "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                                  "message": "back-off 2m40s restarting failed container=trainer pod=train-bert-0_ml(6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e)"}},
            "lastState": {"terminated": {"exitCode": 127, "reason": "Error",
                                         "startedAt": "2026-11-20T10:09:58Z", "finishedAt": "2026-11-20T10:09:58Z",
                                         "containerID": "containerd://1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a3f5a9c1e7b2d4f6a8c0e"}}
        }]
    }
}"#;

fn bundle_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

fn read(dir: &Path) -> Result<Bundle, BundleError> {
    Bundle::read(dir)
}

#[test]
fn a_truncated_pod_json_names_the_file() {
    let cut = &POD[..POD.len() / 2];
    let dir = bundle_with(&[("pod.json", cut)]);
    let err = read(dir.path()).expect_err("a cut file is an error");
    let text = err.to_string();
    assert!(matches!(err, BundleError::Json { .. }), "{err:?}");
    assert!(text.contains("pod.json"), "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
}

#[test]
fn a_deployment_in_pod_json_says_what_it_holds() {
    let deployment = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llm-serve", "namespace": "ml"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "llm-serve"}},
                 "template": {"metadata": {"labels": {"app": "llm-serve"}},
                              "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.6.3"}]}}}}"#;
    let dir = bundle_with(&[("pod.json", deployment)]);
    let text = read(dir.path())
        .expect_err("a Deployment is not a pod")
        .to_string();
    assert!(text.contains("pod.json"), "{text}");
    assert!(text.contains("Deployment"), "{text}");
    assert!(text.contains("kubectl get pod"), "{text}");
}

#[test]
fn a_bundle_of_only_pod_json_gives_findings_and_gaps() {
    let dir = bundle_with(&[("pod.json", POD)]);
    let b = read(dir.path()).expect("a lone pod.json is a bundle");
    let gaps: Vec<&str> = b.evidence.gaps.iter().map(|g| g.what.as_str()).collect();
    for g in ["events", "node", "agent"] {
        assert!(gaps.contains(&g), "no gap for {g}: {gaps:?}");
    }
    let subject = b.subject.clone().expect("pod.json names the subject");
    let findings = gpuscope_diagnose::explain(&b.evidence, &Config::default(), &subject);
    let crash = findings
        .iter()
        .find(|f| f.kind == Kind::CrashLoop)
        .expect("the crash loop is found from pod status alone");
    assert!(crash.summary.contains("code 127"), "{}", crash.summary);
    assert_eq!(crash.cost.map(|c| c.restarts), Some(5));
}

#[test]
fn a_bad_agent_line_in_the_middle_names_its_line() {
    let agent = concat!(
        r#"{"kind":"gpu_count_changed","time":"2026-11-20T10:41:39.120Z","before":8,"after":7,"simulated":false}"#,
        "\n",
        r#"{"kind":"xid","time":"2026-11-20T10:41:07.452Z","gpu_uuid":"GPU-1","xid":"seventy-nine"}"#,
        "\n",
        r#"{"kind":"gpu_count_changed","time":"2026-11-20T10:42:00.000Z","before":7,"after":7,"simulated":false}"#,
        "\n",
    );
    let dir = bundle_with(&[("pod.json", POD), ("agent.jsonl", agent)]);
    let text = read(dir.path())
        .expect_err("a malformed record is an error")
        .to_string();
    assert!(text.contains("agent.jsonl:2"), "{text}");
}

#[test]
fn an_empty_event_list_is_not_a_missing_one() {
    let events =
        r#"{"apiVersion":"v1","items":[],"kind":"List","metadata":{"resourceVersion":""}}"#;
    let dir = bundle_with(&[("pod.json", POD), ("events.json", events)]);
    let b = read(dir.path()).expect("bundle");
    assert!(!b.evidence.lacks("events"), "{:?}", b.evidence.gaps);
}
