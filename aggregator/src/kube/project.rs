//! Compact projections of the watched Kubernetes objects: what the
//! diagnosis rules and the aggregator's joins read of each Pod, Node and
//! PersistentVolumeClaim, and nothing else, in a few hundred bytes.
//!
//! The mechanism: a `k8s-openapi` object is a tree of structs in which
//! every optional field costs its full size whether set or not, every
//! string is its own heap allocation, and the same image names, label
//! keys, namespaces, node names and field names are repeated in every pod
//! (15-24 kB per real pod in memory: `benches/src/bin/departed_mem.rs`).
//! A projection instead keeps
//!
//! - a **header** of the fields used to select pods without rebuilding
//!   them (namespace, name, UID, node, GPU request, owner, device-plugin
//!   match, readiness, container IDs -> names for the agent joins), the
//!   repeated ones as shared interned strings (`Arc<str>`); and
//! - a **body**: the object serialised as the API server's JSON would be,
//!   pruned to the paths of [`POD_KEEP`] / [`NODE_KEEP`] / [`PVC_KEEP`]
//!   (what `diagnose/src/rules/**`, `diagnose/src/k8s.rs`, `context.rs`
//!   and the aggregator read), and written as bytes: field names as small
//!   numbers of one process-wide table, repeated string values (image
//!   names, label values, resource quantities, reasons) as numbers of
//!   another, counted per use, and values that are unique by nature
//!   (names, UIDs, container IDs, times, messages) inline.
//!
//! The `k8s-openapi` object is rebuilt (deserialised from the bytes)
//! only for the pods an answer needs: the one an Explain or GetBundle is
//! about and its neighbours, the selected namespaces of a Diagnose.
//! `tests/projection.rs` in this crate proves that no rule reads a field
//! the projection drops: over every case of the diagnosis corpus, the
//! findings over projected-then-rebuilt objects equal those over the
//! originals.
//!
//! Why this and not a typed mirror of the ~80 fields the rules read: the
//! same saving (field names cost a byte, interned values 1-2), one place
//! to say what is kept (a list of paths, checked by the corpus test), and
//! a rule that reads a new field needs one line here, not a new struct.
//! Why not a compressor (zstd per object): a compressed pod still repeats
//! in every pod what is shared across pods, and the header must be read
//! without decompressing.
//!
//! The shared values are counted: a body takes its uses when encoded (or
//! cloned) and gives them back when dropped, so a value no projection
//! uses is forgotten at once and its number reused. The header's shared
//! strings (`Arc<str>`) are swept from their table when it has doubled
//! since the last sweep.

use std::cell::RefCell;
use std::collections::HashMap as StdHashMap;
use std::sync::{Arc, LazyLock, Mutex};

// The interning tables and the keep-tree are looked up once per string
// of every object listed: foldhash (seeded per process, as std's
// RandomState) rather than SipHash.
use foldhash::{HashMap, HashSet};

use gpuscope_diagnose::k8s;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use serde_json::Value;

use super::join::{self, Selector};
use super::store::Mark;
use super::watched::Watched;
use crate::sync::lock;

/// Why an object could not be projected or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The object did not serialise to JSON.
    #[error("projecting {what}: {source}")]
    Serialize {
        /// The object (`pod ml/trainer-0`).
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The kept fields did not deserialise back into the object.
    #[error("rebuilding {what}: {source}")]
    Rebuild {
        /// The object.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The object's JSON text does not decode.
    #[error("decoding a {what}: {source}")]
    Decode {
        /// What kind of object (`pod`).
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The compact bytes do not decode (a defect of this module).
    #[error("rebuilding {what}: the compact encoding is damaged at byte {at}")]
    Damaged {
        /// The object.
        what: String,
        /// Where decoding stopped.
        at: usize,
    },
}

/// The paths of a Pod that are kept, dotted, lists crossed transparently
/// (`spec.containers.name` is every container's name); a path keeps the
/// whole subtree under it. What reads them: the rules (`diagnose/src`),
/// the joins (`kube/join.rs`: container IDs, claims), the exporters (the
/// device-plugin pods' `Ready` condition).
pub const POD_KEEP: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.ownerReferences.kind",
    "metadata.ownerReferences.name",
    "metadata.ownerReferences.controller",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.terminationGracePeriodSeconds",
    "spec.schedulerName",
    "spec.schedulingGates",
    "spec.nodeSelector",
    "spec.affinity",
    "spec.tolerations",
    "spec.imagePullSecrets",
    "spec.volumes",
    "spec.containers.name",
    "spec.containers.image",
    "spec.containers.command",
    "spec.containers.args",
    "spec.containers.env.name",
    "spec.containers.env.valueFrom",
    "spec.containers.envFrom",
    "spec.containers.resources",
    "spec.containers.volumeMounts",
    "spec.containers.livenessProbe",
    "spec.containers.readinessProbe",
    "spec.containers.startupProbe",
    "spec.containers.terminationMessagePolicy",
    "spec.initContainers.name",
    "spec.initContainers.image",
    "spec.initContainers.command",
    "spec.initContainers.args",
    "spec.initContainers.env.name",
    "spec.initContainers.env.valueFrom",
    "spec.initContainers.envFrom",
    "spec.initContainers.resources",
    "spec.initContainers.volumeMounts",
    "spec.initContainers.livenessProbe",
    "spec.initContainers.readinessProbe",
    "spec.initContainers.startupProbe",
    "spec.initContainers.terminationMessagePolicy",
    "status.phase",
    "status.reason",
    "status.message",
    "status.qosClass",
    "status.startTime",
    "status.conditions.type",
    "status.conditions.status",
    "status.conditions.reason",
    "status.conditions.message",
    "status.conditions.lastTransitionTime",
    "status.containerStatuses.name",
    "status.containerStatuses.image",
    "status.containerStatuses.containerID",
    "status.containerStatuses.ready",
    "status.containerStatuses.started",
    "status.containerStatuses.restartCount",
    "status.containerStatuses.state",
    "status.containerStatuses.lastState",
    "status.initContainerStatuses.name",
    "status.initContainerStatuses.image",
    "status.initContainerStatuses.containerID",
    "status.initContainerStatuses.ready",
    "status.initContainerStatuses.started",
    "status.initContainerStatuses.restartCount",
    "status.initContainerStatuses.state",
    "status.initContainerStatuses.lastState",
];

/// The paths of a Node that are kept (see [`POD_KEEP`]): not its
/// `status.images` (the largest part of a node object) nor `nodeInfo`.
pub const NODE_KEEP: &[&str] = &[
    "metadata.name",
    "metadata.labels",
    "spec.taints",
    "spec.unschedulable",
    "status.capacity",
    "status.allocatable",
    "status.conditions.type",
    "status.conditions.status",
    "status.conditions.reason",
    "status.conditions.message",
    "status.conditions.lastTransitionTime",
];

/// The paths of a PersistentVolumeClaim that are kept (see [`POD_KEEP`]).
pub const PVC_KEEP: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.storageClassName",
    "status.phase",
];

