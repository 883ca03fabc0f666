//! The store of one watcher: its objects' projections by namespace and
//! name, updated in place by the watcher's events, and the indexes the
//! queries read instead of walking every object.
//!
//! The mechanism: kube-runtime's watcher starts (and, after a 410 Gone or
//! a failure, starts over) with `Init`, then one `InitApply` per object
//! listed (or streamed, with `sendInitialEvents`), then `InitDone`; after
//! that `Apply` and `Delete` as the watch reports changes. kube-runtime's
//! reflector `Writer` buffers every `InitApply` of a relist and swaps the
//! buffer in at `InitDone`: for the length of a relist it holds two full
//! copies of the world. This store instead marks and sweeps: `Init` starts
//! a new generation, each `InitApply` replaces its object in place and
//! stamps it with the generation, and `InitDone` removes the objects the
//! list did not name (deleted while the watch was down). So a relist holds
//! one copy, and the store keeps answering, old and new objects side by
//! side, until `InitDone` (the watcher's [`super::Health`] says the data
//! is stale meanwhile).
//!
//! Beside the objects, under the same lock and changed by the same put,
//! remove and sweep, the store keeps secondary indexes of what
//! [`Projection`] says of each object ([`Index`]): by UID (what the agents
//! name a pod by), by node (a node's pods), the small sets the rules look
//! for across the cluster ([`Mark`]: GPU-requesting and device-plugin
//! pods), and how many objects each namespace has. Each index holds the
//! object's `Arc` (8 bytes), never a copy; a UUID UID is keyed as its 128
//! bits. So finding a pod by UID, or a node's pods, costs what it returns,
//! not a walk of every pod.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use super::project::Projection;
use crate::sync::{read, write};

/// The sets of objects a store keeps besides its by-name map, for the
/// lookups the rules make across the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// Pods that request GPUs (an unbound pod's explain reads every one:
    /// where GPUs are held, and why it does not fit).
    Gpus,
    /// GPU device-plugin pods (a bound pod's explain reads its node's and
    /// one elsewhere).
    DevicePlugin,
}

impl Mark {
    /// Every mark, in the order of [`Index::marked`].
    const ALL: [Mark; 2] = [Mark::Gpus, Mark::DevicePlugin];
}

/// Objects by `namespace/name`, with their [`Index`].
#[derive(Debug)]
pub struct Projections<V> {
    inner: RwLock<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    objects: HashMap<Box<str>, (Arc<V>, u64)>,
    generation: u64,
    index: Index<V>,
}

impl<V> Default for Projections<V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner {
                objects: HashMap::new(),
                generation: 0,
                index: Index::default(),
            }),
        }
    }
}

/// The store key of an object.
pub fn key(namespace: &str, name: &str) -> Box<str> {
    let mut k = String::with_capacity(namespace.len() + 1 + name.len());
    k.push_str(namespace);
    k.push('/');
    k.push_str(name);
    k.into_boxed_str()
}

/// The key of a UID in the by-UID index: the 128 bits of a UUID in the
/// canonical lowercase form the API server assigns
/// (`8-4-4-4-12` hex digits), else a 128-bit hash of the text (a lookup
/// compares the object's UID text, so a collision could only hide one of
/// two objects, never answer with the wrong one).
pub fn uid_key(uid: &str) -> u128 {
    parse_uuid(uid).unwrap_or_else(|| {
        let half = |seed: u8| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut h);
            uid.hash(&mut h);
            h.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(2))
    })
}

/// A [`uid_key`] as the by-UID index keeps it.
type UidKey = [u64; 2];

/// The by-UID index's key of a UID.
fn index_key(uid: &str) -> UidKey {
    let k = uid_key(uid);
    [(k >> 64) as u64, k as u64]
}

