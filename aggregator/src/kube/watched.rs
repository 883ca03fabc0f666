//! The type the watchers decode Pods, Nodes and PersistentVolumeClaims
//! into: the object's JSON pruned to the kept paths of its projection
//! ([`super::project::POD_KEEP`] ...) while it is parsed, and nothing else.
//!
//! The mechanism: kube-runtime's watcher decodes each watch event line
//! (`{"type":"ADDED","object":{...}}`, the API server writes the type
//! first) with `serde_json::from_str::<WatchEvent<K>>`, and a list page
//! into `ObjectList<K>`; of `K` itself it needs `Deserialize`, `Clone`,
//! `Debug` and [`kube::Resource`] (the API path, and
//! `metadata.resourceVersion` of each object to resume the watch from).
//! Decoding into `k8s_openapi`'s `Pod` builds every field (managedFields,
//! env values, probes, annotations: 5-10 kB of JSON a pod, each string its
//! own allocation), which the projection then serialised back to a
//! `serde_json::Value`, pruned and encoded: most of the aggregator's CPU
//! while it lists a large cluster. [`Watched`] instead drives the JSON
//! parser with the projection's tree of kept paths
//! ([`super::project::Keep`]): a field no kept path names is skipped by
//! the parser (`serde::de::IgnoredAny`: scanned, never allocated), a kept
//! one is built as the `serde_json::Value` the projection encodes.
//! `null` members are dropped, as `k8s_openapi`'s serialisation omits an
//! unset field, so the value equals the one pruned from the typed object
//! (`tests/projection.rs` proves it over the diagnosis corpus).
//!
//! Of the metadata, [`Watched`] keeps for kube-runtime only
//! `resourceVersion` (in [`kube::Resource::meta`]); the rest of its
//! metadata is what the body keeps.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::project::{Keep, NODE_KEEP, POD_KEEP, PVC_KEEP};

/// A watched object of kind `K` (`Pod`, `Node`, `PersistentVolumeClaim`)
/// as its projection keeps it.
#[derive(Clone)]
pub struct Watched<K> {
    meta: ObjectMeta,
    body: Value,
    kind: PhantomData<fn() -> K>,
}

impl<K> Watched<K> {
    /// The object pruned to the kept paths of its projection.
    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl<K> fmt::Debug for Watched<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metadata = self.body.get("metadata");
        let field = |k: &str| metadata.and_then(|m| m.get(k)?.as_str());
        f.debug_struct("Watched")
            .field("namespace", &field("namespace"))
            .field("name", &field("name"))
            .field("resource_version", &self.meta.resource_version)
            .finish_non_exhaustive()
    }
}

impl<K> kube::Resource for Watched<K>
where
    K: kube::Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// The field kube-runtime reads of each object, kept beside the body.
const RESOURCE_VERSION: &str = "metadata.resourceVersion";

/// A projection's kept paths and the resource version.
fn tree(keep: &[&'static str]) -> Keep {
    let mut paths = keep.to_vec();
    paths.push(RESOURCE_VERSION);
    Keep::of(&paths)
}

static POD: LazyLock<Keep> = LazyLock::new(|| tree(POD_KEEP));
static NODE: LazyLock<Keep> = LazyLock::new(|| tree(NODE_KEEP));
static PVC: LazyLock<Keep> = LazyLock::new(|| tree(PVC_KEEP));

impl<K> Watched<K> {
    /// Decodes an object, keeping `keep`; its resource version moves
    /// from the body to [`kube::Resource::meta`].
    fn decode<'de, D: Deserializer<'de>>(d: D, keep: &Keep) -> Result<Self, D::Error> {
        let mut body = Pruning(keep)
            .deserialize(d)?
            .filter(Value::is_object)
            .ok_or_else(|| de::Error::custom("the object is not a JSON object"))?;
        let resource_version = body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("resourceVersion"))
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            });
        Ok(Self {
            meta: ObjectMeta {
                resource_version,
                ..ObjectMeta::default()
            },
            body,
            kind: PhantomData,
        })
    }
}