/// The paths of a core v1 Event that are kept (see [`POD_KEEP`]): all but
/// its `metadata` bookkeeping (`managedFields`, `resourceVersion`).
pub const EVENT_KEEP: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.creationTimestamp",
    "involvedObject",
    "related",
    "type",
    "reason",
    "message",
    "action",
    "count",
    "firstTimestamp",
    "lastTimestamp",
    "eventTime",
    "series",
    "source",
    "reportingComponent",
    "reportingInstance",
];

/// Field names whose string values are unique to one object (or nearly):
/// kept inline rather than interned, where sharing cannot pay.
const UNIQUE: &[&str] = &[
    "uid",
    "containerID",
    "startedAt",
    "finishedAt",
    "lastTransitionTime",
    "creationTimestamp",
    "deletionTimestamp",
    "startTime",
    "message",
    "firstTimestamp",
    "lastTimestamp",
    "eventTime",
    "lastObservedTime",
];

/// Fields of `metadata` whose values are unique to one object.
const UNIQUE_IN_METADATA: &[&str] = &["name", "generateName"];

/// Strings at least this long are kept inline (long messages, scripts in
/// `args`): they are rarely shared and interning would copy them twice.
const INLINE_FROM: usize = 128;

// ------------------------------------------------------------ what is kept

/// A tree of kept paths.
#[derive(Debug)]
pub(crate) enum Keep {
    /// The whole subtree.
    All,
    /// These fields of an object (or of each object of a list).
    Fields(HashMap<&'static str, Keep>),
}

impl Keep {
    /// The tree of `paths` (dotted, as [`POD_KEEP`]).
    pub(crate) fn of(paths: &[&'static str]) -> Self {
        let mut root = Keep::Fields(HashMap::default());
        for path in paths {
            let mut at = &mut root;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                let Keep::Fields(fields) = at else { break };
                let last = parts.peek().is_none();
                let child = fields.entry(part).or_insert_with(|| {
                    if last {
                        Keep::All
                    } else {
                        Keep::Fields(HashMap::default())
                    }
                });
                if last {
                    *child = Keep::All;
                }
                at = child;
            }
        }
        root
    }

    /// `value` with only the kept paths. Objects and lists stay (emptied)
    /// where a kept path crosses them, so `Some(default)` stays `Some`.
    fn prune(&self, value: Value) -> Option<Value> {
        let Keep::Fields(fields) = self else {
            return Some(value);
        };
        match value {
            Value::Object(map) => Some(Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| {
                        let keep = fields.get(k.as_str())?;
                        Some((k, keep.prune(v)?))
                    })
                    .collect(),
            )),
            Value::Array(items) => Some(Value::Array(
                items.into_iter().filter_map(|v| self.prune(v)).collect(),
            )),
            _ => None,
        }
    }
}

pub(crate) static POD_TREE: LazyLock<Keep> = LazyLock::new(|| Keep::of(POD_KEEP));
pub(crate) static NODE_TREE: LazyLock<Keep> = LazyLock::new(|| Keep::of(NODE_KEEP));
pub(crate) static PVC_TREE: LazyLock<Keep> = LazyLock::new(|| Keep::of(PVC_KEEP));
static EVENT_TREE: LazyLock<Keep> = LazyLock::new(|| Keep::of(EVENT_KEEP));

// ---------------------------------------------------------------- interning

/// Field names (and map keys: label keys, resource names) by number. They
/// come from the API's schema and the cluster's label vocabulary, so the
/// table is bounded in practice and never swept.
#[derive(Default)]
struct Keys {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Keys {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }
}

static KEYS: LazyLock<Mutex<Keys>> = LazyLock::new(Mutex::default);

