//! The kernel log (`/dev/kmsg`): a record reader and the OOM-report
//! assembler.
//!
//! `/dev/kmsg` hands out one record per `read()`:
//! `prio,seq,usec,flags[,...];text\n` followed by optional dictionary lines
//! that start with a space (` SUBSYSTEM=...`). [`parse_record`] splits one
//! record without allocating; [`KmsgReader`] reads them into one reused
//! buffer and reports lost records; [`OomAssembler`] turns the lines of an
//! OOM kill into one [`OomReport`].
//!
//! The kernel prints an OOM kill as a block of records (the header and the
//! dump are rate-limited, the `Killed process` line never is):
//!
//! ```text
//! python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
//! ... stack, memory: usage 65536kB, limit 65536kB, failcnt 24, stats, task table ...
//! oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=python3,pid=8048,uid=0
//! Memory cgroup out of memory: Killed process 8048 (python3) total-vm:75160kB, anon-rss:65152kB, ...
//! ```
//!
//! Formats handled, by kernel:
//! - 6.x / 5.x: `%s: Killed process %d (%s) total-vm:..., shmem-rss:%lukB[, UID:%u[ pgtables:%lukB oom_score_adj:%hd]]`,
//!   with the message `Memory cgroup out of memory` or `Out of memory` (node).
//!   The summary line prints `global_oom` instead of `oom_memcg=` on a node OOM.
//! - 4.19 (and 5.0-5.2): `%s: Kill process %d (%s) score %u or sacrifice child`,
//!   then an unprefixed `Killed process ...` whose pid may be a child's.
//! - Before 4.19: no summary line; `Task in <path> killed as a result of limit of <path>`.
//! - `Tasks in <path> are going to be killed due to memory.oom.group set`: the
//!   following kills in that cgroup belong to the same OOM (the kubelet sets
//!   `memory.oom.group` on cgroup v2).
//!
//! A `memory.oom.group` kill is one OOM event with several `Killed process`
//! lines (real 6.1 output in `tests/fixtures/kmsg/cgroup-v2-group-oom-kill-6.1-vm.txt`):
//!
//! ```text
//! oom-kill:constraint=CONSTRAINT_MEMCG,...,task_memcg=/c,task=hog,pid=121,uid=0
//! Memory cgroup out of memory: Killed process 121 (hog) ... oom_score_adj:0    <- the victim the kernel chose
//! Tasks in /c are going to be killed due to memory.oom.group set
//! Memory cgroup out of memory: Killed process 116 (sh) ...                     <- every member,
//! Memory cgroup out of memory: Killed process 121 (hog) ...                    <- the chosen one again
//! ```
//!
//! (a member whose memory is already gone prints `OOM victim P (C) is
//! already exiting. Skip killing the task` instead). Each `Killed process`
//! line raises the cgroup's `oom_kill` by one, the group `oom_group_kill`
//! once. The assembler therefore holds the chosen victim's report until
//! it knows whether a group follows, and emits **one** report per OOM
//! event: the chosen victim, and the group's other members in
//! [`OomReport::group`]. A held report is released by the next record
//! that does not continue it, by a record more than [`GROUP_GAP`] later,
//! or by [`OomAssembler::flush`]: the reader calls it once the log has
//! been quiet for [`QUIET_FLUSH`], or at once when `memory.oom.group` reads
//! 0 in every cgroup from the victim's up to the one whose limit was hit
//! (no group kill can follow: `collect::cgroup::oom_group_set`).
//!
//! Only the kernel speaks for the kernel: every record written to
//! `/dev/kmsg` from userspace carries the `user` facility, whatever its
//! prefix asks, and the assembler ignores (and counts) every record that
//! is not the kernel's own ([`KmsgRecord::from_kernel`]), so a process
//! that can write the device cannot fabricate a kill.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, warn};

use gpuscope_model::{MAX_GROUP_MEMBERS, OomConstraint, OomGroup, Victim};

/// Size of the read buffer: the kernel's largest extended record
/// (`CONSOLE_EXT_LOG_MAX`).
pub const BUFFER_LEN: usize = 8192;

/// How long OOM context lines (header, usage, summary) stay attachable to a
/// later `Killed process` line, by the records' own timestamps.
pub const DEFAULT_CONTEXT_WINDOW: Duration = Duration::from_secs(5);

/// A held report is released by a record this much later than its last
/// line (kernel time): the kernel prints a group's kills in one loop under
/// the OOM lock, milliseconds apart even on a slow console.
pub const GROUP_GAP: Duration = Duration::from_secs(1);

/// How long the log must be quiet before a held report is released (wall
/// time, [`OomAssembler::flush`]). 13 ms separated two member lines under
/// QEMU's TCG; 50 ms leaves room and stays under the pipeline's default
/// 250 ms wait for a report (`--kmsg-wait`).
pub const QUIET_FLUSH: Duration = Duration::from_millis(50);

/// Errors of the kernel-log reader and parser.
#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    /// The log device (or file) could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Seeking to the end of the log failed.
    #[error("cannot seek to the end of {}: {source}", path.display())]
    Seek {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading a record failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record is longer than the read buffer (only from a regular file or
    /// pipe; the kernel never sends one). The record is skipped.
    #[error("a record in {} is longer than {BUFFER_LEN} bytes", path.display())]
    TooLong {
        /// The path being read.
        path: PathBuf,
    },
    /// A record does not have the `prio,seq,usec,flags;text` shape.
    #[error("malformed kmsg record: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
}

/// One `/dev/kmsg` record, borrowed from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// Syslog level (`prio & 7`): 0 emerg ... 3 err ... 6 info, 7 debug.
    pub level: u8,
    /// Syslog facility (`prio >> 3`): 0 kernel, 1 user.
    pub facility: u32,
    /// Sequence number; consecutive records differ by one.
    pub seq: u64,
    /// Microseconds since boot (monotonic clock).
    pub usec: u64,
    /// The flags field (`-`, `c` or `+`).
    pub flags: &'a [u8],
    /// The message, without the trailing newline or dictionary lines;
    /// non-printable bytes stay escaped as `\xNN`.
    pub text: &'a [u8],
}

impl KmsgRecord<'_> {
    /// Whether the kernel itself logged the record (facility 0). The
    /// kernel gives every record written to `/dev/kmsg` from userspace
    /// the `user` facility (1) when its prefix asks for 0, so only these
    /// may speak for the kernel: a kernel report (an OOM kill, an XID)
    /// is read from these alone, or anyone who can write the device could
    /// fabricate one.
    pub fn from_kernel(&self) -> bool {
        self.facility == 0
    }
}

/// Splits one record: `prio,seq,usec,flags[,more...];text` plus optional
/// `\n KEY=value` dictionary lines, which are skipped.
pub fn parse_record(line: &[u8]) -> Result<KmsgRecord<'_>, KmsgError> {
    let semi = find_byte(line, b';').ok_or(KmsgError::Malformed {
        reason: "no ';' after the record header",
    })?;
    let (header, rest) = (&line[..semi], &line[semi + 1..]);
    let text = match find_byte(rest, b'\n') {
        Some(nl) => &rest[..nl],
        None => rest,
    };
    let mut fields = header.split(|&b| b == b',');
    let prio = fields
        .next()
        .and_then(parse_u64)
        .ok_or(KmsgError::Malformed {
            reason: "bad priority field",
        })?;
    let seq = fields
        .next()
        .and_then(parse_u64)
        .ok_or(KmsgError::Malformed {
            reason: "bad sequence number",
        })?;
    let usec = fields
        .next()
        .and_then(parse_u64)
        .ok_or(KmsgError::Malformed {
            reason: "bad timestamp",
        })?;
    let flags = fields.next().unwrap_or(b"");
    let facility = u32::try_from(prio >> 3).map_err(|_| KmsgError::Malformed {
        reason: "bad priority field",
    })?;
    Ok(KmsgRecord {
        level: (prio & 7) as u8,
        facility,
        seq,
        usec,
        flags,
        text,
    })
}

