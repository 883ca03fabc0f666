//! The aggregator binary's Kubernetes side against the scale API server
//! (`gpuscope_tests::fake_kube::scale`), through its real kube-rs client:
//! what it does when the API server misbehaves the way large clusters make
//! it misbehave.
//!
//! - A `410 Gone` in the middle of a paginated pod list (an expired
//!   continue token): the watcher starts over with a fresh list, the
//!   answers say so meanwhile, and every pod of the last page is known
//!   afterwards.
//! - A slow list: until the first list completes, a pod lookup says the
//!   pods' first list is not finished; when a relist is slow (after every
//!   watch expired), answers keep coming from the kept data and name it as
//!   stale ("data as of ...") until the list completes.
//! - A burst of 10,000 pod deletions (namespaces deleted) while agents
//!   stream events: every batch is still acknowledged, and the
//!   aggregator's memory does not grow by more than the deleted-pod cache
//!   can hold.
//!
//! They need the workspace's binaries (`cargo build --workspace`), as the
//! other end-to-end tests do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gpuscope_proto::v1 as pb;
use gpuscope_tests::fake_kube::scale::{PODS_PER_NODE, ScaleConfig, ScaleKube};
use gpuscope_tests::{KillOnDrop, free_port, workspace_bin};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Client = pb::query_client::QueryClient<tonic::transport::Channel>;

const DEADLINE: Duration = Duration::from_secs(60);

/// The aggregator binary watching `kube`, and a query client of it.
struct Aggregator {
    process: KillOnDrop,
    port: u16,
    client: Client,
    _data: tempfile::TempDir,
}

