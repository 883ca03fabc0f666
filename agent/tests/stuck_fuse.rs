//! A real process stuck in uninterruptible sleep, made on purpose: a FUSE
//! filesystem whose server (this test, speaking the kernel's protocol on
//! `/dev/fuse`) answers INIT, LOOKUP, GETATTR and OPEN but never a READ.
//! A `head` in a real memory cgroup reads the file and sleeps in the
//! kernel until the connection is aborted; the agent's stuck-task
//! collector must report it in `D`, not scheduled between two scans, and
//! waiting on FUSE: its kernel stack shows the page-cache read waiting on
//! the page (FUSE's own read function leaves no frame there on 6.x, a tail
//! call), and its blocked `read`'s file descriptor is on the FUSE mount.
//!
//! Needs root, `/dev/fuse` and the v1 memory hierarchy: under CI (`CI`
//! set) it fails without them, elsewhere it skips loudly. The connection
//! is aborted (`/sys/fs/fuse/connections/N/abort`) and the mount removed
//! whatever happens, so the reader always exits.
//!
//! Why the reader sleeps in `D`: the server replies to INIT with
//! `FUSE_ASYNC_READ`, so the page-cache read path sends the READ as a
//! background request and waits on the page's lock, killable only
//! (`folio_wait_bit_common`, state `D`), for an answer that never comes.
//! On a kernel that sends the READ synchronously instead, the wait in
//! `request_wait_answer` is interruptible (`S`) until a signal arrives;
//! then the kernel queues an INTERRUPT (which this server ignores) and
//! waits killable (`D`): the test sends SIGSTOP for that case.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gpuscope_agent::collect::procs::{ProcSettings, ProcWatch, parse_stat};
use gpuscope_model::{
    CgroupVersion, ContainerRef, ContainerSample, MemoryStats, Pressure, PsiScope, Timestamp,
    WaitKind,
};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Whether the test may run: fails under CI when it cannot, skips loudly
/// elsewhere.
fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs {what}, which this CI machine lacks"
    );
    eprintln!("SKIPPED: this test needs {what} (it fails instead of skipping when CI is set)");
    false
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

// FUSE opcodes (include/uapi/linux/fuse.h).
const LOOKUP: u32 = 1;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const INTERRUPT: u32 = 36;
const DESTROY: u32 = 38;

const ENOENT: i32 = 2;
const ENOSYS: i32 = 38;
/// `FUSE_ASYNC_READ`: reads go out as background requests.
const FUSE_ASYNC_READ: u32 = 1;
const FILE_INO: u64 = 2;
const FILE_SIZE: u64 = 1 << 20;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `struct fuse_attr` (88 bytes).
fn attr(ino: u64) -> Vec<u8> {
    let (mode, size, nlink): (u32, u64, u32) = if ino == 1 {
        (0o040_755, 0, 2)
    } else {
        (0o100_644, FILE_SIZE, 1)
    };
    let mut a = Vec::with_capacity(88);
    a.extend(ino.to_le_bytes());
    a.extend(size.to_le_bytes());
    a.extend(size.div_ceil(512).to_le_bytes()); // blocks
    a.extend([0u8; 24]); // atime, mtime, ctime
    a.extend([0u8; 12]); // their nanoseconds
    a.extend(mode.to_le_bytes());
    a.extend(nlink.to_le_bytes());
    a.extend(0u32.to_le_bytes()); // uid
    a.extend(0u32.to_le_bytes()); // gid
    a.extend(0u32.to_le_bytes()); // rdev
    a.extend(4096u32.to_le_bytes()); // blksize
    a.extend(0u32.to_le_bytes()); // flags
    assert_eq!(a.len(), 88);
    a
}

/// Writes one reply: `struct fuse_out_header` then the body.
fn reply(dev: &mut File, unique: u64, error: i32, body: &[u8]) {
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend(((16 + body.len()) as u32).to_le_bytes());
    m.extend((-error).to_le_bytes());
    m.extend(unique.to_le_bytes());
    m.extend(body);
    // One write per reply; an aborted connection refuses it, which is fine.
    let _ = dev.write(&m);
}

