//! The fake Kubernetes API server against two real clients: the `kubectl`
//! binary (discovery, get, table output, logs, errors) and kube-rs'
//! watcher + reflector (list then watch, replay, re-list on 410, recovery
//! from 403, dropped connections and 500s).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpuscope_tests::fake_kube::{FakeKube, Fault, Token};
use gpuscope_tests::kubectl::Kubectl;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio_stream::StreamExt;

fn pod(ns: &str, name: &str, node: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running"},
    })
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn event(ns: &str, name: &str, pod: &str, reason: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
        "reason": reason, "type": "Warning", "message": format!("{reason} for {pod}"),
    })
}

fn item_names(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("name").to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

fn populated() -> FakeKube {
    let fake = FakeKube::start();
    fake.apply(pod("ml", "trainer-0", "gpu-node-1", "trainer"));
    fake.apply(pod("ml", "trainer-1", "gpu-node-2", "trainer"));
    fake.apply(pod("infra", "exporter-x", "gpu-node-1", "exporter"));
    fake.apply(node("gpu-node-1"));
    fake.apply(node("gpu-node-2"));
    fake.apply(event("ml", "trainer-0.oom", "trainer-0", "OOMKilling"));
    fake.apply(event("infra", "exporter-x.start", "exporter-x", "Started"));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "datasets", "namespace": "ml"},
        "spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"},
    }));
    fake
}

#[test]
fn kubectl_gets_objects_as_json() {
    let fake = populated();
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };

    let pods = kubectl.json(&["get", "pods", "-A", "-o", "json"]);
    assert_eq!(
        item_names(&pods),
        set(&["exporter-x", "trainer-0", "trainer-1"])
    );
    let pod = kubectl.json(&["get", "pod", "trainer-1", "-n", "ml", "-o", "json"]);
    assert_eq!(pod["spec"]["nodeName"], "gpu-node-2");
    assert!(pod["metadata"]["uid"].is_string() && pod["metadata"]["resourceVersion"].is_string());

    let nodes = kubectl.json(&["get", "nodes", "-o", "json"]);
    assert_eq!(item_names(&nodes), set(&["gpu-node-1", "gpu-node-2"]));
    let events = kubectl.json(&["get", "events", "-n", "ml", "-o", "json"]);
    assert_eq!(events["kind"], "List");
    assert_eq!(item_names(&events), set(&["trainer-0.oom"]));
    assert_eq!(events["items"][0]["reason"], "OOMKilling");
    let pvcs = kubectl.json(&["get", "pvc", "-n", "ml", "-o", "json"]);
    assert_eq!(item_names(&pvcs), set(&["datasets"]));

    let selected = kubectl.json(&["get", "po", "-A", "-l", "app=trainer,app!=x", "-o", "json"]);
    assert_eq!(item_names(&selected), set(&["trainer-0", "trainer-1"]));
    let on_node = [
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=gpu-node-1",
        "-o",
        "json",
    ];
    assert_eq!(
        item_names(&kubectl.json(&on_node)),
        set(&["exporter-x", "trainer-0"])
    );
    let by_set = kubectl.json(&[
        "get",
        "pods",
        "-A",
        "-l",
        "app in (exporter,none)",
        "-o",
        "json",
    ]);
    assert_eq!(item_names(&by_set), set(&["exporter-x"]));
}

#[test]
fn kubectl_prints_tables() {
    let fake = populated();
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };

    let table = kubectl.ok(&["get", "pods", "-A"]);
    let header = table.lines().next().expect("a header line");
    assert!(
        header.starts_with("NAMESPACE") && header.contains("NAME"),
        "{table}"
    );
    for (ns, name) in [
        ("infra", "exporter-x"),
        ("ml", "trainer-0"),
        ("ml", "trainer-1"),
    ] {
        let row = table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}:\n{table}"));
        assert!(row.starts_with(ns) && row.contains("Running"), "{row}");
    }
    let nodes = kubectl.ok(&["get", "no"]);
    assert!(
        nodes.contains("gpu-node-1") && nodes.contains("gpu-node-2"),
        "{nodes}"
    );
    let one = kubectl.ok(&["get", "pod", "trainer-0", "-n", "ml"]);
    assert_eq!(one.lines().count(), 2, "{one}");
}