async fn start_aggregator(kube: &ScaleKube) -> Aggregator {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let process = std::process::Command::new(workspace_bin("gpuscope-aggregator"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--kube-server", &kube.url(), "--auth", "none"])
        // The simulated agents all stream from 127.0.0.1.
        .env("GPUSCOPE_MAX_STREAMS_PER_PEER", "64")
        .arg("--data-dir")
        .arg(data.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn gpuscope-aggregator");
    let process = KillOnDrop(process);
    let start = Instant::now();
    let client = loop {
        if let Ok(c) = Client::connect(format!("http://127.0.0.1:{port}")).await {
            break c;
        }
        assert!(start.elapsed() < DEADLINE, "the aggregator did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Aggregator {
        process,
        port,
        client,
        _data: data,
    }
}

impl Aggregator {
    /// Explain of `namespace/pod`: the answer, or the error's message.
    async fn explain(
        &mut self,
        (namespace, pod): &(String, String),
    ) -> Result<pb::ExplainResponse, String> {
        let req = pb::ExplainRequest {
            namespace: namespace.clone(),
            pod: pod.clone(),
        };
        match self.client.explain(req).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
        }
    }

    /// Waits until Explain of `pod` answers with every watcher in sync;
    /// returns every Kubernetes gap (or error) seen on the way.
    async fn synced(&mut self, pod: &(String, String)) -> Vec<String> {
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            match self.explain(pod).await {
                Ok(r) => {
                    let gaps = kube_gaps(&r);
                    if gaps.is_empty() {
                        return seen;
                    }
                    seen.extend(gaps);
                }
                Err(e) => seen.push(e),
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the watchers did not sync: {:?}",
                seen.last()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `(VmRSS, VmHWM)` of the aggregator, in kB.
    fn memory_kb(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id()))
            .expect("/proc/PID/status of the aggregator");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in {status}"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// Gaps other than the agents' (`what: why`).
fn kube_gaps(r: &pb::ExplainResponse) -> Vec<String> {
    r.gaps
        .iter()
        .filter(|g| g.what != "agent")
        .map(|g| format!("{}: {}", g.what, g.why))
        .collect()
}

fn pod(kube: &ScaleKube, slot: u32) -> (String, String) {
    kube.pod_name(slot).expect("a pod in the slot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_in_the_middle_of_a_paged_pod_list_starts_the_list_over() {
    // 40 nodes: 600 pods, two pages of kube-rs' 500. No streaming lists
    // (an API server without WatchList): the aggregator pages.
    let nodes = 40;
    let kube = ScaleKube::start(ScaleConfig {
        nodes,
        streaming_lists: false,
        ..ScaleConfig::default()
    });
    kube.expire_next_continue(1);
    let mut agg = start_aggregator(&kube).await;
    // The last pod is on the second page, the one whose token expired.
    let last = pod(&kube, nodes * PODS_PER_NODE - 1);
    let seen = agg.synced(&last).await;

    assert_eq!(kube.stats().continues_expired, 1, "the 410 was served");
    let named = seen
        .iter()
        .find(|g| g.contains("pods") && (g.contains("410") || g.contains("too old")));
    assert!(
        named.is_some(),
        "while the list started over, an answer named the 410 of the pod list: {seen:#?}"
    );
    // Every pod is known after the new list: first, middle, last.
    for slot in [0, nodes * PODS_PER_NODE / 2, nodes * PODS_PER_NODE - 1] {
        let p = pod(&kube, slot);
        let r = agg.explain(&p).await.expect("explain a listed pod");
        assert!(kube_gaps(&r).is_empty(), "{p:?}: {:?}", r.gaps);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_name_the_stale_data_until_a_slow_list_completes() {
    let page_delay = Duration::from_millis(1500);
    // Paged lists (no WatchList), each page slow.
    let kube = ScaleKube::start(ScaleConfig {
        nodes: 40,
        streaming_lists: false,
        ..ScaleConfig::default()
    });
    kube.set_page_delay(page_delay);
    let mut agg = start_aggregator(&kube).await;
    let trainer = pod(&kube, 12);

    // The first list: two slow pages; meanwhile the pod is unknown and
    // the answer says why.
    let start = Instant::now();
    let seen = agg.synced(&trainer).await;
    let first_list = start.elapsed();
    assert!(
        seen.iter()
            .any(|g| g.contains("pods: first list not finished")),
        "the unfinished first list is named: {seen:#?}"
    );
    assert!(
        first_list >= page_delay * 2,
        "two pages of {page_delay:?} each took only {first_list:?}"
    );

    // Every watch expires (a compaction); the relists are slow. The pod
    // is still explained, from the kept data, named as stale.
    kube.expire_watches();
    let expired = Instant::now();
    let mut stale = Vec::new();
    loop {
        let r = agg
            .explain(&trainer)
            .await
            .expect("explain answers from the kept data during the relist");
        let gaps = kube_gaps(&r);
        if gaps.is_empty() && !stale.is_empty() {
            break;
        }
        stale.extend(gaps);
        assert!(
            expired.elapsed() < DEADLINE,
            "the relist did not complete: {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let relist = expired.elapsed();
    let pods_gap = stale
        .iter()
        .find(|g| g.starts_with("pods: ") && g.contains("watch failing since"));
    let pods_gap = pods_gap.unwrap_or_else(|| panic!("a stale pods gap: {stale:#?}"));
    assert!(pods_gap.contains("data as of"), "{pods_gap}");
    assert!(
        pods_gap.contains("410") || pods_gap.contains("too old"),
        "{pods_gap}"
    );
    assert!(
        relist >= page_delay * 2,
        "the stale gap lasted until the slow list completed ({relist:?})"
    );
}

/// One simulated agent: a stream of one source event every `period`,
/// counting what was acknowledged and the slowest acknowledgement.
struct Agent {
    /// Set: send no more (the acknowledgements are still read).
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    slowest_ack_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

async fn agent(port: u16, node: String, period: Duration) -> Agent {
    let mut ingest = pb::ingest_client::IngestClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("ingest client");
    let boot_id = format!("boot-{node}");
    let (tx, rx) = mpsc::channel(16);
    let hello = pb::agent_message::Kind::Hello(pb::Hello {
        node: Some(pb::NodeIdentity {
            node_name: node.clone(),
            boot_id: boot_id.clone(),
            kernel_release: "6.1.119".into(),
            cgroup_mode: pb::CgroupMode::V2 as i32,
            agent_version: "0.1.0-test".into(),
        }),
        protocol: 2,
    });
    tx.send(pb::AgentMessage { kind: Some(hello) })
        .await
        .expect("hello");
    let mut inbound = ingest
        .stream(ReceiverStream::new(rx))
        .await
        .expect("open the ingest stream")
        .into_inner();
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(AtomicU64::new(0));
    let sent_at: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let (s, a, w, times) = (
        sent.clone(),
        acked.clone(),
        slowest.clone(),
        sent_at.clone(),
    );
    let task = tokio::spawn(async move {
        let acks = async {
            while let Ok(Some(m)) = inbound.message().await {
                if let Some(pb::aggregator_message::Kind::Ack(ack)) = m.kind {
                    let at = times.lock().expect("times")[ack.up_to_seq as usize - 1];
                    w.fetch_max(at.elapsed().as_millis() as u64, Relaxed);
                    a.fetch_max(ack.up_to_seq, Relaxed);
                }
            }
        };
        let sends = async {
            let mut ticks = tokio::time::interval(period);
            for seq in 1.. {
                ticks.tick().await;
                if stopped.load(Relaxed) {
                    return;
                }
                let event = pb::NodeEvent {
                    seq,
                    time_unix_nanos: now_nanos(),
                    kind: Some(pb::node_event::Kind::Source(pb::SourceStatus {
                        source: "psi".into(),
                        state: pb::SourceState::Ok as i32,
                        reason: String::new(),
                    })),
                };
                let batch = pb::agent_message::Kind::Events(pb::EventBatch {
                    boot_id: boot_id.clone(),
                    events: vec![event],
                });
                sent_at.lock().expect("times").push(Instant::now());
                if tx
                    .send(pb::AgentMessage { kind: Some(batch) })
                    .await
                    .is_err()
                {
                    return;
                }
                s.store(seq, Relaxed);
            }
        };
        // Sending ends by `stop` (closing the stream); the acks end when
        // the aggregator has answered everything sent.
        tokio::join!(acks, sends);
    });
    Agent {
        stop,
        sent,
        acked,
        slowest_ack_ms: slowest,
        task,
    }
}

/// The deleted-pod cache keeps at most 2,000 pods of at most ~20 kB each
/// (aggregator/src/kube/departed.rs): what a burst may add at most.
const BURST_GROWTH_LIMIT_KB: u64 = 64 * 1024;

/// The slowest acknowledgement allowed: the debug build on shared cores
/// takes seconds per thousand pods; an ingest blocked by the burst would
/// wait for all of it.
const ACK_LIMIT_MS: u64 = 10_000;

/// Pods deleted at once: more than the deleted-pod cache's bound (2,000), so
/// that the bound is what keeps memory flat. `benches/kube_scale.sh` sends
/// the burst of 10,000 to the release build at scale; here the debug
/// build must finish in seconds.
const BURST: u32 = 2_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pod_deletions_while_agents_ingest() {
    // 200 nodes: 3,000 pods.
    let nodes = 200;
    let kube = ScaleKube::start(ScaleConfig {
        nodes,
        ..ScaleConfig::default()
    });
    let mut agg = start_aggregator(&kube).await;
    let survivor = pod(&kube, nodes * PODS_PER_NODE - 1);
    let last_deleted = pod(&kube, BURST - 1);
    let start = Instant::now();
    agg.synced(&survivor).await;
    eprintln!(
        "{} pods listed in {:?}",
        nodes * PODS_PER_NODE,
        start.elapsed()
    );

    let mut agents = Vec::new();
    for i in 0..8 {
        let node = format!("gpu-node-{i:05}");
        agents.push(agent(agg.port, node, Duration::from_millis(200)).await);
    }
    let acked = |agents: &[Agent]| agents.iter().map(|a| a.acked.load(Relaxed)).sum::<u64>();
    let start = Instant::now();
    while acked(&agents) < 16 {
        assert!(start.elapsed() < DEADLINE, "no acknowledgements");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (rss_before, _) = agg.memory_kb();

    assert_eq!(kube.delete_pods("", BURST as usize), BURST as usize);
    let burst = Instant::now();
    let acked_at_burst = acked(&agents);
    // The deletions are applied when the last one is explained as deleted.
    loop {
        if let Ok(r) = agg.explain(&last_deleted).await
            && r.gaps.iter().any(|g| g.why.contains("was deleted"))
        {
            break;
        }
        assert!(
            burst.elapsed() < DEADLINE,
            "the deletions did not reach the aggregator"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let applied = burst.elapsed();
    let sent = |agents: &[Agent]| agents.iter().map(|a| a.sent.load(Relaxed)).sum::<u64>();
    let (acked_applied, sent_applied) = (acked(&agents), sent(&agents));
    // A second more of ingest after the burst.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, hwm) = agg.memory_kb();
    eprintln!(
        "burst of {BURST} deletions applied in {applied:?}; acks {acked_at_burst} -> \
         {acked_applied} of {sent_applied} sent; VmRSS {rss_before} kB -> {rss_after} kB \
         (VmHWM {hwm} kB)"
    );

    // Ingest kept acknowledging while the deletions were applied: at
    // least half of what was sent meanwhile (the rest may be in flight).
    let sent_meanwhile = sent_applied - acked_at_burst;
    assert!(
        (acked_applied - acked_at_burst) * 2 >= sent_meanwhile,
        "ingest stalled during the burst: {} of {sent_meanwhile} acknowledged in {applied:?}",
        acked_applied - acked_at_burst
    );
    for a in &agents {
        a.stop.store(true, Relaxed);
    }
    let start = Instant::now();
    for a in &agents {
        let sent = a.sent.load(Relaxed);
        while a.acked.load(Relaxed) < sent.saturating_sub(1) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "a stream fell behind: {sent} sent, {} acked",
                a.acked.load(Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let slowest = a.slowest_ack_ms.load(Relaxed);
        assert!(
            slowest < ACK_LIMIT_MS,
            "an acknowledgement took {slowest} ms (burst applied in {applied:?})"
        );
    }
    for a in agents {
        a.task.abort();
    }
    assert!(
        rss_after <= rss_before + BURST_GROWTH_LIMIT_KB,
        "memory grew by {} kB with the burst (limit {BURST_GROWTH_LIMIT_KB} kB)",
        rss_after.saturating_sub(rss_before)
    );
    // The pods that were not deleted are still known, without gaps.
    let r = agg.explain(&survivor).await.expect("explain a survivor");
    assert!(kube_gaps(&r).is_empty(), "{:?}", r.gaps);
}

// ------------------------------------------------ the scale server itself

/// A kube-rs reflector of every pod of `kube` with `config`: its store,
/// and the task feeding it.
fn reflect_pods(
    kube: &ScaleKube,
    config: kube::runtime::watcher::Config,
) -> (
    kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>,
    tokio::task::JoinHandle<()>,
) {
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    use tokio_stream::StreamExt;
    let client = kube::Client::try_from(kube::Config::new(kube.url().parse().expect("url")))
        .expect("kube client");
    let api = kube::Api::<k8s_openapi::api::core::v1::Pod>::all(client);
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, config))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while stream.next().await.is_some() {}
    });
    (reader, task)
}

async fn store_holds(
    store: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>,
    pods: usize,
    what: &str,
) {
    let start = Instant::now();
    while store.state().len() != pods {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: {} pods, not {pods}",
            store.state().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_pages_and_streams_the_scale_server_and_follows_its_churn() {
    use kube::runtime::watcher;
    let nodes = 20;
    let all = (nodes * PODS_PER_NODE) as usize;
    let kube = ScaleKube::start(ScaleConfig {
        nodes,
        churn_per_second: 20.0,
        ..ScaleConfig::default()
    });
    // Pages of 64: five continue requests, each from the list's snapshot.
    let (paged, paged_task) = reflect_pods(&kube, watcher::Config::default().page_size(64));
    // WatchList: one watch with sendInitialEvents, ended by the bookmark.
    let (streamed, streamed_task) =
        reflect_pods(&kube, watcher::Config::default().streaming_lists());
    store_holds(&paged, all, "the paged list").await;
    let lists = kube.stats().lists;
    assert!(lists >= all.div_ceil(64) as u64, "{lists} list requests");
    store_holds(&streamed, all, "the streaming list").await;

    // The churn replaces Job and inference pods: both stores follow the
    // server's own count (a pod between deletion and re-creation is gone).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = kube.stats();
    assert!(stats.events > 0, "churn records events: {stats:?}");
    // A namespace deleted: its pods go from both stores.
    let batch = kube.pods_in("batch");
    assert!(batch > 0);
    assert_eq!(kube.delete_pods("batch", usize::MAX), batch);
    assert_eq!(kube.pods_in("batch"), 0);
    let start = Instant::now();
    loop {
        let want = kube.stats().pods;
        let in_batch = |s: &kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>| {
            s.state()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some("batch"))
                .count()
        };
        let (p, s) = (paged.state().len(), streamed.state().len());
        // Churn may create a pod in `batch` again; it is in both stores.
        if p == want && s == want && in_batch(&paged) == kube.pods_in("batch") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "stores {p} and {s} pods, server {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The objects are whole pods as k8s-openapi reads them.
    let p = paged
        .state()
        .into_iter()
        .find(|p| p.metadata.namespace.as_deref() == Some("gpu-operator"))
        .expect("a GPU operator pod");
    let spec = p.spec.as_ref().expect("spec");
    assert!(
        spec.node_name
            .as_deref()
            .is_some_and(|n| n.starts_with("gpu-node-"))
    );
    let status = p.status.as_ref().expect("status");
    assert!(
        !status
            .container_statuses
            .as_ref()
            .expect("statuses")
            .is_empty()
    );
    paged_task.abort();
    streamed_task.abort();
}
