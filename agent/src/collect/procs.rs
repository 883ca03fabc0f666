//! Tasks that cannot move: threads of a container stuck in uninterruptible
//! sleep, and what they wait on.
//!
//! The mechanism: a task that sleeps in `TASK_UNINTERRUPTIBLE` (or
//! `TASK_KILLABLE`, which includes it) shows state `D` in the third field
//! of `/proc/PID/stat`. Signals do not wake it; only the event it waits
//! for does (an I/O completion, an RPC reply, a FUSE answer, a driver
//! callback). Healthy I/O keeps a task in `D` for milliseconds; a task that
//! stays there without running is waiting on something that does not
//! answer. Whether it ran in between two looks is told by the scheduler's
//! count of timeslices it has had, the third field of
//! `/proc/PID/schedstat` (`CONFIG_SCHED_INFO`; when that file is missing,
//! the task's user + system CPU time from `stat`): unchanged means it was
//! not woken at all, so two looks at `D` are one continuous sleep, not
//! two short waits.
//!
//! What it waits on is in the kernel's stack of the task:
//! `/proc/PID/wchan` names the innermost function it sleeps in (readable
//! with the same access as ptrace-read), `/proc/PID/stack` the whole chain
//! (root only, `CAP_SYS_ADMIN`). Filesystem frames say more than generic
//! wait frames: an NFS or FUSE read waits in `folio_wait_bit_common` like
//! a disk read, so the outer `nfs_*`/`fuse_*` frames decide ([`classify`]).
//! They are not always there: FUSE's page-cache read tail-calls the
//! generic one and leaves no frame of its own (6.x). So the file the
//! blocked system call works on is read too: its first argument
//! (`/proc/PID/syscall`) when that call takes a file descriptor, the
//! descriptor's path and mount (`/proc/PID/fd/N`, `fdinfo/N`'s `mnt_id`,
//! `/proc/PID/mountinfo`), whose filesystem type (`nfs4`, `fuse.*`)
//! decides a generic page wait ([`fs_kind`]).
//!
//! Cost is bounded: only containers whose CPU has gone flat are looked at
//! (a container that uses CPU is not stuck as a whole; from the cgroup CPU
//! counter the sampler already reads), at most [`ProcSettings::max_tasks`]
//! tasks per container per scan, once every [`ProcSettings::scan_interval`],
//! and `wchan`/`stack` are read once per stuck task (a task that has not
//! run cannot have changed its stack). Tasks that vanish between the list
//! and the read, and files the agent may not read, are normal: they are
//! skipped, never reported as errors.
//!
//! The container's task list is `tasks` (cgroup v1) or `cgroup.threads`
//! (v2) in its memory cgroup: thread IDs, because the thread that blocks
//! is often not the process's main thread (a data loader, an I/O thread).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gpuscope_model::{CgroupVersion, ContainerSample, StuckTask, Timestamp, WaitKind};

/// When and how much of a container's tasks are looked at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSettings {
    /// How often a flat container's tasks are scanned. Default 10 s: with
    /// [`ProcSettings::stuck_after`] at 30 s a stuck task is reported
    /// within 40 s, and the scan costs a tenth of what every second would.
    pub scan_interval: Duration,
    /// A container is flat when its CPU use over the last scan interval is
    /// below this many cores. Default 0.1: a process that makes progress
    /// (a training step, a data loader) keeps at least one thread busy
    /// for far more than a tenth of a core, while a container whose work
    /// is blocked uses almost none (a watchdog or logger thread ticking).
    /// A container without CPU figures counts as flat (it cannot be told).
    pub flat_cpu_cores: f64,
    /// A task is reported once it has been in `D` without running for
    /// this long. Default 30 s: the block layer's own request timeout
    /// (`/sys/block/*/queue/io_timeout`, 30 s by default) — an I/O slower
    /// than that has been aborted or retried by the driver, so a task
    /// still asleep after it is not waiting on a merely slow disk.
    pub stuck_after: Duration,
    /// Tasks examined per container per scan. Default 128: tasks already
    /// seen in `D` first, then the others in turn across scans, so a
    /// container with thousands of threads costs the same as one with 128.
    pub max_tasks: usize,
    /// Stack frames kept per stuck task. Default 8: the innermost frames
    /// name the wait and the filesystem; the syscall entry below adds
    /// nothing.
    pub frames: usize,
}

