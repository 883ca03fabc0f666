//! The agent's durable, bounded on-disk event queue.
//!
//! Events (OOM kills, XIDs, GPU lost, ...) are delivered at least once: each
//! gets a sequence number per (node, boot ID), starting at 1 with no gaps,
//! and stays in this queue until the aggregator acknowledges it. The queue
//! lives in the agent's `--state-dir` (a hostPath in production), so
//! unacknowledged events survive an aggregator restart, a network cut and an
//! agent restart, including a `SIGKILL` at any instant.
//!
//! # On-disk format
//!
//! Three kinds of files, all in the state directory:
//!
//! - `events-<id>.seg`, `<id>` a 20-digit decimal segment number: an 8-byte
//!   header `GSEVQ\0\0\x01` (name and format version 1), then records, each
//!
//!   ```text
//!   u32 LE  len      length of the body
//!   u32 LE  !len     bitwise complement of len (catches a damaged length)
//!   u32 LE  crc      CRC-32 (IEEE, as zlib) of the body
//!   body:   u8 boot ID length, boot ID (UTF-8), u64 LE seq, payload
//!   ```
//!
//!   Records are appended to the newest segment; a new one is started once
//!   the newest reaches [`QueueOptions::segment_bytes`] (4 MiB by default).
//!   A segment is deleted once none of its records awaits an acknowledgement.
//! - `events.state`: a small text file, `dropped <n>` and one line
//!   `boot <id> <acked> <last>` per boot that still has records on disk (the
//!   highest seq acknowledged or dropped, and the highest seq written), ending
//!   with a CRC-32 line. Replaced atomically (write `events.state.tmp`,
//!   fsync, rename, fsync the directory).
//! - `*.tmp`: a file being created; removed on open.
//!
//! # Durability and its cost
//!
//! - [`EventQueue::push`] returns only after the record is written and
//!   `fdatasync`ed: an event it returned survives a crash or power loss.
//!   That costs one `write` and one `fdatasync` per call: from tens of
//!   microseconds (SSDs with power-loss protection) to several milliseconds
//!   (consumer SSDs, network-backed disks); [`EventQueue::push_many`] pays
//!   them once for a whole batch. Starting a segment costs two more fsyncs
//!   (file and directory). The calls block: from async code, call them on a
//!   blocking thread.
//! - [`EventQueue::ack`] persists the acknowledgement point before returning
//!   (write, two fsyncs, rename) and then deletes the segments it freed. An
//!   acknowledgement that does not move the point is free.
//! - Recovery on [`EventQueue::open`]: a torn last record (a `SIGKILL` or
//!   power loss during a write) is truncated away and counted; its seq was
//!   never returned to a caller, so it is assigned again. A corrupt record
//!   elsewhere is skipped with an error log naming the file and offset, and
//!   the records after it still load. A record is never loaded twice.
//! - If a push fails (disk error), its seqs are not reused in this process
//!   and the event may or may not be on disk; the caller may push it again,
//!   so under disk errors an event can be delivered twice with two seqs.
//!
//! # Bound
//!
//! When the unacknowledged records (counted in on-disk bytes, headers
//! included) exceed `max_bytes`, the oldest are dropped, counted in
//! [`EventQueue::dropped`] (persisted) and logged; the producer is never
//! blocked and a push never fails because of the bound. The newest event is
//! always kept, even when it alone exceeds the bound. Disk use stays within
//! about `max_bytes` plus two segments, and memory within 32 bytes per
//! unacknowledged event (payloads are read back from disk on replay).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::{debug, error, warn};

/// Default size at which a segment file is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 4 << 20;
/// The largest payload one event may carry.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// The longest boot ID accepted, bytes.
pub const MAX_BOOT_ID_BYTES: usize = 255;

const SEGMENT_MAGIC: &[u8; 8] = b"GSEVQ\0\0\x01";
const SEGMENT_HEADER_LEN: u64 = SEGMENT_MAGIC.len() as u64;
const SEGMENT_PREFIX: &str = "events-";
const SEGMENT_SUFFIX: &str = ".seg";
const RECORD_HEADER_LEN: usize = 12;
/// Boot ID length byte, at least one byte of boot ID, seq.
const MIN_BODY_LEN: usize = 1 + 1 + 8;
const MAX_BODY_LEN: usize = 1 + MAX_BOOT_ID_BYTES + 8 + MAX_PAYLOAD_BYTES;
const STATE_FILE: &str = "events.state";
const STATE_TMP: &str = "events.state.tmp";
const STATE_HEADER: &str = "gpuscope event queue state v1";

/// Errors of the event queue. Each names the path or subject that failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The state directory is missing, not a directory or not listable.
    #[error("event queue directory {path}: {source}", path = path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Creating, reading, writing, syncing, renaming or deleting a queue
    /// file failed.
    #[error("event queue file {path}: {op}: {source}", path = path.display())]
    Io {
        /// The file (or the directory, for a directory sync).
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The boot ID is empty, too long, or contains whitespace or control
    /// characters.
    #[error("invalid boot ID {boot_id:?}: {reason}")]
    InvalidBootId {
        /// The boot ID given.
        boot_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("event payload of {len} bytes is over the limit of {MAX_PAYLOAD_BYTES} bytes")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
    },
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> QueueError {
    let path = path.to_path_buf();
    move |source| QueueError::Io { path, op, source }
}

/// One event as stored: who numbered it, its number, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The boot ID of the agent's boot that pushed it.
    pub boot_id: String,
    /// Its sequence number within that boot, from 1.
    pub seq: u64,
    /// The encoded event.
    pub payload: Vec<u8>,
}

/// Sizes of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Unacknowledged bytes (records on disk, headers included) above which
    /// the oldest events are dropped.
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started.
    pub segment_bytes: u64,
}

impl QueueOptions {
    /// `max_bytes` with the default segment size.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Counters of the queue, for the agent's own metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Events waiting for an acknowledgement.
    pub unacked_events: usize,
    /// Their size on disk, bytes.
    pub unacked_bytes: u64,
    /// Events dropped by the bound, over the queue's whole life (persisted).
    pub dropped: u64,
    /// Segment files on disk.
    pub segments: usize,
    /// Bytes of torn records truncated at the end of the queue by the last
    /// [`EventQueue::open`].
    pub torn_tail_bytes: u64,
    /// Corrupt records or regions skipped by the last [`EventQueue::open`],
    /// and unreadable segment files set aside.
    pub corrupt_records: u64,
}