macro_rules! watched_kind {
    ($kind:ty, $tree:ident) => {
        impl<'de> serde::Deserialize<'de> for Watched<$kind> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::decode(d, &$tree)
            }
        }
    };
}

watched_kind!(Pod, POD);
watched_kind!(Node, NODE);
watched_kind!(PersistentVolumeClaim, PVC);

/// Decodes one JSON value keeping the paths of a [`Keep`]: `None` where
/// nothing is kept (a scalar where the tree expects an object, or
/// `null`).
struct Pruning<'k>(&'k Keep);

impl Pruning<'_> {
    fn leaf(&self, v: Value) -> Option<Value> {
        matches!(self.0, Keep::All).then_some(v)
    }
}

impl<'de> DeserializeSeed<'de> for Pruning<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Pruning<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.leaf(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.leaf(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.leaf(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.leaf(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match self.0 {
            Keep::All => Some(Value::String(v.to_owned())),
            Keep::Fields(_) => None,
        })
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.leaf(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(Pruning(self.0))? {
            match (item, self.0) {
                (Some(v), _) => items.push(v),
                // A null list item stays where the whole list is kept.
                (None, Keep::All) => items.push(Value::Null),
                (None, Keep::Fields(_)) => {}
            }
        }
        Ok(Some(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        match self.0 {
            Keep::All => {
                while let Some(key) = map.next_key::<String>()? {
                    if let Some(v) = map.next_value_seed(Pruning(self.0))? {
                        out.insert(key, v);
                    }
                }
            }
            Keep::Fields(fields) => {
                while let Some(field) = map.next_key_seed(Field(fields))? {
                    match field {
                        Some((name, keep)) => {
                            if let Some(v) = map.next_value_seed(Pruning(keep))? {
                                out.insert(name.to_owned(), v);
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
            }
        }
        Ok(Some(Value::Object(out)))
    }
}

/// A field name looked up in the kept fields without allocating: the
/// name and its subtree when kept.
struct Field<'k>(&'k foldhash::HashMap<&'static str, Keep>);

impl<'de, 'k> DeserializeSeed<'de> for Field<'k> {
    type Value = Option<(&'static str, &'k Keep)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'k> Visitor<'de> for Field<'k> {
    type Value = Option<(&'static str, &'k Keep)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.get_key_value(v).map(|(k, keep)| (*k, keep)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    #[test]
    fn unkept_fields_and_nulls_are_skipped_and_the_resource_version_is_kept() {
        let json = r#"{"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"trainer-0","namespace":"ml","resourceVersion":"42",
                "deletionTimestamp":null,
                "managedFields":[{"manager":"kubelet","fieldsV1":{"f:status":{}}}],
                "annotations":{"big":"x"},"labels":{"app":"trainer"}},
            "spec":{"containers":[{"name":"main","image":"i:1",
                "env":[{"name":"A","value":"secret-ish"},{"name":"B","valueFrom":{"secretKeyRef":{"name":"s","key":"k","optional":null}}}],
                "resources":{"limits":{"nvidia.com/gpu":"2"}}}],
                "nodeName":"gpu-1","dnsPolicy":"ClusterFirst"},
            "status":{"phase":"Running","podIP":"10.0.0.1",
                "conditions":[{"type":"Ready","status":"True","lastProbeTime":null}]}}"#;
        let w: Watched<Pod> = serde_json::from_str(json).expect("decodes");
        assert_eq!(w.resource_version().as_deref(), Some("42"));
        assert_eq!(
            w.body(),
            &serde_json::json!({
                "metadata": {"name": "trainer-0", "namespace": "ml", "labels": {"app": "trainer"}},
                "spec": {"containers": [{"name": "main", "image": "i:1",
                    "env": [{"name": "A"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
                    "nodeName": "gpu-1"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
        assert!(format!("{w:?}").contains("trainer-0"));
    }

    #[test]
    fn what_is_not_an_object_is_an_error() {
        let e = serde_json::from_str::<Watched<Pod>>("[1]").expect_err("a list");
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        let e = serde_json::from_str::<Watched<Node>>("\"x\"").expect_err("a string");
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        assert!(serde_json::from_str::<Watched<Pod>>("{\"metadata\": ").is_err());
    }
}