/// Serves requests until the connection goes away. Never answers READ:
/// announces each on `reads`.
fn serve(mut dev: File, reads: mpsc::Sender<u64>) {
    let mut buf = vec![0u8; (1 << 20) + 4096];
    loop {
        let n = match dev.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // ENODEV: aborted or unmounted.
            Err(_) => return,
        };
        let m = &buf[..n];
        let (opcode, unique, nodeid) = (u32_at(m, 4), u64_at(m, 8), u64_at(m, 16));
        let body = &m[40..];
        match opcode {
            INIT => {
                let (minor, max_readahead) = (u32_at(body, 4), u32_at(body, 8));
                let mut out = Vec::with_capacity(64);
                out.extend(7u32.to_le_bytes());
                out.extend(minor.min(31).to_le_bytes());
                out.extend(max_readahead.to_le_bytes());
                out.extend(FUSE_ASYNC_READ.to_le_bytes());
                out.extend(12u16.to_le_bytes()); // max_background
                out.extend(10u16.to_le_bytes()); // congestion_threshold
                out.extend(4096u32.to_le_bytes()); // max_write
                out.extend(1u32.to_le_bytes()); // time_gran
                out.resize(64, 0);
                reply(&mut dev, unique, 0, &out);
            }
            LOOKUP => {
                let name = body.split(|&b| b == 0).next().unwrap_or_default();
                if nodeid == 1 && name == b"data" {
                    let mut out = Vec::with_capacity(128);
                    out.extend(FILE_INO.to_le_bytes());
                    out.extend(0u64.to_le_bytes()); // generation
                    out.extend(60u64.to_le_bytes()); // entry_valid
                    out.extend(60u64.to_le_bytes()); // attr_valid
                    out.extend([0u8; 8]); // their nanoseconds
                    out.extend(attr(FILE_INO));
                    reply(&mut dev, unique, 0, &out);
                } else {
                    reply(&mut dev, unique, ENOENT, &[]);
                }
            }
            GETATTR => {
                let mut out = Vec::with_capacity(104);
                out.extend(60u64.to_le_bytes());
                out.extend([0u8; 8]);
                out.extend(attr(nodeid));
                reply(&mut dev, unique, 0, &out);
            }
            OPEN => reply(&mut dev, unique, 0, &[0u8; 16]),
            READ => {
                let _ = reads.send(unique);
            }
            // The reader was signalled: leave it waiting.
            INTERRUPT => {}
            FLUSH | RELEASE => reply(&mut dev, unique, 0, &[]),
            DESTROY => return,
            _ => reply(&mut dev, unique, ENOSYS, &[]),
        }
    }
}

/// Everything the test set up, undone in reverse when dropped: the reader
/// killed, the connection aborted, the mount removed, the cgroup removed.
struct Setup {
    mnt: PathBuf,
    mounted: bool,
    cgroup: PathBuf,
    reader: Option<Child>,
    fusectl_mounted_here: bool,
}

impl Setup {
    /// `/sys/fs/fuse/connections/N` of the mount: N is its device minor.
    fn connection(&self) -> Option<PathBuf> {
        let dev = std::fs::metadata(&self.mnt).ok()?.dev();
        let minor = nix::sys::stat::minor(dev);
        Some(PathBuf::from(format!("/sys/fs/fuse/connections/{minor}")))
    }

    fn abort(&mut self) {
        if !self.mounted {
            return;
        }
        let conns = Path::new("/sys/fs/fuse/connections");
        if std::fs::read_dir(conns).is_ok_and(|mut d| d.next().is_none()) {
            // fusectl is not mounted here: mount it to reach the abort file.
            self.fusectl_mounted_here = mount(
                Some("fusectl"),
                conns,
                Some("fusectl"),
                MsFlags::empty(),
                None::<&str>,
            )
            .is_ok();
        }
        let aborted = self
            .connection()
            .is_some_and(|c| std::fs::write(c.join("abort"), "1").is_ok());
        if !aborted {
            // MNT_FORCE aborts a FUSE connection too (fuse_umount_begin).
            let _ = umount2(&self.mnt, MntFlags::MNT_FORCE);
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.abort();
        if let Some(r) = &mut self.reader {
            let _ = r.kill();
            let _ = r.wait();
        }
        if self.mounted {
            let _ = umount2(&self.mnt, MntFlags::MNT_DETACH);
        }
        if self.fusectl_mounted_here {
            let _ = umount2("/sys/fs/fuse/connections", MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.mnt);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.cgroup).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn state_of(pid: u32) -> Option<u8> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|s| s.state)
}

#[test]
fn a_read_that_fuse_never_answers_is_reported_stuck_on_fuse() {
    let can = is_root()
        && Path::new("/dev/fuse").exists()
        && Path::new(V1_MEMORY).join("memory.limit_in_bytes").exists();
    if !require("root, /dev/fuse and the v1 memory cgroup hierarchy", can) {
        return;
    }
    let tag = format!("gpuscope-stuck-fuse-{}", std::process::id());
    let mnt = std::env::temp_dir().join(&tag);
    std::fs::create_dir_all(&mnt).expect("mount point");
    let cgroup = Path::new(V1_MEMORY).join(&tag);
    std::fs::create_dir_all(&cgroup).expect("cgroup");
    let mut setup = Setup {
        mnt: mnt.clone(),
        mounted: false,
        cgroup: cgroup.clone(),
        reader: None,
        fusectl_mounted_here: false,
    };

    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .expect("open /dev/fuse");
    let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd());
    mount(
        Some("gpuscope-test"),
        &mnt,
        Some("fuse.gpuscope-test"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .expect("mount the FUSE filesystem");
    setup.mounted = true;
    let (reads_tx, reads) = mpsc::channel();
    // Ends when the connection is aborted (its read fails with ENODEV).
    std::thread::spawn(move || serve(dev, reads_tx));

    // The reader joins the cgroup, then reads the file.
    let reader = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/tasks && exec head -c 4096 {}/data > /dev/null",
            cgroup.display(),
            mnt.display()
        ))
        .spawn()
        .expect("spawn the reader");
    let pid = reader.id();
    setup.reader = Some(reader);
    reads
        .recv_timeout(Duration::from_secs(10))
        .expect("the kernel sent a READ for the reader");