#[test]
fn kubectl_reads_previous_logs_and_reports_errors() {
    let fake = populated();
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };
    fake.set_log(
        "ml",
        "trainer-0",
        "main",
        true,
        "step 1\nstep 2\nCUDA out of memory\n",
    );

    let log = kubectl.ok(&["logs", "trainer-0", "-n", "ml", "-c", "main", "--previous"]);
    assert_eq!(log, "step 1\nstep 2\nCUDA out of memory\n");
    let tail = kubectl.ok(&["logs", "trainer-0", "-n", "ml", "--previous", "--tail", "1"]);
    assert_eq!(tail, "CUDA out of memory\n");

    let (ok, _, stderr) =
        kubectl.run(&["logs", "trainer-1", "-n", "ml", "-c", "main", "--previous"]);
    assert!(
        !ok && stderr.contains("previous terminated container \"main\""),
        "{stderr}"
    );
    let (ok, _, stderr) = kubectl.run(&["get", "pod", "missing", "-n", "ml", "-o", "json"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("Error from server (NotFound): pods \"missing\" not found"),
        "{stderr}"
    );
    let (ok, _, stderr) = kubectl.run(&["get", "pod", "missing", "-n", "nowhere"]);
    assert!(
        !ok && stderr.contains("namespaces \"nowhere\" not found"),
        "{stderr}"
    );

    fake.fail_next(Fault::Forbidden, 1);
    let (ok, _, stderr) = kubectl.run(&["get", "pods", "-A", "-o", "json"]);
    assert!(
        !ok && stderr.contains("Error from server (Forbidden)"),
        "{stderr}"
    );
    fake.fail_next(Fault::ServerError, 1);
    let (ok, _, stderr) = kubectl.run(&["get", "nodes", "-o", "json"]);
    assert!(
        !ok && stderr.contains("Error from server (InternalError)"),
        "{stderr}"
    );
    assert_eq!(
        item_names(&kubectl.json(&["get", "nodes", "-o", "json"])).len(),
        2
    );
}

/// kubectl, a second real client, creates the reviews the aggregator
/// sends: a TokenReview of a registered token for an audience, and
/// SubjectAccessReviews decided by the RBAC objects applied.
#[test]
fn kubectl_creates_token_and_access_reviews() {
    let fake = populated();
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };
    fake.add_token(
        "agent-token",
        Token::bound(
            "gpuscope",
            "gpuscope-agent",
            "agent-1",
            "gpu-node-1",
            "gpuscope",
        ),
    );
    fake.apply(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "logs", "namespace": "ml"},
        "rules": [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}),
    );
    fake.apply(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice-logs", "namespace": "ml"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "logs"},
        "subjects": [{"kind": "User", "name": "alice"}]}),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let create = |name: &str, object: Value| {
        let file = dir.path().join(name);
        std::fs::write(&file, object.to_string()).expect("write");
        let file = file.to_str().expect("utf-8 path").to_owned();
        kubectl.json(&["create", "--validate=false", "-o", "json", "-f", &file])
    };
    let review = |audience: &str| {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": "agent-token", "audiences": [audience]}})
    };
    let agent = create("tr.json", review("gpuscope"));
    assert_eq!(agent["status"]["authenticated"], true, "{agent}");
    assert_eq!(
        agent["status"]["user"]["extra"]["authentication.kubernetes.io/node-name"][0],
        "gpu-node-1"
    );
    let other = create("tr2.json", review("https://kubernetes.default.svc"));
    assert_eq!(other["status"]["authenticated"], false, "{other}");
    let sar = |ns: &str, sub: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "alice", "resourceAttributes":
                {"namespace": ns, "verb": "get", "resource": "pods", "subresource": sub}}})
    };
    let allowed = |v: Value| v["status"]["allowed"] == true;
    assert!(allowed(create("sar1.json", sar("ml", "log"))));
    assert!(
        !allowed(create("sar2.json", sar("ml", ""))),
        "pods, not pods/log"
    );
    assert!(
        !allowed(create("sar3.json", sar("web", "log"))),
        "another namespace"
    );
}