impl Default for ProcSettings {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(10),
            flat_cpu_cores: 0.1,
            stuck_after: Duration::from_secs(30),
            max_tasks: 128,
            frames: 8,
        }
    }
}

/// One task as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    /// `comm`, between the first `(` and the last `)`.
    pub comm: String,
    /// The state letter (`R`, `S`, `D`, ...).
    pub state: u8,
    /// `utime + stime`, clock ticks.
    pub cpu_ticks: u64,
    /// `starttime`, clock ticks after boot: with the PID, the task's
    /// identity (PIDs are reused).
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The comm may hold spaces and parentheses, so
/// the fields are counted from the last `)`. `None` when malformed.
pub fn parse_stat(text: &[u8]) -> Option<TaskStat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&text[open + 1..close]).into_owned();
    // After ") ": field 3 (state) is index 0, utime (14) index 11, stime
    // (15) index 12, starttime (22) index 19.
    let mut fields = text[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let mut rest = fields.skip(10);
    let num = |f: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(f?).ok()?.parse().ok() };
    let utime = num(rest.next())?;
    let stime = num(rest.next())?;
    let start_ticks = num(rest.nth(6))?;
    Some(TaskStat {
        comm,
        state,
        cpu_ticks: utime.saturating_add(stime),
        start_ticks,
    })
}

/// The timeslice count of `/proc/PID/schedstat` (its third field).
pub fn parse_schedstat(text: &[u8]) -> Option<u64> {
    let f = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(2)?;
    std::str::from_utf8(f).ok()?.parse().ok()
}

/// The function names of `/proc/PID/stack`, innermost first, each as the
/// kernel prints it after the address (`request_wait_answer+0x12b/0x210
/// [fuse]`), at most `max`.
pub fn parse_stack(text: &str, max: usize) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            // `[<0>] sym+off/len [mod]`; old kernels print the address.
            let sym = match l.find("] ") {
                Some(i) if l.starts_with('[') => &l[i + 2..],
                _ => l,
            };
            let sym = sym.trim();
            // The end marker of old kernels.
            (!sym.is_empty() && !sym.starts_with("0xffffffffffffffff")).then(|| sym.to_owned())
        })
        .take(max)
        .collect()
}

/// What a task waits on, from its stack frames (innermost first) or,
/// without them, its wait channel.
///
/// The whole stack is read, and a filesystem or driver frame anywhere
/// wins over the generic page and buffer waits it sleeps in: an NFS read
/// sleeps in `folio_wait_bit_common` (or `rpc_wait_bit_killable`), a FUSE
/// read in `request_wait_answer` or the same folio wait. Order: the NVIDIA
/// driver, NFS/SunRPC, FUSE, then block I/O, else other. With only
/// `wchan` (no stack), a generic wait reads as block I/O, which a
/// network filesystem's page wait also looks like: the stack is needed to
/// tell them apart.
pub fn classify(wchan: &str, stack: &[String]) -> WaitKind {
    let wchan = wchan.trim();
    let have_wchan = !wchan.is_empty() && wchan != "0";
    if stack.is_empty() && !have_wchan {
        return WaitKind::Unknown;
    }
    let frames: Vec<(&str, &str)> = stack
        .iter()
        .map(|f| frame_parts(f))
        .chain(have_wchan.then_some((wchan, "")))
        .collect();
    let any = |pred: fn(&str, &str) -> bool| frames.iter().any(|(s, m)| pred(s, m));
    if any(is_gpu_driver) {
        WaitKind::GpuDriver
    } else if any(is_nfs) {
        WaitKind::Nfs
    } else if any(is_fuse) {
        WaitKind::Fuse
    } else if any(is_block_io) {
        WaitKind::BlockIo
    } else {
        WaitKind::Other
    }
}

/// A frame's function name and module (`""` for the core kernel).
fn frame_parts(frame: &str) -> (&str, &str) {
    let (sym, module) = match frame.find(" [") {
        Some(i) => (&frame[..i], frame[i + 2..].trim_end_matches(']')),
        None => (frame, ""),
    };
    let sym = sym.split('+').next().unwrap_or(sym).trim();
    (sym, module.trim())
}

