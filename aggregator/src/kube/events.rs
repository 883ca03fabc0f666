//! A bounded store of core v1 Events, fed by a watcher.
//!
//! A busy cluster makes events much faster than anyone reads them, almost
//! all `Normal` (Pulling, Pulled, Created, Started). The diagnosis needs the
//! `Warning`s (BackOff, FailedScheduling, FailedMount, Unhealthy, Evicted,
//! UnexpectedAdmissionError...) and a few `Normal`s that explain a kill
//! or a placement ([`KEPT_NORMAL_REASONS`]). Everything else is dropped on
//! arrival, and what is kept is capped per involved object (newest kept)
//! and in the number of objects (the objects with the oldest news are
//! forgotten first). Each kept event is a compact projection
//! ([`EventView`]: a few hundred bytes where the `k8s-openapi` object
//! takes kilobytes), rebuilt only for the events an answer selects, by
//! involved object ([`EventStore::about`]) or by kind and namespace
//! ([`EventStore::select`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ::kube::runtime::watcher;
use gpuscope_model::Timestamp;
use k8s_openapi::api::core::v1::Event;

use super::project::{EventView, intern};

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

/// The kept events of one involved object, oldest first.
#[derive(Debug)]
struct Object {
    kind: Arc<str>,
    namespace: Arc<str>,
    /// Each event with the list generation that last saw it.
    events: VecDeque<(Arc<EventView>, u64)>,
}

impl Object {
    fn newest(&self) -> Option<Timestamp> {
        self.events.back().and_then(|(e, _)| e.last())
    }
}

