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
//! - `by_pod`: (pod UID, time, node, boot, seq) -> (): a pod's OOM kills.
//! - `diagnoses`: (recorded time, node, boot, seq, pod key) -> encoded
//!   [`RecordedDiagnosis`]: what [`crate::record`] concluded about a pod an
//!   incident named, newest last; retention by time.
//! - `diagnoses_by_pod`: (pod key, recorded time, node, boot, seq) -> the
//!   record's own pod key: a pod's recorded diagnoses, by UID (`uid:UID`)
//!   and by name (`name:NAMESPACE/NAME`), each record under both it has.
//!
//! Damage and full disks. The file's integrity is checked at every open
//! (every page's checksum; redb repairs what it can, from the previous
//! commit). A file that cannot be repaired (truncated, overwritten, not a
//! redb file) is kept aside as `incidents.redb.damaged-<UTC time>` and a
//! fresh store started, said loudly ([`Store::reset`]: an error log, the
//! health loop's warning, `gpuscope nodes`): one damaged volume must not
//! become a crash loop that answers nothing. A failed write (a full
//! volume: redb then refuses every later write with "previous I/O
//! error" until the file is reopened) stops acknowledging, so agents keep
//! their events; reads go on answering from the open file; and once a
//! probe write of [`SPACE_PROBE`] bytes beside the file succeeds, the next
//! write or health check reopens the file and ingest resumes by itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use gpuscope_proto::v1::{
    ContainerRef, Incident, IncidentFilter, IncidentKind, NodeEvent, RecordedDiagnosis,
    node_event::Kind as EventKind,
};
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use crate::error::{Error, Result};

type IncidentKey<'a> = (&'a str, &'a str, u64);
type TimeKey<'a> = (u64, &'a str, &'a str, u64);

const INCIDENTS: TableDefinition<IncidentKey, &[u8]> = TableDefinition::new("incidents");
const BY_TIME: TableDefinition<TimeKey, ()> = TableDefinition::new("by_time");
const BOOTS: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("boots");
/// (pod UID, time, node, boot, seq): a pod's incidents without a scan.
type PodKey<'a> = (&'a str, u64, &'a str, &'a str, u64);
const BY_POD: TableDefinition<PodKey, ()> = TableDefinition::new("by_pod");
/// (recorded time, node, boot, seq, pod key).
type DiagnosisKey<'a> = (u64, &'a str, &'a str, u64, &'a str);
const DIAGNOSES: TableDefinition<DiagnosisKey, &[u8]> = TableDefinition::new("diagnoses");
/// A [`DiagnosisKey`] out of the table.
type DiagnosisOwnedKey = (u64, String, String, u64, String);
/// (pod key, recorded time, node, boot, seq) -> the record's own pod key.
type DiagnosisPodKey<'a> = (&'a str, u64, &'a str, &'a str, u64);
const DIAGNOSES_BY_POD: TableDefinition<DiagnosisPodKey, &str> =
    TableDefinition::new("diagnoses_by_pod");
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

/// Bytes that must be writable beside the store before a store whose
/// writes failed is reopened: the reopen commits (redb rebuilds its
/// allocator state), and a reopen that fails for want of space would
/// leave no file to answer queries from.
pub const SPACE_PROBE: usize = 1 << 20;

/// A store that could not be repaired and was started afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReset {
    /// Where the damaged file was kept.
    pub kept_as: PathBuf,
    /// Why it could not be opened.
    pub reason: String,
}

impl std::fmt::Display for StoreReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the incident store was damaged beyond repair ({}) and started empty; the damaged file is kept as {}",
            self.reason,
            self.kept_as.display()
        )
    }
}

/// The incident store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    /// The open database; `None` only while a reopen is under way (or
    /// failed: then every read and write says so).
    db: RwLock<Option<Database>>,
    /// Whether the last [`Store::store_batch`] failed (a full disk, an I/O
    /// error): ingest is then not accepting events, which the health
    /// service reports.
    write_failing: AtomicBool,
    /// Set when the file found at start was damaged beyond repair.
    reset: Option<StoreReset>,
}

/// The open database, read-locked.
struct Db<'a>(RwLockReadGuard<'a, Option<Database>>);

impl std::ops::Deref for Db<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("Db is only made over an open database")
    }
}