/// A UUID in canonical lowercase form, as its 128 bits.
fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut n = 0u128;
    for (i, &c) in b.iter().enumerate() {
        let digit = match c {
            b'-' if matches!(i, 8 | 13 | 18 | 23) => continue,
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        if matches!(i, 8 | 13 | 18 | 23) {
            return None;
        }
        n = (n << 4) | u128::from(digit);
    }
    Some(n)
}

/// An object in a set, told apart by identity (its `Arc`), not by value.
struct ByPtr<V>(Arc<V>);

impl<V> PartialEq for ByPtr<V> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<V> Eq for ByPtr<V> {}

impl<V> Hash for ByPtr<V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

impl<V> std::fmt::Debug for ByPtr<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:p}", Arc::as_ptr(&self.0))
    }
}

/// The secondary indexes of a store, each holding the objects' `Arc`s.
/// Changed only with the objects, under the store's write lock, so a
/// reader sees both or neither.
#[derive(Debug)]
struct Index<V> {
    /// By [`uid_key`] of [`Projection::uid`], as two `u64`s (a `u128`
    /// is 16-byte aligned: an entry would take 32 bytes, not 24).
    by_uid: HashMap<UidKey, Arc<V>>,
    /// By [`Projection::node`]; a node's pods are few (at most the
    /// kubelet's `maxPods`, 110 by default), so a vector.
    by_node: HashMap<Box<str>, Vec<Arc<V>>>,
    /// The objects with each [`Mark`], in the order of [`Mark::ALL`].
    marked: [HashSet<ByPtr<V>>; 2],
    /// How many objects each namespace has.
    namespaces: HashMap<Box<str>, usize>,
}

impl<V> Default for Index<V> {
    fn default() -> Self {
        Self {
            by_uid: HashMap::new(),
            by_node: HashMap::new(),
            marked: Default::default(),
            namespaces: HashMap::new(),
        }
    }
}

impl<V: Projection> Index<V> {
    fn add(&mut self, v: &Arc<V>) {
        if let Some(uid) = v.uid() {
            self.by_uid.insert(index_key(uid), v.clone());
        }
        if let Some(node) = v.node() {
            match self.by_node.get_mut(node) {
                Some(pods) => pods.push(v.clone()),
                None => {
                    self.by_node.insert(node.into(), vec![v.clone()]);
                }
            }
        }
        for (mark, set) in Mark::ALL.iter().zip(&mut self.marked) {
            if v.marked(*mark) {
                set.insert(ByPtr(v.clone()));
            }
        }
        match self.namespaces.get_mut(v.namespace()) {
            Some(n) => *n += 1,
            None => {
                self.namespaces.insert(v.namespace().into(), 1);
            }
        }
    }

    /// Forgets `v` (this very object: an entry another object with the
    /// same UID has taken stays).
    fn remove(&mut self, v: &Arc<V>) {
        if let Some(uid) = v.uid() {
            let k = index_key(uid);
            if self.by_uid.get(&k).is_some_and(|o| Arc::ptr_eq(o, v)) {
                self.by_uid.remove(&k);
            }
        }
        if let Some(node) = v.node()
            && let Some(pods) = self.by_node.get_mut(node)
        {
            pods.retain(|o| !Arc::ptr_eq(o, v));
            if pods.is_empty() {
                self.by_node.remove(node);
            }
        }
        for set in &mut self.marked {
            set.remove(&ByPtr(v.clone()));
        }
        if let Some(n) = self.namespaces.get_mut(v.namespace()) {
            *n -= 1;
            if *n == 0 {
                self.namespaces.remove(v.namespace());
            }
        }
    }

    fn marked(&self, mark: Mark) -> &HashSet<ByPtr<V>> {
        &self.marked[mark as usize]
    }

    fn shrink_to_fit(&mut self) {
        self.by_uid.shrink_to_fit();
        self.by_node.shrink_to_fit();
        self.marked.iter_mut().for_each(HashSet::shrink_to_fit);
        self.namespaces.shrink_to_fit();
    }

