//! The store of one watcher: its objects' projections by namespace and
//! name, updated in place by the watcher's events.
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

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::project::Projection;
use crate::sync::{read, write};

/// Objects by `namespace/name`.
#[derive(Debug)]
pub struct Projections<V> {
    inner: RwLock<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    objects: HashMap<Box<str>, (Arc<V>, u64)>,
    generation: u64,
}

impl<V> Default for Projections<V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(Inner {
                objects: HashMap::new(),
                generation: 0,
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

impl<V: Projection> Projections<V> {
    /// A (re)list starts: objects put from now on belong to the new list.
    pub fn begin(&self) {
        write(&self.inner).generation += 1;
    }

    /// Adds or replaces an object (from a list or a watch).
    pub fn put(&self, v: V) {
        let k = key(v.namespace(), v.name());
        let mut inner = write(&self.inner);
        let generation = inner.generation;
        inner.objects.insert(k, (Arc::new(v), generation));
    }

    /// The list is complete: removes and returns the objects it did not
    /// name.
    pub fn finish(&self) -> Vec<Arc<V>> {
        let mut inner = write(&self.inner);
        let generation = inner.generation;
        let mut gone = Vec::new();
        inner.objects.retain(|_, (v, g)| {
            let keep = *g == generation;
            if !keep {
                gone.push(v.clone());
            }
            keep
        });
        inner.objects.shrink_to_fit();
        gone
    }

    /// Removes an object; returns what was kept of it.
    pub fn remove(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        write(&self.inner)
            .objects
            .remove(&*key(namespace, name))
            .map(|(v, _)| v)
    }

    /// An object by namespace (empty: cluster-scoped) and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<V>> {
        read(&self.inner)
            .objects
            .get(&*key(namespace, name))
            .map(|(v, _)| v.clone())
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
}