/// The durable, bounded event queue; see the module documentation.
#[derive(Debug)]
pub struct EventQueue {
    dir: PathBuf,
    /// Index of this boot in `boots`.
    boot: u32,
    boots: Vec<BootState>,
    boot_index: HashMap<String, u32>,
    /// Unacknowledged records, oldest first.
    live: VecDeque<Rec>,
    live_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to.
    active: Option<Active>,
    next_segment: u64,
    next_seq: u64,
    dropped: u64,
    torn_tail_bytes: u64,
    corrupt_records: u64,
    opts: QueueOptions,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct BootState {
    id: String,
    /// Highest seq acknowledged or dropped.
    done: u64,
    /// Highest seq written.
    last: u64,
}

/// An unacknowledged record: where it is and what it is.
#[derive(Debug, Clone, Copy)]
struct Rec {
    segment: u64,
    offset: u64,
    len: u32,
    boot: u32,
    seq: u64,
}

#[derive(Debug, Default)]
struct Segment {
    /// Unacknowledged records in it.
    live: usize,
    /// Boots with records in it, acknowledged or not.
    boots: Vec<u32>,
}

#[derive(Debug)]
struct Active {
    id: u64,
    file: File,
    len: u64,
}

impl EventQueue {
    /// Opens (or creates) the queue in `dir`, which must exist, for the
    /// current boot `boot_id`, with the default segment size.
    ///
    /// Recovers what earlier runs left: unacknowledged events of every boot
    /// are kept for replay, and this boot's numbering continues after the
    /// highest seq it ever wrote.
    pub fn open(dir: &Path, boot_id: &str, max_bytes: u64) -> Result<Self, QueueError> {
        Self::open_with(dir, boot_id, QueueOptions::new(max_bytes))
    }

    /// [`EventQueue::open`] with explicit sizes.
    pub fn open_with(dir: &Path, boot_id: &str, opts: QueueOptions) -> Result<Self, QueueError> {
        validate_boot_id(boot_id)?;
        let meta = fs::metadata(dir).map_err(|source| QueueError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(QueueError::Dir {
                path: dir.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let mut q = Self {
            dir: dir.to_path_buf(),
            boot: 0,
            boots: Vec::new(),
            boot_index: HashMap::new(),
            live: VecDeque::new(),
            live_bytes: 0,
            segments: BTreeMap::new(),
            active: None,
            next_segment: 1,
            next_seq: 1,
            dropped: 0,
            torn_tail_bytes: 0,
            corrupt_records: 0,
            opts: QueueOptions {
                segment_bytes: opts.segment_bytes.max(SEGMENT_HEADER_LEN + 1),
                ..opts
            },
            buf: Vec::new(),
        };
        q.load_state();
        let ids = q.list_segments()?;
        let last = ids.last().copied();
        let mut seen = HashMap::new();
        for id in ids {
            q.next_segment = q.next_segment.max(id + 1);
            q.load_segment(id, Some(id) == last, &mut seen)?;
        }
        q.boot = q.intern(boot_id);
        let me = &q.boots[q.boot as usize];
        q.next_seq = me.done.max(me.last) + 1;
        // Keep appending to the newest segment while it has room.
        if let Some(id) = q.segments.keys().next_back().copied() {
            let path = q.segment_path(id);
            let len = fs::metadata(&path).map_err(io_err(&path, "stat"))?.len();
            if len < q.opts.segment_bytes {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path, "open for append"))?;
                q.active = Some(Active { id, file, len });
            }
        }
        q.enforce_bound();
        // Writing the state also proves the directory is writable.
        q.reclaim()?;
        q.persist_state()?;
        Ok(q)
    }

    /// Appends one event for the current boot and makes it durable (one
    /// write and one `fdatasync`). Returns it with its seq.
    pub fn push(&mut self, payload: &[u8]) -> Result<Entry, QueueError> {
        let mut entries = self.push_many([payload])?;
        Ok(entries.remove(0))
    }

    /// Appends a batch of events for the current boot, numbered in order,
    /// and makes them durable with a single write and `fdatasync`. Either
    /// all are returned or an error is; an empty batch does nothing.
    pub fn push_many<'a, I>(&mut self, payloads: I) -> Result<Vec<Entry>, QueueError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let payloads: Vec<&[u8]> = payloads.into_iter().collect();
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_PAYLOAD_BYTES) {
            return Err(QueueError::PayloadTooLarge { len: p.len() });
        }
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        if self
            .active
            .as_ref()
            .is_none_or(|a| a.len >= self.opts.segment_bytes)
        {
            self.start_segment()?;
        }
        let first_seq = self.next_seq;
        // Seqs handed to a write are never reused in this process, even if
        // the write fails: the bytes may have reached the disk.
        self.next_seq += payloads.len() as u64;
        let boot_id = self.boots[self.boot as usize].id.clone();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut lens = Vec::with_capacity(payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            lens.push(encode_record(&mut buf, &boot_id, first_seq + i as u64, p));
        }
        let result = self.append(&buf);
        let written = buf.len() as u64;
        self.buf = buf;
        if let Err(e) = result {
            // The file's tail is now unknown: continue in a fresh segment.
            self.active = None;
            return Err(e);
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(Vec::new());
        };
        let (segment, mut offset) = (active.id, active.len);
        active.len += written;
        let seg = self.segments.entry(segment).or_default();
        if !seg.boots.contains(&self.boot) {
            seg.boots.push(self.boot);
        }
        seg.live += payloads.len();
        let mut entries = Vec::with_capacity(payloads.len());
        for (i, (p, len)) in payloads.iter().zip(lens).enumerate() {
            let seq = first_seq + i as u64;
            self.live.push_back(Rec {
                segment,
                offset,
                len: len as u32,
                boot: self.boot,
                seq,
            });
            self.live_bytes += len as u64;
            offset += len as u64;
            entries.push(Entry {
                boot_id: boot_id.clone(),
                seq,
                payload: p.to_vec(),
            });
        }
        self.boots[self.boot as usize].last = self.next_seq - 1;
        if self.enforce_bound() {
            // The drop is already in effect in memory; if it cannot be
            // persisted the dropped events come back after a restart and
            // are dropped again. Never fail the push for it.
            if let Err(e) = self.reclaim().and_then(|()| self.persist_state()) {
                error!(error = %e, "Could not persist events dropped by the queue bound.");
            }
        }
        Ok(entries)
    }