/// What [`KmsgReader::next`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsgItem<'a> {
    /// One record.
    Record(KmsgRecord<'a>),
    /// Records were lost before they could be read: the kernel overwrote
    /// them (`EPIPE`) or the sequence numbers jumped. The record after the
    /// gap comes with the next call.
    Overrun {
        /// Number of records lost (the sequence-number gap).
        lost: u64,
    },
    /// End of a regular file or a closed pipe (`/dev/kmsg` never ends).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A character device: one record per `read()`.
    Device,
    /// A regular file or pipe: newline-separated records.
    Stream,
}

/// Reads kernel log records into one reused buffer.
#[derive(Debug)]
pub struct KmsgReader {
    file: File,
    path: PathBuf,
    mode: Mode,
    buf: Vec<u8>,
    /// Stream mode: unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// Stream mode: dropping the rest of an over-long line.
    discarding: bool,
    /// A record already read, to return before reading more.
    pending: Option<(usize, usize)>,
    last_seq: Option<u64>,
    /// `read()` returned `EPIPE` since the last record.
    epipe: bool,
}

impl KmsgReader {
    /// Opens `path` (normally `/dev/kmsg`) read-only. With `from_end`, skips
    /// every record already in the log, so that kills from before start-up
    /// are not reported as new.
    pub fn open(path: &Path, from_end: bool) -> Result<Self, KmsgError> {
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|source| KmsgError::Open {
                path: path.to_owned(),
                source,
            })?;
        let mut reader = Self::from_file(file, path);
        if from_end {
            // On /dev/kmsg, SEEK_END means "after the last record".
            reader
                .file
                .seek(SeekFrom::End(0))
                .map_err(|source| KmsgError::Seek {
                    path: path.to_owned(),
                    source,
                })?;
        }
        Ok(reader)
    }

    /// Reads from an already open file: a character device is read one
    /// record per `read()`, anything else (a regular file, a pipe) as
    /// newline-separated records. `path` names it in errors.
    pub fn from_file(file: File, path: impl Into<PathBuf>) -> Self {
        let mode = match file.metadata() {
            Ok(m) if m.file_type().is_char_device() => Mode::Device,
            _ => Mode::Stream,
        };
        Self {
            file,
            path: path.into(),
            mode,
            buf: vec![0; BUFFER_LEN],
            start: 0,
            end: 0,
            eof: false,
            discarding: false,
            pending: None,
            last_seq: None,
            epipe: false,
        }
    }

    /// Waits up to `timeout` for a record to read; `Ok(false)` when none
    /// came. A record already buffered, or a regular file, is ready at once.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, KmsgError> {
        use std::os::fd::AsFd;

        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

        if self.pending.is_some()
            || self.eof
            || (self.mode == Mode::Stream && self.start < self.end)
        {
            return Ok(true);
        }
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(KmsgError::Read {
                path: self.path.clone(),
                source: e.into(),
            }),
        }
    }

    /// Sequence number of the last record returned.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Blocks until the next record (or gap, or end) and returns it.
    ///
    /// A malformed record is returned as an error and skipped; the caller
    /// may go on calling `next`.
    #[allow(
        clippy::should_implement_trait,
        reason = "the item borrows the reader's buffer: a lending iterator, which `Iterator` cannot express"
    )]
    pub fn next(&mut self) -> Result<KmsgItem<'_>, KmsgError> {
        let (a, b) = match self.pending.take() {
            Some(range) => range,
            None => match self.fill()? {
                Some(range) => range,
                None => return Ok(KmsgItem::End),
            },
        };
        let rec = parse_record(&self.buf[a..b])?;
        if let Some(last) = self.last_seq {
            if rec.seq > last.saturating_add(1) {
                let lost = rec.seq - last - 1;
                self.epipe = false;
                // The record after the gap is returned by the next call;
                // pretend the gap ends just before it.
                self.last_seq = Some(rec.seq - 1);
                self.pending = Some((a, b));
                return Ok(KmsgItem::Overrun { lost });
            }
        } else if self.epipe {
            warn!(path = %self.path.display(), "Kernel log records were lost before the first one read.");
        }
        self.epipe = false;
        self.last_seq = Some(rec.seq);
        Ok(KmsgItem::Record(rec))
    }

    /// Reads the next raw record; returns its range in `buf`, or `None` at
    /// the end of a file.
    fn fill(&mut self) -> Result<Option<(usize, usize)>, KmsgError> {
        match self.mode {
            Mode::Device => loop {
                match self.file.read(&mut self.buf) {
                    Ok(0) => return Ok(None),
                    Ok(n) => return Ok(Some((0, n))),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                        debug!(path = %self.path.display(), "Kernel log overwrote unread records.");
                        self.epipe = true;
                    }
                    Err(source) => {
                        return Err(KmsgError::Read {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            },
            Mode::Stream => self.fill_stream(),
        }
    }

    fn fill_stream(&mut self) -> Result<Option<(usize, usize)>, KmsgError> {
        loop {
            if let Some(i) = find_byte(&self.buf[self.start..self.end], b'\n') {
                let (a, b) = (self.start, self.start + i);
                self.start = b + 1;
                if std::mem::take(&mut self.discarding) || a == b || self.buf[a] == b' ' {
                    // The tail of an over-long line, an empty line or a
                    // dictionary line.
                    continue;
                }
                return Ok(Some((a, b)));
            }
            if self.eof {
                if self.start < self.end && !self.discarding {
                    let range = (self.start, self.end);
                    self.start = self.end;
                    return Ok(Some(range));
                }
                return Ok(None);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                self.end = 0;
                self.discarding = true;
                return Err(KmsgError::TooLong {
                    path: self.path.clone(),
                });
            }
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(KmsgError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }
}

/// One OOM kill as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomReport {
    /// Sequence number of the `Killed process` record.
    pub seq: u64,
    /// Its timestamp, microseconds since boot.
    pub usec: u64,
    /// The task whose allocation invoked the OOM killer (`X invoked
    /// oom-killer`).
    pub trigger_comm: Option<String>,
    /// Which limit was enforced: from the summary line, else from the
    /// `Killed process` line's prefix.
    pub constraint: OomConstraint,
    /// The cgroup whose limit was hit (`oom_memcg=`, or the `memory.oom.group`
    /// cgroup for the group's further kills), relative to the hierarchy root.
    pub oom_memcg: Option<String>,
    /// The victim's cgroup (`task_memcg=`), relative to the hierarchy root,
    /// e.g. `/kubepods/burstable/pod<uid>/<id>`. Only set when the summary
    /// line names this victim's pid.
    pub task_memcg: Option<String>,
    /// The process the kernel chose: the first `Killed process` line of
    /// the OOM event.
    pub victim: Victim,
    /// The rest of a `memory.oom.group` kill: the other processes killed
    /// after the `Tasks in ... memory.oom.group set` line.
    pub group: Option<OomGroup>,
    /// `memory: usage NkB` of the OOM cgroup, bytes (memcg OOMs only).
    pub memcg_usage_bytes: Option<u64>,
    /// `limit NkB` of the same line, bytes.
    pub memcg_limit_bytes: Option<u64>,
    /// The kill's own summary (`oom-kill:` or, before 4.19, `Task in`) was
    /// not seen: rate-limited, lost, or a further kill of a
    /// `memory.oom.group`. Cgroup and trigger fields may then be missing.
    pub partial: bool,
}

/// The `oom-kill:` summary (or a pre-4.19 `Task in` line).
#[derive(Debug, Clone, Default)]
struct Summary {
    usec: u64,
    constraint: Option<OomConstraint>,
    oom_memcg: Option<String>,
    task_memcg: Option<String>,
    pid: Option<u32>,
}

/// What the kernel printed about one OOM before its `Killed process` line.
#[derive(Debug, Clone, Default)]
struct Context {
    /// `invoked oom-killer` header: (usec, comm).
    header: Option<(u64, String)>,
    /// `memory: usage`: (usec, usage bytes, limit bytes).
    usage: Option<(u64, u64, u64)>,
    summary: Option<Summary>,
    /// 4.19's `Kill process P (C) score N or sacrifice child`: (usec, pid,
    /// constraint from the prefix).
    notice: Option<(u64, u32, OomConstraint)>,
    /// A `memory.oom.group` line whose chosen victim was not seen: (usec,
    /// cgroup).
    group: Option<(u64, String)>,
}

/// A report held until it is known whether a `memory.oom.group` kill
/// continues it.
#[derive(Debug, Clone)]
struct Held {
    report: OomReport,
    /// Kernel time of its last line.
    last_usec: u64,
}

/// Assembles OOM reports from the records of the kernel log.
///
/// Feed every record to [`OomAssembler::push`]; records that are not part of
/// an OOM report cost a few byte comparisons and no allocation.
#[derive(Debug, Clone)]
pub struct OomAssembler {
    window_usec: u64,
    ctx: Context,
    /// The last report, not yet emitted.
    held: Option<Held>,
    /// Whether a `memory.oom.group` kill can follow a report: only where
    /// the memory controller is on cgroup v2 (v1 has no `memory.oom.group`).
    group_kills: bool,
    /// Records ignored for not coming from the kernel.
    not_kernel: u64,
}

impl Default for OomAssembler {
    fn default() -> Self {
        Self::new()
    }
}

const OOM_HEADER: &[u8] = b" invoked oom-killer: ";
const USAGE: &[u8] = b"memory: usage ";
const SUMMARY: &[u8] = b"oom-kill:";
const KILLED: &[u8] = b"Killed process ";
const KILL_NOTICE: &[u8] = b"Kill process ";
const TASK_IN: &[u8] = b"Task in ";
const TASK_IN_LIMIT: &[u8] = b" killed as a result of limit of ";
const GROUP: &[u8] = b"Tasks in ";
const GROUP_END: &[u8] = b" are going to be killed due to memory.oom.group set";
const EXITING: &[u8] = b"OOM victim ";
const EXITING_END: &[u8] = b" is already exiting. Skip killing the task";
const REAPER: &[u8] = b"oom_reaper: ";
const MEMCG_PREFIX: &[u8] = b"Memory cgroup out of memory";
const NODE_PREFIX: &[u8] = b"Out of memory";
/// How far into a record the `invoked oom-killer` and `Killed process`
/// markers may sit: after a comm (16 bytes, 64 escaped) or a message.
const MARKER_WINDOW: usize = 96;

impl OomAssembler {
    /// An assembler with [`DEFAULT_CONTEXT_WINDOW`].
    pub fn new() -> Self {
        Self::with_window(DEFAULT_CONTEXT_WINDOW)
    }

    /// An assembler that forgets context lines older than `window` (by the
    /// records' timestamps) when a `Killed process` line arrives.
    pub fn with_window(window: Duration) -> Self {
        Self {
            window_usec: window.as_micros() as u64,
            ctx: Context::default(),
            held: None,
            group_kills: true,
            not_kernel: 0,
        }
    }

    /// Says whether group kills can happen on this host. Without them
    /// (the memory controller on cgroup v1) a report is complete at its
    /// `Killed process` line and is returned at once, not held for a
    /// group line that cannot come.
    pub fn group_kills(mut self, possible: bool) -> Self {
        self.group_kills = possible;
        self
    }

    /// Whether a report is held, waiting to learn whether a group kill
    /// continues it: call [`Self::flush`] once the log is quiet.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// The report held, if any: its victim and cgroups tell the reader
    /// whether a group kill can follow it at all ([`Self::flush`] it at
    /// once when it cannot).
    pub fn held(&self) -> Option<&OomReport> {
        self.held.as_ref().map(|h| &h.report)
    }

    /// Releases the held report, if any: nothing more belongs to it.
    pub fn flush(&mut self) -> Option<OomReport> {
        self.held.take().map(|h| h.report)
    }

    /// Records ignored so far for not coming from the kernel (see
    /// [`KmsgRecord::from_kernel`]).
    pub fn not_kernel(&self) -> u64 {
        self.not_kernel
    }

    /// Takes one record; returns a report when an OOM event is complete
    /// (normally the one before this record: see the module docs). A
    /// record that is not the kernel's is ignored and counted: it neither
    /// starts, continues nor ends a report.
    pub fn push(&mut self, rec: &KmsgRecord<'_>) -> Option<OomReport> {
        if !rec.from_kernel() {
            self.not_kernel += 1;
            return None;
        }
        if self.held.is_some() {
            if self.continues_held(rec) {
                return None;
            }
            let done = self.flush();
            self.push_new(rec);
            return done;
        }
        self.push_new(rec);
        if self.group_kills { None } else { self.flush() }
    }

    /// Whether `rec` belongs to the held report's OOM event (and takes it).
    fn continues_held(&mut self, rec: &KmsgRecord<'_>) -> bool {
        let gap = GROUP_GAP.as_micros() as u64;
        let Some(held) = &mut self.held else {
            return false;
        };
        if rec.usec < held.last_usec || rec.usec - held.last_usec > gap {
            return false;
        }
        let text = rec.text;
        if let Some(path) = text
            .strip_prefix(GROUP)
            .and_then(|t| t.strip_suffix(GROUP_END))
        {
            if held.report.group.is_some() {
                return false;
            }
            held.report.group = Some(OomGroup {
                cgroup_path: lossy(path),
                kill_lines: 1,
                ..OomGroup::default()
            });
            held.last_usec = rec.usec;
            return true;
        }
        if text.starts_with(REAPER) {
            return true;
        }
        let Some(group) = &mut held.report.group else {
            return false;
        };
        let head = &text[..text.len().min(MARKER_WINDOW)];
        if let Some(at) = find(head, KILLED)
            && (at == 0 || text[..at].ends_with(b": "))
            && let Some(v) = parse_victim(&text[at + KILLED.len()..])
        {
            group.kill_lines += 1;
            if v.pid != held.report.victim.pid {
                group.member_count += 1;
                if group.members.len() < MAX_GROUP_MEMBERS {
                    group.members.push(v);
                }
            }
            held.last_usec = rec.usec;
            return true;
        }
        if let Some(at) = find(head, EXITING)
            && text.ends_with(EXITING_END)
            && text[..at].ends_with(b": ")
        {
            group.skipped += 1;
            held.last_usec = rec.usec;
            return true;
        }
        // Anything else that is not about an OOM (another subsystem's
        // record from another CPU) neither continues nor ends the group.
        !is_oom_record(text)
    }

    /// Takes a record that no held report continues.
    fn push_new(&mut self, rec: &KmsgRecord<'_>) {
        let text = rec.text;
        // Cheapest checks first: most records start with none of these bytes.
        match text.first() {
            Some(b'o') if text.starts_with(SUMMARY) => {
                self.on_summary(rec.usec, &text[SUMMARY.len()..]);
                return;
            }
            Some(b'm') if text.starts_with(USAGE) => {
                self.on_usage(rec.usec, &text[USAGE.len()..]);
                return;
            }
            Some(b'T') if text.starts_with(GROUP) => {
                // A group line with no report held: its chosen victim's
                // line was lost (overrun, or read before start-up). The
                // members that follow are reported one by one.
                // The prefix ends and the suffix starts with a space: strip
                // one after the other so a record holding only the two
                // (overlapping on that space) yields no path, not a panic.
                if let Some(path) = text[GROUP.len()..].strip_suffix(GROUP_END) {
                    self.ctx.group = Some((rec.usec, lossy(path)));
                    return;
                }
            }
            Some(b'T') if text.starts_with(TASK_IN) => {
                self.on_task_in(rec.usec, &text[TASK_IN.len()..]);
                return;
            }
            _ => {}
        }
        let head = &text[..text.len().min(MARKER_WINDOW)];
        if let Some(at) = find(head, KILLED) {
            let prefix = &text[..at];
            if at == 0 || prefix.ends_with(b": ") {
                self.on_killed(rec, prefix, &text[at + KILLED.len()..]);
            }
        } else if let Some(at) = find(head, KILL_NOTICE) {
            if text[..at].ends_with(b": ") {
                self.on_kill_notice(rec.usec, &text[..at], &text[at + KILL_NOTICE.len()..]);
            }
        } else if let Some(at) = find(head, OOM_HEADER) {
            self.on_header(rec.usec, &text[..at]);
        }
    }

    fn on_header(&mut self, usec: u64, comm: &[u8]) {
        // A header starts a new OOM: whatever came before belongs to another.
        self.ctx = Context {
            header: Some((usec, lossy(comm))),
            ..Context::default()
        };
    }

    fn on_usage(&mut self, usec: u64, rest: &[u8]) {
        // "65536kB, limit 65536kB, failcnt 24"
        let mut parts = rest.split(|&b| b == b',');
        let usage = parts.next().and_then(parse_kb);
        let limit = parts
            .next()
            .and_then(|p| p.strip_prefix(b" limit "))
            .and_then(parse_kb);
        if let (Some(usage), Some(limit)) = (usage, limit) {
            self.ctx.usage = Some((usec, usage, limit));
        }
    }

    fn on_summary(&mut self, usec: u64, s: &[u8]) {
        // constraint=C,nodemask=N,cpuset=NAME,mems_allowed=LIST,
        // (oom_memcg=PATH|global_oom),task_memcg=PATH,task=COMM,pid=P,uid=U
        // Node lists contain commas and cgroup names may, so fields are cut
        // at the next known key, and the tail is taken from the right.
        // `cpuset=` is the *trigger's* cpuset cgroup (a name on 4.19, not
        // the victim's path), so it is not used.
        let constraint = s
            .strip_prefix(b"constraint=")
            .map(|v| &v[..find_byte(v, b',').unwrap_or(v.len())])
            .map(|v| match v {
                b"CONSTRAINT_MEMCG" => OomConstraint::Memcg,
                b"CONSTRAINT_NONE" => OomConstraint::Node,
                b"CONSTRAINT_CPUSET" => OomConstraint::Cpuset,
                b"CONSTRAINT_MEMORY_POLICY" => OomConstraint::MemoryPolicy,
                _ => OomConstraint::Unknown,
            });
        let mut end = s.len();
        let mut pid = None;
        if let Some(at) = rfind(&s[..end], b",uid=") {
            end = at;
        }
        if let Some(at) = rfind(&s[..end], b",pid=") {
            pid = parse_u64(&s[at + 5..end]).and_then(|p| u32::try_from(p).ok());
            end = at;
        }
        if let Some(at) = rfind(&s[..end], b",task=") {
            end = at;
        }
        let task_at = find(&s[..end], b",task_memcg=");
        let task_memcg = task_at.map(|at| lossy(&s[at + 12..end]));
        let oom_end = task_at.unwrap_or(end);
        let oom_memcg = find(&s[..oom_end], b",oom_memcg=").map(|at| lossy(&s[at + 11..oom_end]));
        self.ctx.summary = Some(Summary {
            usec,
            constraint,
            oom_memcg,
            task_memcg,
            pid,
        });
        self.ctx.notice = None;
    }

    fn on_task_in(&mut self, usec: u64, s: &[u8]) {
        // Before 4.19: "Task in <task path> killed as a result of limit of <oom path>".
        let Some(at) = find(s, TASK_IN_LIMIT) else {
            return;
        };
        self.ctx.summary = Some(Summary {
            usec,
            constraint: Some(OomConstraint::Memcg),
            oom_memcg: Some(lossy(&s[at + TASK_IN_LIMIT.len()..])),
            task_memcg: Some(lossy(&s[..at])),
            pid: None,
        });
    }

    fn on_kill_notice(&mut self, usec: u64, prefix: &[u8], rest: &[u8]) {
        // 4.19: "<message>: Kill process P (C) score N or sacrifice child".
        if let Some(pid) = leading_u32(rest) {
            self.ctx.notice = Some((usec, pid, constraint_from_prefix(prefix)));
        }
    }

    fn fresh(&self, then: u64, now: u64) -> bool {
        now >= then && now - then <= self.window_usec
    }

    /// A `Killed process` line that starts an OOM event: its report is
    /// held (see the module docs).
    fn on_killed(&mut self, rec: &KmsgRecord<'_>, prefix: &[u8], rest: &[u8]) {
        let Some(victim) = parse_victim(rest) else {
            debug!(seq = rec.seq, "Unparsable Killed process line.");
            return;
        };
        let now = rec.usec;
        let ctx = std::mem::take(&mut self.ctx);
        let header = ctx.header.filter(|h| self.fresh(h.0, now));
        let usage = ctx.usage.filter(|u| self.fresh(u.0, now));
        let notice = ctx.notice.filter(|n| self.fresh(n.0, now));
        let summary = ctx.summary.filter(|s| self.fresh(s.usec, now));
        let prefix_constraint = constraint_from_prefix(prefix);
        let notice_constraint = notice
            .filter(|n| n.1 == victim.pid)
            .map(|n| n.2)
            .unwrap_or(OomConstraint::Unknown);
        let mut report = OomReport {
            seq: rec.seq,
            usec: now,
            trigger_comm: None,
            constraint: if prefix_constraint == OomConstraint::Unknown {
                notice_constraint
            } else {
                prefix_constraint
            },
            oom_memcg: None,
            task_memcg: None,
            victim,
            group: None,
            memcg_usage_bytes: None,
            memcg_limit_bytes: None,
            partial: true,
        };
        let pid = report.victim.pid;
        match summary {
            Some(s) => {
                let same_task = s.pid.is_none_or(|p| p == pid);
                // 4.19 may kill a child of the task the summary names; its
                // "Kill process" notice links the two.
                let child = s.pid.is_some_and(|p| notice.is_some_and(|n| n.1 == p));
                if same_task || child {
                    report.partial = false;
                    if let Some(c) = s.constraint {
                        report.constraint = c;
                    }
                    report.oom_memcg = s.oom_memcg;
                    report.task_memcg = if same_task { s.task_memcg } else { None };
                    report.trigger_comm = header.map(|h| h.1);
                    if let Some((_, u, l)) = usage {
                        report.memcg_usage_bytes = Some(u);
                        report.memcg_limit_bytes = Some(l);
                    }
                } else {
                    debug!(
                        seq = rec.seq,
                        pid,
                        summary_pid = ?s.pid,
                        "OOM summary names another process; not attached."
                    );
                }
            }
            None => {
                // A member of a group whose chosen victim was not seen: its
                // cgroup is the group's, and the rest of the context (of
                // the same block) still applies.
                let group = ctx.group.filter(|g| self.fresh(g.0, now));
                if let Some((at, memcg)) = group {
                    report.oom_memcg = Some(memcg.clone());
                    report.trigger_comm = header.as_ref().map(|h| h.1.clone());
                    if let Some((_, u, l)) = usage {
                        report.memcg_usage_bytes = Some(u);
                        report.memcg_limit_bytes = Some(l);
                    }
                    // Later members of the same group too.
                    self.ctx.group = Some((at, memcg));
                    self.ctx.header = header;
                    self.ctx.usage = usage;
                } else {
                    // Summary lost (rate limit, overrun): the header of the
                    // same block may still be there.
                    report.trigger_comm = header.map(|h| h.1);
                    if !matches!(
                        report.constraint,
                        OomConstraint::Node | OomConstraint::Cpuset | OomConstraint::MemoryPolicy
                    ) && let Some((_, u, l)) = usage
                    {
                        report.memcg_usage_bytes = Some(u);
                        report.memcg_limit_bytes = Some(l);
                    }
                }
            }
        }
        self.held = Some(Held {
            last_usec: now,
            report,
        });
    }
}

/// Whether a record is part of some OOM report (and so ends a held one
/// it does not continue).
fn is_oom_record(text: &[u8]) -> bool {
    let head = &text[..text.len().min(MARKER_WINDOW)];
    text.starts_with(SUMMARY)
        || text.starts_with(USAGE)
        || text.starts_with(GROUP)
        || text.starts_with(TASK_IN)
        || find(head, KILLED).is_some()
        || find(head, KILL_NOTICE).is_some()
        || find(head, OOM_HEADER).is_some()
}

/// `Memory cgroup out of memory: ` => memcg, `Out of memory...: ` => node.
fn constraint_from_prefix(prefix: &[u8]) -> OomConstraint {
    if prefix.starts_with(MEMCG_PREFIX) {
        OomConstraint::Memcg
    } else if prefix.starts_with(NODE_PREFIX) {
        OomConstraint::Node
    } else {
        OomConstraint::Unknown
    }
}

/// Parses what follows `Killed process `:
/// `P (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB[, UID:N pgtables:NkB oom_score_adj:N]`
/// (very old kernels: `P, UID N, (COMM) total-vm:...`).
fn parse_victim(s: &[u8]) -> Option<Victim> {
    let pid = leading_u32(s)?;
    let open = find_byte(s, b'(')?;
    // The comm may itself contain ") " or spaces: end at ") total-vm:".
    let close = find(&s[open..], b") total-vm:")
        .map(|i| open + i)
        .or_else(|| s.iter().rposition(|&b| b == b')'))?;
    if close < open {
        return None;
    }
    let comm = lossy(&s[open + 1..close]);
    let mut v = Victim {
        pid,
        comm,
        ..Victim::default()
    };
    for token in s[close + 1..].split(|&b| b == b' ' || b == b',') {
        let Some(colon) = find_byte(token, b':') else {
            continue;
        };
        let (key, value) = (&token[..colon], &token[colon + 1..]);
        match key {
            b"total-vm" => v.total_vm_bytes = parse_kb(value).unwrap_or(0),
            b"anon-rss" => v.anon_rss_bytes = parse_kb(value).unwrap_or(0),
            b"file-rss" => v.file_rss_bytes = parse_kb(value).unwrap_or(0),
            b"shmem-rss" => v.shmem_rss_bytes = parse_kb(value).unwrap_or(0),
            b"UID" => v.uid = parse_u64(value).and_then(|u| u32::try_from(u).ok()),
            b"pgtables" => v.pgtables_bytes = parse_kb(value),
            b"oom_score_adj" => v.oom_score_adj = parse_i32(value),
            _ => {}
        }
    }
    Some(v)
}

/// `NkB` (optionally with leading spaces) as bytes.
fn parse_kb(s: &[u8]) -> Option<u64> {
    let s = trim_start(s);
    let digits = s.strip_suffix(b"kB").or_else(|| s.strip_suffix(b"KB"))?;
    parse_u64(digits)?.checked_mul(1024)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

fn parse_i32(s: &[u8]) -> Option<i32> {
    match s.strip_prefix(b"-") {
        Some(d) => i32::try_from(parse_u64(d)?).ok().map(|v| -v),
        None => i32::try_from(parse_u64(s)?).ok(),
    }
}

/// The decimal number at the start of `s`.
fn leading_u32(s: &[u8]) -> Option<u32> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_u64(&s[..n]).and_then(|v| u32::try_from(v).ok())
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    &s[n..]
}

fn lossy(s: &[u8]) -> String {
    String::from_utf8_lossy(s).into_owned()
}

fn find_byte(s: &[u8], b: u8) -> Option<usize> {
    s.iter().position(|&x| x == b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = find_byte(&hay[from..], first) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| hay[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;
    use std::sync::mpsc;

    use super::*;

    const KMSG_V1: &str = include_str!("../../tests/fixtures/kmsg/kmsg-memcg-oom-cgroup-v1.txt");
    const DMESG_V1: &str = include_str!("../../tests/fixtures/kmsg/dmesg-memcg-oom-cgroup-v1.txt");
    const VM_V2_61: &[u8] =
        include_bytes!("../../tests/fixtures/kmsg/cgroup-v2-oom-kernel-6.1-vm.txt");
    const NODE_61: &str =
        include_str!("../../tests/fixtures/kmsg/node-oom-kernel-6.1-handmade.txt");
    const MEMCG_5X: &str =
        include_str!("../../tests/fixtures/kmsg/memcg-oom-kernel-5.x-handmade.txt");
    const MEMCG_419: &str =
        include_str!("../../tests/fixtures/kmsg/memcg-oom-kernel-4.19-handmade.txt");
    const VM_GROUP_61: &[u8] =
        include_bytes!("../../tests/fixtures/kmsg/cgroup-v2-group-oom-kill-6.1-vm.txt");
    const VM_GROUP_TMPFS_61: &[u8] =
        include_bytes!("../../tests/fixtures/kmsg/cgroup-v2-group-and-tmpfs-oom-kills-6.1-vm.txt");
    const MEMCG_414: &str =
        include_str!("../../tests/fixtures/kmsg/memcg-oom-kernel-4.14-handmade.txt");

    const V1_PATH: &str = "/kubepods/burstable/pod0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11/3f9a1c0d2e4b5a6978c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3";
    const KIB: u64 = 1024;

    /// `[  386.437611] text` -> `6,SEQ,386437611,-;text`; other lines are
    /// skipped (comments, the VM capture's own output).
    fn dmesg_to_kmsg(text: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let Some(rest) = line.strip_prefix(b"[") else {
                continue;
            };
            let Some(close) = find_byte(rest, b']') else {
                continue;
            };
            let stamp = trim_start(&rest[..close]);
            let Some(dot) = find_byte(stamp, b'.') else {
                continue;
            };
            let (Some(sec), Some(us)) = (parse_u64(&stamp[..dot]), parse_u64(&stamp[dot + 1..]))
            else {
                continue;
            };
            let body = rest[close + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&rest[close + 1..]);
            let mut rec =
                format!("6,{},{},-;", 1000 + out.len(), sec * 1_000_000 + us).into_bytes();
            rec.extend_from_slice(body);
            out.push(rec);
        }
        out
    }

    fn assemble<L: AsRef<[u8]>>(lines: &[L]) -> Vec<OomReport> {
        let mut asm = OomAssembler::new();
        let mut out: Vec<OomReport> = lines
            .iter()
            .filter_map(|l| asm.push(&parse_record(l.as_ref()).unwrap()))
            .collect();
        out.extend(asm.flush());
        out
    }

    #[test]
    fn without_group_kills_a_report_is_not_held() {
        // On cgroup v1 no group line can follow: the report comes out with
        // the record that completes it, and is the one the held path gives.
        let lines = kmsg_lines(KMSG_V1);
        let mut asm = OomAssembler::new().group_kills(false);
        let mut out = Vec::new();
        for l in &lines {
            out.extend(asm.push(&parse_record(l.as_bytes()).unwrap()));
            assert!(!asm.holding());
        }
        assert_eq!(out, assemble(&lines));
        assert_eq!(out.len(), 1);
    }

    fn kmsg_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.is_empty()).collect()
    }

    #[test]
    fn parses_record_fields_and_skips_dictionary() {
        let r = parse_record(b"14,1234,5678,-,caller=T42;hello \\x1b world\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n").unwrap();
        assert_eq!((r.level, r.facility, r.seq, r.usec), (6, 1, 1234, 5678));
        assert_eq!(r.flags, b"-");
        assert_eq!(r.text, b"hello \\x1b world");
        let r = parse_record(b"3,503,386437622,c;Killed").unwrap();
        assert_eq!(
            (r.level, r.facility, r.flags, r.text),
            (3, 0, &b"c"[..], &b"Killed"[..])
        );
        let r = parse_record(b"6,1,2,-;").unwrap();
        assert_eq!(r.text, b"");
    }

    #[test]
    fn rejects_malformed_records() {
        for bad in [
            &b""[..],
            b"6,1,2,-",
            b"x,1,2,-;t",
            b"6,,2,-;t",
            b"6,1;t",
            b"6,1,2a,-;t",
            b"99999999999999999999999,1,2,-;t",
        ] {
            assert!(
                matches!(parse_record(bad), Err(KmsgError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn real_kmsg_records_cgroup_v1() {
        let reports = assemble(&kmsg_lines(KMSG_V1));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!((r.seq, r.usec), (503, 386_437_622));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(r.oom_memcg.as_deref(), Some(V1_PATH));
        assert_eq!(r.task_memcg.as_deref(), Some(V1_PATH));
        assert_eq!(
            r.victim,
            Victim {
                pid: 8048,
                comm: "python3".into(),
                total_vm_bytes: 75160 * KIB,
                anon_rss_bytes: 65152 * KIB,
                file_rss_bytes: 6644 * KIB,
                shmem_rss_bytes: 0,
                uid: Some(0),
                pgtables_bytes: Some(180 * KIB),
                oom_score_adj: Some(0),
            }
        );
        // These records carry no header and no usage line.
        assert_eq!(r.trigger_comm, None);
        assert_eq!(r.memcg_usage_bytes, None);
        assert!(!r.partial);
    }

    #[test]
    fn real_dmesg_cgroup_v1_full_block() {
        let reports = assemble(&dmesg_to_kmsg(DMESG_V1.as_bytes()));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.usec, 386_437_622);
        assert_eq!(r.trigger_comm.as_deref(), Some("python3"));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(r.task_memcg.as_deref(), Some(V1_PATH));
        assert_eq!(r.victim.pid, 8048);
        assert_eq!(r.victim.anon_rss_bytes, 66_715_648);
        assert_eq!(r.memcg_usage_bytes, Some(65536 * KIB));
        assert_eq!(r.memcg_limit_bytes, Some(67_108_864));
        assert!(!r.partial);
    }

    #[test]
    fn real_dmesg_cgroup_v2_kernel_61() {
        // The second OOM (rhog) in the capture has no Killed line: no report.
        let reports = assemble(&dmesg_to_kmsg(VM_V2_61));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.usec, 2_551_655);
        assert_eq!(r.trigger_comm.as_deref(), Some("hog"));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(r.oom_memcg.as_deref(), Some("/cghog"));
        assert_eq!(r.task_memcg.as_deref(), Some("/cghog"));
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (89, "hog"));
        assert_eq!(r.victim.anon_rss_bytes, 32412 * KIB);
        assert_eq!(r.victim.shmem_rss_bytes, 648 * KIB);
        assert_eq!(r.victim.pgtables_bytes, Some(100 * KIB));
        assert_eq!(r.memcg_usage_bytes, None);
        assert!(!r.partial);
    }

    #[test]
    fn node_wide_oom_kernel_61() {
        let reports = assemble(&dmesg_to_kmsg(NODE_61.as_bytes()));
        assert_eq!(reports.len(), 1, "oom_reaper is not a new kill");
        let r = &reports[0];
        assert_eq!(r.constraint, OomConstraint::Node);
        assert_eq!(r.trigger_comm.as_deref(), Some("kubelet"));
        assert_eq!(r.oom_memcg, None);
        assert_eq!(
            r.task_memcg.as_deref(),
            Some(
                "/kubepods/besteffort/pod11111111-2222-4333-8444-555555555555/aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999"
            )
        );
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (91234, "stress"));
        assert_eq!(r.victim.anon_rss_bytes, 31_960_448 * KIB);
        assert_eq!(r.victim.oom_score_adj, Some(1000));
        assert_eq!(r.memcg_limit_bytes, None);
        assert!(!r.partial);
    }

    #[test]
    fn kernel_5x_with_unrelated_line_mid_block() {
        let reports = assemble(&dmesg_to_kmsg(MEMCG_5X.as_bytes()));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.trigger_comm.as_deref(), Some("java"));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(
            r.task_memcg.as_deref(),
            Some(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5b0c1d2e_aaaa_4bbb_8ccc_0123456789ab.slice/cri-containerd-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0.scope"
            )
        );
        assert_eq!(r.task_memcg, r.oom_memcg);
        assert_eq!(r.victim.uid, Some(1000));
        assert_eq!(r.victim.pgtables_bytes, None);
        assert_eq!(r.victim.oom_score_adj, None);
        assert_eq!(r.victim.total_vm_bytes, 3_649_380 * KIB);
        assert_eq!(r.memcg_usage_bytes, Some(524_288 * KIB));
        assert_eq!(r.memcg_limit_bytes, Some(524_288 * KIB));
        assert!(!r.partial);
    }

    #[test]
    fn kernel_419_kill_notice_and_sacrificed_child() {
        let reports = assemble(&dmesg_to_kmsg(MEMCG_419.as_bytes()));
        assert_eq!(reports.len(), 2);
        let path = "/kubepods/burstable/pod7d1c2e3f-0000-4abc-8def-0123456789ab/3e1f2a";
        let r = &reports[0];
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (3310, "stress"));
        assert_eq!(r.trigger_comm.as_deref(), Some("stress"));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(r.task_memcg.as_deref(), Some(path));
        assert_eq!(r.victim.anon_rss_bytes, 101_384 * KIB);
        assert_eq!((r.victim.uid, r.victim.pgtables_bytes), (None, None));
        assert_eq!(r.memcg_usage_bytes, Some(102_400 * KIB));
        assert!(!r.partial);
        // The child is not the task the summary names: its own cgroup is
        // not known, the OOM cgroup is.
        let r = &reports[1];
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (3401, "stress"));
        assert_eq!(r.trigger_comm.as_deref(), Some("bash"));
        assert_eq!(r.oom_memcg.as_deref(), Some(path));
        assert_eq!(r.task_memcg, None);
        assert!(!r.partial);
    }

    #[test]
    fn kernel_414_task_in_line() {
        let reports = assemble(&dmesg_to_kmsg(MEMCG_414.as_bytes()));
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(
            r.task_memcg.as_deref(),
            Some("/kubepods/burstable/podabc/1234abcd")
        );
        assert_eq!(r.oom_memcg.as_deref(), Some("/kubepods/burstable/podabc"));
        assert_eq!(r.memcg_usage_bytes, Some(262_144 * KIB));
        assert_eq!(r.victim.pid, 555);
        assert!(!r.partial);
    }

    #[test]
    fn rate_limited_killed_line_alone() {
        let cases = [
            (
                "Memory cgroup out of memory: Killed process 8048 (python3) total-vm:75160kB, anon-rss:65152kB, file-rss:6644kB, shmem-rss:0kB, UID:0 pgtables:180kB oom_score_adj:0",
                OomConstraint::Memcg,
            ),
            (
                "Out of memory: Killed process 77 (a b) c) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB, UID:1 pgtables:4kB oom_score_adj:-998",
                OomConstraint::Node,
            ),
            (
                "Out of memory (oom_kill_allocating_task): Killed process 5 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB",
                OomConstraint::Node,
            ),
            (
                "Killed process 6 (y) total-vm:1kB, anon-rss:2kB, file-rss:0kB, shmem-rss:0kB",
                OomConstraint::Unknown,
            ),
        ];
        for (text, constraint) in cases {
            let line = format!("3,9,100,-;{text}");
            let reports = assemble(&[line]);
            assert_eq!(reports.len(), 1, "{text}");
            let r = &reports[0];
            assert!(r.partial);
            assert_eq!(r.constraint, constraint, "{text}");
            assert_eq!(
                (r.task_memcg.as_ref(), r.trigger_comm.as_ref()),
                (None, None)
            );
        }
        let r = &assemble(&[format!("3,9,100,-;{}", cases[0].0)])[0];
        assert_eq!((r.victim.pid, r.victim.anon_rss_bytes), (8048, 65152 * KIB));
        let r = &assemble(&[format!("3,9,100,-;{}", cases[1].0)])[0];
        assert_eq!(r.victim.comm, "a b) c");
        assert_eq!(
            (r.victim.uid, r.victim.oom_score_adj),
            (Some(1), Some(-998))
        );
    }

    #[test]
    fn stale_summary_does_not_attach_to_another_kill() {
        let summary = format!(
            "6,1,1000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={V1_PATH},task_memcg={V1_PATH},task=python3,pid=8048,uid=0"
        );
        let other = "3,2,1001000,-;Memory cgroup out of memory: Killed process 9999 (node) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB";
        let reports = assemble(&[
            "4,0,999000,-;python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0".to_string(),
            "6,1,999500,-;memory: usage 65536kB, limit 65536kB, failcnt 24".to_string(),
            summary.clone(),
            other.to_string(),
        ]);
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.victim.pid, 9999);
        assert!(r.partial);
        assert_eq!((r.task_memcg.as_ref(), r.oom_memcg.as_ref()), (None, None));
        assert_eq!((r.trigger_comm.as_ref(), r.memcg_usage_bytes), (None, None));

        // Same pid, but the summary is older than the window.
        let late = "3,3,7000000,-;Memory cgroup out of memory: Killed process 8048 (python3) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB";
        let r = &assemble(&[summary.as_str(), late])[0];
        assert!(r.partial);
        assert_eq!(r.task_memcg, None);
        // Within the window it attaches.
        let soon = late.replace("7000000", "1000100");
        let r = &assemble(&[summary.as_str(), soon.as_str()])[0];
        assert!(!r.partial);
        assert_eq!(r.task_memcg.as_deref(), Some(V1_PATH));
    }

    #[test]
    fn oom_group_kill_is_one_report_naming_the_chosen_victim() {
        let lines = [
            "4,1,100,-;sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "6,2,101,-;memory: usage 1024kB, limit 1024kB, failcnt 3",
            "6,3,102,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/c,task_memcg=/c,task=sh,pid=10,uid=0",
            "3,4,103,-;Memory cgroup out of memory: Killed process 10 (sh) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB",
            "6,5,104,-;Tasks in /c are going to be killed due to memory.oom.group set",
            "6,6,105,-;oom_reaper: reaped process 10 (sh), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
            "3,7,106,-;Memory cgroup out of memory: Killed process 11 (worker) total-vm:20kB, anon-rss:16kB, file-rss:0kB, shmem-rss:4kB",
            "6,8,107,-;Memory cgroup out of memory: OOM victim 10 (sh) is already exiting. Skip killing the task",
            "6,9,108,-;net eth0: link up",
            "3,10,109,-;Memory cgroup out of memory: Killed process 12 (worker) total-vm:20kB, anon-rss:12kB, file-rss:0kB, shmem-rss:0kB",
            // The next OOM starts: the group is over.
            "4,11,5000,-;sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        ];
        let reports = assemble(&lines);
        assert_eq!(reports.len(), 1, "{reports:?}");
        let r = &reports[0];
        assert!(!r.partial);
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (10, "sh"));
        assert_eq!(r.task_memcg.as_deref(), Some("/c"));
        assert_eq!(r.trigger_comm.as_deref(), Some("sh"));
        assert_eq!(r.memcg_limit_bytes, Some(1024 * KIB));
        let g = r.group.as_ref().expect("a group kill");
        assert_eq!(g.cgroup_path, "/c");
        assert_eq!((g.member_count, g.skipped, g.kill_lines), (2, 1, 3));
        let members: Vec<(u32, &str, u64)> = g
            .members
            .iter()
            .map(|m| (m.pid, m.comm.as_str(), m.shmem_rss_bytes))
            .collect();
        assert_eq!(members, [(11, "worker", 4 * KIB), (12, "worker", 0)]);
    }

    /// The real kernel's report of a group kill (Debian 6.1 in the VM
    /// test): the chosen victim is `hog` (the summary and the first
    /// `Killed process` line), not `hog` again nor `sleep`, the last one
    /// printed; three other members; five `Killed process` lines, as the
    /// cgroup's `oom_kill` counter rose by five.
    #[test]
    fn real_group_kill_kernel_61_names_the_chosen_victim() {
        let reports = assemble(&dmesg_to_kmsg(VM_GROUP_61));
        assert_eq!(reports.len(), 1, "{reports:?}");
        let r = &reports[0];
        assert_eq!((r.victim.pid, r.victim.comm.as_str()), (121, "hog"));
        assert_eq!(
            (
                r.victim.anon_rss_bytes,
                r.victim.file_rss_bytes,
                r.victim.shmem_rss_bytes
            ),
            (32148 * KIB, 4 * KIB, 648 * KIB)
        );
        assert_eq!(r.victim.oom_score_adj, Some(0));
        assert_eq!(r.constraint, OomConstraint::Memcg);
        assert_eq!(r.trigger_comm.as_deref(), Some("hog"));
        let cg = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f8c3b52_6a0e_4d8e_9d39_2b1f3c6a7e11.slice/cri-containerd-9b4f2c7e1a3d5f6e8c0b2a4d6f8e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d2e4f.scope";
        assert_eq!(r.task_memcg.as_deref(), Some(cg));
        let g = r.group.as_ref().expect("a group kill");
        assert_eq!(g.cgroup_path, cg);
        assert_eq!((g.member_count, g.skipped, g.kill_lines), (3, 0, 5));
        let members: Vec<(u32, &str)> =
            g.members.iter().map(|m| (m.pid, m.comm.as_str())).collect();
        assert_eq!(members, [(116, "sh"), (118, "sleep"), (120, "sleep")]);
    }

    /// A second real capture where the last process killed is a `sleep`,
    /// not the chosen victim; and a tmpfs-backed kill's shmem-rss.
    #[test]
    fn real_group_kill_with_a_sleep_last_and_a_tmpfs_kill_kernel_61() {
        let reports = assemble(&dmesg_to_kmsg(VM_GROUP_TMPFS_61));
        assert_eq!(reports.len(), 3, "{reports:?}");
        let (single, group, tmpfs) = (&reports[0], &reports[1], &reports[2]);
        assert_eq!((single.victim.pid, single.group.is_some()), (129, false));
        assert_eq!((group.victim.pid, group.victim.comm.as_str()), (132, "hog"));
        let g = group.group.as_ref().expect("a group kill");
        let members: Vec<(u32, &str)> =
            g.members.iter().map(|m| (m.pid, m.comm.as_str())).collect();
        assert_eq!(members, [(131, "sh"), (134, "sleep"), (135, "sleep")]);
        assert_eq!((g.member_count, g.kill_lines), (3, 5));
        assert_eq!(g.members[0].shmem_rss_bytes, 1580 * KIB);
        assert_eq!(
            (tmpfs.victim.pid, tmpfs.victim.shmem_rss_bytes),
            (139, 12936 * KIB)
        );
        let g = tmpfs.group.as_ref().expect("a group of one");
        assert_eq!((g.member_count, g.kill_lines), (0, 2));
    }

    #[test]
    fn a_single_kill_is_released_by_the_next_unrelated_oom_record_or_a_flush() {
        let killed = "3,4,103,-;Memory cgroup out of memory: Killed process 10 (sh) total-vm:10kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB";
        let mut asm = OomAssembler::new();
        assert_eq!(asm.push(&parse_record(killed.as_bytes()).unwrap()), None);
        assert!(asm.holding());
        let r = asm.flush().expect("flushed");
        assert_eq!((r.victim.pid, r.group.is_some()), (10, false));
        assert!(!asm.holding());
        // A record more than GROUP_GAP later releases it too, and a
        // group line that late does not attach.
        asm.push(&parse_record(killed.as_bytes()).unwrap());
        let late = "6,5,1200000,-;Tasks in /c are going to be killed due to memory.oom.group set";
        let r = asm
            .push(&parse_record(late.as_bytes()).unwrap())
            .expect("released");
        assert_eq!(r.group, None);
        assert_eq!(asm.flush(), None);
    }

    #[test]
    fn group_members_without_their_chosen_victim_are_reported_one_by_one() {
        // The chosen victim's line was lost (overrun): what follows is
        // still reported, each with the group's cgroup.
        let lines = [
            "6,5,104,-;Tasks in /c are going to be killed due to memory.oom.group set",
            "3,7,106,-;Memory cgroup out of memory: Killed process 11 (worker) total-vm:20kB, anon-rss:16kB, file-rss:0kB, shmem-rss:0kB",
            "4,8,5000,-;sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
        ];
        let reports = assemble(&lines);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].victim.pid, 11);
        assert_eq!(reports[0].oom_memcg.as_deref(), Some("/c"));
        assert!(reports[0].partial);
    }

    #[test]
    fn garbage_does_not_panic_or_report() {
        let crafted: &[&[u8]] = &[
            b"3,1,1,-;Killed process",
            b"3,1,1,-;Killed process 12 (",
            b"3,1,1,-;Killed process 12 )x(",
            b"3,1,1,-;Out of memory: Killed process 4294967296 (x) total-vm:99999999999999999999kB",
            b"3,1,1,-;oom-kill:",
            b"3,1,1,-;oom-kill:,pid=,uid=,task=,task_memcg=,oom_memcg=",
            b"3,1,1,-;memory: usage ",
            b"3,1,1,-;memory: usage 5kB, limit ",
            b"3,1,1,-;Tasks in  are going to be killed due to memory.oom.group set",
            // Prefix and suffix overlap on their space (found by the fuzzer).
            b"3,1,1,-;Tasks in are going to be killed due to memory.oom.group set",
            b"3,1,1,-;Task in  killed as a result of limit of ",
            b"3,1,1,-; invoked oom-killer: ",
            b"3,1,1,-;Memory cgroup out of memory: Kill process x",
            b"3,1,1,-;\xff\xfe\x00Killed process 1 (\xff) total-vm:1kB",
        ];
        let mut asm = OomAssembler::new();
        let mut reports = Vec::new();
        for line in crafted {
            reports.extend(asm.push(&parse_record(line).unwrap()));
        }
        // Only the last line is a (binary) Killed line with an unknown prefix,
        // and its prefix does not end in ": ": nothing is reported.
        reports.extend(asm.flush());
        assert!(reports.is_empty(), "{reports:?}");

        // Pseudo-random bytes, some with a valid header glued on.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut n_ok = 0;
        for i in 0..20_000 {
            let len = (i % 200) + 1;
            let mut buf: Vec<u8> = if i % 2 == 0 {
                b"6,1,2,-;Killed process ".to_vec()
            } else {
                Vec::new()
            };
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let alphabet = b"0123456789(), :kBoom-kill=Killed process\n\xff";
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if let Ok(rec) = parse_record(&buf) {
                n_ok += 1;
                let _ = asm.push(&rec);
            }
        }
        assert!(n_ok >= 10_000, "the glued header makes half parse: {n_ok}");
    }

    fn collect_items(reader: &mut KmsgReader) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match reader.next() {
                Ok(KmsgItem::Record(r)) => out.push(format!(
                    "rec {} {}",
                    r.seq,
                    String::from_utf8_lossy(&r.text[..r.text.len().min(12)])
                )),
                Ok(KmsgItem::Overrun { lost }) => out.push(format!("lost {lost}")),
                Ok(KmsgItem::End) => return out,
                Err(e) => out.push(format!("err {e}")),
            }
        }
    }

    #[test]
    fn reader_regular_file_reports_seq_gaps_and_skips_dictionary() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut data = KMSG_V1.replace("6,500,", "6,499,");
        data.insert_str(0, "6,498,1,-;first\n SUBSYSTEM=net\n DEVICE=n2\n");
        f.write_all(data.as_bytes()).unwrap();
        let mut reader = KmsgReader::open(f.path(), false).unwrap();
        assert_eq!(
            collect_items(&mut reader),
            [
                "rec 498 first",
                "rec 499 [  pid  ]   ",
                "lost 2",
                "rec 502 oom-kill:con",
                "rec 503 Memory cgrou"
            ]
        );
        assert_eq!(reader.last_seq(), Some(503));
        // From the end: nothing.
        let mut reader = KmsgReader::open(f.path(), true).unwrap();
        assert!(collect_items(&mut reader).is_empty());
    }

    #[test]
    fn reader_stream_skips_over_long_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let long = format!("6,1,1,-;{}\n6,2,2,-;after\n", "a".repeat(BUFFER_LEN + 100));
        f.write_all(long.as_bytes()).unwrap();
        let mut reader = KmsgReader::open(f.path(), false).unwrap();
        let items = collect_items(&mut reader);
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(items[0].starts_with("err ") && items[0].contains("longer than 8192"));
        assert_eq!(items[1], "rec 2 after");
    }

    #[test]
    fn reader_fifo_reassembles_split_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg.fifo");
        nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .unwrap();
        let wpath = path.clone();
        let writer = std::thread::spawn(move || {
            let mut w = OpenOptions::new().write(true).open(wpath).unwrap();
            for chunk in [
                "6,7,10,-;one\n6,8,",
                "11,-;two\n",
                " DICT=1\n6,10,12,-;three\n",
            ] {
                w.write_all(chunk.as_bytes()).unwrap();
                w.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut reader = KmsgReader::open(&path, false).unwrap();
        let items = collect_items(&mut reader);
        writer.join().unwrap();
        assert_eq!(items, ["rec 7 one", "rec 8 two", "lost 1", "rec 10 three"]);
    }

    /// Reads the real `/dev/kmsg` (needs root, as on the dev and CI
    /// machines): records from before the open are skipped, a record
    /// written after it is read back with its level and facility.
    #[test]
    fn reader_real_dev_kmsg_from_end() {
        let tag = format!(
            "gpuscope-test-{}-{}",
            std::process::id(),
            gpuscope_model::Timestamp::now().as_nanos()
        );
        let write = |text: &str| {
            let mut k = OpenOptions::new().write(true).open("/dev/kmsg").unwrap();
            k.write_all(format!("<6>{text}\n").as_bytes()).unwrap();
        };
        write(&format!("{tag}-BEFORE"));
        let mut reader = KmsgReader::open(Path::new("/dev/kmsg"), true).unwrap();
        assert_eq!(reader.mode, Mode::Device);
        write(&format!("{tag}-AFTER"));
        let (tx, rx) = mpsc::channel();
        let after = format!("{tag}-AFTER");
        std::thread::spawn(move || {
            let mut seen_before = false;
            for _ in 0..100_000 {
                match reader.next() {
                    Ok(KmsgItem::Record(r)) => {
                        seen_before |= find(r.text, b"-BEFORE").is_some()
                            && find(r.text, tag.as_bytes()).is_some();
                        if r.text == after.as_bytes() {
                            let _ = tx.send(Some((r.level, r.facility, seen_before)));
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("marker not read within 10 s");
        // Written as <6> by a user: level 6, facility 1 (user).
        assert_eq!(got, Some((6, 1, false)));
    }

    /// The four lines of an OOM report written to the real `/dev/kmsg` by
    /// a user (root, as on the dev and CI machines; a container with
    /// `/dev/kmsg` mounted writable could do the same) are read back as
    /// `user` records and make no report, even with a `<3>` prefix that
    /// asks for the kernel's facility. The same lines as kernel records
    /// (facility 0) do make one.
    #[test]
    fn a_report_written_by_a_user_to_dev_kmsg_is_not_a_kill() {
        let tag = format!("gpuscope-fake-{}", std::process::id());
        let lines = [
            format!(
                "{tag} invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
            ),
            "memory: usage 65536kB, limit 65536kB, failcnt 24".to_owned(),
            format!(
                "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod{tag}/c1,task_memcg=/kubepods/pod{tag}/c1,task={tag},pid=4242,uid=0"
            ),
            format!(
                "Memory cgroup out of memory: Killed process 4242 ({tag}) total-vm:75160kB, anon-rss:65152kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:184kB oom_score_adj:0"
            ),
        ];
        let mut reader = KmsgReader::open(Path::new("/dev/kmsg"), true).unwrap();
        {
            let mut k = OpenOptions::new().write(true).open("/dev/kmsg").unwrap();
            for line in &lines {
                k.write_all(format!("<3>{line}\n").as_bytes()).unwrap();
            }
        }
        let (tx, rx) = mpsc::channel();
        let last = lines[3].clone();
        std::thread::spawn(move || {
            let mut assembler = OomAssembler::default().group_kills(false);
            let mut facilities = Vec::new();
            let mut reports = Vec::new();
            for _ in 0..100_000 {
                match reader.next() {
                    Ok(KmsgItem::Record(r)) => {
                        let ours = find(r.text, tag.as_bytes()).is_some()
                            || r.text.starts_with(b"memory: usage 65536kB");
                        if ours {
                            facilities.push(r.facility);
                        }
                        reports.extend(assembler.push(&r));
                        if r.text == last.as_bytes() {
                            reports.extend(assembler.flush());
                            let _ = tx.send(Some((facilities, reports, assembler.not_kernel())));
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        let (facilities, reports, not_kernel) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the lines were not read back within 10 s")
            .expect("the reader stopped before the last line");
        assert_eq!(facilities, [1, 1, 1, 1], "a user's records get facility 1");
        assert!(
            reports.is_empty(),
            "a user's lines made a report: {reports:?}"
        );
        assert!(not_kernel >= 4, "ignored records not counted: {not_kernel}");

        // The same four lines from the kernel (prio 3: facility 0) are a kill.
        let mut kernel = OomAssembler::default().group_kills(false);
        let mut found = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let rec = format!("3,{},{},-;{line}", 100 + i, 1_000_000 + i);
            found.extend(kernel.push(&parse_record(rec.as_bytes()).unwrap()));
        }
        found.extend(kernel.flush());
        assert_eq!(found.len(), 1, "the kernel's lines made no report");
        assert_eq!(found[0].victim.pid, 4242);
        assert_eq!(kernel.not_kernel(), 0);
    }

    #[test]
    fn open_names_the_path_on_error() {
        let err = KmsgReader::open(Path::new("/nonexistent/kmsg"), false).unwrap_err();
        assert!(
            matches!(&err, KmsgError::Open { path, .. } if path == Path::new("/nonexistent/kmsg"))
        );
        assert!(err.to_string().contains("/nonexistent/kmsg"));
    }
}