#[test]
fn load_dir_reads_kubectl_shaped_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, v: &Value| {
        std::fs::write(
            dir.path().join(name),
            serde_json::to_string_pretty(v).expect("json"),
        )
        .expect("write");
    };
    write("pod.json", &pod("ml", "trainer-0", "gpu-node-1", "trainer"));
    let mut ev = event("ml", "trainer-0.oom", "trainer-0", "OOMKilling");
    write(
        "events.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": [ev.clone()]}),
    );
    ev["metadata"]["name"] = json!("trainer-0.backoff");
    ev.as_object_mut().expect("object").remove("kind");
    let nodes = json!({
        "apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"},
        "items": [{"metadata": {"name": "gpu-node-1"}}, {"metadata": {"name": "gpu-node-2"}}],
    });
    write("nodes.json", &nodes);
    write(
        "more-events.json",
        &json!({"apiVersion": "v1", "kind": "EventList", "items": [ev]}),
    );
    std::fs::write(dir.path().join("notes.txt"), "not an object").expect("write");
    std::fs::create_dir(dir.path().join("logs")).expect("mkdir");
    std::fs::write(dir.path().join("logs/main.log"), "Killed\n").expect("write");

    let fake = FakeKube::start();
    assert_eq!(fake.load_dir(dir.path()), Ok(5));
    let Some(kubectl) = Kubectl::new(&fake) else {
        return;
    };
    let nodes = kubectl.json(&["get", "nodes", "-o", "json"]);
    assert_eq!(item_names(&nodes), set(&["gpu-node-1", "gpu-node-2"]));
    assert_eq!(nodes["items"][0]["kind"], "Node");
    let events = kubectl.json(&["get", "events", "-n", "ml", "-o", "json"]);
    assert_eq!(
        item_names(&events),
        set(&["trainer-0.backoff", "trainer-0.oom"])
    );
    let pods = kubectl.json(&["get", "pods", "-A", "-o", "json"]);
    assert_eq!(item_names(&pods), set(&["trainer-0"]));
    let log = kubectl.ok(&["logs", "trainer-0", "-n", "ml", "-c", "main", "--previous"]);
    assert_eq!(log, "Killed\n");

    let bad = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        bad.path().join("x.json"),
        r#"{"kind": "List", "items": [{}]}"#,
    )
    .expect("write");
    let err = fake.load_dir(bad.path()).expect_err("an item without kind");
    assert!(err.contains("x.json"), "{err}");
    assert!(fake.load_dir(Path::new("/nonexistent/fake-kube")).is_err());
}

// ---------------------------------------------------------------- kube-rs

const DEADLINE: Duration = Duration::from_secs(15);

fn client(fake: &FakeKube) -> kube::Client {
    let config = kube::Config::new(fake.url().parse().expect("url"));
    kube::Client::try_from(config).expect("client")
}

/// The errors a watcher stream yielded, as text.
type Errors = Arc<Mutex<Vec<String>>>;

/// Runs a reflector over all pods; returns its store and a count of the
/// errors its stream yielded.
fn reflect_pods(fake: &FakeKube) -> (Store<Pod>, Errors, tokio::task::JoinHandle<()>) {
    let api = kube::Api::<Pod>::all(client(fake));
    let (reader, writer) = reflector::store();
    let errors = Errors::default();
    let counted = Arc::clone(&errors);
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                counted.lock().expect("errors").push(e.to_string());
            }
        }
    });
    (reader, errors, task)
}