/// String values of the bodies by number, each counted once per use in a
/// body: a body takes its uses when encoded (or cloned) and gives them
/// back when dropped, and a value no body uses is forgotten at once (its
/// number is reused). A body refers to a value by its number (1-3 bytes),
/// not by a pointer.
#[derive(Default)]
struct Values {
    slots: Vec<Option<(Arc<str>, u32)>>,
    ids: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
}

impl Values {
    fn acquire(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            self.retain(id);
            return id;
        }
        let text: Arc<str> = s.into();
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some((text.clone(), 1));
                id
            }
            None => {
                self.slots.push(Some((text.clone(), 1)));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.ids.insert(text, id);
        id
    }

    fn retain(&mut self, id: u32) {
        if let Some(Some((_, uses))) = self.slots.get_mut(id as usize) {
            *uses += 1;
        }
    }

    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if let Some((text, uses)) = slot {
            *uses -= 1;
            if *uses == 0 {
                self.ids.remove(&**text);
                *slot = None;
                self.free.push(id);
            }
        }
    }

    fn text(&self, id: u32) -> Option<&str> {
        self.slots.get(id as usize)?.as_ref().map(|(t, _)| &**t)
    }
}

static VALUES: LazyLock<Mutex<Values>> = LazyLock::new(Mutex::default);

/// The header's shared strings (namespaces, node names, owners, container
/// names), forgotten when no projection holds them: the table is swept
/// when it has doubled since the last sweep.
struct Shared {
    set: HashSet<Arc<str>>,
    sweep_at: usize,
}

/// The header's table is swept when it holds this many strings, at least.
const SWEEP_FLOOR: usize = 4096;

static SHARED: LazyLock<Mutex<Shared>> = LazyLock::new(|| {
    Mutex::new(Shared {
        set: Default::default(),
        sweep_at: SWEEP_FLOOR,
    })
});

impl Shared {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.sweep_at = (self.set.len() * 2).max(SWEEP_FLOOR);
        }
        let a: Arc<str> = s.into();
        self.set.insert(a.clone());
        a
    }
}

/// `s` as the one shared copy of its text.
pub fn intern(s: &str) -> Arc<str> {
    lock(&SHARED).intern(s)
}

/// Distinct string values the bodies use now (for measurements and tests).
pub fn interned_values() -> usize {
    lock(&VALUES).ids.len()
}

// ---------------------------------------------------------------- encoding

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NEG: u8 = 4;
const FLOAT: u8 = 5;
const INLINE: u8 = 6;
const SHARED_TEXT: u8 = 7;
const LIST: u8 = 8;
const OBJECT: u8 = 9;

/// A pruned object as bytes, holding uses of the shared values it names.
#[derive(Default)]
pub struct Compact {
    bytes: Box<[u8]>,
}

impl std::fmt::Debug for Compact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compact")
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Clone for Compact {
    fn clone(&self) -> Self {
        let mut values = lock(&VALUES);
        for id in self.shared_ids() {
            values.retain(id);
        }
        Self {
            bytes: self.bytes.clone(),
        }
    }
}

impl Drop for Compact {
    fn drop(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        let ids: Vec<u32> = self.shared_ids().collect();
        let mut values = lock(&VALUES);
        for id in ids {
            values.release(id);
        }
    }
}

impl Compact {
    /// Heap bytes this holds (not counting the shared values' text).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn encode(value: &Value) -> Self {
        thread_local! {
            /// Reused for every encoding on the thread: the body is then
            /// allocated once, at its size.
            static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(4096));
        }
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let mut e = Encoder {
                bytes: std::mem::take(scratch),
                keys: lock(&KEYS),
                values: lock(&VALUES),
            };
            e.value(value, "", "");
            let Encoder { bytes, .. } = e;
            let body = Self {
                bytes: bytes.as_slice().into(),
            };
            *scratch = bytes;
            body
        })
    }

    /// The numbers of the shared values used, once per use.
    fn shared_ids(&self) -> impl Iterator<Item = u32> + '_ {
        let mut d = Walker {
            bytes: &self.bytes,
            at: 0,
        };
        let mut ids = Vec::new();
        d.skip(&mut ids);
        ids.into_iter()
    }
}

struct Encoder<'a> {
    bytes: Vec<u8>,
    keys: std::sync::MutexGuard<'a, Keys>,
    values: std::sync::MutexGuard<'a, Values>,
}

impl Encoder<'_> {
    fn varint(&mut self, mut n: u64) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.bytes.push(b);
                return;
            }
            self.bytes.push(b | 0x80);
        }
    }

    /// `value`, under the field `key` of the object under `parent` (for
    /// choosing inline or shared).
    fn value(&mut self, value: &Value, key: &str, parent: &str) {
        match value {
            Value::Null => self.bytes.push(NULL),
            Value::Bool(false) => self.bytes.push(FALSE),
            Value::Bool(true) => self.bytes.push(TRUE),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    self.bytes.push(UINT);
                    self.varint(u);
                } else if let Some(i) = n.as_i64() {
                    self.bytes.push(NEG);
                    self.varint((-(i + 1)) as u64);
                } else {
                    self.bytes.push(FLOAT);
                    let f = n.as_f64().unwrap_or(0.0);
                    self.bytes.extend_from_slice(&f.to_le_bytes());
                }
            }
            Value::String(s) => {
                let unique = UNIQUE.contains(&key)
                    || (parent == "metadata" && UNIQUE_IN_METADATA.contains(&key));
                if s.len() >= INLINE_FROM || unique {
                    self.bytes.push(INLINE);
                    self.varint(s.len() as u64);
                    self.bytes.extend_from_slice(s.as_bytes());
                } else {
                    let id = self.values.acquire(s);
                    self.bytes.push(SHARED_TEXT);
                    self.varint(u64::from(id));
                }
            }
            Value::Array(items) => {
                self.bytes.push(LIST);
                self.varint(items.len() as u64);
                for v in items {
                    self.value(v, key, parent);
                }
            }
            Value::Object(map) => {
                self.bytes.push(OBJECT);
                self.varint(map.len() as u64);
                for (k, v) in map {
                    let id = self.keys.id(k);
                    self.varint(u64::from(id));
                    self.value(v, k, key);
                }
            }
        }
    }
}

