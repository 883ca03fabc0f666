//! `kubectl gpuscope` reaches the aggregator through the API server: the
//! real `kubectl-gpuscope` binary, given only a kubeconfig (the fake API
//! server's URL and the user's token), finds the manifests' Service
//! `gpuscope/gpuscope-aggregator`, its ready pod and the pod port behind
//! the Service's `query` port, and runs gRPC over a `pods/portforward`
//! WebSocket of the fake API server, which connects to a real aggregator
//! (`--auth kubernetes` against the same fake) standing in for the pod.
//!
//! alice may read team-a, list nodes and port-forward in `gpuscope`; bob
//! may read team-a but not port-forward.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gpuscope_aggregator::{Aggregator, AuthConfig, Config, KubeConfig};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::{FakeKube, Token};
use gpuscope_tests::{KillOnDrop, free_port, workspace_bin};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const POD: &str = "gpuscope-aggregator-7d9f8-abcde";

fn aggregator_pod(ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": "gpuscope",
            "labels": {"app.kubernetes.io/name": "gpuscope-aggregator"}},
        "spec": {"containers": [{"name": "aggregator", "image": "gpuscope-aggregator:0.1.0",
            "ports": [{"name": "grpc", "containerPort": 7470},
                      {"name": "query", "containerPort": 7471},
                      {"name": "health", "containerPort": 7472}]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}
    })
}

fn rbac(kind: &str, ns: Option<&str>, name: &str, body: Value) -> Value {
    let mut r = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name}});
    if let Some(ns) = ns {
        r["metadata"]["namespace"] = json!(ns);
    }
    for (k, v) in body.as_object().into_iter().flatten() {
        r[k] = v.clone();
    }
    r
}

fn bind(kind: &str, ns: Option<&str>, user: &str, role: &str) -> Value {
    let body = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user}]});
    rbac(kind, ns, &format!("{user}-{role}"), body)
}

/// The cluster: the manifests' Service and its pod, a crash-looping
/// team-a pod, and the RBAC of alice and bob.
fn populate(fake: &FakeKube) {
    fake.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "gpuscope-aggregator", "namespace": "gpuscope"},
        "spec": {"selector": {"app.kubernetes.io/name": "gpuscope-aggregator"},
            "ports": [{"name": "grpc", "port": 7470, "targetPort": "grpc"},
                      {"name": "query", "port": 7471, "targetPort": "query"}]}
    }));
    fake.apply(aggregator_pod(true));
    fake.apply(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer", "namespace": "team-a"},
        "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "main", "image": "trainer:1"}]},
        "status": {"phase": "Running", "startTime": "2026-01-10T10:00:00Z",
            "containerStatuses": [{"name": "main", "image": "trainer:1", "imageID": "",
                "ready": false, "restartCount": 5, "containerID": "containerd://aaaa",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": "2026-01-10T10:04:00Z", "finishedAt": "2026-01-10T10:04:09Z"}}}]}
    }));
    let rules = |r: Value| json!({"rules": r});
    let roles = [
        (
            "pod-reader",
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]),
        ),
        (
            "node-viewer",
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]),
        ),
        // The rules of the manifests' Role gpuscope-cli
        // (deploy/kustomize/base/cli-rbac.yaml).
        (
            "gpuscope-cli",
            json!([{"apiGroups": [""], "resources": ["services"],
                        "resourceNames": ["gpuscope-aggregator"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                   {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]),
        ),
        (
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
        ),
    ];
    for (name, r) in roles {
        fake.apply(rbac("ClusterRole", None, name, rules(r)));
    }
    fake.apply(bind("RoleBinding", Some("team-a"), "alice", "pod-reader"));
    fake.apply(bind("ClusterRoleBinding", None, "alice", "node-viewer"));
    fake.apply(bind(
        "RoleBinding",
        Some("gpuscope"),
        "alice",
        "gpuscope-cli",
    ));
    fake.apply(bind("RoleBinding", Some("team-a"), "bob", "pod-reader"));
    fake.apply(bind("ClusterRoleBinding", None, "admin", "cluster-admin"));
    for user in ["alice", "bob", "admin"] {
        fake.add_token(&format!("{user}-token"), Token::user(user));
    }
    let agent = Token::bound(
        "gpuscope",
        "gpuscope-agent",
        "gpuscope-agent-x",
        "gpu-node-1",
        "gpuscope",
    );
    fake.add_token("agent-token", agent);
}

/// The fake cluster, a real aggregator authorizing with it whose query
/// port stands in for the pod's port 7471, an agent of gpu-node-1
/// streaming to it, once the watchers have synced.
struct Cluster {
    fake: FakeKube,
    dir: tempfile::TempDir,
    agg: Aggregator,
    _agent: tonic::Streaming<pb::AggregatorMessage>,
}

async fn cluster() -> Cluster {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().join("data"),
    );
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        ..KubeConfig::default()
    });
    config.auth = Some(AuthConfig::default());
    let agg = Aggregator::start(config).await.expect("aggregator");
    fake.forward_pod_port("gpuscope", POD, 7471, agg.local_addr());
    let url = format!("http://{}", agg.local_addr());
    let mut query = pb::query_client::QueryClient::connect(url.clone())
        .await
        .expect("query client");
    let hello = pb::AgentMessage {
        kind: Some(pb::agent_message::Kind::Hello(pb::Hello {
            node: Some(pb::NodeIdentity {
                node_name: "gpu-node-1".into(),
                boot_id: "boot-1".into(),
                ..Default::default()
            }),
            protocol: 1,
        })),
    };
    let mut ingest = pb::ingest_client::IngestClient::connect(url)
        .await
        .expect("ingest client");
    let stream =
        tokio_stream::StreamExt::chain(tokio_stream::iter([hello]), tokio_stream::pending());
    let agent = ingest
        .stream(as_user("agent-token", stream))
        .await
        .expect("the agent streams")
        .into_inner();
    let start = Instant::now();
    loop {
        let ask = pb::ExplainRequest {
            namespace: "team-a".into(),
            pod: "trainer".into(),
        };
        let r = query.explain(as_user("admin-token", ask)).await;
        let nodes = query
            .list_nodes(as_user("admin-token", pb::ListNodesRequest {}))
            .await;
        if let (Ok(r), Ok(n)) = (&r, &nodes)
            && r.get_ref()
                .gaps
                .iter()
                .all(|g| ["agent", "logs"].contains(&g.what.as_str()))
            && !n.get_ref().nodes.is_empty()
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never synced: {r:?} {nodes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Cluster {
        fake,
        dir,
        agg,
        _agent: agent,
    }
}

fn as_user<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("metadata");
    r.metadata_mut().insert("authorization", value);
    r
}

