//! What authorization costs a query: two aggregators in one process, one
//! with `--auth kubernetes` and one with `--auth none`, watching the same
//! fake API server (gpuscope-tests' `FakeKube`, which answers TokenReview
//! and SubjectAccessReview from RBAC objects over real HTTP), answer
//! `Explain` of the same crash-looping pod:
//!
//! - p50/p99 of N sequential explains to each, alternating between the
//!   two so that both see the same machine (after a warm-up, so the
//!   decisions are cached, as they are for a user's second command within
//!   5 minutes),
//! - queries per second with C concurrent clients for S seconds,
//!
//! and, on their own, the cost of one SubjectAccessReview decision when
//! the cache misses (a round trip to the API server) and when it hits.
//! Prints each figure and the ratios on/off and miss/hit.
//!
//! `cargo bench -p gpuscope-benches --bench auth [-- N C S]`
//! (defaults 500 explains, 4 clients, 3 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpuscope_aggregator::auth::{Access, Authorizer, Caller, Ttls};
use gpuscope_aggregator::limits::Limits;
use gpuscope_aggregator::{Aggregator, AuthConfig, Config, KubeConfig};
use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::{FakeKube, Token};
use serde_json::json;

type Client = pb::query_client::QueryClient<tonic::transport::Channel>;

fn populate(fake: &FakeKube) {
    fake.apply(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    fake.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "trainer", "namespace": "ml"},
        "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "main", "image": "t:1",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "main", "image": "t:1",
            "imageID": "", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}));
    fake.apply(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]}),
    );
    fake.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "alice", "namespace": "ml"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "User", "name": "alice"}]}));
    fake.add_token("alice-token", Token::user("alice"));
}

async fn start(fake: &FakeKube, data: &std::path::Path, auth: bool) -> (Aggregator, Client) {
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), data.to_owned());
    config.kube = Some(KubeConfig {
        server: Some(fake.url()),
        ..KubeConfig::default()
    });
    config.auth = auth.then(AuthConfig::default);
    config.limits = Limits {
        query_rate: 1e9,
        query_burst: u32::MAX,
        query_concurrency: u32::MAX >> 4,
        ..Limits::default()
    };
    let agg = Aggregator::start(config).await.expect("aggregator");
    let client = Client::connect(format!("http://{}", agg.local_addr()))
        .await
        .expect("client");
    (agg, client)
}

fn request() -> tonic::Request<pb::ExplainRequest> {
    let mut r = tonic::Request::new(pb::ExplainRequest {
        namespace: "ml".into(),
        pod: "trainer".into(),
    });
    let token = "Bearer alice-token".parse().expect("metadata");
    r.metadata_mut().insert("authorization", token);
    r
}

/// Waits until Explain answers with Kubernetes data in sync (no agent
/// runs, and logs are not fetched).
async fn synced(client: &mut Client) {
    let start = Instant::now();
    loop {
        let r = client.explain(request()).await;
        if let Ok(r) = &r
            && r.get_ref()
                .gaps
                .iter()
                .all(|g| g.what == "agent" || g.what == "logs")
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never synced: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Sequential explain latencies of each client (sorted), one call to
/// each in turn, `n` each.
async fn latencies(clients: [&Client; 2], n: usize) -> [Vec<Duration>; 2] {
    let mut out = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut cs = clients.map(Client::clone);
    for _ in 0..n {
        for (c, lat) in cs.iter_mut().zip(out.iter_mut()) {
            let t = Instant::now();
            c.explain(request()).await.expect("explain");
            lat.push(t.elapsed());
        }
    }
    for lat in &mut out {
        lat.sort();
    }
    out
}

/// Queries per second with `clients` concurrent loops for `secs`.
async fn throughput(client: &Client, clients: usize, secs: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let loops: Vec<_> = (0..clients)
        .map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    c.explain(request()).await.expect("explain");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for l in loops {
        total += l.await.expect("loop");
    }
    total as f64 / secs
}

/// Median time of one decision: each a cache miss (a namespace not asked
/// before) or each a hit (the same question again).
async fn decisions(fake: &FakeKube, n: usize) -> (Duration, Duration) {
    let config = kube::Config::new(fake.url().parse().expect("url"));
    let client = kube::Client::try_from(config).expect("kube client");
    let auth = Arc::new(Authorizer::new(client, Ttls::default()));
    let caller = Caller {
        user: "alice".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
        extra: Default::default(),
        expires: None,
    };
    let mut miss = Vec::with_capacity(n);
    for i in 0..n {
        let access = Access::pods(&format!("ns-{i}"));
        let t = Instant::now();
        auth.allowed(&caller, &access).await.expect("decision");
        miss.push(t.elapsed());
    }
    let mut hit = Vec::with_capacity(n);
    let access = Access::pods("ns-0");
    for _ in 0..n {
        let t = Instant::now();
        auth.allowed(&caller, &access).await.expect("decision");
        hit.push(t.elapsed());
    }
    miss.sort();
    hit.sort();
    (quantile(&miss, 0.5), quantile(&hit, 0.5))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // cargo bench passes `--bench`; the figures are the positional args.
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().map_or(500, |v| *v as usize);
    let clients = args.get(1).map_or(4, |v| *v as usize);
    let secs = args.get(2).copied().unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let fake = FakeKube::start();
        populate(&fake);
        let dir = tempfile::tempdir().expect("tempdir");
        let (on_agg, mut on) = start(&fake, &dir.path().join("on"), true).await;
        let (off_agg, mut off) = start(&fake, &dir.path().join("off"), false).await;
        synced(&mut on).await;
        synced(&mut off).await;
        let [lat_off, lat_on] = latencies([&off, &on], n).await;
        for (name, lat) in [("auth off", &lat_off), ("auth on", &lat_on)] {
            println!(
                "{name:<9} explain p50 {:6.3} ms  p99 {:6.3} ms  (n = {n}, alternating)",
                ms(quantile(lat, 0.5)),
                ms(quantile(lat, 0.99))
            );
        }
        // Off, on, off, on: a drift of the machine shows as a difference
        // between the two rounds of the same variant.
        let mut qps = [0.0f64; 2];
        for round in 0..2 {
            for (i, (name, client)) in [("auth off", &off), ("auth on", &on)].into_iter().enumerate() {
                let q = throughput(client, clients, secs).await;
                println!("round {round} {name:<9} {q:7.0} queries/s ({clients} clients, {secs} s)");
                qps[i] = qps[i].max(q);
            }
        }
        println!(
            "auth on / off: p50 explain {:.2}x, p99 {:.2}x, queries/s {:.2}x (best round of each)",
            quantile(&lat_on, 0.5).as_secs_f64() / quantile(&lat_off, 0.5).as_secs_f64(),
            quantile(&lat_on, 0.99).as_secs_f64() / quantile(&lat_off, 0.99).as_secs_f64(),
            qps[1] / qps[0]
        );
        let (miss, hit) = decisions(&fake, n).await;
        println!(
            "SubjectAccessReview decision: cache miss {:.3} ms, hit {:.4} ms (medians of {n}); miss/hit {:.0}x",
            ms(miss),
            ms(hit),
            miss.as_secs_f64() / hit.as_secs_f64()
        );
        let _ = on_agg.shutdown(Duration::from_secs(2)).await;
        let _ = off_agg.shutdown(Duration::from_secs(2)).await;
    });
}