    /// Acknowledges every event of `boot_id` with a seq up to `up_to_seq`:
    /// persists the point durably, then deletes the segments it freed.
    ///
    /// Acknowledging an unknown boot, or a point already passed, does
    /// nothing. A point past the highest seq written for that boot is
    /// clamped to it (and logged), so a confused aggregator cannot make the
    /// current boot skip numbers.
    pub fn ack(&mut self, boot_id: &str, up_to_seq: u64) -> Result<(), QueueError> {
        let Some(&b) = self.boot_index.get(boot_id) else {
            debug!(
                boot_id,
                up_to_seq, "Acknowledgement for a boot with no queued events."
            );
            return Ok(());
        };
        let state = &mut self.boots[b as usize];
        let mut up_to = up_to_seq;
        if up_to > state.last {
            warn!(
                boot_id,
                up_to_seq,
                last = state.last,
                "Acknowledgement past the last event written; clamped."
            );
            up_to = state.last;
        }
        if up_to <= state.done {
            return Ok(());
        }
        state.done = up_to;
        let (segments, live_bytes) = (&mut self.segments, &mut self.live_bytes);
        self.live.retain(|r| {
            if r.boot == b && r.seq <= up_to {
                *live_bytes -= u64::from(r.len);
                if let Some(s) = segments.get_mut(&r.segment) {
                    s.live -= 1;
                }
                false
            } else {
                true
            }
        });
        self.persist_state()?;
        self.reclaim()
    }

    /// Up to `limit` unacknowledged events, oldest first, for replay after a
    /// (re)connect. With `from = Some((boot_id, seq))`, starts after that
    /// event (a cursor: the last one already sent); if it is no longer
    /// queued, starts after the newest queued event of that boot with a
    /// lower seq, or at the oldest event.
    ///
    /// Payloads are read back from disk. A record found damaged on disk
    /// since it was loaded is skipped and logged.
    pub fn pending(
        &self,
        from: Option<(&str, u64)>,
        limit: usize,
    ) -> Result<Vec<Entry>, QueueError> {
        let start = match from.and_then(|(boot, seq)| Some((*self.boot_index.get(boot)?, seq))) {
            None => 0,
            Some((b, seq)) => self
                .live
                .iter()
                .rposition(|r| r.boot == b && r.seq <= seq)
                .map_or(0, |i| i + 1),
        };
        let mut out = Vec::with_capacity(limit.min(self.live.len().saturating_sub(start)));
        let mut open: Option<(u64, PathBuf, File)> = None;
        let mut buf = Vec::new();
        for rec in self.live.iter().skip(start).take(limit) {
            if open.as_ref().is_none_or(|(id, _, _)| *id != rec.segment) {
                let path = self.segment_path(rec.segment);
                let file = File::open(&path).map_err(io_err(&path, "open"))?;
                open = Some((rec.segment, path, file));
            }
            let Some((_, path, file)) = open.as_ref() else {
                continue;
            };
            buf.resize(rec.len as usize, 0);
            file.read_exact_at(&mut buf, rec.offset)
                .map_err(io_err(path, "read"))?;
            match parse_record(&buf) {
                Some(p) if p.seq == rec.seq => out.push(Entry {
                    boot_id: p.boot_id.to_owned(),
                    seq: p.seq,
                    payload: p.payload.to_vec(),
                }),
                _ => error!(
                    path = %path.display(),
                    offset = rec.offset,
                    seq = rec.seq,
                    "Queued event damaged on disk since it was loaded; skipping it."
                ),
            }
        }
        Ok(out)
    }

    /// Events dropped by the bound over the queue's whole life (persisted
    /// across restarts).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Number of events waiting for an acknowledgement.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no event waits for an acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The seq the next push for the current boot gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The current boot's ID.
    pub fn boot_id(&self) -> &str {
        &self.boots[self.boot as usize].id
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters for the agent's own metrics.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            unacked_events: self.live.len(),
            unacked_bytes: self.live_bytes,
            dropped: self.dropped,
            segments: self.segments.len(),
            torn_tail_bytes: self.torn_tail_bytes,
            corrupt_records: self.corrupt_records,
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir
            .join(format!("{SEGMENT_PREFIX}{id:020}{SEGMENT_SUFFIX}"))
    }

    fn intern(&mut self, id: &str) -> u32 {
        if let Some(&b) = self.boot_index.get(id) {
            return b;
        }
        let b = self.boots.len() as u32;
        self.boots.push(BootState {
            id: id.to_owned(),
            done: 0,
            last: 0,
        });
        self.boot_index.insert(id.to_owned(), b);
        b
    }

    /// Writes `bytes` at the end of the active segment and syncs it.
    fn append(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let path = self
            .dir
            .join(format!("{SEGMENT_PREFIX}{:020}{SEGMENT_SUFFIX}", active.id));
        active
            .file
            .write_all(bytes)
            .map_err(io_err(&path, "write"))?;
        active.file.sync_data().map_err(io_err(&path, "fdatasync"))
    }

    /// Creates a new segment (header written and synced, then renamed into
    /// place and the directory synced) and makes it the active one.
    fn start_segment(&mut self) -> Result<(), QueueError> {
        let id = self.next_segment;
        let path = self.segment_path(id);
        let tmp = path.with_extension("seg.tmp");
        let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        file.write_all(SEGMENT_MAGIC)
            .map_err(io_err(&tmp, "write"))?;
        file.sync_all().map_err(io_err(&tmp, "fsync"))?;
        fs::rename(&tmp, &path).map_err(io_err(&path, "rename into place"))?;
        sync_dir(&self.dir)?;
        self.next_segment += 1;
        self.segments.insert(id, Segment::default());
        self.active = Some(Active {
            id,
            file,
            len: SEGMENT_HEADER_LEN,
        });
        Ok(())
    }

