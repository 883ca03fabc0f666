//! Stream-local container ids (ingest protocol 2).
//!
//! A container's identity (`ContainerRef`: cgroup path, pod UID, container
//! ID, ...) is most of a sample's bytes and does not change while it
//! lives, so the agent sends it once per stream: the first sample of a
//! container carries the reference and an id, later samples only the id.
//! Ids are small (the lowest free one is taken) and a container unseen for
//! [`RETIRE_AFTER`] reports gives its id back (looked for every
//! [`RETIRE_AFTER`] reports, so within twice that); an id taken again is sent
//! with its new reference, which rebinds it on the aggregator's side.
//! A table lives as long as one stream: a new stream announces again.

use std::collections::{BTreeSet, HashMap};

use gpuscope_proto::v1 as pb;

/// Reports a container may be missing from before its id is retired.
pub const RETIRE_AFTER: u64 = 64;

/// The ids of one stream.
#[derive(Debug, Default)]
pub struct RefIds {
    /// Cgroup path -> (id, the reference it was announced with, the last
    /// report that named it).
    by_path: HashMap<String, (u32, pb::ContainerRef, u64)>,
    /// Retired ids, taken lowest first.
    free: BTreeSet<u32>,
    /// The next never-used id.
    next: u32,
    reports: u64,
}

impl RefIds {
    /// Gives each container sample of `report` its id, keeping the
    /// reference only where the aggregator has not seen it with that id
    /// on this stream. Call once per report actually sent.
    pub fn apply(&mut self, report: &mut pb::NodeReport) {
        self.reports += 1;
        let now = self.reports;
        for c in &mut report.containers {
            let Some(r) = c.container.as_ref() else {
                continue;
            };
            match self.by_path.get_mut(&r.cgroup_path) {
                Some((id, known, last)) => {
                    *last = now;
                    c.ref_id = *id;
                    if known == r {
                        c.container = None;
                    } else {
                        // Same path, another identity (a pod UID learnt
                        // later): announced again under the same id.
                        *known = r.clone();
                    }
                }
                None => {
                    let id = self.take();
                    c.ref_id = id;
                    self.by_path
                        .insert(r.cgroup_path.clone(), (id, r.clone(), now));
                }
            }
        }
        if now.is_multiple_of(RETIRE_AFTER) {
            let free = &mut self.free;
            self.by_path.retain(|_, (id, _, last)| {
                let keep = now - *last < RETIRE_AFTER;
                if !keep {
                    free.insert(*id);
                }
                keep
            });
        }
    }

    /// The lowest free id (ids start at 1: 0 means none).
    fn take(&mut self) -> u32 {
        if let Some(id) = self.free.pop_first() {
            return id;
        }
        self.next += 1;
        self.next
    }

    /// Ids in use.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether no id is in use.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str, uid: &str) -> pb::ContainerSample {
        pb::ContainerSample {
            container: Some(pb::ContainerRef {
                cgroup_path: path.into(),
                pod_uid: uid.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn report(paths: &[(&str, &str)]) -> pb::NodeReport {
        pb::NodeReport {
            containers: paths.iter().map(|(p, u)| sample(p, u)).collect(),
            ..Default::default()
        }
    }

    fn ids(r: &pb::NodeReport) -> Vec<(u32, bool)> {
        r.containers
            .iter()
            .map(|c| (c.ref_id, c.container.is_some()))
            .collect()
    }

    #[test]
    fn announced_once_then_named_by_id() {
        let mut t = RefIds::default();
        let mut r = report(&[("/a", "1"), ("/b", "1")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(1, true), (2, true)]);
        let mut r = report(&[("/b", "1"), ("/a", "1"), ("/c", "2")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(2, false), (1, false), (3, true)]);
    }

    #[test]
    fn a_changed_identity_is_announced_again_with_its_id() {
        let mut t = RefIds::default();
        t.apply(&mut report(&[("/a", "1")]));
        let mut r = report(&[("/a", "2")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(1, true)]);
        let mut r = report(&[("/a", "2")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(1, false)]);
    }

    #[test]
    fn retired_ids_are_reused_with_an_announcement() {
        let mut t = RefIds::default();
        t.apply(&mut report(&[("/old", "1"), ("/keep", "1")]));
        for _ in 1..RETIRE_AFTER {
            t.apply(&mut report(&[("/keep", "1")]));
        }
        assert_eq!(t.len(), 2, "63 reports without /old: not yet");
        for _ in 0..RETIRE_AFTER {
            t.apply(&mut report(&[("/keep", "1")]));
        }
        assert_eq!(t.len(), 1, "/old retired");
        let mut r = report(&[("/new", "3"), ("/keep", "1")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(1, true), (2, false)]);
        let mut r = report(&[("/old", "1")]);
        t.apply(&mut r);
        assert_eq!(ids(&r), [(3, true)], "a returning container is new");
    }

    #[test]
    fn samples_without_a_reference_are_left_alone() {
        let mut t = RefIds::default();
        let mut r = pb::NodeReport {
            containers: vec![pb::ContainerSample::default()],
            ..Default::default()
        };
        t.apply(&mut r);
        assert_eq!(ids(&r), [(0, false)]);
        assert!(t.is_empty());
    }
}
