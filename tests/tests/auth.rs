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