    /// Drops the oldest events while over the bound, keeping the newest.
    /// Returns whether any were dropped; the caller persists.
    fn enforce_bound(&mut self) -> bool {
        let mut n = 0u64;
        while self.live_bytes > self.opts.max_bytes && self.live.len() > 1 {
            let Some(r) = self.live.pop_front() else {
                break;
            };
            self.live_bytes -= u64::from(r.len);
            if let Some(s) = self.segments.get_mut(&r.segment) {
                s.live -= 1;
            }
            let state = &mut self.boots[r.boot as usize];
            state.done = state.done.max(r.seq);
            n += 1;
        }
        if n > 0 {
            self.dropped += n;
            warn!(
                dropped = n,
                dropped_total = self.dropped,
                max_bytes = self.opts.max_bytes,
                unacked_bytes = self.live_bytes,
                "Event queue over its bound; dropped the oldest unacknowledged events."
            );
        }
        n > 0
    }

    /// Deletes the segments with no unacknowledged record (the active one
    /// too, once full), then syncs the directory so a boot whose records
    /// are all gone can be left out of the next state file.
    fn reclaim(&mut self) -> Result<(), QueueError> {
        if let Some(a) = &self.active
            && a.len >= self.opts.segment_bytes
            && self.segments.get(&a.id).is_none_or(|s| s.live == 0)
        {
            self.active = None;
        }
        let active = self.active.as_ref().map(|a| a.id);
        let dead: Vec<u64> = self
            .segments
            .iter()
            .filter(|(id, s)| s.live == 0 && Some(**id) != active)
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        for id in dead {
            let path = self.segment_path(id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, "delete")(e)),
            }
            self.segments.remove(&id);
        }
        sync_dir(&self.dir)
    }

    /// Replaces the state file atomically and durably.
    fn persist_state(&self) -> Result<(), QueueError> {
        let mut text = String::new();
        let _ = writeln!(text, "{STATE_HEADER}");
        let _ = writeln!(text, "dropped {}", self.dropped);
        for (b, s) in self.boots.iter().enumerate() {
            let b = b as u32;
            if b == self.boot || self.segments.values().any(|seg| seg.boots.contains(&b)) {
                let _ = writeln!(text, "boot {} {} {}", s.id, s.done, s.last);
            }
        }
        let crc = crc32(text.as_bytes());
        let _ = writeln!(text, "crc32 {crc:08x}");
        let tmp = self.dir.join(STATE_TMP);
        let path = self.dir.join(STATE_FILE);
        let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
        file.write_all(text.as_bytes())
            .map_err(io_err(&tmp, "write"))?;
        file.sync_all().map_err(io_err(&tmp, "fsync"))?;
        fs::rename(&tmp, &path).map_err(io_err(&path, "rename into place"))?;
        sync_dir(&self.dir)
    }

    /// Loads the state file; a missing one is a fresh queue, a damaged one
    /// is logged and ignored (acknowledged events may then be replayed).
    fn load_state(&mut self) {
        let path = self.dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                error!(path = %path.display(), error = %e, "Cannot read the event queue state; acknowledged events may be sent again.");
                return;
            }
        };
        match parse_state(&text) {
            Some((dropped, boots)) => {
                self.dropped = dropped;
                for (id, done, last) in boots {
                    let b = self.intern(&id);
                    let s = &mut self.boots[b as usize];
                    s.done = done;
                    s.last = last.max(done);
                }
            }
            None => error!(
                path = %path.display(),
                "Event queue state is damaged; ignoring it, acknowledged events may be sent again."
            ),
        }
    }

    /// Segment ids in the directory, ascending; removes leftover temporary
    /// files.
    fn list_segments(&self) -> Result<Vec<u64>, QueueError> {
        let dir_err = |source| QueueError::Dir {
            path: self.dir.clone(),
            source,
        };
        let mut ids = Vec::new();
        for ent in fs::read_dir(&self.dir).map_err(dir_err)? {
            let ent = ent.map_err(dir_err)?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with(SEGMENT_PREFIX) || name == STATE_TMP;
            if ours && name.ends_with(".tmp") {
                let path = ent.path();
                fs::remove_file(&path).map_err(io_err(&path, "delete leftover"))?;
                continue;
            }
            if let Some(id) = name
                .strip_prefix(SEGMENT_PREFIX)
                .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
                .filter(|n| n.len() == 20 && n.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Loads one segment's records. In the newest segment, bytes after the
    /// last valid record are a torn write and are truncated away.
    /// `seen` holds, per boot, the highest seq loaded so far: a record that
    /// does not exceed it is a duplicate and is skipped.
    fn load_segment(
        &mut self,
        id: u64,
        newest: bool,
        seen: &mut HashMap<u32, u64>,
    ) -> Result<(), QueueError> {
        let path = self.segment_path(id);
        let data = fs::read(&path).map_err(io_err(&path, "read"))?;
        if data.get(..SEGMENT_MAGIC.len()) != Some(&SEGMENT_MAGIC[..]) {
            let aside = path.with_extension("seg.corrupt");
            error!(
                path = %path.display(),
                moved_to = %aside.display(),
                "Event queue segment has no valid header; setting it aside."
            );
            self.corrupt_records += 1;
            fs::rename(&path, &aside).map_err(io_err(&path, "set aside"))?;
            return Ok(());
        }
        let mut seg = Segment::default();
        let mut off = SEGMENT_HEADER_LEN as usize;
        while off < data.len() {
            if let Some(p) = parse_record(&data[off..]) {
                let b = self.intern(p.boot_id);
                let seen = seen.entry(b).or_default();
                if p.seq <= *seen {
                    error!(
                        path = %path.display(),
                        offset = off,
                        boot_id = p.boot_id,
                        seq = p.seq,
                        "Event queue record repeats or precedes an earlier seq; skipping it."
                    );
                    self.corrupt_records += 1;
                    off += p.len;
                    continue;
                }
                *seen = p.seq;
                let state = &mut self.boots[b as usize];
                state.last = state.last.max(p.seq);
                if !seg.boots.contains(&b) {
                    seg.boots.push(b);
                }
                if p.seq > state.done {
                    seg.live += 1;
                    self.live.push_back(Rec {
                        segment: id,
                        offset: off as u64,
                        len: p.len as u32,
                        boot: b,
                        seq: p.seq,
                    });
                    self.live_bytes += p.len as u64;
                }
                off += p.len;
                continue;
            }
            let next = (off + 1..data.len()).find(|&o| parse_record(&data[o..]).is_some());
            match next {
                Some(next) => {
                    error!(
                        path = %path.display(),
                        offset = off,
                        bytes = next - off,
                        "Skipping a corrupt record in the event queue."
                    );
                    self.corrupt_records += 1;
                    off = next;
                }
                None if newest => {
                    warn!(
                        path = %path.display(),
                        offset = off,
                        bytes = data.len() - off,
                        "Truncating a torn record at the end of the event queue."
                    );
                    self.torn_tail_bytes += (data.len() - off) as u64;
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path, "open to truncate"))?;
                    file.set_len(off as u64)
                        .map_err(io_err(&path, "truncate"))?;
                    file.sync_all().map_err(io_err(&path, "fsync"))?;
                    break;
                }
                None => {
                    error!(
                        path = %path.display(),
                        offset = off,
                        bytes = data.len() - off,
                        "Corrupt data at the end of an event queue segment; ignoring it."
                    );
                    self.corrupt_records += 1;
                    break;
                }
            }
        }
        self.segments.insert(id, seg);
        Ok(())
    }
}

