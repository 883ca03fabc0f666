//! The embedded incident store: every event an agent sent, once, durable.
//!
//! One redb file (`DATA_DIR/incidents.redb`), crash-safe: a write
//! transaction is either wholly on disk after `commit` returns, or not at
//! all. Tables:
//!
//! - `incidents`: (node, boot, seq) -> encoded [`Incident`]; the dedupe key.
//! - `by_time`: (time, node, boot, seq) -> (): newest-first listing and
//!   retention. `time` is the event's time, or the receive time when the
//!   event carries none.
//! - `boots`: (node, boot) -> (highest contiguous stored seq, last write):
//!   what is acknowledged. Seqs at or below it are duplicates by definition,
//!   even after retention deleted the incidents themselves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gpuscope_proto::v1::{
    Incident, IncidentFilter, IncidentKind, NodeEvent, node_event::Kind as EventKind,
};
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use crate::{Error, Result};

type IncidentKey<'a> = (&'a str, &'a str, u64);
type TimeKey<'a> = (u64, &'a str, &'a str, u64);

const INCIDENTS: TableDefinition<IncidentKey, &[u8]> = TableDefinition::new("incidents");
const BY_TIME: TableDefinition<TimeKey, ()> = TableDefinition::new("by_time");
const BOOTS: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("boots");
/// (pod UID, time, node, boot, seq): a pod's incidents without a scan.
type PodKey<'a> = (&'a str, u64, &'a str, &'a str, u64);
const BY_POD: TableDefinition<PodKey, ()> = TableDefinition::new("by_pod");
/// (time, node, boot, seq) out of an index entry.
type OwnedKey = (u64, String, String, u64);

/// The outcome of storing one batch, after its transaction committed.
#[derive(Debug, Default)]
pub struct Stored {
    /// Events stored for the first time, as incidents (duplicates excluded).
    pub new: Vec<Incident>,
    /// Duplicates skipped.
    pub duplicates: usize,
    /// The highest seq such that every seq 1..=up_to_seq of the boot is
    /// stored (or was, before retention): what may be acknowledged.
    pub up_to_seq: u64,
}

