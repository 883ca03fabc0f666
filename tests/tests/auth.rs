//! Who may ask what, against the fake API server's TokenReview and
//! SubjectAccessReview (decided from the RBAC objects fed to it), through
//! the real kube-rs client on the aggregator's side and, for the CLI, the
//! real `gpuscope` binary presenting a kubeconfig's token and an exec
//! plugin's.
//!
//! Two teams share gpu-node-1: `team-a/trainer` and `team-b/secret-pod`
//! each hold one of its GPUs and crash-loop. alice may read team-a (pods
//! and their logs) and list nodes; bob may read team-a's pods but not their
//! logs; admin may do anything.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use gpuscope_aggregator::auth::Ttls;
use gpuscope_aggregator::{Aggregator, AuthConfig, Config, KubeConfig};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::{FakeKube, Token};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::Code;

type Client = pb::query_client::QueryClient<tonic::transport::Channel>;

const DEADLINE: Duration = Duration::from_secs(30);

fn crashlooping(ns: &str, name: &str, gpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "main", "image": "trainer:1",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "startTime": "2026-01-10T10:00:00Z",
            "containerStatuses": [{"name": "main", "image": "trainer:1", "imageID": "", "ready": false,
                "restartCount": 5, "containerID": format!("containerd://{gpu}"),
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": "2026-01-10T10:04:00Z", "finishedAt": "2026-01-10T10:04:09Z"}}}]}
    })
}

fn role(kind: &str, ns: Option<&str>, name: &str, rules: Value) -> Value {
    let mut r = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name}, "rules": rules});
    if let Some(ns) = ns {
        r["metadata"]["namespace"] = json!(ns);
    }
    r
}

fn binding(kind: &str, ns: Option<&str>, user: &str, role: &str) -> Value {
    let mut b = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": format!("{user}-{role}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user}]});
    if let Some(ns) = ns {
        b["metadata"]["namespace"] = json!(ns);
    }
    b
}

fn populate(fake: &FakeKube) {
    fake.apply(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "gpu-node-1"},
        "status": {"capacity": {"nvidia.com/gpu": "2"}, "allocatable": {"nvidia.com/gpu": "2"},
            "conditions": [{"type": "Ready", "status": "True"}]}}));
    fake.apply(crashlooping("team-a", "trainer", "aaaa"));
    fake.apply(crashlooping("team-b", "secret-pod", "bbbb"));
    fake.set_log(
        "team-a",
        "trainer",
        "main",
        true,
        "FileNotFoundError: /models/config.json\n",
    );
    let read =
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]);
    let logs = json!([{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]);
    let nodes = json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]);
    let all = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
    fake.apply(role("ClusterRole", None, "pod-reader", read));
    fake.apply(role("ClusterRole", None, "log-reader", logs));
    fake.apply(role("ClusterRole", None, "node-viewer", nodes));
    fake.apply(role("ClusterRole", None, "cluster-admin", all));
    fake.apply(binding(
        "RoleBinding",
        Some("team-a"),
        "alice",
        "pod-reader",
    ));
    fake.apply(binding(
        "RoleBinding",
        Some("team-a"),
        "alice",
        "log-reader",
    ));
    fake.apply(binding("ClusterRoleBinding", None, "alice", "node-viewer"));
    fake.apply(binding("RoleBinding", Some("team-a"), "bob", "pod-reader"));
    fake.apply(binding(
        "ClusterRoleBinding",
        None,
        "admin",
        "cluster-admin",
    ));
    fake.add_token("alice-token", Token::user("alice"));
    fake.add_token("bob-token", Token::user("bob"));
    fake.add_token("admin-token", Token::user("admin"));
    let expired = SystemTime::now() - Duration::from_secs(60);
    fake.add_token("old-token", Token::user("alice").expires(expired));
    for (token, pod, node) in [
        ("agent-x", "gpuscope-agent-x", "gpu-node-1"),
        ("agent-x2", "gpuscope-agent-x2", "gpu-node-1"),
        ("agent-y", "gpuscope-agent-y", "node-y"),
    ] {
        let t = Token::bound("gpuscope", "gpuscope-agent", pod, node, "gpuscope");
        fake.add_token(token, t);
    }
}

async fn start(fake: &FakeKube, data: &Path, ttls: Ttls) -> Aggregator {
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), data.to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        fetch_logs: true,
        ..KubeConfig::default()
    });
    config.auth = Some(AuthConfig {
        ttls,
        ..AuthConfig::default()
    });
    Aggregator::start(config).await.expect("aggregator")
}