fn validate_boot_id(boot_id: &str) -> Result<(), QueueError> {
    let reason = if boot_id.is_empty() {
        "empty"
    } else if boot_id.len() > MAX_BOOT_ID_BYTES {
        "longer than 255 bytes"
    } else if boot_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(QueueError::InvalidBootId {
        boot_id: boot_id.to_owned(),
        reason,
    })
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

/// Appends one record to `buf`; returns its length.
fn encode_record(buf: &mut Vec<u8>, boot_id: &str, seq: u64, payload: &[u8]) -> usize {
    let body_len = 1 + boot_id.len() + 8 + payload.len();
    let start = buf.len();
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&(!(body_len as u32)).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(boot_id.len() as u8);
    buf.extend_from_slice(boot_id.as_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32(&buf[start + RECORD_HEADER_LEN..]);
    buf[start + 8..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    RECORD_HEADER_LEN + body_len
}

/// A record parsed in place.
struct Parsed<'a> {
    /// Bytes on disk, header included.
    len: usize,
    boot_id: &'a str,
    seq: u64,
    payload: &'a [u8],
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the record at the start of `data`; `None` if it is not a whole,
/// valid record.
fn parse_record(data: &[u8]) -> Option<Parsed<'_>> {
    let len = le_u32(data, 0)?;
    if le_u32(data, 4)? != !len {
        return None;
    }
    let len = len as usize;
    if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&len) {
        return None;
    }
    let body = data.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len)?;
    if crc32(body) != le_u32(data, 8)? {
        return None;
    }
    let boot_len = usize::from(body[0]);
    let boot_id = std::str::from_utf8(body.get(1..1 + boot_len)?).ok()?;
    let seq = u64::from_le_bytes(body.get(1 + boot_len..9 + boot_len)?.try_into().ok()?);
    if boot_len == 0 || seq == 0 {
        return None;
    }
    Some(Parsed {
        len: RECORD_HEADER_LEN + len,
        boot_id,
        seq,
        payload: &body[9 + boot_len..],
    })
}

/// `(dropped, [(boot, done, last)])`, or `None` if damaged.
type State = (u64, Vec<(String, u64, u64)>);