impl Store {
    /// Opens (or creates) the database at `path`. Recovers it after a
    /// crash, checks every page, repairs what redb can; a file beyond
    /// repair is kept aside under a dated name and a fresh store started
    /// ([`Store::reset`] says so).
    pub fn open(path: &Path) -> Result<Self> {
        let (db, reset) = match open_db(path) {
            Ok(db) => (db, None),
            Err(e) if damaged(&e) => {
                let reason = e.to_string();
                let kept_as = keep_aside(path)?;
                let reset = StoreReset { kept_as, reason };
                tracing::error!(path = %path.display(), kept_as = %reset.kept_as.display(),
                    reason = %reset.reason,
                    "Incident store damaged beyond repair: kept aside, starting an empty store. Earlier incidents are not served.");
                let db = open_db(path).map_err(|source| Error::OpenStore {
                    path: path.to_owned(),
                    source,
                })?;
                (db, Some(reset))
            }
            Err(source) => {
                return Err(Error::OpenStore {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(Self {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
            write_failing: AtomicBool::new(false),
            reset,
        })
    }

    /// Whether the file found at start was damaged beyond repair and the
    /// store started empty, and where the damaged file is.
    pub fn reset(&self) -> Option<&StoreReset> {
        self.reset.as_ref()
    }

    fn db(&self) -> Result<Db<'_>> {
        let guard = self
            .db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            return Err(Error::StoreClosed {
                path: self.path.clone(),
            });
        }
        Ok(Db(guard))
    }

    /// Whether the store answers: a read transaction on the incidents
    /// table succeeds, and writes succeed (after failed ones, a reopen
    /// once there is room again: see the module docs).
    pub fn check(&self) -> Result<()> {
        if self.write_failing.load(Ordering::Relaxed) {
            self.reopen_if_room();
        }
        let tx = self.db()?.begin_read()?;
        tx.open_table(INCIDENTS)?;
        if self.write_failing.load(Ordering::Relaxed) {
            return Err(Error::WritesFailing);
        }
        Ok(())
    }

    /// Stores every event of `events` not stored before for (node, boot), in
    /// one transaction, and returns what is now contiguous. Blocking: call
    /// from a blocking thread. After a failed write it first reopens the
    /// file if there is room again, and fails at once if there is not.
    pub fn store_batch(
        &self,
        node: &str,
        boot: &str,
        events: &[NodeEvent],
        received_unix_nanos: u64,
    ) -> Result<Stored> {
        if self.write_failing.load(Ordering::Relaxed) && !self.reopen_if_room() {
            return Err(Error::WritesFailing);
        }
        let res = self.write_batch(node, boot, events, received_unix_nanos);
        if let Err(e) = &res {
            tracing::error!(path = %self.path.display(), error = %e,
                "Incident store write failed: not acknowledging events until it succeeds.");
        }
        self.write_failing.store(res.is_err(), Ordering::Relaxed);
        res
    }

    /// After failed writes: when a probe of [`SPACE_PROBE`] bytes can be
    /// written beside the file, closes and reopens it (redb refuses every
    /// write after an I/O error until then). True when reopened.
    fn reopen_if_room(&self) -> bool {
        if let Err(e) = probe_space(&self.path) {
            tracing::debug!(error = %e, "Incident store: no room yet.");
            return false;
        }
        let mut guard = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Closed first: the file is locked while open.
        *guard = None;
        match open_db(&self.path) {
            Ok(db) => {
                *guard = Some(db);
                self.write_failing.store(false, Ordering::Relaxed);
                tracing::info!(path = %self.path.display(), "Incident store reopened: writes resume.");
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "Incident store could not be reopened.");
                false
            }
        }
    }

    /// [`Store::store_batch`]'s transaction.
    fn write_batch(
        &self,
        node: &str,
        boot: &str,
        events: &[NodeEvent],
        received_unix_nanos: u64,
    ) -> Result<Stored> {
        let mut out = Stored::default();
        let tx = self.db()?.begin_write()?;
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
        let tx = self.db()?.begin_read()?;
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
        let tx = self.db()?.begin_read()?;
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

    /// Stores a recorded diagnosis, indexed by its pod's UID and name.
    /// Blocking.
    pub fn record_diagnosis(&self, d: &RecordedDiagnosis) -> Result<()> {
        let keys = pod_keys(d);
        let Some(own) = keys.first() else {
            return Ok(());
        };
        let tx = self.db()?.begin_write()?;
        {
            let mut diagnoses = tx.open_table(DIAGNOSES)?;
            let mut by_pod = tx.open_table(DIAGNOSES_BY_POD)?;
            let (t, node, boot, seq) = (d.recorded_unix_nanos, &*d.node_name, &*d.boot_id, d.seq);
            diagnoses.insert(
                (t, node, boot, seq, own.as_str()),
                d.encode_to_vec().as_slice(),
            )?;
            for key in &keys {
                by_pod.insert((key.as_str(), t, node, boot, seq), own.as_str())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The diagnoses recorded for the pod with this UID (`uid`) or this
    /// namespace and name, newest first, at most `limit`. Blocking.
    pub fn diagnoses(&self, pod: &DiagnosedPod, limit: usize) -> Result<Vec<RecordedDiagnosis>> {
        let key = pod.key();
        let tx = self.db()?.begin_read()?;
        let diagnoses = tx.open_table(DIAGNOSES)?;
        let by_pod = tx.open_table(DIAGNOSES_BY_POD)?;
        let lower: DiagnosisPodKey = (&key, 0, "", "", 0);
        let upper: DiagnosisPodKey = (&key, u64::MAX, "", "", 0);
        let mut out = Vec::new();
        for entry in by_pod.range(lower..upper)?.rev() {
            if out.len() == limit {
                break;
            }
            let (k, own) = entry?;
            let (_, t, node, boot, seq) = k.value();
            let found = diagnoses.get((t, node, boot, seq, own.value()))?;
            let Some(bytes) = found else { continue };
            out.push(
                RecordedDiagnosis::decode(bytes.value()).map_err(|source| Error::Decode {
                    key: format!("diagnosis {key} {node}/{boot}/{seq}"),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    /// Number of stored incidents.
    pub fn len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let tx = self.db()?.begin_read()?;
        Ok(tx.open_table(INCIDENTS)?.len()?)
    }

    /// Whether no incident is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Deletes incidents whose time is before `cutoff` (and diagnoses
    /// recorded before it), and acknowledged
    /// watermarks last written before `boots_cutoff` (Unix nanoseconds).
    /// Returns how many incidents were deleted.
    pub fn delete_before(&self, cutoff: u64, boots_cutoff: u64) -> Result<u64> {
        let tx = self.db()?.begin_write()?;
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
            let mut diagnoses = tx.open_table(DIAGNOSES)?;
            let mut diagnoses_by_pod = tx.open_table(DIAGNOSES_BY_POD)?;
            let old: Vec<(DiagnosisOwnedKey, Vec<String>)> = diagnoses
                .range((0, "", "", 0, "")..(cutoff, "", "", 0, ""))?
                .map(|e| {
                    e.map(|(k, v)| {
                        let (t, n, b, s, own) = k.value();
                        let keys = RecordedDiagnosis::decode(v.value())
                            .map(|d| pod_keys(&d))
                            .unwrap_or_default();
                        ((t, n.to_owned(), b.to_owned(), s, own.to_owned()), keys)
                    })
                })
                .collect::<Result<_, _>>()?;
            for ((t, n, b, s, own), keys) in &old {
                diagnoses.remove((*t, n.as_str(), b.as_str(), *s, own.as_str()))?;
                for key in keys {
                    diagnoses_by_pod.remove((key.as_str(), *t, n.as_str(), b.as_str(), *s))?;
                }
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
            _ = crate::sync::stopped(&mut shutdown) => return,
        }
        let keep = retention.as_nanos() as u64;
        let cutoff = crate::clock::now_unix_nanos().saturating_sub(keep);
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
        Some(EventKind::GpuHealthChange(_)) => IncidentKind::GpuHealthChange,
        Some(EventKind::SwitchXid(_)) => IncidentKind::SwitchXid,
    }
}

/// The container an OOM kill event names.
pub fn oom_container(event: &NodeEvent) -> Option<&ContainerRef> {
    match &event.kind {
        Some(EventKind::OomKill(oom)) => oom.container.as_ref(),
        _ => None,
    }
}

/// The pod UID an event names: the OOM-killed container's pod. GPU events
/// name their holders by namespace and pod name, not UID, so they name no
/// pod UID (the Kubernetes side will join names to UIDs).
pub fn pod_of(event: &NodeEvent) -> Option<&str> {
    oom_container(event)
        .map(|c| c.pod_uid.as_str())
        .filter(|p| !p.is_empty())
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

/// Opens (or creates) the database with its integrity checked, and its
/// tables.
fn open_db(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    let db = Database::builder()
        .set_check_integrity_on_open(true)
        .set_repair_callback(|session| {
            tracing::warn!(
                progress = session.progress(),
                "Repairing the incident store."
            );
        })
        .create(path)?;
    let tables = || -> std::result::Result<(), redb::Error> {
        let tx = db.begin_write()?;
        tx.open_table(INCIDENTS)?;
        tx.open_table(BY_TIME)?;
        tx.open_table(BOOTS)?;
        tx.open_table(BY_POD)?;
        tx.open_table(DIAGNOSES)?;
        tx.open_table(DIAGNOSES_BY_POD)?;
        tx.commit()?;
        Ok(())
    };
    tables().map_err(|e| match e {
        redb::Error::Corrupted(msg) => {
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(msg))
        }
        other => redb::DatabaseError::Storage(redb::StorageError::Io(std::io::Error::other(other))),
    })?;
    Ok(db)
}

/// Whether an open failed because the file is damaged (not for want of
/// space, permissions or a lock): redb found it corrupt, could not repair
/// it, or it is no redb file at all.
fn damaged(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::RepairAborted => true,
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

/// Renames the damaged file to `NAME.damaged-<UTC time>` beside it.
fn keep_aside(path: &Path) -> Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".damaged-{stamp}"));
    let kept_as = path.with_file_name(name);
    std::fs::rename(path, &kept_as).map_err(|source| Error::KeepAside {
        path: path.to_owned(),
        source,
    })?;
    Ok(kept_as)
}

/// Writes, syncs and removes a file of [`SPACE_PROBE`] bytes beside `path`.
fn probe_space(path: &Path) -> std::io::Result<()> {
    let probe = path.with_extension("space-probe");
    let res = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&vec![0u8; SPACE_PROBE])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    res
}

/// A pod whose recorded diagnoses are wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosedPod {
    /// By UID.
    Uid(String),
    /// By namespace and name.
    Name {
        /// The namespace.
        namespace: String,
        /// The pod's name.
        name: String,
    },
}

impl DiagnosedPod {
    fn key(&self) -> String {
        match self {
            Self::Uid(uid) => format!("uid:{uid}"),
            Self::Name { namespace, name } => format!("name:{namespace}/{name}"),
        }
    }
}

/// The keys a recorded diagnosis is found by: its UID's (first, the
/// record's own) and its name's, those it has.
fn pod_keys(d: &RecordedDiagnosis) -> Vec<String> {
    let mut keys = Vec::new();
    if !d.pod_uid.is_empty() {
        keys.push(DiagnosedPod::Uid(d.pod_uid.clone()).key());
    }
    if !d.pod_name.is_empty() {
        keys.push(
            DiagnosedPod::Name {
                namespace: d.pod_namespace.clone(),
                name: d.pod_name.clone(),
            }
            .key(),
        );
    }
    keys
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use redb::ReadableTableMetadata;

    use super::*;

    fn rec(uid: &str, ns: &str, name: &str, t: u64, seq: u64) -> RecordedDiagnosis {
        RecordedDiagnosis {
            pod_namespace: ns.into(),
            pod_name: name.into(),
            pod_uid: uid.into(),
            recorded_unix_nanos: t,
            node_name: "n".into(),
            boot_id: "b".into(),
            seq,
            ..RecordedDiagnosis::default()
        }
    }

    fn seqs(store: &Store, pod: DiagnosedPod) -> Vec<u64> {
        store
            .diagnoses(&pod, 10)
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect()
    }

    fn uid(u: &str) -> DiagnosedPod {
        DiagnosedPod::Uid(u.into())
    }

    fn name(ns: &str, name: &str) -> DiagnosedPod {
        DiagnosedPod::Name {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    #[test]
    fn recorded_diagnoses_are_found_by_uid_and_name_newest_first_until_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let store = Store::open(&path).unwrap();
        store
            .record_diagnosis(&rec("u1", "ml", "a", 10, 1))
            .unwrap();
        store
            .record_diagnosis(&rec("u1", "ml", "a", 20, 2))
            .unwrap();
        // The same incident naming two pods: two records.
        store.record_diagnosis(&rec("", "ml", "b", 20, 2)).unwrap();
        store.record_diagnosis(&rec("u2", "", "", 30, 4)).unwrap();
        // Neither UID nor name: nothing to find it by, not stored.
        store.record_diagnosis(&rec("", "", "", 40, 5)).unwrap();

        assert_eq!(seqs(&store, uid("u1")), [2, 1]);
        assert_eq!(seqs(&store, name("ml", "a")), [2, 1]);
        assert_eq!(seqs(&store, name("ml", "b")), [2]);
        assert_eq!(seqs(&store, uid("u2")), [4]);
        assert_eq!(seqs(&store, name("ml", "u1")), [0u64; 0]);
        assert_eq!(store.diagnoses(&uid("u1"), 1).unwrap().len(), 1);

        // Durable: found again after a reopen.
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(seqs(&store, name("ml", "a")), [2, 1]);

        // Retention deletes a record and every index entry of it.
        store.delete_before(21, 0).unwrap();
        assert_eq!(seqs(&store, uid("u1")), [0u64; 0]);
        assert_eq!(seqs(&store, name("ml", "b")), [0u64; 0]);
        assert_eq!(seqs(&store, uid("u2")), [4]);
        let tx = store.db().unwrap().begin_read().unwrap();
        assert_eq!(tx.open_table(DIAGNOSES).unwrap().len().unwrap(), 1);
        assert_eq!(tx.open_table(DIAGNOSES_BY_POD).unwrap().len().unwrap(), 1);
    }
}