/// Reads the encoding's framing.
struct Walker<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Walker<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let raw = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(raw)
    }

    /// Skips one value, collecting the shared values' numbers it uses.
    fn skip(&mut self, ids: &mut Vec<u32>) -> Option<()> {
        match self.byte()? {
            NULL | FALSE | TRUE => {}
            UINT | NEG => {
                self.varint()?;
            }
            FLOAT => {
                self.take(8)?;
            }
            INLINE => {
                let n = self.len()?;
                self.take(n)?;
            }
            SHARED_TEXT => ids.push(u32::try_from(self.varint()?).ok()?),
            LIST => {
                for _ in 0..self.len()? {
                    self.skip(ids)?;
                }
            }
            OBJECT => {
                for _ in 0..self.len()? {
                    self.varint()?;
                    self.skip(ids)?;
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// Deserialises an object straight from the compact bytes, with no
/// `serde_json::Value` in between (what [`rebuild`] does: an explain of a
/// pod that waits for a node rebuilds every GPU pod of the cluster). It
/// reads as `serde_json`'s `Value` deserialiser reads the decoded value:
/// `deserialize_any` visits what the bytes hold, an option is `None` on
/// null, a newtype is its content. A structural fault is recorded in
/// `damaged` (where it was) and ends the deserialisation.
struct Reader<'a> {
    walk: Walker<'a>,
    keys: &'a [Arc<str>],
    values: &'a Values,
    damaged: Option<usize>,
}

impl Reader<'_> {
    fn damaged<T>(&mut self) -> Result<T, serde_json::Error> {
        self.damaged.get_or_insert(self.walk.at);
        Err(serde::de::Error::custom(format!(
            "the compact encoding is damaged at byte {}",
            self.walk.at
        )))
    }

    fn len(&mut self) -> Result<usize, serde_json::Error> {
        match self.walk.len() {
            Some(n) => Ok(n),
            None => self.damaged(),
        }
    }
}

impl<'de> serde::Deserializer<'de> for &mut Reader<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        let Some(tag) = self.walk.byte() else {
            return self.damaged();
        };
        match tag {
            NULL => v.visit_unit(),
            FALSE => v.visit_bool(false),
            TRUE => v.visit_bool(true),
            UINT | NEG => {
                let Some(n) = self.walk.varint() else {
                    return self.damaged();
                };
                if tag == UINT {
                    v.visit_u64(n)
                } else {
                    match i64::try_from(n) {
                        Ok(i) => v.visit_i64(-i - 1),
                        Err(_) => self.damaged(),
                    }
                }
            }
            FLOAT => match self.walk.take(8).and_then(|b| b.try_into().ok()) {
                Some(b) => {
                    let f = f64::from_le_bytes(b);
                    // As the `Value` path: a non-finite float was null.
                    if f.is_finite() {
                        v.visit_f64(f)
                    } else {
                        v.visit_unit()
                    }
                }
                None => self.damaged(),
            },
            INLINE => {
                let n = self.len()?;
                match self.walk.take(n).and_then(|b| std::str::from_utf8(b).ok()) {
                    Some(text) => v.visit_str(text),
                    None => self.damaged(),
                }
            }
            SHARED_TEXT => {
                let text = self
                    .walk
                    .varint()
                    .and_then(|id| u32::try_from(id).ok())
                    .and_then(|id| self.values.text(id));
                match text {
                    Some(text) => v.visit_str(text),
                    None => self.damaged(),
                }
            }
            LIST => {
                let left = self.len()?;
                v.visit_seq(Items { r: self, left })
            }
            OBJECT => {
                let left = self.len()?;
                v.visit_map(Items { r: self, left })
            }
            _ => self.damaged(),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        if self.walk.bytes.get(self.walk.at) == Some(&NULL) {
            self.walk.at += 1;
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// The items of a list, or the entries of an object, left to read.
struct Items<'r, 'a> {
    r: &'r mut Reader<'a>,
    left: usize,
}

impl<'de> serde::de::SeqAccess<'de> for Items<'_, '_> {
    type Error = serde_json::Error;

    fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> serde::de::MapAccess<'de> for Items<'_, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let id = self.r.len()?;
        let Some(key) = self.r.keys.get(id) else {
            return self.r.damaged();
        };
        seed.deserialize(serde::de::value::StrDeserializer::<serde_json::Error>::new(
            key,
        ))
        .map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        seed.deserialize(&mut *self.r)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// `object` serialised and pruned to `keep`.
fn pruned<K: serde::Serialize>(
    object: &K,
    keep: &Keep,
    what: impl FnOnce() -> String,
) -> Result<Value, ProjectError> {
    let value = serde_json::to_value(object).map_err(|source| ProjectError::Serialize {
        what: what(),
        source,
    })?;
    Ok(keep.prune(value).unwrap_or(Value::Null))
}

/// A watched object decoded from its JSON text.
fn decode_json<K>(json: &str, what: &'static str) -> Result<Watched<K>, ProjectError>
where
    Watched<K>: serde::de::DeserializeOwned,
{
    serde_json::from_str(json).map_err(|source| ProjectError::Decode { what, source })
}

/// The text of `field` of the object `v`.
fn text<'v>(v: Option<&'v Value>, field: &str) -> Option<&'v str> {
    v?.get(field)?.as_str()
}

/// The items of the list `field` of the object `v` (none when absent).
fn list<'v>(v: Option<&'v Value>, field: &str) -> &'v [Value] {
    v.and_then(|v| v.get(field)?.as_array())
        .map_or(&[], Vec::as_slice)
}

/// The object `body` holds.
fn rebuild<K: serde::de::DeserializeOwned>(
    body: &Compact,
    what: impl Fn() -> String,
) -> Result<K, ProjectError> {
    let keys = lock(&KEYS);
    let values = lock(&VALUES);
    let mut r = Reader {
        walk: Walker {
            bytes: &body.bytes,
            at: 0,
        },
        keys: &keys.names,
        values: &values,
        damaged: None,
    };
    let object = K::deserialize(&mut r);
    let damaged = match r.damaged {
        Some(at) => Some(at),
        None if object.is_ok() && r.walk.at != body.bytes.len() => Some(r.walk.at),
        None => None,
    };
    drop((keys, values));
    if let Some(at) = damaged {
        return Err(ProjectError::Damaged { what: what(), at });
    }
    object.map_err(|source| ProjectError::Rebuild {
        what: what(),
        source,
    })
}

// ---------------------------------------------------------------- objects

/// What a store keys its objects by: namespace (empty for cluster-scoped
/// objects) and name; and what its indexes ([`super::store`]) know them
/// by, none by default.
pub trait Projection: Send + Sync + 'static {
    /// The namespace, empty for a cluster-scoped object.
    fn namespace(&self) -> &str;
    /// The name.
    fn name(&self) -> &str;
    /// The UID, for the by-UID index; `None`: not indexed by UID.
    fn uid(&self) -> Option<&str> {
        None
    }
    /// The node it is bound to, for the by-node index.
    fn node(&self) -> Option<&str> {
        None
    }
    /// Whether it belongs in the set of `mark`.
    fn marked(&self, _mark: Mark) -> bool {
        false
    }
}

/// A pod's projection.
#[derive(Debug, Clone)]
pub struct PodView {
    namespace: Arc<str>,
    name: Box<str>,
    uid: Option<Box<str>>,
    node: Option<Arc<str>>,
    owner: Option<Arc<str>>,
    gpus: u32,
    device_plugin: bool,
    ready: bool,
    /// Bare container ID -> container name, current and previous
    /// instances (`join::container_names`), sorted by ID.
    containers: Box<[(ContainerKey, Arc<str>)]>,
    body: Compact,
}

impl Projection for PodView {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn uid(&self) -> Option<&str> {
        PodView::uid(self)
    }
    fn node(&self) -> Option<&str> {
        PodView::node(self)
    }
    fn marked(&self, mark: Mark) -> bool {
        match mark {
            Mark::Gpus => self.gpus > 0,
            Mark::DevicePlugin => self.device_plugin,
        }
    }
}

impl PodView {
    /// Projects a pod; `selectors` say which pods are GPU device-plugin
    /// pods.
    pub fn project(pod: &Pod, selectors: &[Selector]) -> Result<Self, ProjectError> {
        let what = || format!("pod {}", k8s::pod_name(pod));
        Ok(Self::of_pruned(&pruned(pod, &POD_TREE, what)?, selectors))
    }

    /// Projects a pod from its JSON text (as the API server sends it),
    /// through the watchers' decoding ([`Watched`]): for tests and tools.
    pub fn decode(json: &str, selectors: &[Selector]) -> Result<Self, ProjectError> {
        let w: Watched<Pod> = decode_json(json, "pod")?;
        Ok(Self::of_pruned(w.body(), selectors))
    }

    /// Projects a pod already pruned to [`POD_KEEP`] (a [`Watched`] pod's
    /// body): the header is read from the kept fields, as `k8s::*` and
    /// `join::*` read them of the pod object.
    pub fn of_pruned(pod: &Value, selectors: &[Selector]) -> Self {
        let metadata = pod.get("metadata");
        let spec = pod.get("spec");
        let status = pod.get("status");
        let ready = list(status, "conditions").iter().any(|c| {
            text(Some(c), "type") == Some("Ready") && text(Some(c), "status") == Some("True")
        });
        let statuses = list(status, "initContainerStatuses")
            .iter()
            .chain(list(status, "containerStatuses"))
            .map(|c| {
                let terminated = c.get("lastState").and_then(|s| s.get("terminated"));
                (
                    text(Some(c), "name").unwrap_or(""),
                    text(Some(c), "containerID"),
                    text(terminated, "containerID"),
                )
            });
        let mut containers: Vec<(ContainerKey, Arc<str>)> = join::container_names_of(statuses)
            .into_iter()
            .map(|(id, name)| (ContainerKey::of(&id), intern(&name)))
            .collect();
        containers.sort();
        // As `k8s::pod_request_amount`: the app containers' sum or the
        // largest init container's, a limit standing for a missing request.
        let gpus_of = |c: &Value| {
            let resources = c.get("resources");
            let amount = |which: &str| {
                resources
                    .and_then(|r| r.get(which)?.get(k8s::NVIDIA_GPU)?.as_str())
                    .and_then(k8s::quantity_text)
            };
            amount("requests")
                .or_else(|| amount("limits"))
                .unwrap_or(0.0)
        };
        let app: f64 = list(spec, "containers").iter().map(gpus_of).sum();
        let init = list(spec, "initContainers")
            .iter()
            .map(gpus_of)
            .fold(0.0, f64::max);
        let refs = list(metadata, "ownerReferences");
        let owner = refs
            .iter()
            .find(|o| o.get("controller") == Some(&Value::Bool(true)))
            .or(refs.first())
            .map(|o| {
                intern(&k8s::owner_text(
                    text(Some(o), "kind").unwrap_or(""),
                    text(Some(o), "name").unwrap_or(""),
                ))
            });
        let labels = metadata.and_then(|m| m.get("labels"));
        Self {
            namespace: intern(text(metadata, "namespace").unwrap_or("default")),
            name: text(metadata, "name").unwrap_or("").into(),
            uid: text(metadata, "uid").map(Into::into),
            node: text(spec, "nodeName").map(intern),
            owner,
            gpus: u32::try_from(app.max(init) as u64).unwrap_or(u32::MAX),
            device_plugin: selectors
                .iter()
                .any(|s| s.matches_labels(|k| text(labels, k))),
            ready,
            containers: containers.into_boxed_slice(),
            body: Compact::encode(pod),
        }
    }

    /// The pod object, with every field the rules read.
    pub fn pod(&self) -> Result<Pod, ProjectError> {
        rebuild(&self.body, || {
            format!("pod {}/{}", self.namespace, self.name)
        })
    }

    /// The pod object; `None`, with a warning, when it does not rebuild.
    pub fn rebuilt(&self) -> Option<Pod> {
        self.pod()
            .inspect_err(|e| tracing::warn!(error = %e, "A projected pod does not rebuild."))
            .ok()
    }

    /// The pod's UID.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The node it is bound to.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Its controlling owner as `Kind/name` (see `k8s::owner`).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// `namespace/name`.
    pub fn pod_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// GPUs it asks for (`k8s::gpu_request`).
    pub fn gpu_request(&self) -> u64 {
        u64::from(self.gpus)
    }

    /// Whether it is a GPU device-plugin pod (by the selectors it was
    /// projected with).
    pub fn is_device_plugin(&self) -> bool {
        self.device_plugin
    }

    /// Whether its `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The name of the container with this bare ID (current or previous
    /// instance).
    pub fn container_name(&self, id: &str) -> Option<&str> {
        let key = ContainerKey::of(id);
        self.containers
            .binary_search_by(|(k, _)| k.cmp(&key))
            .ok()
            .map(|at| &*self.containers[at].1)
    }

    /// Container ID -> name, as `join::container_names` gives it.
    pub fn container_names(&self) -> StdHashMap<String, String> {
        self.containers
            .iter()
            .map(|(id, n)| (id.to_string(), n.to_string()))
            .collect()
    }

    /// The pod as people name it.
    pub fn identity(&self) -> join::PodIdentity {
        join::PodIdentity {
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
            owner: self.owner.as_deref().map(str::to_owned),
            node: self.node.as_deref().map(str::to_owned),
        }
    }

    /// Heap bytes this projection holds, not counting the shared strings'
    /// text.
    pub fn heap_bytes(&self) -> usize {
        self.name.len()
            + self.uid.as_ref().map_or(0, |u| u.len())
            + self
                .containers
                .iter()
                .map(|(id, _)| id.heap_bytes() + std::mem::size_of::<(ContainerKey, Arc<str>)>())
                .sum::<usize>()
            + self.body.heap_bytes()
    }
}

/// A bare container ID: the 32 bytes of the runtimes' 64 hex digits, or
/// the text of any other form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ContainerKey {
    Hex([u8; 32]),
    Text(Box<str>),
}

