//! A bounded store of core v1 Events, fed by a watcher.
//!
//! A busy cluster makes events much faster than anyone reads them, almost
//! all `Normal` (Pulling, Pulled, Created, Started). The diagnosis needs the
//! `Warning`s (BackOff, FailedScheduling, FailedMount, Unhealthy, Evicted,
//! UnexpectedAdmissionError...) and a few `Normal`s that explain a kill
//! or a placement ([`KEPT_NORMAL_REASONS`]). Everything else is dropped on
//! arrival, and what is kept is capped per involved object (newest kept)
//! and in the number of objects (the object with the oldest news is
//! forgotten first).

use std::collections::{HashMap, VecDeque};

use ::kube::runtime::watcher;
use gpuscope_diagnose::k8s::event_last_time;
use gpuscope_model::Timestamp;
use k8s_openapi::api::core::v1::Event;

/// `Normal` events kept: the kubelet killing a container (liveness probe,
/// preemption, deletion), the scheduler's placement, preemption, and node
/// state changes.
pub const KEPT_NORMAL_REASONS: &[&str] = &[
    "Killing",
    "Scheduled",
    "Preempted",
    "Preempting",
    "NodeNotReady",
    "TaintManagerEviction",
];

/// How many events are kept.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Events kept per involved object (newest first).
    pub per_object: usize,
    /// Involved objects remembered.
    pub objects: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            per_object: 20,
            objects: 20_000,
        }
    }
}

/// The involved object: (kind, namespace, name).
type ObjectKey = (String, String, String);

#[derive(Debug, Default)]
struct Events {
    by_object: HashMap<ObjectKey, VecDeque<Event>>,
}

/// The kept events of one watcher.
#[derive(Debug, Default)]
pub struct EventStore {
    limits: EventLimits,
    live: Events,
    /// A relist in progress: replaces `live` when complete.
    relist: Option<Events>,
    /// Events dropped on arrival because they were `Normal` and not kept.
    pub dropped: u64,
}

/// Whether an event is worth keeping. gpuscope's own (published
/// findings) are not evidence.
pub fn keep(e: &Event) -> bool {
    if super::publish::is_own(e) {
        return false;
    }
    match e.type_.as_deref() {
        Some("Normal") => e
            .reason
            .as_deref()
            .is_some_and(|r| KEPT_NORMAL_REASONS.contains(&r)),
        _ => true,
    }
}

fn key(e: &Event) -> ObjectKey {
    let o = &e.involved_object;
    (
        o.kind.clone().unwrap_or_default(),
        o.namespace.clone().unwrap_or_default(),
        o.name.clone().unwrap_or_default(),
    )
}

fn newest(v: &VecDeque<Event>) -> Option<Timestamp> {
    v.iter().filter_map(event_last_time).max()
}

impl Events {
    fn insert(&mut self, limits: EventLimits, mut e: Event) {
        e.metadata.managed_fields = None;
        let k = key(&e);
        if !self.by_object.contains_key(&k) && self.by_object.len() >= limits.objects.max(1) {
            // Forget the object whose newest event is the oldest.
            if let Some(old) = self
                .by_object
                .iter()
                .min_by_key(|(_, v)| newest(v))
                .map(|(k, _)| k.clone())
            {
                self.by_object.remove(&old);
            }
        }
        let list = self.by_object.entry(k).or_default();
        // An event is updated in place (its count and lastTimestamp move).
        list.retain(|x| x.metadata.name != e.metadata.name);
        list.push_back(e);
        list.make_contiguous().sort_by_key(event_last_time);
        while list.len() > limits.per_object.max(1) {
            list.pop_front();
        }
    }

    fn remove(&mut self, e: &Event) {
        let k = key(e);
        if let Some(list) = self.by_object.get_mut(&k) {
            list.retain(|x| x.metadata.name != e.metadata.name);
            if list.is_empty() {
                self.by_object.remove(&k);
            }
        }
    }
}