    /// Heap bytes of the tables (capacity, not length: what is
    /// allocated), not counting the objects they point to.
    fn heap_bytes(&self) -> usize {
        fn table<K, T>(capacity: usize) -> usize {
            if capacity == 0 {
                return 0;
            }
            // hashbrown: a power of two of buckets, 7/8 of them usable,
            // one control byte each plus a group's worth more.
            let buckets = (capacity * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(K, T)>() + 1) + 16
        }
        table::<UidKey, Arc<V>>(self.by_uid.capacity())
            + table::<Box<str>, Vec<Arc<V>>>(self.by_node.capacity())
            + self
                .by_node
                .iter()
                .map(|(k, v)| k.len() + v.capacity() * std::mem::size_of::<Arc<V>>())
                .sum::<usize>()
            + self
                .marked
                .iter()
                .map(|s| table::<ByPtr<V>, ()>(s.capacity()))
                .sum::<usize>()
            + table::<Box<str>, usize>(self.namespaces.capacity())
            + self.namespaces.keys().map(|k| k.len()).sum::<usize>()
    }
}

impl<V: Projection> Projections<V> {
    /// A (re)list starts: objects put from now on belong to the new list.
    pub fn begin(&self) {
        write(&self.inner).generation += 1;
    }

    /// Adds or replaces an object (from a list or a watch); the indexes
    /// forget the object it replaces (which may have had another UID or
    /// node) and learn this one.
    pub fn put(&self, v: V) {
        let k = key(v.namespace(), v.name());
        let v = Arc::new(v);
        let mut inner = write(&self.inner);
        let generation = inner.generation;
        inner.index.add(&v);
        if let Some((old, _)) = inner.objects.insert(k, (v, generation)) {
            inner.index.remove(&old);
        }
    }

    /// The list is complete: removes and returns the objects it did not
    /// name.
    pub fn finish(&self) -> Vec<Arc<V>> {
        let mut inner = write(&self.inner);
        let Inner {
            objects,
            generation,
            index,
        } = &mut *inner;
        let mut gone = Vec::new();
        objects.retain(|_, (v, g)| {
            let keep = *g == *generation;
            if !keep {
                index.remove(v);
                gone.push(v.clone());
            }
            keep
        });
        objects.shrink_to_fit();
        index.shrink_to_fit();
        gone
    }