impl ContainerKey {
    fn of(id: &str) -> Self {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let b = id.as_bytes();
        let mut out = [0u8; 32];
        if b.len() == 64 {
            let all = out.iter_mut().enumerate().all(|(i, o)| {
                match (digit(b[2 * i]), digit(b[2 * i + 1])) {
                    (Some(h), Some(l)) => {
                        *o = h << 4 | l;
                        true
                    }
                    _ => false,
                }
            });
            if all {
                return Self::Hex(out);
            }
        }
        Self::Text(id.into())
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Self::Hex(_) => 0,
            Self::Text(t) => t.len(),
        }
    }
}

impl std::fmt::Debug for ContainerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for ContainerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hex(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// A node's projection.
#[derive(Debug, Clone)]
pub struct NodeView {
    name: Arc<str>,
    /// `nvidia.com/*` capacity and allocatable, as written.
    capacity: Box<[(Arc<str>, Arc<str>)]>,
    allocatable: Box<[(Arc<str>, Arc<str>)]>,
    body: Compact,
}

impl Projection for NodeView {
    fn namespace(&self) -> &str {
        ""
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl NodeView {
    /// Projects a node.
    pub fn project(node: &Node) -> Result<Self, ProjectError> {
        let name = node.metadata.name.as_deref().unwrap_or("");
        Ok(Self::of_pruned(&pruned(node, &NODE_TREE, || {
            format!("node {name}")
        })?))
    }

    /// Projects a node from its JSON text (see [`PodView::decode`]).
    pub fn decode(json: &str) -> Result<Self, ProjectError> {
        let w: Watched<Node> = decode_json(json, "node")?;
        Ok(Self::of_pruned(w.body()))
    }

    /// Projects a node already pruned to [`NODE_KEEP`].
    pub fn of_pruned(node: &Value) -> Self {
        let status = node.get("status");
        let nvidia = |field: &str| {
            status
                .and_then(|s| s.get(field)?.as_object())
                .into_iter()
                .flatten()
                .filter(|(r, _)| r.starts_with("nvidia.com/"))
                .filter_map(|(r, q)| Some((intern(r), intern(q.as_str()?))))
                .collect::<Vec<_>>()
                .into_boxed_slice()
        };
        let name = text(node.get("metadata"), "name").unwrap_or("");
        Self {
            name: intern(name),
            capacity: nvidia("capacity"),
            allocatable: nvidia("allocatable"),
            body: Compact::encode(node),
        }
    }

    /// The node object, with every field the rules read.
    pub fn node(&self) -> Result<Node, ProjectError> {
        rebuild(&self.body, || format!("node {}", self.name))
    }

    /// The node object; `None`, with a warning, when it does not rebuild.
    pub fn rebuilt(&self) -> Option<Node> {
        self.node()
            .inspect_err(|e| tracing::warn!(error = %e, "A projected node does not rebuild."))
            .ok()
    }

    /// `nvidia.com/*` capacity: (resource, quantity as written).
    pub fn gpu_capacity(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.capacity
    }

    /// `nvidia.com/*` allocatable: (resource, quantity as written).
    pub fn gpu_allocatable(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.allocatable
    }

    /// Its `nvidia.com/gpu` capacity, as a count.
    pub fn gpus(&self) -> Option<u64> {
        self.capacity
            .iter()
            .find(|(r, _)| &**r == k8s::NVIDIA_GPU)
            .and_then(|(_, q)| k8s::quantity_text(q))
            .map(|v| v as u64)
    }
}

/// A PersistentVolumeClaim's projection.
#[derive(Debug, Clone)]
pub struct PvcView {
    namespace: Arc<str>,
    name: Box<str>,
    body: Compact,
}

impl Projection for PvcView {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl PvcView {
    /// Projects a claim.
    pub fn project(pvc: &PersistentVolumeClaim) -> Result<Self, ProjectError> {
        let ns = pvc.metadata.namespace.as_deref().unwrap_or("default");
        let name = pvc.metadata.name.as_deref().unwrap_or("");
        Ok(Self::of_pruned(&pruned(pvc, &PVC_TREE, || {
            format!("pvc {ns}/{name}")
        })?))
    }

    /// Projects a claim from its JSON text (see [`PodView::decode`]).
    pub fn decode(json: &str) -> Result<Self, ProjectError> {
        let w: Watched<PersistentVolumeClaim> = decode_json(json, "pvc")?;
        Ok(Self::of_pruned(w.body()))
    }

    /// Projects a claim already pruned to [`PVC_KEEP`].
    pub fn of_pruned(pvc: &Value) -> Self {
        let metadata = pvc.get("metadata");
        Self {
            namespace: intern(text(metadata, "namespace").unwrap_or("default")),
            name: text(metadata, "name").unwrap_or("").into(),
            body: Compact::encode(pvc),
        }
    }

    /// The claim object, with every field the rules read.
    pub fn pvc(&self) -> Result<PersistentVolumeClaim, ProjectError> {
        rebuild(&self.body, || {
            format!("pvc {}/{}", self.namespace, self.name)
        })
    }

    /// The claim object; `None`, with a warning, when it does not rebuild.
    pub fn rebuilt(&self) -> Option<PersistentVolumeClaim> {
        self.pvc()
            .inspect_err(|e| tracing::warn!(error = %e, "A projected claim does not rebuild."))
            .ok()
    }
}

/// A core v1 Event's projection: its name (an updated event replaces
/// itself), its time for ordering, and the body.
#[derive(Debug, Clone)]
pub struct EventView {
    name: Box<str>,
    last: Option<gpuscope_model::Timestamp>,
    body: Compact,
}

impl EventView {
    /// Projects an event.
    pub fn project(event: &Event) -> Result<Self, ProjectError> {
        let name = event.metadata.name.as_deref().unwrap_or("");
        let body = Compact::encode(&pruned(event, &EVENT_TREE, || format!("event {name}"))?);
        Ok(Self {
            name: name.into(),
            last: k8s::event_last_time(event),
            body,
        })
    }

    /// The event's `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it last happened (`k8s::event_last_time`).
    pub fn last(&self) -> Option<gpuscope_model::Timestamp> {
        self.last
    }

    /// The event object; `None`, with a warning, when it does not rebuild.
    pub fn rebuilt(&self) -> Option<Event> {
        rebuild(&self.body, || format!("event {}", self.name))
            .inspect_err(|e| tracing::warn!(error = %e, "A projected event does not rebuild."))
            .ok()
    }

    /// Heap bytes this projection holds, not counting the shared strings'
    /// text.
    pub fn heap_bytes(&self) -> usize {
        self.name.len() + self.body.heap_bytes()
    }
}

/// `object` through a projection that keeps only `paths` (dotted, as
/// [`POD_KEEP`]): for proving what each kept path is needed for.
pub fn keeping<K>(object: &K, paths: &[&'static str]) -> Result<K, ProjectError>
where
    K: serde::Serialize + serde::de::DeserializeOwned,
{
    let body = Compact::encode(&pruned(object, &Keep::of(paths), || "an object".into())?);
    rebuild(&body, || "an object".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "trainer-0", "namespace": "ml", "uid": "u-1",
                "labels": {"app": "trainer"},
                "annotations": {"big": "x".repeat(4000)},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train",
                    "uid": "j-1", "controller": true}]},
            "spec": {"nodeName": "gpu-1", "containers": [{"name": "main", "image": "trainer:1",
                "imagePullPolicy": "Always",
                "env": [{"name": "A", "value": "secret-ish"}],
                "resources": {"limits": {"nvidia.com/gpu": "2", "memory": "16Gi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}],
                "containerStatuses": [{"name": "main", "image": "trainer:1", "imageID": "sha256:abc",
                    "ready": true, "restartCount": 3, "containerID": "containerd://abc",
                    "lastState": {"terminated": {"exitCode": -1, "reason": "OOMKilled",
                        "containerID": "containerd://old"}}}]}
        }))
        .expect("pod")
    }

    #[test]
    fn the_header_reads_without_rebuilding_and_the_body_keeps_what_is_kept() {
        let v = PodView::project(&pod(), &[]).expect("project");
        assert_eq!(
            (v.namespace(), v.name(), v.uid()),
            ("ml", "trainer-0", Some("u-1"))
        );
        assert_eq!(v.node(), Some("gpu-1"));
        assert_eq!(v.owner(), Some("Job/train"));
        assert_eq!(v.gpu_request(), 2);
        assert!(v.is_ready());
        assert_eq!(v.container_name("abc"), Some("main"));
        assert_eq!(v.container_name("old"), Some("main"));
        assert_eq!(v.container_name("nope"), None);
        let hex = "39d8cfb386a2eccdb4ec5528d8e700b28ae89d80fb459815731b6884c3a22c4c";
        assert_eq!(ContainerKey::of(hex).to_string(), hex);
        assert!(matches!(ContainerKey::of(hex), ContainerKey::Hex(_)));
        assert_eq!(ContainerKey::of("abc").to_string(), "abc");

        let p = v.pod().expect("rebuild");
        assert_eq!(k8s::pod_name(&p), "ml/trainer-0");
        assert_eq!(k8s::gpu_request(&p), 2);
        let cs = &k8s::status(&p)
            .container_statuses
            .as_ref()
            .expect("statuses")[0];
        assert_eq!(cs.restart_count, 3);
        let t = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!((t.exit_code, t.reason.as_deref()), (-1, Some("OOMKilled")));
        // Dropped: what no rule reads.
        assert!(p.metadata.annotations.is_none());
        assert!(k8s::status(&p).pod_ip.is_none());
        assert!(cs.image_id.is_empty());
        let c = &k8s::spec(&p).containers[0];
        assert!(c.image_pull_policy.is_none());
        let env = c.env.as_ref().expect("env");
        assert_eq!((env[0].name.as_str(), env[0].value.as_deref()), ("A", None));
        assert!(v.heap_bytes() < 1024, "{} bytes", v.heap_bytes());
    }

    #[test]
    fn shared_values_are_one_copy_and_forgotten_with_their_last_holder() {
        let a = PodView::project(&pod(), &[]).expect("a");
        let b = PodView::project(&pod(), &[]).expect("b");
        assert!(Arc::ptr_eq(&a.namespace, &b.namespace));
        let text = "a-value-only-this-test-uses";
        let held = intern(text);
        assert!(Arc::ptr_eq(&held, &intern(text)));
        drop(held);
        {
            let mut shared = lock(&SHARED);
            shared.sweep_at = 0;
            shared.intern("something-else-of-this-test");
            assert!(!shared.set.contains(text), "a string nobody holds is swept");
            shared.sweep_at = SWEEP_FLOOR;
        }

        // A body value lives as long as a body uses it.
        let image = "an-image-only-this-test-uses:1";
        let mut p = pod();
        p.spec.as_mut().expect("spec").containers[0].image = Some(image.into());
        let known = || lock(&VALUES).ids.contains_key(image);
        let v = PodView::project(&p, &[]).expect("project");
        let copy = v.clone();
        assert!(known());
        drop(v);
        assert!(known(), "the clone still uses it");
        assert_eq!(
            k8s::spec(&copy.pod().expect("rebuild")).containers[0]
                .image
                .as_deref(),
            Some(image)
        );
        drop(copy);
        assert!(!known(), "forgotten with its last use");
    }

    #[test]
    fn a_damaged_body_is_an_error_naming_the_object() {
        let mut v = PodView::project(&pod(), &[]).expect("project");
        let mut bytes = v.body.bytes.to_vec();
        bytes.truncate(bytes.len() / 2);
        v.body.bytes = bytes.into_boxed_slice();
        let e = v.pod().expect_err("damaged");
        assert!(e.to_string().contains("pod ml/trainer-0"), "{e}");
    }
}