impl EventStore {
    /// An empty store with these limits.
    pub fn new(limits: EventLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Applies one watcher event. A relist (`Init` ... `InitDone`) replaces
    /// the contents atomically when it completes, like a reflector store.
    pub fn apply(&mut self, ev: watcher::Event<Event>) {
        let limits = self.limits;
        match ev {
            watcher::Event::Init => self.relist = Some(Events::default()),
            watcher::Event::InitApply(e) => {
                if !keep(&e) {
                    self.dropped += 1;
                } else if let Some(r) = &mut self.relist {
                    r.insert(limits, e);
                } else {
                    self.live.insert(limits, e);
                }
            }
            watcher::Event::InitDone => {
                if let Some(r) = self.relist.take() {
                    self.live = r;
                }
            }
            watcher::Event::Apply(e) => {
                if keep(&e) {
                    self.live.insert(limits, e);
                } else {
                    self.dropped += 1;
                }
            }
            watcher::Event::Delete(e) => self.live.remove(&e),
        }
    }

    /// Every kept event matching `pred`, oldest first per object.
    pub fn select(&self, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
        self.live
            .by_object
            .values()
            .flatten()
            .filter(|e| pred(e))
            .cloned()
            .collect()
    }

    /// Events kept, in all.
    pub fn len(&self) -> usize {
        self.live.by_object.values().map(VecDeque::len).sum()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.live.by_object.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, pod: &str, type_: &str, reason: &str, secs: u64) -> Event {
        let t = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_000_000 + secs),
        )
        .to_string();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ml"},
            "involvedObject": {"kind": "Pod", "namespace": "ml", "name": pod, "uid": format!("uid-{pod}")},
            "type": type_, "reason": reason, "message": "m", "lastTimestamp": t,
        }))
        .expect("event")
    }

    #[test]
    fn keeps_warnings_and_explanatory_normals_only() {
        let mut s = EventStore::new(EventLimits::default());
        s.apply(watcher::Event::Apply(event(
            "a", "p", "Normal", "Pulled", 1,
        )));
        s.apply(watcher::Event::Apply(event(
            "b", "p", "Normal", "Killing", 2,
        )));
        s.apply(watcher::Event::Apply(event(
            "c", "p", "Warning", "BackOff", 3,
        )));
        let reasons: Vec<_> = s
            .select(|_| true)
            .into_iter()
            .filter_map(|e| e.reason)
            .collect();
        assert_eq!(reasons, ["Killing", "BackOff"]);
        assert_eq!(s.dropped, 1);
    }

    #[test]
    fn caps_per_object_and_objects_keeping_the_newest() {
        let mut s = EventStore::new(EventLimits {
            per_object: 3,
            objects: 2,
        });
        for i in 0..10 {
            s.apply(watcher::Event::Apply(event(
                &format!("e{i}"),
                "p",
                "Warning",
                "BackOff",
                i,
            )));
        }
        let names: Vec<_> = s
            .select(|_| true)
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect();
        assert_eq!(names, ["e7", "e8", "e9"]);
        // An updated event replaces itself.
        s.apply(watcher::Event::Apply(event(
            "e8", "p", "Warning", "BackOff", 20,
        )));
        assert_eq!(s.len(), 3);

        s.apply(watcher::Event::Apply(event(
            "q1", "q", "Warning", "Failed", 30,
        )));
        s.apply(watcher::Event::Apply(event(
            "r1", "r", "Warning", "Failed", 40,
        )));
        // Three objects over a cap of two: `p` had the oldest news.
        assert_eq!(s.len(), 2);
        assert!(
            s.select(|e| e.involved_object.name.as_deref() == Some("p"))
                .is_empty()
        );
    }

    #[test]
    fn a_relist_replaces_the_contents_when_complete() {
        let mut s = EventStore::new(EventLimits::default());
        s.apply(watcher::Event::Apply(event(
            "old", "p", "Warning", "BackOff", 1,
        )));
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(event(
            "new", "p", "Warning", "BackOff", 2,
        )));
        assert_eq!(s.select(|_| true)[0].metadata.name.as_deref(), Some("old"));
        s.apply(watcher::Event::InitDone);
        let names: Vec<_> = s
            .select(|_| true)
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect();
        assert_eq!(names, ["new"]);
        s.apply(watcher::Event::Delete(event(
            "new", "p", "Warning", "BackOff", 2,
        )));
        assert!(s.is_empty());
    }
}