fn pod_names(store: &Store<Pod>) -> BTreeSet<String> {
    store
        .state()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lists(fake: &FakeKube) -> usize {
    let log = fake.request_log();
    log.iter()
        .filter(|r| r.starts_with("/api/v1/pods?") && !r.contains("watch="))
        .count()
}

fn watches(fake: &FakeKube) -> usize {
    let log = fake.request_log();
    log.iter()
        .filter(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=true"))
        .count()
}

#[tokio::test]
async fn kube_watcher_lists_then_watches_and_relists_after_gone() {
    let fake = populated();
    let (store, errors, task) = reflect_pods(&fake);
    eventually("the initial list", || pod_names(&store).len() == 3).await;
    eventually("the watch", || watches(&fake) >= 1).await;

    fake.apply(pod("ml", "trainer-2", "gpu-node-1", "trainer"));
    assert!(fake.delete("Pod", Some("infra"), "exporter-x"));
    eventually("the watched changes", || {
        pod_names(&store) == set(&["trainer-0", "trainer-1", "trainer-2"])
    })
    .await;
    let mut modified = pod("ml", "trainer-0", "gpu-node-1", "trainer");
    modified["status"]["phase"] = json!("Failed");
    fake.apply(modified);
    eventually("the modification", || {
        let p = store.get(&reflector::ObjectRef::new("trainer-0").within("ml"));
        p.and_then(|p| p.status.clone()?.phase).as_deref() == Some("Failed")
    })
    .await;

    let lists_before = lists(&fake);
    fake.fail_next(Fault::Gone, 1);
    fake.disconnect_watches();
    fake.apply(pod("infra", "exporter-y", "gpu-node-2", "exporter"));
    eventually("a re-list after 410", || lists(&fake) > lists_before).await;
    eventually("convergence after the re-list", || {
        pod_names(&store).len() == 4
    })
    .await;
    fake.apply(pod("ml", "trainer-3", "gpu-node-2", "trainer"));
    eventually("the watch after the re-list", || {
        pod_names(&store).len() == 5
    })
    .await;
    let errors = errors.lock().expect("errors").clone();
    assert!(
        errors.len() == 1 && errors[0].contains("Expired"),
        "the 410 surfaced once: {errors:?}"
    );
    task.abort();
}

#[tokio::test]
async fn kube_watcher_recovers_from_forbidden_drops_and_server_errors() {
    let fake = populated();
    fake.fail_next(Fault::Forbidden, 1);
    let (store, errors, task) = reflect_pods(&fake);
    eventually("the list after a 403", || pod_names(&store).len() == 3).await;
    let first = errors
        .lock()
        .expect("errors")
        .first()
        .cloned()
        .unwrap_or_default();
    assert!(
        first.contains("403") || first.contains("orbidden"),
        "the 403 reached the stream: {first}"
    );
    assert!(lists(&fake) >= 2);
    eventually("the watch", || watches(&fake) >= 1).await;

    let watches_before = watches(&fake);
    fake.fail_next(Fault::Disconnect, 1);
    fake.fail_next(Fault::ServerError, 1);
    fake.disconnect_watches();
    // Dropped, 500, then a healthy watch.
    eventually("three watch attempts", || {
        watches(&fake) >= watches_before + 3
    })
    .await;
    fake.apply(pod("ml", "trainer-2", "gpu-node-1", "trainer"));
    eventually("the watch after a drop and a 500", || {
        pod_names(&store).len() == 4
    })
    .await;
    let errors = errors.lock().expect("errors").clone();
    assert!(
        errors.len() >= 3,
        "403, drop and 500 reached the stream: {errors:?}"
    );
    task.abort();
}

#[tokio::test]
async fn watch_replays_changes_after_resource_version_and_sends_bookmarks() {
    let fake = populated();
    let api = kube::Api::<Pod>::namespaced(client(&fake), "ml");
    let rv = fake.resource_version();
    fake.apply(pod("ml", "trainer-2", "gpu-node-1", "trainer"));
    fake.apply(pod("infra", "elsewhere", "gpu-node-1", "exporter"));
    let params = kube::api::WatchParams::default().timeout(10);
    let stream = api.watch(&params, &rv.to_string()).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    let mut events = Vec::new();
    while events.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        let event = event.expect("an event within 5 s").expect("an open stream");
        events.push(event.expect("a valid event"));
    }
    let mut events = events.into_iter();
    match events.next().expect("two events") {
        kube::api::WatchEvent::Added(p) => {
            assert_eq!(p.metadata.name.as_deref(), Some("trainer-2"))
        }
        other => panic!("expected the replayed ADDED, got {other:?}"),
    }
    match events.next().expect("two events") {
        kube::api::WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata.resource_version,
                fake.resource_version().to_string()
            );
        }
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
}

/// One raw HTTP/1.1 request; returns the whole response as text ("" when
/// the server closed the connection without answering).
fn raw(fake: &FakeKube, method: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let addr = fake.url().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn bad_requests_get_status_objects_and_faults_drop_connections() {
    let fake = populated();
    let bad = raw(&fake, "GET", "/api/v1/pods?labelSelector=a%20b");
    assert!(
        bad.starts_with("HTTP/1.1 400") && bad.contains(r#""reason":"BadRequest""#),
        "{bad}"
    );
    let post = raw(&fake, "POST", "/api/v1/namespaces/ml/pods");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    for path in [
        "/openapi/v2",
        "/api/v1/widgets",
        "/api/v1/pods/x",
        "/api/v1/namespaces/ml/nodes",
    ] {
        let missing = raw(&fake, "GET", path);
        assert!(missing.starts_with("HTTP/1.1 404") && missing.contains(r#""kind":"Status""#));
    }
    fake.fail_next(Fault::Disconnect, 1);
    assert_eq!(raw(&fake, "GET", "/api/v1/nodes"), "");
    fake.fail_next(Fault::Gone, 1);
    let gone = raw(&fake, "GET", "/api/v1/nodes");
    assert!(
        gone.starts_with("HTTP/1.1 410") && gone.contains(r#""reason":"Expired""#),
        "{gone}"
    );
    let listed = raw(
        &fake,
        "GET",
        "/api/v1/nodes?limit=1&fieldSelector=metadata.name%3Dgpu-node-2",
    );
    assert!(
        listed.contains(r#""kind":"NodeList""#) && !listed.contains("gpu-node-1"),
        "{listed}"
    );
    assert_eq!(fake.requests("/api/v1/nodes"), 3);
}
