//! Counts of what the agents reported as events, for the exporters: OOM
//! kills per node and pod, XIDs per GPU and code, lost GPUs, and each
//! agent source's latest state.
//!
//! Ingest counts each incident once, when the store first keeps it (a
//! resent event is a duplicate there and is not counted again), so the
//! counts are Prometheus counters: they start at 0 with the aggregator
//! and only grow. Every map is bounded ([`MAX_KEYS`]); past the bound a
//! new key is counted under its node alone (pod or GPU left empty), so no
//! event goes uncounted and the series stay bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use gpuscope_proto::v1::node_event::Kind as EventKind;
use gpuscope_proto::v1::{Incident, SourceState};

use crate::sync::lock;

/// Most keys of each map (about 100 bytes each).
pub const MAX_KEYS: usize = 100_000;

/// A GPU as events name it: node, index (when known) and UUID.
pub type GpuKey = (Box<str>, Option<u32>, Box<str>);

/// The counts; see the module documentation.
#[derive(Debug, Default)]
pub struct Tally {
    inner: Mutex<Counts>,
}

/// A copy of the counts, taken by an exporter.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// OOM kills by (node, pod UID of the killed container; empty when
    /// none or past the bound).
    pub oom_kills: HashMap<(Box<str>, Box<str>), u64>,
    /// XIDs by (GPU, XID code).
    pub xids: HashMap<(GpuKey, u64), u64>,
    /// The latest XID code of each GPU.
    pub last_xid: HashMap<GpuKey, u64>,
    /// Lost GPUs by GPU.
    pub gpu_lost: HashMap<GpuKey, u64>,
    /// Each (node, source)'s latest state.
    pub sources: HashMap<(Box<str>, Box<str>), SourceState>,
}

/// Adds one to `key`'s count, or to `overflow`'s when the map is full.
fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, overflow: impl FnOnce() -> K) {
    if map.len() < MAX_KEYS || map.contains_key(&key) {
        *map.entry(key).or_default() += 1;
    } else {
        *map.entry(overflow()).or_default() += 1;
    }
}

impl Tally {
    /// Counts the incidents `node` reported that the store kept for the
    /// first time.
    pub fn incidents(&self, node: &str, incidents: &[Incident]) {
        if incidents.is_empty() {
            return;
        }
        let mut c = lock(&self.inner);
        for i in incidents {
            let Some(kind) = i.event.as_ref().and_then(|e| e.kind.as_ref()) else {
                continue;
            };
            match kind {
                EventKind::OomKill(oom) => {
                    let uid = oom.container.as_ref().map_or("", |r| r.pod_uid.as_str());
                    bump(&mut c.oom_kills, (node.into(), uid.into()), || {
                        (node.into(), "".into())
                    });
                }
                EventKind::Xid(x) => {
                    let gpu: GpuKey = (node.into(), x.gpu_index, x.gpu_uuid.as_str().into());
                    bump(&mut c.xids, (gpu.clone(), x.xid), || {
                        ((node.into(), None, "".into()), x.xid)
                    });
                    if c.last_xid.len() < MAX_KEYS || c.last_xid.contains_key(&gpu) {
                        c.last_xid.insert(gpu, x.xid);
                    }
                }
                EventKind::GpuLost(l) => {
                    let uuid = l.gpu_uuid.as_deref().unwrap_or("");
                    bump(
                        &mut c.gpu_lost,
                        (node.into(), Some(l.gpu_index), uuid.into()),
                        || (node.into(), None, "".into()),
                    );
                }
                EventKind::Source(s) => {
                    let key = (node.into(), s.source.as_str().into());
                    if c.sources.len() < MAX_KEYS || c.sources.contains_key(&key) {
                        c.sources.insert(key, s.state());
                    }
                }
                EventKind::KmsgOverrun(_)
                | EventKind::GpuCountChanged(_)
                | EventKind::GpuHealthChange(_)
                | EventKind::SwitchXid(_) => {}
            }
        }
    }

    /// A copy of the counts (small: bounded by nodes, GPUs and pods
    /// killed).
    pub fn counts(&self) -> Counts {
        lock(&self.inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_proto::v1 as pb;

    fn incident(kind: EventKind) -> Incident {
        Incident {
            event: Some(pb::NodeEvent {
                seq: 1,
                time_unix_nanos: 1,
                kind: Some(kind),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn counts_each_kind_under_its_labels() {
        let t = Tally::default();
        let oom = |uid: &str| {
            incident(EventKind::OomKill(pb::OomKill {
                container: Some(pb::ContainerRef {
                    pod_uid: uid.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
        };
        let xid = |code| {
            incident(EventKind::Xid(pb::Xid {
                gpu_uuid: "GPU-1".into(),
                gpu_index: Some(0),
                xid: code,
                ..Default::default()
            }))
        };
        t.incidents("n1", &[oom("a"), oom("a"), oom("b"), xid(79), xid(13)]);
        t.incidents(
            "n1",
            &[incident(EventKind::Source(pb::SourceStatus {
                source: "nvml".into(),
                state: pb::SourceState::Degraded as i32,
                reason: "x".into(),
            }))],
        );
        let c = t.counts();
        assert_eq!(c.oom_kills[&("n1".into(), "a".into())], 2);
        assert_eq!(c.oom_kills[&("n1".into(), "b".into())], 1);
        let gpu: GpuKey = ("n1".into(), Some(0), "GPU-1".into());
        assert_eq!(c.xids[&(gpu.clone(), 79)], 1);
        assert_eq!(c.last_xid[&gpu], 13);
        assert_eq!(
            c.sources[&("n1".into(), "nvml".into())],
            pb::SourceState::Degraded
        );
    }

    #[test]
    fn past_the_bound_a_kill_is_counted_under_its_node() {
        let mut map = HashMap::new();
        for i in 0..MAX_KEYS {
            bump(&mut map, i, || usize::MAX);
        }
        bump(&mut map, MAX_KEYS + 1, || usize::MAX);
        bump(&mut map, 3, || usize::MAX);
        assert_eq!(map.len(), MAX_KEYS + 1);
        assert_eq!(map[&usize::MAX], 1);
        assert_eq!(map[&3], 2);
    }
}