/// The incident store.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the database at `path`. Recovers it after a crash.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(|source| Error::OpenStore {
            path: path.to_owned(),
            source,
        })?;
        let tx = db.begin_write()?;
        tx.open_table(INCIDENTS)?;
        tx.open_table(BY_TIME)?;
        tx.open_table(BOOTS)?;
        tx.open_table(BY_POD)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// Stores every event of `events` not stored before for (node, boot), in
    /// one transaction, and returns what is now contiguous. Blocking: call
    /// from a blocking thread.
    pub fn store_batch(
        &self,
        node: &str,
        boot: &str,
        events: &[NodeEvent],
        received_unix_nanos: u64,
    ) -> Result<Stored> {
        let mut out = Stored::default();
        let tx = self.db.begin_write()?;
        {
            let mut incidents = tx.open_table(INCIDENTS)?;
            let mut by_time = tx.open_table(BY_TIME)?;
            let mut boots = tx.open_table(BOOTS)?;
            let mut by_pod = tx.open_table(BY_POD)?;
            let mut contiguous = boots.get((node, boot))?.map(|g| g.value().0).unwrap_or(0);
            for event in events {
                let seq = event.seq;
                if seq <= contiguous || incidents.get((node, boot, seq))?.is_some() {
                    out.duplicates += 1;
                    continue;
                }
                let incident = Incident {
                    node_name: node.to_owned(),
                    boot_id: boot.to_owned(),
                    event: Some(event.clone()),
                    received_unix_nanos,
                    // Named at query time, from the pods then known.
                    ..Default::default()
                };
                incidents.insert((node, boot, seq), incident.encode_to_vec().as_slice())?;
                let time = incident_time(&incident);
                by_time.insert((time, node, boot, seq), ())?;
                if let Some(pod) = pod_of(event) {
                    by_pod.insert((pod, time, node, boot, seq), ())?;
                }
                out.new.push(incident);
            }
            while incidents.get((node, boot, contiguous + 1))?.is_some() {
                contiguous += 1;
            }
            boots.insert((node, boot), (contiguous, received_unix_nanos))?;
            out.up_to_seq = contiguous;
        }
        tx.commit()?;
        Ok(out)
    }

    /// The acknowledged watermark of (node, boot): 0 when nothing is stored.
    pub fn contiguous(&self, node: &str, boot: &str) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let boots = tx.open_table(BOOTS)?;
        Ok(boots.get((node, boot))?.map(|g| g.value().0).unwrap_or(0))
    }

    /// Incidents matching `filter` with time in `[since, until)` (0: open),
    /// newest first, at most `limit`. Returns whether more matched.
    pub fn list(
        &self,
        filter: &IncidentFilter,
        since: u64,
        until: u64,
        limit: usize,
    ) -> Result<(Vec<Incident>, bool)> {
        let tx = self.db.begin_read()?;
        let incidents = tx.open_table(INCIDENTS)?;
        let by_time = tx.open_table(BY_TIME)?;
        let by_pod = tx.open_table(BY_POD)?;
        let until = if until == 0 { u64::MAX } else { until };
        let mut out = Vec::new();
        // A pod filter walks that pod's index, not every incident.
        let keys: Box<dyn Iterator<Item = Result<OwnedKey>>> = if filter.pod_uid.is_empty() {
            let lower: TimeKey = (since, "", "", 0);
            let upper: TimeKey = (until, "", "", 0);
            Box::new(by_time.range(lower..upper)?.rev().map(|e| {
                let (k, _) = e?;
                let (t, n, b, s) = k.value();
                Ok((t, n.to_owned(), b.to_owned(), s))
            }))
        } else {
            let pod = filter.pod_uid.as_str();
            let lower: PodKey = (pod, since, "", "", 0);
            let upper: PodKey = (pod, until, "", "", 0);
            Box::new(by_pod.range(lower..upper)?.rev().map(|e| {
                let (k, _) = e?;
                let (_, t, n, b, s) = k.value();
                Ok((t, n.to_owned(), b.to_owned(), s))
            }))
        };
        for key in keys {
            let (_, node, boot, seq) = key?;
            let (node, boot) = (node.as_str(), boot.as_str());
            if !filter.node_name.is_empty() && filter.node_name != node {
                continue;
            }
            let Some(bytes) = incidents.get((node, boot, seq))? else {
                continue;
            };
            let incident = Incident::decode(bytes.value()).map_err(|source| Error::Decode {
                key: format!("{node}/{boot}/{seq}"),
                source,
            })?;
            if !matches(filter, &incident) {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(incident);
        }
        Ok((out, false))
    }

    /// Number of stored incidents.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(INCIDENTS)?.len()?)
    }

    /// Whether no incident is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Deletes incidents whose time is before `cutoff`, and acknowledged
    /// watermarks last written before `boots_cutoff` (Unix nanoseconds).
    /// Returns how many incidents were deleted.
    pub fn delete_before(&self, cutoff: u64, boots_cutoff: u64) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let mut deleted = 0;
        {
            let mut incidents = tx.open_table(INCIDENTS)?;
            let mut by_time = tx.open_table(BY_TIME)?;
            let mut boots = tx.open_table(BOOTS)?;
            let mut by_pod = tx.open_table(BY_POD)?;
            let lower: TimeKey = (0, "", "", 0);
            let upper: TimeKey = (cutoff, "", "", 0);
            let old: Vec<(u64, String, String, u64)> = by_time
                .range(lower..upper)?
                .map(|e| {
                    e.map(|(k, _)| {
                        let (t, n, b, s) = k.value();
                        (t, n.to_owned(), b.to_owned(), s)
                    })
                })
                .collect::<Result<_, _>>()?;
            for (t, n, b, s) in &old {
                by_time.remove((*t, n.as_str(), b.as_str(), *s))?;
                if let Some(bytes) = incidents.remove((n.as_str(), b.as_str(), *s))? {
                    let pod = Incident::decode(bytes.value())
                        .ok()
                        .and_then(|i| i.event)
                        .and_then(|e| pod_of(&e).map(str::to_owned));
                    if let Some(pod) = pod {
                        by_pod.remove((pod.as_str(), *t, n.as_str(), b.as_str(), *s))?;
                    }
                }
                deleted += 1;
            }
            // A boot's watermark outlives its incidents (the caller passes
            // an earlier cutoff), so a late resend of a deleted event is
            // still a duplicate.
            let stale_cutoff = boots_cutoff;
            let stale: Vec<(String, String)> = boots
                .iter()?
                .filter_map(|e| match e {
                    Ok((k, v)) if v.value().1 < stale_cutoff => {
                        let (n, b) = k.value();
                        Some(Ok((n.to_owned(), b.to_owned())))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_, _>>()?;
            for (n, b) in &stale {
                boots.remove((n.as_str(), b.as_str()))?;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }
}

/// Deletes incidents older than `retention` at start and every `interval`,
/// until shutdown.
pub async fn retention_loop(
    store: Arc<Store>,
    retention: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        let keep = retention.as_nanos() as u64;
        let cutoff = crate::now_unix_nanos().saturating_sub(keep);
        let boots_cutoff = cutoff.saturating_sub(keep);
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.delete_before(cutoff, boots_cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(deleted = n, retention = ?retention, "Deleted old incidents.")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "Retention failed."),
            Err(e) => tracing::error!(error = %e, "Retention task failed."),
        }
    }
}

/// The time an incident is listed and expired by: the event's time, or the
/// receive time when the event has none.
pub fn incident_time(incident: &Incident) -> u64 {
    match incident.event.as_ref().map(|e| e.time_unix_nanos) {
        Some(t) if t != 0 => t,
        _ => incident.received_unix_nanos,
    }
}

/// The kind of an event.
pub fn event_kind(event: &NodeEvent) -> IncidentKind {
    match &event.kind {
        None => IncidentKind::Unspecified,
        Some(EventKind::OomKill(_)) => IncidentKind::OomKill,
        Some(EventKind::KmsgOverrun(_)) => IncidentKind::KmsgOverrun,
        Some(EventKind::Source(_)) => IncidentKind::Source,
        Some(EventKind::Xid(_)) => IncidentKind::Xid,
        Some(EventKind::GpuLost(_)) => IncidentKind::GpuLost,
        Some(EventKind::GpuCountChanged(_)) => IncidentKind::GpuCountChanged,
    }
}

/// The pod UID an event names: the OOM-killed container's pod. GPU events
/// name their holders by namespace and pod name, not UID, so they name no
/// pod UID (the Kubernetes side will join names to UIDs).
fn pod_of(event: &NodeEvent) -> Option<&str> {
    match &event.kind {
        Some(EventKind::OomKill(oom)) => oom
            .container
            .as_ref()
            .map(|c| c.pod_uid.as_str())
            .filter(|p| !p.is_empty()),
        _ => None,
    }
}

/// Whether `incident` passes every set field of `filter`.
pub fn matches(filter: &IncidentFilter, incident: &Incident) -> bool {
    if !filter.node_name.is_empty() && filter.node_name != incident.node_name {
        return false;
    }
    let Some(event) = incident.event.as_ref() else {
        return false;
    };
    if !filter.kinds.is_empty() && !filter.kinds.contains(&(event_kind(event) as i32)) {
        return false;
    }
    if !filter.pod_uid.is_empty() && pod_of(event) != Some(filter.pod_uid.as_str()) {
        return false;
    }
    true
}