fn is_gpu_driver(sym: &str, module: &str) -> bool {
    module.starts_with("nvidia")
        || ["nvidia_", "nv_", "_nv0", "uvm_", "os_acquire", "os_wait"]
            .iter()
            .any(|p| sym.starts_with(p))
}

fn is_nfs(sym: &str, module: &str) -> bool {
    matches!(module, "nfs" | "nfsv3" | "nfsv4" | "sunrpc")
        || [
            "nfs_", "nfs3_", "nfs4_", "_nfs4_", "__nfs", "rpc_", "__rpc_",
        ]
        .iter()
        .any(|p| sym.starts_with(p))
}

fn is_fuse(sym: &str, module: &str) -> bool {
    module == "fuse" || sym.starts_with("fuse_") || sym == "request_wait_answer"
}

fn is_block_io(sym: &str, _module: &str) -> bool {
    [
        "io_schedule",
        "bit_wait_io",
        "folio_wait_bit",
        "folio_wait_writeback",
        "__folio_lock",
        "wait_on_page_bit",
        "wait_on_page_writeback",
        "__lock_page",
        "__wait_on_buffer",
        "wait_on_buffer",
        "blk_",
        "blkdev_",
        "submit_bio_wait",
        "wait_for_completion_io",
        "jbd2_",
        "rq_qos_wait",
        "wbt_wait",
        "balance_dirty_pages",
    ]
    .iter()
    .any(|p| sym.starts_with(p))
}

/// System calls whose first argument is the file descriptor they work
/// on (read, write, their vector and positioned forms, fsync, fdatasync,
/// getdents64, ftruncate, fstat, fallocate), by this architecture's
/// numbers.
#[cfg(target_arch = "x86_64")]
const FD_SYSCALLS: &[i64] = &[
    0, 1, 5, 17, 18, 19, 20, 74, 75, 77, 217, 285, 295, 296, 327, 328,
];
/// The same for aarch64 (the generic syscall table).
#[cfg(target_arch = "aarch64")]
const FD_SYSCALLS: &[i64] = &[
    47, 61, 63, 64, 65, 66, 67, 68, 69, 70, 80, 82, 83, 46, 286, 287,
];
/// Elsewhere: none known, the stack alone decides.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const FD_SYSCALLS: &[i64] = &[];

/// The wait a filesystem type means for a task blocked on one of its
/// files: `nfs`/`nfs4` and `fuse`/`fuse.*`/`fuseblk`; `None` for local
/// filesystems (their waits are the stack's).
pub fn fs_kind(fstype: &str) -> Option<WaitKind> {
    if fstype == "nfs" || fstype == "nfs4" {
        Some(WaitKind::Nfs)
    } else if fstype == "fuse" || fstype == "fuseblk" || fstype.starts_with("fuse.") {
        Some(WaitKind::Fuse)
    } else {
        None
    }
}

/// A task seen in `D` at a scan.
#[derive(Debug, Clone)]
struct Tracked {
    start_ticks: u64,
    /// Timeslices run (or CPU ticks) when first seen in this sleep.
    runs: u64,
    /// When it was first seen in `D` without having run since.
    since: Timestamp,
    since_mono: Instant,
    /// Filled once, when it passes the threshold.
    report: Option<StuckTask>,
}

/// One container's scan state.
#[derive(Debug, Default)]
struct Container {
    /// When it was last considered, and its CPU counter then.
    last: Option<(Instant, Option<u64>)>,
    tracked: HashMap<u32, Tracked>,
    /// Where the next scan starts among the tasks not tracked.
    cursor: usize,
    /// The stuck tasks of the last scan, attached to every sample.
    stuck: Vec<StuckTask>,
}

/// Tracks the tasks of flat containers across scans and attaches the
/// stuck ones to their samples.
#[derive(Debug)]
pub struct ProcWatch {
    scanner: Scanner,
    containers: HashMap<String, Container>,
}

/// The reading side: settings and reused buffers.
#[derive(Debug)]
struct Scanner {
    settings: ProcSettings,
    proc_root: PathBuf,
    path: PathBuf,
    buf: Vec<u8>,
    tids: Vec<u32>,
}