/// A kubeconfig for the fake with `token`, written in `dir`.
fn kubeconfig(dir: &Path, fake: &FakeKube, token: &str) -> PathBuf {
    let path = dir.join(format!("{token}.kubeconfig"));
    let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": fake.url()}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]});
    std::fs::write(&path, config.to_string()).expect("kubeconfig");
    path
}

/// `kubectl-gpuscope ARGS` as `token`, with no `GPUSCOPE_*` settings.
/// `dir` holds its kubeconfig and is its HOME.
fn command(dir: &Path, fake: &FakeKube, token: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(gpuscope_tests::workspace_bin("kubectl-gpuscope"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig(dir, fake, token))
        .env("HOME", dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("GPUSCOPE_")) {
        cmd.env_remove(k);
    }
    cmd
}

/// Runs `cmd` off the runtime's threads to its end.
async fn output(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("kubectl-gpuscope runs")
}

/// Runs [`command`]: success, stdout, stderr.
async fn kubectl_gpuscope(c: &Cluster, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = output(command(c.dir.path(), &c.fake, token, args)).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn forwards(fake: &FakeKube) -> usize {
    fake.requests(&format!(
        "/api/v1/namespaces/gpuscope/pods/{POD}/portforward?"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gpuscope_answers_through_the_api_servers_port_forward() {
    let c = cluster().await;
    let (ok, out, err) = kubectl_gpuscope(&c, "alice-token", &["nodes", "-o", "json"]).await;
    assert!(ok, "nodes: {out}\n{err}");
    let nodes: Value = serde_json::from_str(&out).expect("nodes JSON");
    let names: Vec<&str> = nodes
        .as_array()
        .expect("a list of nodes")
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    assert_eq!(names, ["gpu-node-1"], "{out}");
    assert_eq!(forwards(&c.fake), 1, "{:?}", c.fake.request_log());

    let (ok, out, err) =
        kubectl_gpuscope(&c, "alice-token", &["explain", "trainer", "-n", "team-a"]).await;
    assert!(ok, "explain: {out}\n{err}");
    assert!(out.contains("team-a/trainer"), "{out}");
    assert!(out.to_lowercase().contains("crash"), "{out}");
    assert_eq!(forwards(&c.fake), 2, "{:?}", c.fake.request_log());
    // The pod port came from the Service's named targetPort.
    let log = c.fake.request_log();
    assert!(
        log.iter().any(|r| r.ends_with("portforward?&ports=7471")),
        "{log:?}"
    );

    // The bearer token still reaches the aggregator, which decides what
    // alice may read: not team-b.
    let (ok, _, err) =
        kubectl_gpuscope(&c, "alice-token", &["explain", "other", "-n", "team-b"]).await;
    assert!(!ok, "alice explained team-b");
    assert!(
        err.contains("alice may not get pods in namespace team-b"),
        "{err}"
    );

    // --aggregator URL still dials directly, without a port-forward.
    let url = format!("http://{}", c.agg.local_addr());
    let (ok, out, err) =
        kubectl_gpuscope(&c, "alice-token", &["--aggregator", &url, "nodes"]).await;
    assert!(ok && out.contains("gpu-node-1"), "{out}\n{err}");
    assert_eq!(forwards(&c.fake), 3, "only the denied explain forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_pods_portforward_is_told_what_is_missing() {
    let c = cluster().await;
    let (ok, out, err) = kubectl_gpuscope(&c, "bob-token", &["nodes"]).await;
    assert!(!ok, "bob port-forwarded: {out}");
    assert!(err.contains("create pods/portforward"), "{err}");
    assert!(err.contains("namespace gpuscope"), "{err}");
    assert!(
        err.contains("User \"bob\""),
        "the API server's own words: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_aggregator_pod_is_reported_as_such() {
    let c = cluster().await;
    c.fake.apply(aggregator_pod(false));
    let (ok, out, err) = kubectl_gpuscope(&c, "alice-token", &["nodes"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("no ready pod behind Service gpuscope/gpuscope-aggregator"),
        "{err}"
    );
    assert!(err.contains(&format!("{POD}: Running, not Ready")), "{err}");
    assert_eq!(forwards(&c.fake), 0);

    assert!(c.fake.delete("Pod", Some("gpuscope"), POD));
    let (ok, _, err) = kubectl_gpuscope(&c, "alice-token", &["nodes"]).await;
    assert!(!ok);
    assert!(err.contains("no pod matches it"), "{err}");

    // Another Service name: no such Service.
    let (ok, _, err) = kubectl_gpuscope(
        &c,
        "alice-token",
        &["--aggregator-service", "gpuscope/nope:query", "nodes"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("no Service gpuscope/nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_nothing_listens_on_is_reported_with_the_kubelets_words() {
    let c = cluster().await;
    // The Service's grpc port leads to the pod's 7470, which the fake has
    // no listener for: the kubelet's error channel says so.
    let (ok, out, err) = kubectl_gpuscope(
        &c,
        "alice-token",
        &[
            "--aggregator-service",
            "gpuscope/gpuscope-aggregator:7470",
            "nodes",
        ],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(&format!("error forwarding port 7470 to pod gpuscope/{POD}")),
        "{err}"
    );
    assert!(err.contains("connection refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_forward_lost_under_a_watch_is_named() {
    let c = cluster().await;
    let mut cmd = command(c.dir.path(), &c.fake, "alice-token", &["events", "-w"]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("kubectl-gpuscope runs"));
    let start = Instant::now();
    while forwards(&c.fake) == 0 {
        assert!(start.elapsed() < DEADLINE, "no port-forward opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the watch time to be answered, then cut the port-forward.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "events -w ended before the cut"
    );
    c.fake.disconnect_port_forwards();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "events -w outlived its port-forward"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.0.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut err).expect("stderr");
    }
    assert!(!status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "connection to the aggregator lost: the port-forward to pod gpuscope/{POD} port 7471 through the API server broke"
        )),
        "{err}"
    );
}

/// TLS runs over the port-forward: the CLI checks the aggregator's
/// certificate against the Service's DNS name, as the mtls overlay's
/// certificate names it, and presents its client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_runs_over_the_port_forward() {
    let fake = FakeKube::start();
    populate(&fake);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("ca");
    std::fs::write(d.join("ca.crt"), ca.pem()).expect("ca.crt");
    for (name, san) in [
        ("server", "gpuscope-aggregator.gpuscope.svc"),
        ("client", "gpuscope-cli"),
    ] {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec![san.to_owned()]).expect("params");
        let cert = params.signed_by(&key, &ca).expect("sign");
        std::fs::write(d.join(format!("{name}.crt")), cert.pem()).expect("crt");
        std::fs::write(d.join(format!("{name}.key")), key.serialize_pem()).expect("key");
    }
    let port = free_port();
    let path = |name: &str| d.join(name).to_string_lossy().into_owned();
    let _aggregator = KillOnDrop(
        std::process::Command::new(workspace_bin("gpuscope-aggregator"))
            .args(["--no-kube", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", &path("data")])
            .args([
                "--tls-cert",
                &path("server.crt"),
                "--tls-key",
                &path("server.key"),
            ])
            .args(["--tls-client-ca", &path("ca.crt")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("aggregator"),
    );
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    fake.forward_pod_port("gpuscope", POD, 7471, addr);
    let (ca, cert, key) = (path("ca.crt"), path("client.crt"), path("client.key"));
    let tls = [
        "--tls-ca",
        &ca,
        "--tls-client-cert",
        &cert,
        "--tls-client-key",
        &key,
    ];
    let start = Instant::now();
    loop {
        let args: Vec<&str> = tls.iter().copied().chain(["nodes", "-o", "json"]).collect();
        let out = output(command(d, &fake, "alice-token", &args)).await;
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if out.status.success() {
            assert_eq!(stdout.trim(), "[]", "no agent reports here");
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "never answered over TLS: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The name is checked: another one fails.
    let args: Vec<&str> = tls
        .iter()
        .copied()
        .chain(["--tls-server-name", "localhost", "nodes"])
        .collect();
    let out = output(command(d, &fake, "alice-token", &args)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "answered under another name");
    assert!(
        stderr.contains("certificate not valid for name \"localhost\""),
        "{stderr}"
    );
    // Without its client certificate the aggregator refuses the CLI.
    let out = output(command(
        d,
        &fake,
        "alice-token",
        &["--tls-ca", &ca, "nodes"],
    ))
    .await;
    assert!(
        !out.status.success(),
        "answered without a client certificate"
    );
}
