//! What the incident store's integrity check costs at start: a store of
//! N incidents (default 100,000 OOM kills, each with a 2-minute flight
//! recorder window of 120 points, as the agent attaches them) is written
//! once through `Store::store_batch`, then opened R times (default 5) as
//! the aggregator opens it (`Store::open`: redb's integrity check of
//! every page, then the tables), and R times with redb alone without the
//! check (the floor: the same file, the same tables). Prints the file
//! size, the median of each and their ratio, and the first incident's
//! read-back to show the store is whole.
//!
//! usage: store_open [N] [R]    (release build: `cargo run --release -p
//! gpuscope-benches --bin store_open`)

use std::time::{Duration, Instant};

use anyhow::Context as _;
use gpuscope_aggregator::Store;
use gpuscope_proto::v1 as pb;

/// One OOM kill of node `n`'s container `c` at `t`, with a recorder window.
fn oom_kill(seq: u64, t: u64) -> pb::NodeEvent {
    let window = (0..120u64)
        .map(|i| pb::RecorderPoint {
            time_unix_nanos: t - (120 - i) * 1_000_000_000,
            usage_bytes: (1 << 30) + i * (1 << 20),
            anon_bytes: (900 << 20) + i * (1 << 20),
            file_bytes: 100 << 20,
            shmem_bytes: 0,
            memory_some_avg10: i as f32 / 10.0,
            memory_some_total_us: i * 1000,
            memory_full_total_us: i * 500,
        })
        .collect();
    pb::NodeEvent {
        seq,
        time_unix_nanos: t,
        kind: Some(pb::node_event::Kind::OomKill(pb::OomKill {
            time_unix_nanos: t,
            detected_at_unix_nanos: t + 1_000_000,
            container: Some(pb::ContainerRef {
                cgroup_path: format!(
                    "/kubepods/burstable/pod{seq:08x}-0000-4000-8000-000000000000/{seq:064x}"
                ),
                pod_uid: format!("{seq:08x}-0000-4000-8000-000000000000"),
                container_id: format!("{seq:064x}"),
                ..Default::default()
            }),
            limit_bytes: Some(2 << 30),
            peak_bytes: Some(2 << 30),
            oom_kill: Some(1),
            trigger_comm: Some("python3".into()),
            window,
            ..Default::default()
        })),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(Ok(100_000), |a| a.parse())
        .context("N")?;
    let runs: usize = args.next().map_or(Ok(5), |a| a.parse()).context("R")?;
    let dir = tempfile_dir()?;
    let path = dir.join("incidents.redb");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let written = Instant::now();
    {
        let store = Store::open(&path)?;
        let batch = 1000u64;
        for b in 0..n.div_ceil(batch) {
            let events: Vec<_> = (b * batch + 1..=((b + 1) * batch).min(n))
                .map(|seq| oom_kill(seq, now - (n - seq) * 1_000_000_000))
                .collect();
            let node = format!("gpu-node-{}", b % 100);
            store.store_batch(&node, &format!("boot-{b}"), &events, now)?;
        }
    }
    let size = std::fs::metadata(&path)?.len();
    println!(
        "store: {n} incidents written in {:.1} s, {:.1} MiB on disk",
        written.elapsed().as_secs_f64(),
        size as f64 / f64::from(1 << 20)
    );
    let mut checked = Vec::new();
    let mut unchecked = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let store = Store::open(&path)?;
        checked.push(t.elapsed());
        anyhow::ensure!(store.reset().is_none(), "the store was reset");
        drop(store);
        let t = Instant::now();
        let db = redb::Database::builder()
            .set_check_integrity_on_open(false)
            .create(&path)?;
        unchecked.push(t.elapsed());
        drop(db);
    }
    let (c, u) = (median(checked), median(unchecked));
    println!(
        "open: {:.1} ms with the integrity check (Store::open), {:.1} ms without (redb alone), \
         x{:.1}; median of {runs}",
        c.as_secs_f64() * 1e3,
        u.as_secs_f64() * 1e3,
        c.as_secs_f64() / u.as_secs_f64().max(1e-9)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A fresh folder under the system's temporary directory.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("gpuscope-store-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