/// The kept events of one watcher, as projections ([`EventView`]), by
/// involved object.
///
/// A relist (after a 410 Gone or a failure) is applied in place, as
/// [`super::Projections`] applies one: `Init` starts a new generation, each
/// listed event is put and stamped with it, and `InitDone` removes the
/// events the list did not name. So a relist never holds two copies.
#[derive(Debug, Default)]
pub struct EventStore {
    limits: EventLimits,
    /// By [`object_key`].
    by_object: HashMap<Box<str>, Object>,
    generation: u64,
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

/// The store key of an involved object: kind, namespace (empty when the
/// event names none) and name.
fn object_key(kind: &str, namespace: &str, name: &str) -> Box<str> {
    [kind, namespace, name].join("\0").into_boxed_str()
}

/// An event's involved object: (kind, namespace, name), empty where unset.
fn involved(e: &Event) -> (&str, &str, &str) {
    let o = &e.involved_object;
    (
        o.kind.as_deref().unwrap_or_default(),
        o.namespace.as_deref().unwrap_or_default(),
        o.name.as_deref().unwrap_or_default(),
    )
}

impl EventStore {
    /// An empty store with these limits.
    pub fn new(limits: EventLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Applies one watcher event.
    pub fn apply(&mut self, ev: watcher::Event<Event>) {
        match ev {
            watcher::Event::Init => self.generation += 1,
            watcher::Event::InitApply(e) | watcher::Event::Apply(e) => {
                if keep(&e) {
                    self.insert(&e);
                } else {
                    self.dropped += 1;
                }
            }
            watcher::Event::InitDone => self.sweep(),
            watcher::Event::Delete(e) => self.remove(&e),
        }
    }

    fn insert(&mut self, e: &Event) {
        let view = match EventView::project(e) {
            Ok(v) => Arc::new(v),
            Err(err) => {
                tracing::warn!(error = %err, "A watched event does not project; it is left out.");
                return;
            }
        };
        let (kind, namespace, name) = involved(e);
        let k = object_key(kind, namespace, name);
        if !self.by_object.contains_key(&k) && self.by_object.len() >= self.limits.objects.max(1) {
            self.forget_oldest();
        }
        let object = self.by_object.entry(k).or_insert_with(|| Object {
            kind: intern(kind),
            namespace: intern(namespace),
            events: VecDeque::new(),
        });
        let list = &mut object.events;
        // An event is updated in place (its count and lastTimestamp move).
        list.retain(|(x, _)| x.name() != view.name());
        let at = list.partition_point(|(x, _)| x.last() <= view.last());
        list.insert(at, (view, self.generation));
        while list.len() > self.limits.per_object.max(1) {
            list.pop_front();
        }
    }

    /// Forgets the objects whose newest event is the oldest: one in a
    /// hundred of the cap at once, so that a store at its cap does not
    /// scan every object for each new one.
    fn forget_oldest(&mut self) {
        let n = (self.limits.objects / 100).max(1);
        let mut ages: Vec<(Option<Timestamp>, &Box<str>)> = self
            .by_object
            .iter()
            .map(|(k, o)| (o.newest(), k))
            .collect();
        let n = n.min(ages.len());
        if n == 0 {
            return;
        }
        ages.select_nth_unstable(n - 1);
        let old: Vec<Box<str>> = ages[..n].iter().map(|(_, k)| (*k).clone()).collect();
        for k in old {
            self.by_object.remove(&k);
        }
    }

    /// The list is complete: forgets the events it did not name.
    fn sweep(&mut self) {
        let generation = self.generation;
        self.by_object.retain(|_, o| {
            o.events.retain(|(_, g)| *g == generation);
            !o.events.is_empty()
        });
        self.by_object.shrink_to_fit();
    }

    fn remove(&mut self, e: &Event) {
        let (kind, namespace, name) = involved(e);
        let k = object_key(kind, namespace, name);
        let name = e.metadata.name.as_deref().unwrap_or_default();
        if let Some(o) = self.by_object.get_mut(&k) {
            o.events.retain(|(x, _)| x.name() != name);
            if o.events.is_empty() {
                self.by_object.remove(&k);
            }
        }
    }

    /// The kept events about one object (kind, namespace as the event
    /// names it, name), oldest first.
    pub fn about(&self, kind: &str, namespace: &str, name: &str) -> Vec<Arc<EventView>> {
        self.by_object
            .get(&object_key(kind, namespace, name))
            .into_iter()
            .flat_map(|o| o.events.iter().map(|(e, _)| e.clone()))
            .collect()
    }

    /// Every kept event whose involved object's kind and namespace pass
    /// `pred`, oldest first per object.
    pub fn select(&self, mut pred: impl FnMut(&str, &str) -> bool) -> Vec<Arc<EventView>> {
        self.by_object
            .values()
            .filter(|o| pred(&o.kind, &o.namespace))
            .flat_map(|o| o.events.iter().map(|(e, _)| e.clone()))
            .collect()
    }

    /// Events kept, in all.
    pub fn len(&self) -> usize {
        self.by_object.values().map(|o| o.events.len()).sum()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
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

    fn rebuilt(views: &[Arc<EventView>]) -> Vec<Event> {
        views
            .iter()
            .map(|e| e.rebuilt().expect("rebuilds"))
            .collect()
    }

    fn all(s: &EventStore) -> Vec<Event> {
        rebuilt(&s.select(|_, _| true))
    }

    fn names_of(views: &[Arc<EventView>]) -> Vec<String> {
        rebuilt(views)
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect()
    }

    fn names(s: &EventStore) -> Vec<String> {
        names_of(&s.select(|_, _| true))
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
        let reasons: Vec<_> = all(&s).into_iter().filter_map(|e| e.reason).collect();
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
        let names = names(&s);
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
        assert!(s.about("Pod", "ml", "p").is_empty());
        assert_eq!(s.about("Pod", "ml", "r").len(), 1);
    }

    #[test]
    fn a_relist_applies_in_place_and_forgets_what_it_did_not_name() {
        let mut s = EventStore::new(EventLimits::default());
        s.apply(watcher::Event::Apply(event(
            "old", "p", "Warning", "BackOff", 1,
        )));
        s.apply(watcher::Event::Apply(event(
            "kept",
            "q",
            "Warning",
            "FailedMount",
            1,
        )));
        s.apply(watcher::Event::Init);
        s.apply(watcher::Event::InitApply(event(
            "new", "p", "Warning", "BackOff", 2,
        )));
        s.apply(watcher::Event::InitApply(event(
            "kept",
            "q",
            "Warning",
            "FailedMount",
            3,
        )));
        let mut now = names(&s);
        now.sort();
        assert_eq!(
            now,
            ["kept", "new", "old"],
            "the old list answers until the new completes"
        );
        s.apply(watcher::Event::InitDone);
        assert_eq!(names_of(&s.about("Pod", "ml", "p")), ["new"]);
        let kept = s.about("Pod", "ml", "q");
        assert_eq!(kept.len(), 1, "relisted in place, once");
        assert_eq!(
            kept[0].rebuilt().and_then(|e| e.reason).as_deref(),
            Some("FailedMount")
        );
        s.apply(watcher::Event::Delete(event(
            "new", "p", "Warning", "BackOff", 2,
        )));
        s.apply(watcher::Event::Delete(event(
            "kept",
            "q",
            "Warning",
            "FailedMount",
            3,
        )));
        assert!(s.is_empty());
    }
}