impl ProcWatch {
    /// A watcher reading `<proc_root>/<tid>/...`.
    pub fn new(settings: ProcSettings, proc_root: &Path) -> Self {
        Self {
            scanner: Scanner {
                settings,
                proc_root: proc_root.to_path_buf(),
                path: PathBuf::with_capacity(128),
                buf: vec![0; 4096],
                tids: Vec::new(),
            },
            containers: HashMap::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ProcSettings {
        &self.scanner.settings
    }

    /// Called with every sample of a container: when a scan is due
    /// (`full` rounds only, every `scan_interval`) and the container is
    /// flat, scans its tasks; then sets the sample's `stuck` to what the
    /// last scan found. `cgroup_dir` gives the container's memory cgroup
    /// directory (only asked for when a scan happens).
    pub fn observe(
        &mut self,
        sample: &mut ContainerSample,
        cgroup_dir: impl FnOnce() -> PathBuf,
        full: bool,
        now: Instant,
    ) {
        let key = sample.container.cgroup_path.as_str();
        if !self.containers.contains_key(key) {
            self.containers.insert(key.to_owned(), Container::default());
        }
        let Some(c) = self.containers.get_mut(key) else {
            return;
        };
        let settings = self.scanner.settings;
        let cpu = sample.cpu.map(|c| c.usage_us);
        if full {
            match c.last {
                None => c.last = Some((now, cpu)),
                Some((then, before)) if now.duration_since(then) >= settings.scan_interval => {
                    let elapsed = now.duration_since(then).as_secs_f64();
                    let flat = match (before, cpu) {
                        (Some(a), Some(b)) => {
                            (b.saturating_sub(a) as f64 / 1e6) < settings.flat_cpu_cores * elapsed
                        }
                        _ => true,
                    };
                    c.last = Some((now, cpu));
                    if flat {
                        let dir = cgroup_dir();
                        self.scanner
                            .scan(c, &dir, sample.cgroup_version, sample.time, now);
                    } else {
                        c.tracked.clear();
                        c.stuck.clear();
                    }
                }
                Some(_) => {}
            }
        }
        sample.stuck.clone_from(&c.stuck);
    }

    /// Forgets a container that is gone.
    pub fn forget(&mut self, cgroup_path: &str) {
        self.containers.remove(cgroup_path);
    }
}

impl Scanner {
    /// Scans one container's tasks (once a scan is due and it is flat).
    fn scan(
        &mut self,
        c: &mut Container,
        cgroup_dir: &Path,
        version: CgroupVersion,
        wall: Timestamp,
        now: Instant,
    ) {
        let list = match version {
            CgroupVersion::V1 => "tasks",
            CgroupVersion::V2 => "cgroup.threads",
        };
        self.tids.clear();
        if let Ok(len) = read_file(&cgroup_dir.join(list), &mut self.buf) {
            self.tids.extend(
                self.buf[..len]
                    .split(|b| b.is_ascii_whitespace())
                    .filter_map(|t| std::str::from_utf8(t).ok()?.parse::<u32>().ok()),
            );
        }
        let tids = std::mem::take(&mut self.tids);
        // Tracked tasks no longer in the cgroup are gone.
        c.tracked.retain(|tid, _| tids.contains(tid));
        // The tracked first, then the others from the cursor on.
        let budget = self.settings.max_tasks;
        let mut order: Vec<u32> = c.tracked.keys().copied().take(budget).collect();
        let others: Vec<u32> = tids
            .iter()
            .copied()
            .filter(|t| !c.tracked.contains_key(t))
            .collect();
        if !others.is_empty() {
            let start = c.cursor % others.len();
            let n = budget.saturating_sub(order.len()).min(others.len());
            order.extend(others.iter().cycle().skip(start).take(n));
            c.cursor = start + n;
        }
        for tid in order {
            self.look(c, tid, wall, now);
        }
        self.tids = tids;
        c.stuck = c
            .tracked
            .values()
            .filter_map(|t| t.report.clone())
            .collect();
        c.stuck.sort_by_key(|t| (t.since, t.pid));
    }

    /// Looks at one task: tracks it while in `D` without running, and
    /// describes it once past the threshold.
    fn look(&mut self, c: &mut Container, tid: u32, wall: Timestamp, now: Instant) {
        let Some(stat) = self
            .read_proc(tid, "stat")
            .and_then(|n| parse_stat(&self.buf[..n]))
        else {
            // Vanished (or not ours to read): forget it.
            c.tracked.remove(&tid);
            return;
        };
        if stat.state != b'D' {
            c.tracked.remove(&tid);
            return;
        }
        let runs = self
            .read_proc(tid, "schedstat")
            .and_then(|n| parse_schedstat(&self.buf[..n]))
            .unwrap_or(stat.cpu_ticks);
        let t = c.tracked.entry(tid).or_insert(Tracked {
            start_ticks: stat.start_ticks,
            runs,
            since: wall,
            since_mono: now,
            report: None,
        });
        if t.start_ticks != stat.start_ticks || t.runs != runs {
            // Another task with a reused ID, or it ran: a new sleep.
            *t = Tracked {
                start_ticks: stat.start_ticks,
                runs,
                since: wall,
                since_mono: now,
                report: None,
            };
        }
        if t.report.is_none() && now.duration_since(t.since_mono) >= self.settings.stuck_after {
            let since = t.since;
            let report = self.describe(tid, stat.comm, since);
            if let Some(t) = c.tracked.get_mut(&tid) {
                t.report = Some(report);
            }
        }
    }

    /// Reads `wchan` and `stack` of a stuck task, and the file its system
    /// call works on, and classifies the wait.
    fn describe(&mut self, tid: u32, comm: String, since: Timestamp) -> StuckTask {
        let wchan = self
            .read_proc(tid, "wchan")
            .map(|n| String::from_utf8_lossy(&self.buf[..n]).trim().to_owned())
            .filter(|w| w != "0")
            .unwrap_or_default();
        let stack = self
            .read_proc(tid, "stack")
            .map(|n| {
                parse_stack(
                    &String::from_utf8_lossy(&self.buf[..n]),
                    self.settings.frames,
                )
            })
            .unwrap_or_default();
        let (file, fstype) = self.blocked_file(tid).unwrap_or_default();
        let wait = match (classify(&wchan, &stack), fs_kind(&fstype)) {
            // The stack names a filesystem or the driver: it decides.
            (k @ (WaitKind::Nfs | WaitKind::Fuse | WaitKind::GpuDriver), _) => k,
            // A generic page or buffer wait on a file of a network or FUSE
            // filesystem: the filesystem's (its read path may leave no
            // frame of its own on the stack, as FUSE's does not on 6.x).
            (_, Some(k)) => k,
            (k, None) => k,
        };
        StuckTask {
            pid: tid,
            comm,
            since,
            wait,
            wchan,
            stack,
            file,
            fstype,
        }
    }

    /// The file a task's blocked system call works on, and the type of
    /// the filesystem it is on: the syscall's first argument
    /// (`/proc/PID/syscall`) when that syscall takes a file descriptor
    /// first, that descriptor's path (`/proc/PID/fd/N`) and mount
    /// (`mnt_id` of `/proc/PID/fdinfo/N`, looked up in
    /// `/proc/PID/mountinfo`). `None` when the task is not in such a
    /// syscall (a page fault, an `open` by path) or the files are not
    /// readable.
    fn blocked_file(&mut self, tid: u32) -> Option<(String, String)> {
        let n = self.read_proc(tid, "syscall")?;
        let text = std::str::from_utf8(&self.buf[..n]).ok()?;
        let mut fields = text.split_ascii_whitespace();
        let nr: i64 = fields.next()?.parse().ok()?;
        if !FD_SYSCALLS.contains(&nr) {
            return None;
        }
        let fd = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
        let path = std::fs::read_link(self.proc_root.join(format!("{tid}/fd/{fd}")))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = self.read_proc(tid, &format!("fdinfo/{fd}"))?;
        let info = std::str::from_utf8(&self.buf[..n]).ok()?;
        let mnt_id = info
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))?
            .trim()
            .to_owned();
        let n = self.read_proc(tid, "mountinfo")?;
        let mounts = std::str::from_utf8(&self.buf[..n]).ok()?;
        let fstype = mounts
            .lines()
            .find(|l| l.split(' ').next() == Some(mnt_id.as_str()))
            .and_then(|l| l.split_once(" - "))
            .and_then(|(_, rest)| rest.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        Some((path, fstype))
    }

    /// Reads `<proc_root>/<tid>/<file>` into the buffer; `None` when it
    /// cannot be read (vanished, not permitted: both normal here).
    fn read_proc(&mut self, tid: u32, file: &str) -> Option<usize> {
        use std::fmt::Write as _;
        let os = self.path.as_mut_os_string();
        os.clear();
        os.push(self.proc_root.as_os_str());
        let mut rel = String::with_capacity(24);
        let _ = write!(rel, "/{tid}/{file}");
        os.push(rel);
        read_file(&self.path, &mut self.buf).ok()
    }
}

/// Reads a whole (kernel) file into `buf`.
fn read_file(path: &Path, buf: &mut Vec<u8>) -> io::Result<usize> {
    crate::collect::cgroup::read_into(File::open(path)?, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_model::{ContainerRef, CpuStats, MemoryStats, Pressure, PsiScope};

    /// `/proc/PID/stack` of an NFSv4 client stuck opening a file, from
    /// nfs-ganesha/nfs-ganesha#1327 (RHEL 9.6, 5.14.0-570), as printed
    /// there by `cat /proc/3734491/stack` (its first twelve frames).
    const NFS_STACK: &str = "\
[<0>] nfs_set_open_stateid_locked+0xfc/0x370 [nfsv4]
[<0>] update_open_stateid+0x9f/0x290 [nfsv4]
[<0>] _nfs4_opendata_to_nfs4_state+0x10b/0x220 [nfsv4]
[<0>] _nfs4_open_and_get_state+0xc6/0x2b0 [nfsv4]
[<0>] _nfs4_do_open.isra.0+0x168/0x4e0 [nfsv4]
[<0>] nfs4_do_open+0xcd/0x1f0 [nfsv4]
[<0>] nfs4_atomic_open+0xf1/0x100 [nfsv4]
[<0>] nfs4_file_open+0x12f/0x240 [nfsv4]
[<0>] do_dentry_open+0x14f/0x430
[<0>] do_open+0x219/0x400
[<0>] path_openat+0x111/0x280
[<0>] do_filp_open+0xb2/0x160
";

    /// A task blocked on page writeback, from the hung-task report of
    /// kswapd0 in moosefs/moosefs#566 (Ubuntu 5.4.0-88), its frames
    /// written in `/proc/PID/stack` form (the `?` guesses left out).
    const BLOCK_STACK: &str = "\
[<0>] io_schedule+0x16/0x40
[<0>] wait_on_page_bit+0x11c/0x200
[<0>] wait_on_page_writeback+0x43/0x90
[<0>] shrink_page_list+0x7a8/0xbb0
[<0>] shrink_inactive_list+0x201/0x3e0
[<0>] shrink_node_memcg+0x137/0x370
";

    /// `/proc/self/stat` of a `cat` on this machine (6.18), its comm
    /// replaced by one with a space and parentheses, state set to `D`.
    const STAT: &str = "4242 (my (odd) comm) D 4200 4242 4200 34816 4242 4194304 109 0 0 0 7 3 0 0 20 0 1 0 123456 5640192 224 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let s = parse_stat(STAT.as_bytes()).expect("stat");
        assert_eq!(s.comm, "my (odd) comm");
        assert_eq!(s.state, b'D');
        assert_eq!(s.cpu_ticks, 10, "utime 7 + stime 3");
        assert_eq!(s.start_ticks, 123_456);
        assert_eq!(parse_stat(b"4242 (cut"), None);
        assert_eq!(parse_schedstat(b"199135880 20927491 764\n"), Some(764));
    }

    #[test]
    fn real_stacks_classify_by_their_filesystem_frames() {
        let nfs = parse_stack(NFS_STACK, 8);
        assert_eq!(nfs.len(), 8);
        assert_eq!(nfs[0], "nfs_set_open_stateid_locked+0xfc/0x370 [nfsv4]");
        assert_eq!(classify("", &nfs), WaitKind::Nfs);
        let block = parse_stack(BLOCK_STACK, 8);
        assert_eq!(classify("io_schedule", &block), WaitKind::BlockIo);
        // An NFS write-back waits on the page like a disk write: the outer
        // NFS frame decides (first frames from aws/efs-utils#374, 6.12).
        let efs = parse_stack(
            "[<0>] folio_wait_bit_common+0x12a/0x360\n[<0>] folio_wait_writeback+0x27/0x80\n[<0>] nfs_wb_all+0x2b/0x120 [nfs]\n",
            8,
        );
        assert_eq!(classify("folio_wait_bit_common", &efs), WaitKind::Nfs);
        // wchan alone: the sunrpc wait, a FUSE wait, a driver wait.
        assert_eq!(classify("rpc_wait_bit_killable", &[]), WaitKind::Nfs);
        assert_eq!(classify("request_wait_answer", &[]), WaitKind::Fuse);
        assert_eq!(classify("uvm_wait_for_fence", &[]), WaitKind::GpuDriver);
        assert_eq!(
            classify("", &["os_acquire_mutex+0x40/0x90 [nvidia]".to_owned()]),
            WaitKind::GpuDriver
        );
        // ps's wchan column of xfsaild in cloudfoundry/garden-runc-release#141.
        assert_eq!(classify("io_schedule", &[]), WaitKind::BlockIo);
        assert_eq!(classify("xfs_reclaim_inodes_ag", &[]), WaitKind::Other);
        assert_eq!(classify("0", &[]), WaitKind::Unknown);
        assert_eq!(classify("", &[]), WaitKind::Unknown);
    }

    /// A fake `/proc` and cgroup.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
            std::fs::create_dir_all(dir.path().join("cg")).expect("cg");
            Self { dir }
        }
        fn proc(&self) -> PathBuf {
            self.dir.path().join("proc")
        }
        fn cg(&self) -> PathBuf {
            self.dir.path().join("cg")
        }
        fn threads(&self, tids: &[u32]) {
            let text: String = tids.iter().map(|t| format!("{t}\n")).collect();
            std::fs::write(self.cg().join("cgroup.threads"), text).expect("threads");
        }
        /// One task: its state, timeslices run, wchan and stack.
        fn task(&self, tid: u32, state: char, runs: u64, wchan: &str, stack: &str) {
            let d = self.proc().join(tid.to_string());
            std::fs::create_dir_all(&d).expect("task dir");
            let stat = STAT.replacen(
                "4242 (my (odd) comm) D",
                &format!("{tid} (python3) {state}"),
                1,
            );
            std::fs::write(d.join("stat"), stat).expect("stat");
            std::fs::write(d.join("schedstat"), format!("100 200 {runs}\n")).expect("schedstat");
            std::fs::write(d.join("wchan"), wchan).expect("wchan");
            std::fs::write(d.join("stack"), stack).expect("stack");
        }
    }

    fn sample(cpu_us: u64) -> ContainerSample {
        ContainerSample {
            time: Timestamp(1_000),
            container: ContainerRef {
                cgroup_path: "/kubepods/burstable/podx/abc".into(),
                ..ContainerRef::default()
            },
            cgroup_version: CgroupVersion::V2,
            memory: MemoryStats::default(),
            cpu: Some(CpuStats {
                usage_us: cpu_us,
                ..CpuStats::default()
            }),
            pressure: Pressure::default(),
            pressure_scope: PsiScope::Container,
            stuck: Vec::new(),
        }
    }

    fn settings() -> ProcSettings {
        ProcSettings {
            scan_interval: Duration::from_secs(10),
            stuck_after: Duration::from_secs(30),
            ..ProcSettings::default()
        }
    }

    #[test]
    fn a_task_asleep_without_running_past_the_threshold_is_reported_once_flat() {
        let f = Fixture::new();
        f.threads(&[10, 11, 12]);
        f.task(10, 'D', 5, "rpc_wait_bit_killable", NFS_STACK);
        f.task(11, 'S', 9, "futex_wait_queue", "");
        // 12 vanished between the list and the read: skipped, no error.
        let mut w = ProcWatch::new(settings(), &f.proc());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = sample(0);
        w.observe(&mut s, || f.cg(), true, at(0));
        assert!(s.stuck.is_empty(), "first look: baseline only");
        // Busy container: not scanned (1 core used over 10 s).
        let mut s = sample(10_000_000);
        w.observe(&mut s, || f.cg(), true, at(10));
        assert!(s.stuck.is_empty());
        // Flat from here on: 10 ms of CPU per 10 s.
        for (i, t) in [20u64, 30, 40].into_iter().enumerate() {
            let mut s = sample(10_000_000 + 10_000 * (i as u64 + 1));
            s.time = Timestamp(t);
            w.observe(&mut s, || f.cg(), true, at(t));
            assert!(s.stuck.is_empty(), "{t}s: in D for {}s only", t - 20);
        }
        let mut s = sample(10_040_000);
        s.time = Timestamp(50);
        w.observe(&mut s, || f.cg(), true, at(50));
        assert_eq!(s.stuck.len(), 1, "30 s in D without running");
        let st = &s.stuck[0];
        assert_eq!((st.pid, st.comm.as_str()), (10, "python3"));
        assert_eq!(st.since, Timestamp(20), "first seen in D at the 20 s scan");
        assert_eq!(st.wait, WaitKind::Nfs);
        assert_eq!(st.wchan, "rpc_wait_bit_killable");
        assert_eq!(st.stack.len(), 8);
        // A sample between scans (hot round) carries the same.
        let mut s = sample(10_040_000);
        w.observe(&mut s, || f.cg(), false, at(52));
        assert_eq!(s.stuck.len(), 1);

        // It ran (the timeslice count moved) though it is in D again: a new
        // sleep, not stuck any more.
        f.task(10, 'D', 6, "rpc_wait_bit_killable", NFS_STACK);
        let mut s = sample(10_050_000);
        w.observe(&mut s, || f.cg(), true, at(60));
        assert!(s.stuck.is_empty());
        // It left the cgroup: forgotten.
        f.threads(&[11]);
        let mut s = sample(10_060_000);
        w.observe(&mut s, || f.cg(), true, at(70));
        assert!(s.stuck.is_empty() && w.containers.values().all(|c| c.tracked.is_empty()));
    }

    #[test]
    fn a_task_briefly_in_d_at_each_scan_that_keeps_running_is_not_stuck() {
        let f = Fixture::new();
        f.threads(&[20]);
        let mut w = ProcWatch::new(settings(), &f.proc());
        let t0 = Instant::now();
        let mut s = sample(0);
        w.observe(&mut s, || f.cg(), true, t0);
        // A disk-bound reader: in D at every look, but it runs in between.
        for i in 1..=10u64 {
            f.task(20, 'D', 100 * i, "io_schedule", BLOCK_STACK);
            let mut s = sample(i);
            w.observe(&mut s, || f.cg(), true, t0 + Duration::from_secs(10 * i));
            assert!(s.stuck.is_empty(), "scan {i}");
        }
    }

    #[test]
    fn the_task_budget_covers_every_task_over_successive_scans() {
        let f = Fixture::new();
        let tids: Vec<u32> = (100..110).collect();
        f.threads(&tids);
        for &t in &tids {
            f.task(t, 'S', 1, "", "");
        }
        f.task(
            109,
            'D',
            1,
            "",
            "[<0>] request_wait_answer+0x12b/0x210 [fuse]\n",
        );
        let mut w = ProcWatch::new(
            ProcSettings {
                max_tasks: 3,
                stuck_after: Duration::ZERO,
                ..settings()
            },
            &f.proc(),
        );
        let t0 = Instant::now();
        let mut s = sample(0);
        w.observe(&mut s, || f.cg(), true, t0);
        let mut found = None;
        for i in 1..=4u64 {
            let mut s = sample(0);
            w.observe(&mut s, || f.cg(), true, t0 + Duration::from_secs(10 * i));
            if !s.stuck.is_empty() {
                found = Some(s.stuck[0].clone());
                break;
            }
        }
        let st = found.expect("the last of 10 tasks is reached within 4 scans of 3");
        assert_eq!((st.pid, st.wait), (109, WaitKind::Fuse));
        assert_eq!(st.wchan, "", "wchan file empty: none");
    }
}