    // Wait for it to sleep; SIGSTOP turns an interruptible FUSE wait into
    // the killable (D) one (see the module docs).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stopped = false;
    while state_of(pid) != Some(b'D') && Instant::now() < deadline {
        if state_of(pid) == Some(b'S') && !stopped {
            std::thread::sleep(Duration::from_millis(200));
            if state_of(pid) == Some(b'S') {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGSTOP,
                )
                .expect("SIGSTOP");
                stopped = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        state_of(pid).map(char::from),
        Some('D'),
        "the reader sleeps uninterruptibly (SIGSTOP sent: {stopped})"
    );

    // The agent's collector over the real cgroup and /proc.
    let settings = ProcSettings {
        scan_interval: Duration::ZERO,
        stuck_after: Duration::from_millis(300),
        ..ProcSettings::default()
    };
    let mut watch = ProcWatch::new(settings, Path::new("/proc"));
    let mut sample = ContainerSample {
        time: Timestamp::now(),
        container: ContainerRef {
            cgroup_path: format!("/{tag}"),
            ..ContainerRef::default()
        },
        cgroup_version: CgroupVersion::V1,
        memory: MemoryStats::default(),
        // No CPU figures: counted flat.
        cpu: None,
        pressure: Pressure::default(),
        pressure_scope: PsiScope::Node,
        stuck: Vec::new(),
    };
    let t0 = Instant::now();
    watch.observe(&mut sample, || cgroup.clone(), true, t0);
    watch.observe(&mut sample, || cgroup.clone(), true, Instant::now());
    assert!(sample.stuck.is_empty(), "seen once: not yet stuck");
    std::thread::sleep(Duration::from_millis(500));
    sample.time = Timestamp::now();
    watch.observe(&mut sample, || cgroup.clone(), true, Instant::now());
    assert_eq!(sample.stuck.len(), 1, "{:?}", sample.stuck);
    let st = &sample.stuck[0];
    assert_eq!(st.pid, pid);
    assert_eq!(st.comm, "head");
    assert_eq!(
        st.wait,
        WaitKind::Fuse,
        "wchan {:?}, stack {:?}",
        st.wchan,
        st.stack
    );
    // The kernel stack shows the page-cache read waiting on the page (on
    // 6.x FUSE's read_iter leaves no frame of its own: a tail call), and
    // the blocked read's file descriptor names the FUSE file.
    assert!(
        st.stack.iter().any(|f| f.starts_with("filemap_read")),
        "the kernel stack shows the read: {:?}",
        st.stack
    );
    assert!(!st.wchan.is_empty(), "wchan names the wait");
    assert_eq!(st.file, mnt.join("data").to_string_lossy());
    assert_eq!(st.fstype, "fuse.gpuscope-test");
    eprintln!("stuck: wchan {} stack {:#?}", st.wchan, st.stack);

    // Abort: the read fails and the reader exits; the collector forgets it.
    setup.abort();
    let mut reader = setup.reader.take().expect("reader");
    if stopped {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGCONT,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = reader.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = reader.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = reader.wait();
    assert!(status.is_some(), "aborting the connection freed the reader");
    watch.observe(&mut sample, || cgroup.clone(), true, Instant::now());
    assert!(sample.stuck.is_empty(), "gone from the next scan");
    drop(setup);
}