fn parse_state(text: &str) -> Option<State> {
    let body_end = text.trim_end_matches('\n').rfind('\n')? + 1;
    let (body, crc_line) = text.split_at(body_end);
    let crc = u32::from_str_radix(crc_line.trim_end().strip_prefix("crc32 ")?, 16).ok()?;
    if crc32(body.as_bytes()) != crc {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != STATE_HEADER {
        return None;
    }
    let mut dropped = 0;
    let mut boots = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f[..] {
            ["dropped", n] => dropped = n.parse().ok()?,
            ["boot", id, done, last] => {
                boots.push((id.to_owned(), done.parse().ok()?, last.parse().ok()?));
            }
            _ => return None,
        }
    }
    Some((dropped, boots))
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected, as zlib and `crc32fast`).
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const BOOT: &str = "3f1c2a4e-0b7d-4c52-9a61-1d2e3f405162";
    const BOOT2: &str = "8a9b0c1d-2e3f-4051-8627-38495a6b7c8d";

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn open(dir: &Path, boot: &str) -> EventQueue {
        EventQueue::open(dir, boot, u64::MAX).unwrap()
    }

    fn small(dir: &Path, boot: &str, max_bytes: u64, segment_bytes: u64) -> EventQueue {
        EventQueue::open_with(
            dir,
            boot,
            QueueOptions {
                max_bytes,
                segment_bytes,
            },
        )
        .unwrap()
    }

    fn all(q: &EventQueue) -> Vec<Entry> {
        q.pending(None, usize::MAX).unwrap()
    }

    fn keys(entries: &[Entry]) -> Vec<(String, u64)> {
        entries.iter().map(|e| (e.boot_id.clone(), e.seq)).collect()
    }

    fn seqs(entries: &[Entry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    fn payload(seq: u64) -> Vec<u8> {
        format!("event {seq}").into_bytes()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn push_ack_and_pending_keep_order() {
        let d = tmp();
        let mut q = open(d.path(), BOOT);
        for i in 1..=5 {
            let e = q.push(&payload(i)).unwrap();
            assert_eq!(
                (e.boot_id.as_str(), e.seq, e.payload),
                (BOOT, i, payload(i))
            );
        }
        let batch = q
            .push_many([b"six".as_slice(), b"seven".as_slice()])
            .unwrap();
        assert_eq!(seqs(&batch), [6, 7]);
        assert_eq!(seqs(&all(&q)), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(all(&q)[2].payload, payload(3));
        assert_eq!(all(&q)[6].payload, b"seven");

        // Paging with a cursor.
        assert_eq!(seqs(&q.pending(None, 3).unwrap()), [1, 2, 3]);
        assert_eq!(seqs(&q.pending(Some((BOOT, 3)), 3).unwrap()), [4, 5, 6]);
        assert_eq!(
            seqs(&q.pending(Some((BOOT, 7)), 3).unwrap()),
            [] as [u64; 0]
        );

        q.ack(BOOT, 3).unwrap();
        assert_eq!(seqs(&all(&q)), [4, 5, 6, 7]);
        assert_eq!(q.len(), 4);
        // A cursor already acknowledged starts at the oldest queued event.
        assert_eq!(seqs(&q.pending(Some((BOOT, 2)), 10).unwrap()), [4, 5, 6, 7]);
        // Old, repeated and unknown acknowledgements change nothing.
        q.ack(BOOT, 2).unwrap();
        q.ack("someone-else", 100).unwrap();
        assert_eq!(seqs(&all(&q)), [4, 5, 6, 7]);
        // An acknowledgement past the last event is clamped: no seq skipped.
        q.ack(BOOT, 1000).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.push(b"x").unwrap().seq, 8);
        assert!(q.push_many(std::iter::empty::<&[u8]>()).unwrap().is_empty());
    }

    #[test]
    fn reopen_keeps_unacked_and_continues_seq() {
        let d = tmp();
        let mut q = open(d.path(), BOOT);
        for i in 1..=4 {
            q.push(&payload(i)).unwrap();
        }
        q.ack(BOOT, 1).unwrap();
        drop(q);
        let mut q = open(d.path(), BOOT);
        assert_eq!(seqs(&all(&q)), [2, 3, 4]);
        assert_eq!(all(&q)[0].payload, payload(2));
        assert_eq!(q.next_seq(), 5);
        assert_eq!(q.push(&payload(5)).unwrap().seq, 5);
        // Everything acknowledged and reclaimed: numbering still continues.
        q.ack(BOOT, 5).unwrap();
        drop(q);
        let mut q = open(d.path(), BOOT);
        assert!(q.is_empty());
        assert_eq!(q.push(b"six").unwrap().seq, 6);
    }

    #[test]
    fn new_boot_replays_the_old_boots_events_and_starts_at_one() {
        let d = tmp();
        let mut q = open(d.path(), BOOT);
        for i in 1..=3 {
            q.push(&payload(i)).unwrap();
        }
        q.ack(BOOT, 1).unwrap();
        drop(q);
        let mut q = open(d.path(), BOOT2);
        assert_eq!(q.boot_id(), BOOT2);
        assert_eq!(q.push(b"new").unwrap().seq, 1);
        assert_eq!(q.push(b"new2").unwrap().seq, 2);
        let want = [
            (BOOT.to_owned(), 2),
            (BOOT.to_owned(), 3),
            (BOOT2.to_owned(), 1),
            (BOOT2.to_owned(), 2),
        ];
        assert_eq!(keys(&all(&q)), want);
        assert_eq!(
            keys(&q.pending(Some((BOOT, 3)), 10).unwrap()),
            want[2..].to_vec()
        );
        // Acknowledging one boot leaves the other's events.
        q.ack(BOOT2, 1).unwrap();
        assert_eq!(
            keys(&all(&q)),
            [want[0].clone(), want[1].clone(), want[3].clone()]
        );
        drop(q);
        let mut q = open(d.path(), BOOT2);
        assert_eq!(
            keys(&all(&q)),
            [want[0].clone(), want[1].clone(), want[3].clone()]
        );
        q.ack(BOOT, 3).unwrap();
        assert_eq!(keys(&all(&q)), [want[3].clone()]);
        assert_eq!(q.push(b"n3").unwrap().seq, 3);
    }

    #[test]
    fn ack_persists_across_reopen() {
        let d = tmp();
        let mut q = open(d.path(), BOOT);
        for i in 1..=10 {
            q.push(&payload(i)).unwrap();
        }
        q.ack(BOOT, 7).unwrap();
        drop(q);
        let q = open(d.path(), BOOT);
        assert_eq!(seqs(&all(&q)), [8, 9, 10]);
        let state = fs::read_to_string(d.path().join(STATE_FILE)).unwrap();
        assert!(state.contains(&format!("boot {BOOT} 7 10\n")), "{state}");
    }

    #[test]
    fn acked_segments_are_deleted_and_disk_use_stays_bounded() {
        let d = tmp();
        let seg = 1024;
        let mut q = small(d.path(), BOOT, u64::MAX, seg);
        let body = [7u8; 200];
        let mut max_files = 0;
        let mut max_disk = 0;
        for i in 1..=500u64 {
            q.push(&body).unwrap();
            if i % 10 == 0 {
                // The aggregator trails by a few events.
                q.ack(BOOT, i - 3).unwrap();
            }
            let files = segment_files(d.path());
            let disk: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
            max_files = max_files.max(files.len());
            max_disk = max_disk.max(disk);
        }
        // ~4 records per segment, at most 13 unacknowledged: a handful of
        // segments, never 125.
        assert!(max_files <= 6, "{max_files} segment files at once");
        assert!(max_disk <= 6 * (seg + 250), "{max_disk} bytes on disk");
        q.ack(BOOT, 500).unwrap();
        assert!(segment_files(d.path()).len() <= 1);
        assert_eq!(q.stats().segments, segment_files(d.path()).len());
        drop(q);
        let mut q = small(d.path(), BOOT, u64::MAX, seg);
        assert!(q.is_empty());
        assert_eq!(q.push(&body).unwrap().seq, 501);
    }

    #[test]
    fn the_bound_drops_the_oldest_and_counts_them() {
        let d = tmp();
        let rec_len = (RECORD_HEADER_LEN + 1 + BOOT.len() + 8 + 100) as u64;
        let mut q = small(d.path(), BOOT, 10 * rec_len, 4 * rec_len);
        let body = [1u8; 100];
        for _ in 0..25 {
            q.push(&body).unwrap();
        }
        assert_eq!(seqs(&all(&q)), (16..=25).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 15);
        assert_eq!(q.stats().unacked_bytes, 10 * rec_len);
        // Dropped events' segments are reclaimed.
        assert!(segment_files(d.path()).len() <= 4);
        drop(q);
        // Persisted; a lower bound at open drops more.
        let mut q = small(d.path(), BOOT, 4 * rec_len, 4 * rec_len);
        assert_eq!(q.dropped(), 21);
        assert_eq!(seqs(&all(&q)), [22, 23, 24, 25]);
        assert_eq!(q.push(&body).unwrap().seq, 26);
        assert_eq!(q.dropped(), 22);
        // An event bigger than the bound is still kept, alone.
        q.push(&[0u8; 1000]).unwrap();
        assert_eq!(seqs(&all(&q)), [27]);
        assert_eq!(q.dropped(), 26);
    }

    /// Queue with records 1..=n in one segment; returns the segment's bytes
    /// and where each record starts.
    fn one_segment(dir: &Path, n: u64) -> (PathBuf, Vec<u8>, Vec<usize>) {
        let mut q = open(dir, BOOT);
        let mut starts = Vec::new();
        for i in 1..=n {
            starts.push(q.active.as_ref().map_or(8, |a| a.len as usize));
            q.push(&payload(i * 1_000_003)).unwrap();
        }
        drop(q);
        let files = segment_files(dir);
        assert_eq!(files.len(), 1);
        let bytes = fs::read(&files[0]).unwrap();
        (files[0].clone(), bytes, starts)
    }

    #[test]
    fn a_torn_tail_is_truncated_at_every_offset() {
        let src = tmp();
        let (file, bytes, starts) = one_segment(src.path(), 5);
        let name = file.file_name().unwrap();
        let state = fs::read(src.path().join(STATE_FILE)).unwrap();
        let last = starts[4];
        for cut in last..bytes.len() {
            let d = tmp();
            fs::write(d.path().join(name), &bytes[..cut]).unwrap();
            fs::write(d.path().join(STATE_FILE), &state).unwrap();
            let mut q = open(d.path(), BOOT);
            let got = all(&q);
            assert_eq!(seqs(&got), [1, 2, 3, 4], "cut at {cut}");
            for e in &got {
                assert_eq!(e.payload, payload(e.seq * 1_000_003));
            }
            assert_eq!(q.stats().torn_tail_bytes, (cut - last) as u64);
            assert_eq!(q.stats().corrupt_records, 0);
            assert_eq!(
                fs::metadata(d.path().join(name)).unwrap().len(),
                last as u64
            );
            // The torn event was never returned by push: its seq is reused.
            assert_eq!(q.push(b"again").unwrap().seq, 5, "cut at {cut}");
            drop(q);
            let q = open(d.path(), BOOT);
            assert_eq!(seqs(&all(&q)), [1, 2, 3, 4, 5]);
            assert_eq!(all(&q)[4].payload, b"again");
        }
        // A tail of zeros (an extended file whose data never reached the
        // disk) is torn too.
        let d = tmp();
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 64]);
        fs::write(d.path().join(name), &zeros).unwrap();
        let mut q = open(d.path(), BOOT);
        assert_eq!(seqs(&all(&q)), [1, 2, 3, 4, 5]);
        assert_eq!(q.stats().torn_tail_bytes, 64);
        assert_eq!(q.push(b"six").unwrap().seq, 6);
    }

    #[test]
    fn a_flipped_byte_mid_file_skips_only_that_record() {
        let src = tmp();
        let (file, bytes, starts) = one_segment(src.path(), 9);
        let name = file.file_name().unwrap();
        let state = fs::read(src.path().join(STATE_FILE)).unwrap();
        // Every byte of record 5: length, its complement, CRC, boot ID, seq
        // and payload.
        for at in starts[4]..starts[5] {
            let d = tmp();
            let mut b = bytes.clone();
            b[at] ^= 0x20;
            fs::write(d.path().join(name), &b).unwrap();
            fs::write(d.path().join(STATE_FILE), &state).unwrap();
            let mut q = open(d.path(), BOOT);
            assert_eq!(seqs(&all(&q)), [1, 2, 3, 4, 6, 7, 8, 9], "flip at {at}");
            assert_eq!(q.stats().corrupt_records, 1, "flip at {at}");
            assert_eq!(q.stats().torn_tail_bytes, 0);
            assert_eq!(q.push(b"ten").unwrap().seq, 10);
        }
        // A segment with a damaged header is set aside; the others load.
        let d = tmp();
        let mut q = small(d.path(), BOOT, u64::MAX, 64);
        for i in 1..=4 {
            q.push(&payload(i)).unwrap();
        }
        drop(q);
        let files = segment_files(d.path());
        assert_eq!(files.len(), 4);
        let mut b = fs::read(&files[1]).unwrap();
        b[0] = b'X';
        fs::write(&files[1], b).unwrap();
        let q = small(d.path(), BOOT, u64::MAX, 64);
        assert_eq!(seqs(&all(&q)), [1, 3, 4]);
        assert_eq!(q.stats().corrupt_records, 1);
        assert!(files[1].with_extension("seg.corrupt").exists());
    }

    #[test]
    fn a_damaged_state_file_replays_rather_than_loses() {
        let d = tmp();
        let mut q = open(d.path(), BOOT);
        for i in 1..=3 {
            q.push(&payload(i)).unwrap();
        }
        q.ack(BOOT, 2).unwrap();
        drop(q);
        let path = d.path().join(STATE_FILE);
        let s = fs::read_to_string(&path).unwrap().replace(" 2 3", " 9 3");
        fs::write(&path, s).unwrap();
        let mut q = open(d.path(), BOOT);
        assert_eq!(seqs(&all(&q)), [1, 2, 3]);
        assert_eq!(q.push(b"four").unwrap().seq, 4);
    }

    #[test]
    fn bad_directories_and_inputs_are_errors_naming_them() {
        let d = tmp();
        let missing = d.path().join("missing");
        let e = EventQueue::open(&missing, BOOT, 1 << 20).unwrap_err();
        assert!(matches!(e, QueueError::Dir { .. }), "{e}");
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");

        let file = d.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let e = EventQueue::open(&file, BOOT, 1 << 20).unwrap_err();
        assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");
        assert!(e.to_string().contains("not a directory"), "{e}");

        // Not writable, even by root.
        let e = EventQueue::open(Path::new("/proc/self"), BOOT, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("/proc/self/"), "{e}");

        for bad in ["", "two words", "tab\there", &"x".repeat(256)] {
            let e = EventQueue::open(d.path(), bad, 1 << 20).unwrap_err();
            assert!(matches!(e, QueueError::InvalidBootId { .. }), "{e}");
        }
        let mut q = open(d.path(), BOOT);
        let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
        let e = q.push(&big).unwrap_err();
        assert!(matches!(e, QueueError::PayloadTooLarge { .. }), "{e}");
        assert_eq!(q.push(b"ok").unwrap().seq, 1);
    }

    // --- A real crash: SIGKILL at a random instant. ---

    const CRASH_DIR_ENV: &str = "GPUSCOPE_QUEUE_CRASH_DIR";
    const CRASH_SEED_ENV: &str = "GPUSCOPE_QUEUE_CRASH_SEED";
    const CRASH_BOOT: &str = "crash-boot";
    const CRASH_SEGMENT: u64 = 4096;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The payload of event `seq` in the crash test: checkable, of varied
    /// length.
    fn crash_payload(seq: u64) -> Vec<u8> {
        let mut p = format!("seq={seq};").into_bytes();
        p.resize(
            p.len() + (seq.wrapping_mul(2_654_435_761) % 1500) as usize,
            (seq % 251) as u8,
        );
        p
    }

    /// The child of `sigkill_at_any_instant_loses_no_durable_event`: pushes
    /// and acknowledges until killed, printing what has become durable.
    #[test]
    #[ignore = "helper process of sigkill_at_any_instant_loses_no_durable_event"]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
            return;
        };
        let mut rng: u64 = std::env::var(CRASH_SEED_ENV).unwrap().parse().unwrap();
        let mut q = small(Path::new(&dir), CRASH_BOOT, u64::MAX, CRASH_SEGMENT);
        loop {
            let n = xorshift(&mut rng) % 4 + 1;
            let first = q.next_seq();
            let payloads: Vec<Vec<u8>> = (first..first + n).map(crash_payload).collect();
            let entries = q.push_many(payloads.iter().map(Vec::as_slice)).unwrap();
            for e in &entries {
                println!("DURABLE {}", e.seq);
            }
            if xorshift(&mut rng).is_multiple_of(6) {
                let last = entries.last().unwrap().seq;
                let to = last.saturating_sub(xorshift(&mut rng) % 30);
                println!("ACKING {to}");
                q.ack(CRASH_BOOT, to).unwrap();
                println!("ACKED {to}");
            }
        }
    }

    #[test]
    fn sigkill_at_any_instant_loses_no_durable_event() {
        let d = tmp();
        let mut rng = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("crash test seed {rng}");
        let name = module_path!().split_once("::").unwrap().1.to_owned() + "::crash_child";
        let (mut max_durable, mut acked, mut max_acking) = (0u64, 0u64, 0u64);
        for round in 0..6 {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    &name,
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_DIR_ENV, d.path())
                .env(CRASH_SEED_ENV, xorshift(&mut rng).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            let reader = std::thread::spawn(move || {
                let mut r = io::BufReader::new(stdout);
                let mut line = Vec::new();
                // Only whole lines: a pipe write of one short line is atomic.
                while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                    if line.ends_with(b"\n") {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim().to_owned());
                    }
                    line.clear();
                }
            });
            // Let it start and push something, then kill it at a random
            // moment.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut lines = Vec::new();
            while !lines.iter().any(|l: &String| l.starts_with("DURABLE")) {
                let left = deadline.saturating_duration_since(Instant::now());
                lines.push(rx.recv_timeout(left).expect("child pushed nothing"));
            }
            std::thread::sleep(Duration::from_micros(xorshift(&mut rng) % 150_000));
            child.kill().unwrap();
            child.wait().unwrap();
            reader.join().unwrap();
            lines.extend(rx.try_iter());
            for l in &lines {
                // libtest's "test ... " may share the first line.
                let mut words = l.split_whitespace().rev();
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "DURABLE" => {
                        assert_eq!(n, max_durable + 1, "durable seqs in order, no gap");
                        max_durable = n;
                    }
                    "ACKING" => max_acking = max_acking.max(n),
                    "ACKED" => acked = acked.max(n),
                    _ => {}
                }
            }
            let q = small(d.path(), CRASH_BOOT, u64::MAX, CRASH_SEGMENT);
            let got = all(&q);
            // The acknowledgement point is the last one completed, or the
            // one in flight when killed.
            let point = got.first().map_or(q.next_seq() - 1, |e| e.seq - 1);
            assert!(
                (acked..=max_acking.max(acked)).contains(&point),
                "round {round}: ack point {point}, acked {acked}, acking {max_acking}"
            );
            // Exactly once, in order, nothing missing: a contiguous run
            // from after the ack point through every durable event.
            for (i, e) in got.iter().enumerate() {
                assert_eq!(e.seq, point + 1 + i as u64, "round {round}");
                assert_eq!(e.boot_id, CRASH_BOOT);
                assert_eq!(
                    e.payload,
                    crash_payload(e.seq),
                    "round {round} seq {}",
                    e.seq
                );
            }
            let top = got.last().map_or(point, |e| e.seq);
            assert!(
                top >= max_durable,
                "round {round}: lost {top}..{max_durable}"
            );
            // At most one batch (4) was durable but not yet reported.
            assert!(
                top <= max_durable + 4,
                "round {round}: {top} > {max_durable} + 4"
            );
            // The next run continues after the highest seq written.
            assert_eq!(q.next_seq(), top + 1);
            max_durable = top;
            eprintln!(
                "round {round}: {} queued, ack point {point}, torn {} bytes",
                got.len(),
                q.stats().torn_tail_bytes
            );
        }
        assert!(max_durable > 6, "the child pushed too little to test");
    }
}