    /// Removes an object; returns what was kept of it.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        let mut inner = write(&self.inner);
        let (v, _) = inner.objects.remove(&*key(namespace, name))?;
        inner.index.remove(&v);
        Some(v)
    }

    /// An object by namespace (empty: cluster-scoped) and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        read(&self.inner)
            .objects
            .get(&*key(namespace, name))
            .map(|(v, _)| v.clone())
    }

    /// The object with this UID.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<V>> {
        read(&self.inner)
            .index
            .by_uid
            .get(&index_key(uid))
            .filter(|v| v.uid() == Some(uid))
            .cloned()
    }

    /// The objects bound to this node.
    pub fn on_node(&self, node: &str) -> Vec<Arc<V>> {
        read(&self.inner)
            .index
            .by_node
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// The objects with this mark.
    pub fn marked(&self, mark: Mark) -> Vec<Arc<V>> {
        read(&self.inner)
            .index
            .marked(mark)
            .iter()
            .map(|o| o.0.clone())
            .collect()
    }

    /// One object with this mark for which `pred` holds (tried under the
    /// read lock, in no particular order; keep `pred` short).
    pub fn find_marked(&self, mark: Mark, mut pred: impl FnMut(&V) -> bool) -> Option<Arc<V>> {
        read(&self.inner)
            .index
            .marked(mark)
            .iter()
            .find(|o| pred(&o.0))
            .map(|o| o.0.clone())
    }

    /// The namespaces that have objects.
    pub fn namespaces(&self) -> Vec<String> {
        read(&self.inner)
            .index
            .namespaces
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// Heap bytes the indexes take (their tables' allocations, not the
    /// objects they share with the by-name map).
    pub fn index_heap_bytes(&self) -> usize {
        read(&self.inner).index.heap_bytes()
    }

    /// Every object (shared: no copy of any).
    pub fn state(&self) -> Vec<Arc<V>> {
        read(&self.inner)
            .objects
            .values()
            .map(|(v, _)| v.clone())
            .collect()
    }

    /// Calls `f` on each object, under the read lock (no vector of all).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<V>)) {
        for (v, _) in read(&self.inner).objects.values() {
            f(v);
        }
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        read(&self.inner).objects.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Obj(&'static str, u32);

    impl Projection for Obj {
        fn namespace(&self) -> &str {
            "ns"
        }
        fn name(&self) -> &str {
            self.0
        }
    }

    fn names(s: &Projections<Obj>) -> Vec<(&'static str, u32)> {
        let mut v: Vec<_> = s.state().iter().map(|o| (o.0, o.1)).collect();
        v.sort();
        v
    }

    #[test]
    fn a_relist_replaces_in_place_and_sweeps_what_it_did_not_name() {
        let s = Projections::default();
        s.begin();
        s.put(Obj("a", 1));
        s.put(Obj("b", 1));
        assert!(s.finish().is_empty());
        s.put(Obj("c", 1));
        assert!(s.remove("ns", "c").is_some());

        // A relist (after a 410): until it completes, the old objects
        // still answer, the relisted ones are replaced in place.
        s.begin();
        s.put(Obj("b", 2));
        assert_eq!(names(&s), [("a", 1), ("b", 2)]);
        s.put(Obj("d", 2));
        let gone: Vec<_> = s.finish().iter().map(|o| o.0).collect();
        assert_eq!(gone, ["a"], "deleted while the watch was down");
        assert_eq!(names(&s), [("b", 2), ("d", 2)]);
        assert_eq!(s.get("ns", "d").map(|o| o.1), Some(2));
        assert!(s.get("ns", "a").is_none());
    }

    /// A pod-like object: namespace, name, UID, node, marks.
    #[derive(Debug, Clone)]
    struct Pod {
        namespace: &'static str,
        name: &'static str,
        uid: Option<String>,
        node: Option<&'static str>,
        gpus: bool,
        plugin: bool,
    }

    impl Projection for Pod {
        fn namespace(&self) -> &str {
            self.namespace
        }
        fn name(&self) -> &str {
            self.name
        }
        fn uid(&self) -> Option<&str> {
            self.uid.as_deref()
        }
        fn node(&self) -> Option<&str> {
            self.node
        }
        fn marked(&self, mark: Mark) -> bool {
            match mark {
                Mark::Gpus => self.gpus,
                Mark::DevicePlugin => self.plugin,
            }
        }
    }

    /// The `n`th UID, in the API server's form.
    fn uid(n: u32) -> String {
        format!("0000{n:04x}-1111-4222-8333-444455556666")
    }

    fn pod(name: &'static str, n: u32, node: &'static str) -> Pod {
        Pod {
            namespace: "ml",
            name,
            uid: Some(uid(n)),
            node: Some(node),
            gpus: false,
            plugin: false,
        }
    }

    /// Names of the objects in `v`, sorted.
    fn names_of(v: &[Arc<Pod>]) -> Vec<&'static str> {
        let mut n: Vec<_> = v.iter().map(|p| p.name).collect();
        n.sort_unstable();
        n
    }

    /// The name of the object with UID number `n`.
    fn by_uid(s: &Projections<Pod>, n: u32) -> Option<&'static str> {
        s.by_uid(&uid(n)).map(|p| p.name)
    }

    #[test]
    fn a_replaced_pod_that_moved_node_and_changed_uid_is_found_only_where_it_is_now() {
        let s = Projections::default();
        s.put(Pod {
            gpus: true,
            ..pod("train", 1, "n1")
        });
        s.put(pod("web", 2, "n1"));
        assert_eq!(by_uid(&s, 1), Some("train"));
        assert_eq!(names_of(&s.on_node("n1")), ["train", "web"]);
        assert_eq!(names_of(&s.marked(Mark::Gpus)), ["train"]);

        // Deleted and made again under the same name while the watch was
        // down: the relist replaces it with a new UID, on another node,
        // now a device-plugin pod without GPUs.
        s.put(Pod {
            plugin: true,
            ..pod("train", 3, "n2")
        });
        assert_eq!(by_uid(&s, 1), None, "the old UID is forgotten");
        assert_eq!(by_uid(&s, 3), Some("train"));
        assert_eq!(names_of(&s.on_node("n1")), ["web"]);
        assert_eq!(names_of(&s.on_node("n2")), ["train"]);
        assert!(s.marked(Mark::Gpus).is_empty());
        assert_eq!(names_of(&s.marked(Mark::DevicePlugin)), ["train"]);
        let found = s.find_marked(Mark::DevicePlugin, |p| p.node == Some("n2"));
        assert_eq!(found.map(|p| p.name), Some("train"));
        assert!(
            s.find_marked(Mark::DevicePlugin, |p| p.node == Some("n1"))
                .is_none()
        );

        // An update that keeps the UID: the index answers the new version.
        s.put(Pod {
            node: Some("n3"),
            ..pod("web", 2, "n1")
        });
        let web = s.by_uid(&uid(2)).expect("web by UID");
        assert_eq!(web.node, Some("n3"));
        assert!(s.on_node("n1").is_empty());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_removed_pod_leaves_every_index_and_its_namespace_count() {
        let s = Projections::default();
        s.put(Pod {
            gpus: true,
            plugin: true,
            ..pod("a", 1, "n1")
        });
        s.put(Pod {
            namespace: "kube-system",
            ..pod("b", 2, "n1")
        });
        let mut ns = s.namespaces();
        ns.sort();
        assert_eq!(ns, ["kube-system", "ml"]);
        let bytes = s.index_heap_bytes();
        assert!(bytes > 0);

        assert_eq!(s.remove("ml", "a").map(|p| p.name), Some("a"));
        assert_eq!(by_uid(&s, 1), None);
        assert_eq!(names_of(&s.on_node("n1")), ["b"]);
        assert!(s.marked(Mark::Gpus).is_empty());
        assert!(s.marked(Mark::DevicePlugin).is_empty());
        assert_eq!(s.namespaces(), ["kube-system"]);
        assert!(s.remove("ml", "a").is_none(), "removed once");
        assert!(s.remove("kube-system", "b").is_some());
        assert!(s.on_node("n1").is_empty());
        assert!(s.namespaces().is_empty());
    }

    #[test]
    fn the_relist_sweep_takes_what_it_removes_out_of_the_indexes() {
        let s = Projections::default();
        s.begin();
        s.put(Pod {
            gpus: true,
            ..pod("gone", 1, "n1")
        });
        s.put(pod("kept", 2, "n1"));
        s.put(pod("moved", 3, "n2"));
        assert!(s.finish().is_empty());

        // A relist after a 410: `gone` was deleted meanwhile, `moved`
        // rescheduled; until InitDone the old objects still answer.
        s.begin();
        s.put(pod("kept", 2, "n1"));
        s.put(pod("moved", 4, "n1"));
        assert_eq!(by_uid(&s, 1), Some("gone"));
        assert_eq!(names_of(&s.on_node("n1")), ["gone", "kept", "moved"]);
        let gone = s.finish();
        assert_eq!(names_of(&gone), ["gone"]);
        assert_eq!(by_uid(&s, 1), None);
        assert_eq!(by_uid(&s, 3), None);
        assert_eq!(by_uid(&s, 4), Some("moved"));
        assert_eq!(names_of(&s.on_node("n1")), ["kept", "moved"]);
        assert!(s.on_node("n2").is_empty());
        assert!(s.marked(Mark::Gpus).is_empty());
    }

    #[test]
    fn a_uuid_is_keyed_by_its_bits_and_any_other_uid_by_its_text() {
        assert_eq!(
            uid_key("00000001-0000-0000-0000-0000000000ff"),
            (1u128 << 96) | 0xff
        );
        assert_eq!(parse_uuid("00000001-0000-0000-0000-0000000000FF"), None);
        assert_eq!(parse_uuid("00000001-0000-0000-0000-0000000000f"), None);
        assert_eq!(parse_uuid("000000010-000-0000-0000-0000000000ff"), None);
        assert_ne!(uid_key("uid-web"), uid_key("uid-db"));

        // Non-UUID UIDs (test fixtures, other API servers) index too, and
        // a lookup never answers for another UID text.
        let s = Projections::default();
        s.put(Pod {
            uid: Some("uid-web".into()),
            ..pod("web", 0, "n1")
        });
        assert_eq!(s.by_uid("uid-web").map(|p| p.name), Some("web"));
        assert!(s.by_uid("uid-db").is_none());
        assert!(s.by_uid("").is_none());
    }

    #[test]
    fn under_churn_the_indexes_answer_what_a_walk_of_every_object_would() {
        const NAMES: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
        const NODES: [&str; 3] = ["n1", "n2", "n3"];
        let s = Projections::default();
        // A fixed xorshift sequence: puts (new, replaced, moved, UID
        // changed or kept), removes and relists.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let mut uids = 0;
        for step in 0..3000 {
            let name = NAMES[next(12) as usize];
            match next(10) {
                0 => {
                    s.remove("ml", name);
                }
                1 => {
                    s.begin();
                    for n in NAMES {
                        if next(2) == 0 {
                            continue;
                        }
                        uids += 1;
                        s.put(Pod {
                            gpus: next(2) == 0,
                            ..pod(n, uids, NODES[next(3) as usize])
                        });
                    }
                    s.finish();
                }
                _ => {
                    let kept = s.get("ml", name).filter(|_| next(2) == 0);
                    uids += 1;
                    s.put(Pod {
                        uid: kept.map_or_else(|| Some(uid(uids)), |p| p.uid.clone()),
                        node: (next(4) != 0).then(|| NODES[next(3) as usize]),
                        gpus: next(3) == 0,
                        plugin: next(5) == 0,
                        ..pod(name, 0, "n1")
                    });
                }
            }
            let all = s.state();
            for n in NODES {
                let want: Vec<_> = all.iter().filter(|p| p.node == Some(n)).cloned().collect();
                assert_eq!(
                    names_of(&s.on_node(n)),
                    names_of(&want),
                    "step {step} node {n}"
                );
            }
            let gpus: Vec<_> = all.iter().filter(|p| p.gpus).cloned().collect();
            assert_eq!(
                names_of(&s.marked(Mark::Gpus)),
                names_of(&gpus),
                "step {step}"
            );
            let plugins: Vec<_> = all.iter().filter(|p| p.plugin).cloned().collect();
            let marked = s.marked(Mark::DevicePlugin);
            assert_eq!(names_of(&marked), names_of(&plugins), "step {step}");
            for p in &all {
                let found = s.by_uid(p.uid.as_deref().unwrap_or_default());
                assert!(
                    found.is_some_and(|f| Arc::ptr_eq(&f, p)),
                    "step {step}: {p:?}"
                );
            }
            let live = (1..=uids).filter(|n| s.by_uid(&uid(*n)).is_some()).count();
            assert_eq!(live, all.len(), "step {step}: only live objects' UIDs");
            let mut ns = s.namespaces();
            ns.dedup();
            assert_eq!(ns.len(), usize::from(!all.is_empty()), "step {step}");
        }
    }
}