/// The fake API server with both teams, an aggregator authorizing with it
/// (its data in the temporary folder), and a client, once the watchers
/// have synced.
async fn setup(ttls: Ttls) -> (FakeKube, tempfile::TempDir, Aggregator, Client) {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = start(&fake, dir.path(), ttls).await;
    let mut c = Client::connect(format!("http://{}", agg.local_addr()))
        .await
        .expect("query client");
    synced(&mut c).await;
    (fake, dir, agg, c)
}

/// `message` with `token` as its bearer token.
fn as_user<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("metadata");
    r.metadata_mut().insert("authorization", value);
    r
}

fn explain(ns: &str, pod: &str) -> pb::ExplainRequest {
    pb::ExplainRequest {
        namespace: ns.into(),
        pod: pod.into(),
    }
}

/// Waits until admin's Explain of team-a/trainer has every watcher in sync.
async fn synced(client: &mut Client) {
    let start = Instant::now();
    loop {
        let r = client
            .explain(as_user("admin-token", explain("team-a", "trainer")))
            .await;
        if let Ok(r) = &r
            && r.get_ref().gaps.iter().all(|g| g.what == "agent")
        {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "never synced: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One agent stream for `node` with bearer `token`: the Hello, then a
/// report of two GPUs, one held by each team; the first answer.
async fn agent_stream(
    url: &str,
    token: &str,
    node: &str,
) -> Result<tonic::Streaming<pb::AggregatorMessage>, tonic::Status> {
    agent_stream_with(url, token, node, tokio_stream::pending()).await
}

/// [`agent_stream`], then the messages of `more`.
async fn agent_stream_with(
    url: &str,
    token: &str,
    node: &str,
    more: impl tokio_stream::Stream<Item = pb::AgentMessage> + Send + 'static,
) -> Result<tonic::Streaming<pb::AggregatorMessage>, tonic::Status> {
    let mut c = pb::ingest_client::IngestClient::connect(url.to_owned())
        .await
        .expect("ingest client");
    let holder = |ns: &str, pod: &str, uuid: &str| pb::GpuHolder {
        namespace: ns.into(),
        pod: pod.into(),
        container: "main".into(),
        resource_name: "nvidia.com/gpu".into(),
        device_id: uuid.into(),
        ..Default::default()
    };
    let gpu = |index: u32, h: pb::GpuHolder| pb::GpuSample {
        time_unix_nanos: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64,
        index,
        uuid: h.device_id.clone(),
        holders: vec![h],
        ..Default::default()
    };
    let messages = vec![
        pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
                node: Some(pb::NodeIdentity {
                    node_name: node.into(),
                    boot_id: "boot-1".into(),
                    ..Default::default()
                }),
                protocol: 1,
            })),
        },
        pb::AgentMessage {
            kind: Some(pb::agent_message::Kind::Report(pb::NodeReport {
                gpus: vec![
                    gpu(0, holder("team-a", "trainer", "GPU-a")),
                    gpu(1, holder("team-b", "secret-pod", "GPU-b")),
                ],
                ..Default::default()
            })),
        },
    ];
    let stream = tokio_stream::iter(messages).chain(more);
    c.stream(as_user(token, stream))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_one_namespace_sees_it_and_nothing_of_another() {
    let (fake, _dir, agg, mut c) = setup(Ttls::default()).await;
    let url = format!("http://{}", agg.local_addr());
    let _agent = agent_stream(&url, "agent-x", "gpu-node-1")
        .await
        .expect("the agent of gpu-node-1 streams");

    let a = c
        .explain(as_user("alice-token", explain("team-a", "trainer")))
        .await
        .expect("alice explains team-a");
    assert!(
        a.get_ref()
            .findings
            .iter()
            .any(|f| f.kind.contains("crash")),
        "{a:?}"
    );
    let b = c
        .explain(as_user("alice-token", explain("team-b", "secret-pod")))
        .await
        .expect_err("alice may not explain team-b");
    assert_eq!(b.code(), Code::PermissionDenied, "{b:?}");
    assert!(
        b.message().contains("get pods in namespace team-b"),
        "{b:?}"
    );
    // Named by UID, with no namespace: the pod's own namespace decides.
    let stored = fake.apply(crashlooping("team-b", "secret-pod", "bbbb"));
    let uid = stored["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned();
    let by_uid = c
        .explain(as_user("alice-token", explain("", &uid)))
        .await
        .expect_err("alice may not explain team-b's pod by its UID");
    assert_eq!(by_uid.code(), Code::PermissionDenied, "{by_uid:?}");
    c.explain(as_user("admin-token", explain("", &uid)))
        .await
        .expect("admin explains it by UID");
    // Denied before the lookup: a pod that does not exist reads the same.
    let none = c
        .explain(as_user("alice-token", explain("team-b", "no-such-pod")))
        .await
        .expect_err("denied");
    assert_eq!(none.code(), Code::PermissionDenied, "{none:?}");

    let all = c
        .diagnose(as_user(
            "alice-token",
            pb::DiagnoseRequest {
                all_namespaces: true,
                ..Default::default()
            },
        ))
        .await
        .expect("alice diagnoses -A")
        .into_inner();
    let text = format!("{all:?}");
    assert!(text.contains("trainer"), "{text}");
    assert!(!text.contains("secret-pod"), "team-b's pod leaked: {text}");
    let left_out = all.gaps.iter().find(|g| g.what == "namespaces");
    assert!(
        left_out.is_some_and(|g| g.why.contains("team-b")),
        "{:?}",
        all.gaps
    );
    let mine = c
        .diagnose(as_user(
            "admin-token",
            pb::DiagnoseRequest {
                all_namespaces: true,
                ..Default::default()
            },
        ))
        .await
        .expect("admin diagnoses -A");
    assert!(format!("{mine:?}").contains("secret-pod"), "{mine:?}");

    // GPUs: both listed, team-b's holder named only as another namespace.
    let start = Instant::now();
    let gpus = loop {
        let gpus = c
            .list_gpus(as_user("alice-token", pb::ListGpusRequest::default()))
            .await
            .expect("alice lists GPUs")
            .into_inner()
            .gpus;
        if gpus.len() == 2 || start.elapsed() > DEADLINE {
            break gpus;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let holders: Vec<(String, String)> = gpus
        .iter()
        .flat_map(|g| g.latest.as_ref().expect("latest").holders.clone())
        .map(|h| (h.namespace, h.pod))
        .collect();
    assert_eq!(
        holders,
        [
            ("team-a".to_owned(), "trainer".to_owned()),
            ("another namespace".to_owned(), String::new())
        ],
    );
    // bob may not list nodes at all.
    let denied = c
        .list_gpus(as_user("bob-token", pb::ListGpusRequest::default()))
        .await
        .expect_err("bob may not list nodes");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pods_log_an_explanation_has_no_log_tail_and_says_so() {
    let (_fake, _dir, agg, mut c) = setup(Ttls::default()).await;
    let bundle = |token: &'static str| {
        let mut c = c.clone();
        async move {
            c.get_bundle(as_user(
                token,
                pb::GetBundleRequest {
                    namespace: "team-a".into(),
                    pod: "trainer".into(),
                },
            ))
            .await
            .expect("bundle")
            .into_inner()
            .files
        }
    };
    let has_log = |files: &[pb::BundleFile]| {
        files
            .iter()
            .any(|f| String::from_utf8_lossy(&f.data).contains("FileNotFoundError"))
    };
    assert!(has_log(&bundle("alice-token").await), "alice gets the log");
    assert!(!has_log(&bundle("bob-token").await), "bob must not");

    let bob = c
        .explain(as_user("bob-token", explain("team-a", "trainer")))
        .await
        .expect("bob explains")
        .into_inner();
    assert!(!format!("{bob:?}").contains("FileNotFoundError"), "{bob:?}");
    let gap = bob.gaps.iter().find(|g| g.what == "logs");
    assert!(
        gap.is_some_and(|g| g.why.contains("may not get pods/log in namespace team-a")),
        "{:?}",
        bob.gaps
    );
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wrong_audience_and_missing_tokens_are_refused() {
    let (_fake, _dir, agg, mut c) = setup(Ttls::default()).await;
    for (token, why) in [
        ("old-token", "expired"),
        ("agent-x", "audience"),
        ("nobody", "invalid bearer token"),
    ] {
        let s = c
            .list_nodes(as_user(token, pb::ListNodesRequest {}))
            .await
            .expect_err(token);
        assert_eq!(s.code(), Code::Unauthenticated, "{token}: {s:?}");
        assert!(s.message().contains(why), "{token}: {s:?}");
    }
    let s = c
        .list_nodes(pb::ListNodesRequest {})
        .await
        .expect_err("no token");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    assert!(s.message().contains("no credentials"), "{s:?}");
    // A person's token is not an agent's.
    let url = format!("http://{}", agg.local_addr());
    let s = agent_stream(&url, "alice-token", "gpu-node-1")
        .await
        .expect_err("a user cannot report");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_pod_kubernetes_has_on_another_node_is_refused() {
    let (fake, _dir, agg, _c) = setup(Ttls::default()).await;
    let url = format!("http://{}", agg.local_addr());
    let kube = agg.kube().expect("kube").clone();
    let agent_pod = |name: &str, node: &str| {
        let p = fake.apply(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "gpuscope"},
            "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "gpuscope:1"}]},
        }));
        p.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .expect("the fake API server sets a UID")
            .to_owned()
    };
    let moved = agent_pod("gpuscope-agent-moved", "node-z");
    let here = agent_pod("gpuscope-agent-here", "gpu-node-3");
    let start = Instant::now();
    while kube.pod("gpuscope", "gpuscope-agent-here").is_none()
        || kube.pod("gpuscope", "gpuscope-agent-moved").is_none()
    {
        assert!(start.elapsed() < DEADLINE, "the agent pods never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Tokens bound to a pod on the node they report for (as the API
    // server says, `node-name`), where Kubernetes has the pod elsewhere:
    // found by the token's pod UID, and (a token whose UID Kubernetes
    // does not know) by name.
    let bound = |pod: &str, node: &str, uid: Option<&str>| {
        let mut t = Token::bound("gpuscope", "gpuscope-agent", pod, node, "gpuscope");
        if let Some(uid) = uid {
            t.extra.insert(
                gpuscope_tests::fake_kube::review::POD_UID.to_owned(),
                vec![uid.to_owned()],
            );
        }
        t
    };
    fake.add_token(
        "moved-by-uid",
        bound("gpuscope-agent-moved", "gpu-node-1", Some(&moved)),
    );
    fake.add_token(
        "moved-by-name",
        bound("gpuscope-agent-moved", "gpu-node-1", None),
    );
    fake.add_token(
        "here-by-uid",
        bound("gpuscope-agent-here", "gpu-node-3", Some(&here)),
    );
    for token in ["moved-by-uid", "moved-by-name"] {
        let s = agent_stream(&url, token, "gpu-node-1")
            .await
            .expect_err("Kubernetes has the pod on node-z");
        assert_eq!(s.code(), Code::PermissionDenied, "{token}: {s:?}");
        assert!(
            s.message()
                .contains("pod gpuscope-agent-moved runs on node node-z, not gpu-node-1"),
            "{token}: {s:?}"
        );
    }
    let _s = agent_stream(&url, "here-by-uid", "gpu-node-3")
        .await
        .expect("the pod is where its token says");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reports_only_for_its_own_node_and_only_it_replaces_its_stream() {
    let (_fake, _dir, agg, _c) = setup(Ttls::default()).await;
    let url = format!("http://{}", agg.local_addr());
    let s = agent_stream(&url, "agent-y", "gpu-node-1")
        .await
        .expect_err("node-y's agent cannot report for gpu-node-1");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(
        s.message()
            .contains("on node node-y cannot report for node gpu-node-1"),
        "{s:?}"
    );
    let mut first = agent_stream(&url, "agent-x", "gpu-node-1")
        .await
        .expect("gpu-node-1's agent");
    // Another pod's token for the same node may not take the node over.
    let s = agent_stream(&url, "agent-x2", "gpu-node-1")
        .await
        .expect_err("another identity");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("is streaming as"), "{s:?}");
    // The same agent reconnecting replaces its old stream.
    let _second = agent_stream(&url, "agent-x", "gpu-node-1")
        .await
        .expect("the same agent again");
    let ended = tokio::time::timeout(DEADLINE, first.message())
        .await
        .expect("the first stream ends");
    let status = ended.expect_err("ended with a status");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_api_server_gone_cached_decisions_expire_and_requests_are_refused() {
    let ttl = Duration::from_secs(1);
    let ttls = Ttls {
        token: ttl,
        token_deny: ttl,
        allow: ttl,
        deny: ttl,
    };
    let (fake, _dir, agg, mut c) = setup(ttls).await;
    c.explain(as_user("alice-token", explain("team-a", "trainer")))
        .await
        .expect("allowed while the API server answers");
    drop(fake);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let s = c
        .explain(as_user("alice-token", explain("team-a", "trainer")))
        .await
        .expect_err("refused once the cache expired");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(s.message().contains("did not answer"), "{s:?}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// The real CLI presents the kubeconfig's credentials: a static token, and
/// an exec plugin's (as `aws eks get-token` gives them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_presents_the_kubeconfig_credentials() {
    let (fake, dir, agg, _c) = setup(Ttls::default()).await;
    let credential = json!({"apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential", "status": {"token": "alice-token"}});
    let users = [
        ("static", json!({"token": "alice-token"})),
        (
            "exec",
            json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "sh", "args": ["-c", format!("echo '{credential}'")],
                "interactiveMode": "Never"}}),
        ),
    ];
    for (what, user) in users {
        let kubeconfig = dir.path().join(format!("{what}.kubeconfig"));
        let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": fake.url()}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]});
        std::fs::write(&kubeconfig, config.to_string()).expect("kubeconfig");
        let out = std::process::Command::new(gpuscope_tests::workspace_bin("gpuscope"))
            .args(["--aggregator", &format!("http://{}", agg.local_addr())])
            .args(["diagnose", "-A", "-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("gpuscope runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {stdout}\n{stderr}");
        assert!(stdout.contains("trainer"), "{what}: {stdout}");
        assert!(!stdout.contains("secret-pod"), "{what}: {stdout}");
    }
    let out = std::process::Command::new(gpuscope_tests::workspace_bin("gpuscope"))
        .args(["--aggregator", &format!("http://{}", agg.local_addr())])
        .args(["--anonymous", "nodes"])
        .output()
        .expect("gpuscope runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "anonymous: {stderr}");
    assert!(stderr.contains("no credentials"), "{stderr}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// p50 and p99 of `v`, milliseconds.
fn quantiles(v: &mut [Duration]) -> (f64, f64) {
    v.sort();
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize].as_secs_f64() * 1e3;
    (q(0.5), q(0.99))
}

/// 64 concurrent loops of bob's explains for 3 s: the per-caller limits
/// refuse most of them at once, so alice's explains (deadline 2 s each)
/// and the acknowledgements of an agent's event batches (each awaited at
/// most 2 s) go on. Prints both latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_caller_delays_neither_another_callers_explain_nor_the_agents_acks() {
    let (_fake, _dir, agg, mut c) = setup(Ttls::default()).await;
    let url = format!("http://{}", agg.local_addr());
    let flood_until = Instant::now() + Duration::from_secs(3);
    let flooders: Vec<_> = (0..64)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0u32, 0u32);
                while Instant::now() < flood_until {
                    match c
                        .explain(as_user("bob-token", explain("team-a", "trainer")))
                        .await
                    {
                        Ok(_) => ok += 1,
                        Err(s) if s.code() == Code::ResourceExhausted => refused += 1,
                        Err(s) => panic!("bob: {s:?}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let more = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut acks = agent_stream_with(&url, "agent-x", "gpu-node-1", more)
        .await
        .expect("agent stream");
    let agent = tokio::spawn(async move {
        let mut waits = Vec::new();
        for seq in 1..=20u64 {
            let event = pb::NodeEvent {
                seq,
                time_unix_nanos: seq,
                kind: Some(pb::node_event::Kind::Xid(pb::Xid {
                    gpu_uuid: "GPU-a".into(),
                    xid: 79,
                    count: seq,
                    ..Default::default()
                })),
            };
            let batch = pb::AgentMessage {
                kind: Some(pb::agent_message::Kind::Events(pb::EventBatch {
                    boot_id: "boot-1".into(),
                    events: vec![event],
                })),
            };
            let t = Instant::now();
            tx.send(batch).await.expect("stream open");
            let ack = tokio::time::timeout(Duration::from_secs(2), acks.message())
                .await
                .expect("an ack within 2 s")
                .expect("no error")
                .expect("an answer");
            waits.push(t.elapsed());
            assert!(
                matches!(ack.kind, Some(pb::aggregator_message::Kind::Ack(ref a)) if a.up_to_seq == seq),
                "{ack:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        waits
    });

    let mut explains = Vec::new();
    for _ in 0..20 {
        let mut req = as_user("alice-token", explain("team-a", "trainer"));
        req.set_timeout(Duration::from_secs(2));
        let t = Instant::now();
        c.explain(req)
            .await
            .expect("alice's explain within its deadline");
        explains.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut waits = agent.await.expect("agent");
    let (mut ok, mut refused) = (0, 0);
    for f in flooders {
        let (o, r) = f.await.expect("flooder");
        ok += o;
        refused += r;
    }
    let (e50, e99) = quantiles(&mut explains);
    let (a50, a99) = quantiles(&mut waits);
    println!(
        "flood: bob {ok} answered, {refused} refused; alice's explain p50 {e50:.1} ms p99 {e99:.1} ms; \
         agent ack p50 {a50:.1} ms p99 {a99:.1} ms"
    );
    assert!(refused > 0, "the flood was never limited ({ok} answered)");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// `GET /metrics` on `addr` with `token` as the bearer token (none: no
/// header): the status line's code, the `WWW-Authenticate` header's
/// presence and the body.
async fn scrape(addr: std::net::SocketAddr, token: Option<&str>) -> (u16, bool, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok());
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let challenged = head
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer");
    (code.unwrap_or(0), challenged, body.to_owned())
}

/// The metrics endpoint authorizes each scrape as kube-rbac-proxy does:
/// a token TokenReview accepts, whose user may `get` the non-resource URL
/// `/metrics` (a ClusterRole with `nonResourceURLs`, bound cluster-wide).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_needs_a_token_whose_user_may_get_metrics() {
    let fake = FakeKube::start();
    populate(&fake);
    fake.apply(role(
        "ClusterRole",
        None,
        "metrics-reader",
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]),
    ));
    fake.apply(binding(
        "ClusterRoleBinding",
        None,
        "scraper",
        "metrics-reader",
    ));
    // A RoleBinding cannot grant a non-resource URL.
    fake.apply(binding(
        "RoleBinding",
        Some("team-a"),
        "bob",
        "metrics-reader",
    ));
    fake.add_token("scraper-token", Token::user("scraper"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        ..KubeConfig::default()
    });
    config.auth = Some(AuthConfig::default());
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let agg = Aggregator::start(config).await.expect("aggregator");
    let metrics = agg.metrics_addr().expect("metrics listener");

    let (code, challenged, body) = scrape(metrics, None).await;
    assert_eq!((code, challenged), (401, true), "{body}");
    assert!(body.contains("no credentials"), "{body}");
    let (code, challenged, body) = scrape(metrics, Some("old-token")).await;
    assert_eq!((code, challenged), (401, true), "{body}");
    assert!(body.contains("expired"), "{body}");
    for who in ["bob", "alice"] {
        let (code, _, body) = scrape(metrics, Some(&format!("{who}-token"))).await;
        assert_eq!(code, 403, "{who}: {body}");
        assert!(
            body.contains(&format!("{who} may not get /metrics")),
            "{body}"
        );
    }
    let (code, _, body) = scrape(metrics, Some("scraper-token")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("gpuscope_exporter_scrapes_total"), "{body}");
    // What authentication cost: the scrapes' tokens, one refused (old-token).
    let reviews = body
        .lines()
        .find_map(|l| l.strip_prefix("gpuscope_auth_token_reviews_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(reviews, Some(4), "{body}");
    assert!(
        body.contains("gpuscope_auth_tokens_refused_total 1\n"),
        "{body}"
    );
    // The health service stays open: no token needed.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", agg.local_addr()))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let started = Instant::now();
    loop {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health answers without credentials");
        if r.get_ref().status
            == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "never SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// An XID event numbered `seq`, as the agent's collection hands it over.
fn xid(seq: u64) -> gpuscope_model::Event {
    gpuscope_model::Event::Xid {
        time: gpuscope_model::Timestamp::now(),
        gpu_uuid: "GPU-a".into(),
        gpu_index: Some(0),
        xid: 79,
        count: seq,
        holders: Vec::new(),
        simulated: true,
        kernel: None,
    }
}

/// Writes `token` to `path` as the kubelet does: a new file renamed over
/// the old one.
fn rotate(path: &Path, token: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, token).expect("token file");
    std::fs::rename(&tmp, path).expect("rotate the token file");
}

/// A short-lived projected token (3 s): the aggregator ends the agent's
/// stream when it expires, the real agent (its ship module) reconnects
/// with the token the kubelet has rotated into its file meanwhile, and
/// every event sent before, across and after the expiry is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_token_expires_and_the_agent_reconnects_with_the_fresh_one() {
    use gpuscope_agent::ship::stream::{ShipConfig, Shipper};
    let (fake, dir, agg, mut c) = setup(Ttls::default()).await;
    let bound = || {
        Token::bound(
            "gpuscope",
            "gpuscope-agent",
            "gpuscope-agent-x",
            "gpu-node-1",
            "gpuscope",
        )
    };
    let life = Duration::from_secs(3);
    let first = fake.add_jwt(bound().expires(SystemTime::now() + life));
    let token_file = dir.path().join("token");
    rotate(&token_file, &first);
    let shipper = Shipper::start(
        ShipConfig {
            aggregator: format!("http://{}", agg.local_addr()),
            state_dir: dir.path().join("agent-state"),
            queue_max_bytes: 64 << 20,
            report_interval: Duration::from_millis(200),
            tls: Default::default(),
            token_file: Some(token_file.clone()),
            kmsg_not_kernel: Default::default(),
        },
        pb::NodeIdentity {
            node_name: "gpu-node-1".into(),
            boot_id: "boot-rotate".into(),
            ..Default::default()
        },
    )
    .expect("shipper");
    let started = Instant::now();
    let mut second = None;
    let events = 50u64;
    for seq in 1..=events {
        shipper.event(&xid(seq));
        // The kubelet rotates at 80 % of the token's life.
        if second.is_none() && started.elapsed() >= life.mul_f64(0.8) {
            let token =
                fake.add_jwt(bound().expires(SystemTime::now() + Duration::from_secs(3600)));
            rotate(&token_file, &token);
            second = Some(token);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = second.expect("rotated");
    while shipper.pending() > 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "{} events never acknowledged",
            shipper.pending()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The stream opened with the first token, ended when it expired, and a
    // new one opened with the second.
    let reviewed = fake.reviewed_tokens();
    assert!(
        reviewed.contains(&first),
        "the first token was never reviewed"
    );
    assert!(
        reviewed.contains(&second),
        "the agent never reconnected with the rotated token"
    );
    assert!(
        started.elapsed() > life,
        "all acknowledged before the expiry: nothing tested"
    );
    let r = c
        .list_incidents(as_user(
            "admin-token",
            pb::ListIncidentsRequest {
                filter: Some(pb::IncidentFilter {
                    node_name: "gpu-node-1".into(),
                    ..Default::default()
                }),
                limit: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("incidents")
        .into_inner();
    let mut counts: Vec<u64> = r
        .incidents
        .iter()
        .filter_map(|i| match i.event.as_ref()?.kind.as_ref()? {
            pb::node_event::Kind::Xid(x) => Some(x.count),
            _ => None,
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=events).collect::<Vec<_>>(),
        "each event stored once"
    );
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// A query client whose connections come from `source` (another loopback
/// address: another peer to the aggregator).
async fn client_from(source: &str, addr: std::net::SocketAddr) -> Client {
    let source: std::net::IpAddr = source.parse().expect("source address");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_with_connector(tower::service_fn(
            move |_: tonic::transport::Uri| async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(std::net::SocketAddr::new(source, 0))?;
                let stream = socket.connect(addr).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            },
        ))
        .await
        .expect("connect");
    Client::new(channel)
}

/// N distinct made-up tokens from one address, 16 at a time: the first
/// ones cost a TokenReview each, then the address's budget of failures is
/// spent and the rest are refused (RESOURCE_EXHAUSTED) without one; the
/// same bad token again costs no review; a user on another address,
/// whose token was never seen before, is authenticated and answered.
/// Prints the TokenReviews sent and the other user's explain latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_costs_a_bounded_number_of_token_reviews() {
    let (fake, _dir, agg, c) = setup(Ttls::default()).await;
    fake.add_token("carol-token", Token::user("carol"));
    fake.add_token("dave-token", Token::user("dave"));
    for user in ["carol", "dave"] {
        fake.apply(binding("RoleBinding", Some("team-a"), user, "pod-reader"));
    }
    let mut carol = client_from("127.0.0.2", agg.local_addr()).await;
    let explains = |mut client: Client| async move {
        let mut took = Vec::new();
        for _ in 0..20 {
            let mut req = as_user("carol-token", explain("team-a", "trainer"));
            req.set_timeout(Duration::from_secs(2));
            let t = Instant::now();
            client.explain(req).await.expect("carol's explain");
            took.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took
    };
    // Carol's explains without a flood: the baseline.
    let mut quiet = explains(carol.clone()).await;
    let n = 2000usize;
    let before = fake.reviewed_tokens().len();
    let flood_started = Instant::now();
    let flooders: Vec<_> = (0..16)
        .map(|f| {
            let mut c = c.clone();
            tokio::spawn(async move {
                let (mut unauthenticated, mut limited) = (0usize, 0usize);
                for i in (f..n).step_by(16) {
                    let s = c
                        .list_nodes(as_user(&format!("bad-{i}"), pb::ListNodesRequest {}))
                        .await
                        .expect_err("a made-up token");
                    match s.code() {
                        Code::Unauthenticated => unauthenticated += 1,
                        Code::ResourceExhausted => {
                            assert!(s.message().contains("no more are checked"), "{s:?}");
                            limited += 1;
                        }
                        _ => panic!("bad-{i}: {s:?}"),
                    }
                }
                (unauthenticated, limited)
            })
        })
        .collect();
    // Meanwhile dave, on carol's address, with a token never seen before,
    // and carol's explains.
    let s_dave = carol
        .explain(as_user("dave-token", explain("team-a", "trainer")))
        .await;
    assert!(s_dave.is_ok(), "dave: {s_dave:?}");
    let mut flooded = explains(carol.clone()).await;
    let (mut unauthenticated, mut limited) = (0, 0);
    for f in flooders {
        let (u, l) = f.await.expect("flooder");
        unauthenticated += u;
        limited += l;
    }
    let flood = flood_started.elapsed();
    let reviews: Vec<String> = fake.reviewed_tokens()[before..].to_vec();
    let bad_reviews = reviews.iter().filter(|t| t.starts_with("bad-")).count();
    // The budget (20), its refill (1/s) and the reviews already in flight
    // when it ran out (16 at a time).
    let bound = 20 + flood.as_secs() as usize + 16;
    assert!(
        bad_reviews <= bound,
        "{bad_reviews} TokenReviews for {n} bad tokens (bound {bound})"
    );
    assert_eq!(unauthenticated + limited, n);
    assert!(limited > 0);
    // The same bad token again and again: one review (the refusal is
    // cached), and it does not spend the other address's budget.
    let mut same = client_from("127.0.0.3", agg.local_addr()).await;
    for _ in 0..50 {
        let s = same
            .list_nodes(as_user("bad-same", pb::ListNodesRequest {}))
            .await
            .expect_err("bad");
        assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    }
    let same_reviews = fake
        .reviewed_tokens()
        .iter()
        .filter(|t| *t == "bad-same")
        .count();
    assert_eq!(same_reviews, 1);
    let (q50, q99) = quantiles(&mut quiet);
    let (f50, f99) = quantiles(&mut flooded);
    println!(
        "bad-token flood: {n} distinct bad tokens from one address in {:.1} s -> {bad_reviews} \
         TokenReviews ({unauthenticated} UNAUTHENTICATED, {limited} RESOURCE_EXHAUSTED); \
         another address's explain p50 {f50:.1} ms p99 {f99:.1} ms during it, {q50:.1} / \
         {q99:.1} ms without (x{:.2} p50)",
        flood.as_secs_f64(),
        f50 / q50
    );
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}

/// A CA (`name`) that signs `leaf`s: PEM of the CA, and a function making
/// a leaf with subject `cn` and `orgs` and `sans`, returning its PEM
/// certificate and key.
struct TestCa(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        TestCa(rcgen::CertifiedIssuer::self_signed(params, key).expect("ca"))
    }

    fn leaf(&self, cn: &str, orgs: &[&str], sans: &[&str]) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.0).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// A kubeconfig user with only a client certificate (no token, no exec
/// plugin), as kubeadm's admin.conf has: the real CLI presents it over
/// TLS, and the aggregator started with `--client-ca-file` knows the user
/// by its CN and groups by its O, authorized by RBAC like any user (here
/// only through a group's RoleBinding). Without TLS the CLI says what to
/// do; a certificate of another CA is refused in the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_client_certificate_identifies_its_user_over_tls() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let fake = FakeKube::start();
    populate(&fake);
    let mut group = binding("RoleBinding", Some("team-a"), "erin", "pod-reader");
    group["subjects"] = json!([{"kind": "Group", "name": "team-a-readers"}]);
    fake.apply(group);
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    // The aggregator's serving CA, and the cluster's client CA.
    let (serving, users, stranger) = (TestCa::new(), TestCa::new(), TestCa::new());
    let serving_ca = write("serving-ca.crt", &serving.0.pem());
    let users_ca = write("users-ca.crt", &users.0.pem());
    let (cert, key) = serving.leaf("gpuscope-aggregator", &[], &["localhost"]);
    let mut config = Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("data"),
    );
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        ..KubeConfig::default()
    });
    config.tls = Some(gpuscope_aggregator::TlsFiles {
        cert: write("server.crt", &cert),
        key: write("server.key", &key),
        client_ca: None,
    });
    config.auth = Some(AuthConfig {
        client_ca: Some(users_ca),
        ..AuthConfig::default()
    });
    let agg = Aggregator::start(config).await.expect("aggregator");
    let url = format!("https://localhost:{}", agg.local_addr().port());
    let kubeconfig = |name: &str, (cert, key): &(String, String)| {
        let user = json!({"client-certificate-data": b64(cert), "client-key-data": b64(key)});
        let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": fake.url()}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]});
        write(name, &config.to_string())
    };
    let erin = kubeconfig(
        "erin.kubeconfig",
        &users.leaf("erin", &["team-a-readers"], &[]),
    );
    let gpuscope = |kubeconfig: &Path, tls: bool| {
        let mut cmd = std::process::Command::new(gpuscope_tests::workspace_bin("gpuscope"));
        cmd.args(["--aggregator", &url]);
        if tls {
            cmd.arg("--tls-ca").arg(&serving_ca);
        }
        cmd.args(["diagnose", "-A", "-o", "json"])
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir.path())
            .output()
            .expect("gpuscope runs")
    };
    let started = Instant::now();
    loop {
        let out = gpuscope(&erin, true);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(!stdout.contains("secret-pod"), "{stdout}");
        if stdout.contains("trainer") {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "erin never saw team-a: {stdout}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = gpuscope(&erin, false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "without TLS: {stderr}");
    assert!(
        stderr.contains("client certificate and no token") && stderr.contains("--tls-ca"),
        "{stderr}"
    );
    let mallory = kubeconfig(
        "mallory.kubeconfig",
        &stranger.leaf("admin", &["system:masters"], &[]),
    );
    let out = gpuscope(&mallory, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "another CA's certificate: {stdout}");
    assert!(!stdout.contains("trainer"), "{stdout}");
    agg.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}
