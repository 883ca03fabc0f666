//! OOM notification: the kernel tells us the moment a container's OOM
//! counters move, instead of us finding out at the next poll.
//!
//! - cgroup v2: an inotify watch (`IN_MODIFY`) on each container's
//!   `memory.events`; the kernel raises a file-modified notification when
//!   any of its counters changes, and the counter is already updated.
//! - cgroup v1: an eventfd registered through `cgroup.event_control` on the
//!   container's `memory.oom_control`. It fires when the cgroup enters OOM
//!   (a little *before* the kill increments `oom_kill`), on OOM without a
//!   kill, and when the cgroup is removed, so the caller re-reads the
//!   counter, briefly, until it moves (TESTING.md has the measurements).
//!   Registration must be per container cgroup: a pod-level registration
//!   does not see a container-limit OOM.
//!
//! One [`Notifier`] serves every container; registration may happen from
//! any thread while another blocks in [`Notifier::wait`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use gpuscope_model::CgroupVersion;

/// Errors of the notification source.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Creating the epoll, inotify or eventfd instance failed.
    #[error("cannot create {what}: {source}")]
    Create {
        /// Which kernel object.
        what: &'static str,
        /// The error.
        source: Errno,
    },
    /// Registering a notification on a cgroup file failed.
    #[error("cannot watch {path}: {source}")]
    Register {
        /// The file that could not be watched.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Waiting for notifications failed.
    #[error("waiting for OOM notifications failed: {0}")]
    Wait(Errno),
}

/// epoll token of the shared inotify instance; eventfds get tokens from 1.
const INOTIFY_TOKEN: u64 = 0;

/// The kernel objects that keep one cgroup's notification alive.
enum Registration {
    /// v2: a watch on `memory.events`.
    V2 { wd: WatchDescriptor },
    /// v1: the eventfd and the open `memory.oom_control` it was registered
    /// against (closing either ends the registration in the kernel).
    V1 {
        token: u64,
        eventfd: EventFd,
        _oom_control: File,
    },
}

#[derive(Default)]
struct Registry {
    next_token: u64,
    by_path: HashMap<String, Registration>,
    by_token: HashMap<u64, String>,
    by_wd: HashMap<WatchDescriptor, String>,
}

/// Watches many containers' OOM counters for changes.
pub struct Notifier {
    epoll: Epoll,
    inotify: Inotify,
    registry: Mutex<Registry>,
}

impl Notifier {
    /// Creates the epoll and inotify instances.
    pub fn new() -> Result<Self, NotifyError> {
        let epoll =
            Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|source| NotifyError::Create {
                what: "epoll",
                source,
            })?;
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|source| {
                NotifyError::Create {
                    what: "inotify",
                    source,
                }
            })?;
        epoll
            .add(
                inotify.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY_TOKEN),
            )
            .map_err(|source| NotifyError::Create {
                what: "epoll registration of inotify",
                source,
            })?;
        Ok(Self {
            epoll,
            inotify,
            registry: Mutex::new(Registry {
                next_token: INOTIFY_TOKEN + 1,
                ..Registry::default()
            }),
        })
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing notifications: keep going.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `cgroup_path` has a live registration.
    pub fn is_registered(&self, cgroup_path: &str) -> bool {
        self.registry().by_path.contains_key(cgroup_path)
    }

    /// Number of live registrations.
    pub fn len(&self) -> usize {
        self.registry().by_path.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts watching the memory cgroup at `memory_dir` (absolute), known
    /// to the rest of the agent as `cgroup_path`. Registering twice is a
    /// no-op.
    pub fn register(
        &self,
        cgroup_path: &str,
        memory_dir: &Path,
        version: CgroupVersion,
    ) -> Result<(), NotifyError> {
        let mut reg = self.registry();
        if reg.by_path.contains_key(cgroup_path) {
            return Ok(());
        }
        let registration = match version {
            CgroupVersion::V2 => {
                let path = memory_dir.join("memory.events");
                let wd = self
                    .inotify
                    .add_watch(&path, AddWatchFlags::IN_MODIFY)
                    .map_err(|e| NotifyError::Register {
                        path,
                        source: e.into(),
                    })?;
                reg.by_wd.insert(wd, cgroup_path.to_owned());
                Registration::V2 { wd }
            }
            CgroupVersion::V1 => {
                let token = reg.next_token;
                let registration = self.register_v1(memory_dir, token)?;
                reg.next_token += 1;
                reg.by_token.insert(token, cgroup_path.to_owned());
                registration
            }
        };
        reg.by_path.insert(cgroup_path.to_owned(), registration);
        Ok(())
    }

    fn register_v1(&self, memory_dir: &Path, token: u64) -> Result<Registration, NotifyError> {
        let oom_control_path = memory_dir.join("memory.oom_control");
        let register_err = |path: &Path, source: std::io::Error| NotifyError::Register {
            path: path.to_owned(),
            source,
        };
        let oom_control =
            File::open(&oom_control_path).map_err(|e| register_err(&oom_control_path, e))?;
        let eventfd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| register_err(&oom_control_path, e.into()))?;
        let control_path = memory_dir.join("cgroup.event_control");
        let line = format!("{} {}", eventfd.as_raw_fd(), oom_control.as_raw_fd());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&control_path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| register_err(&control_path, e))?;
        self.epoll
            .add(eventfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            .map_err(|e| register_err(&oom_control_path, e.into()))?;
        Ok(Registration::V1 {
            token,
            eventfd,
            _oom_control: oom_control,
        })
    }

    /// Stops watching `cgroup_path` (a vanished container). Unknown paths
    /// are ignored.
    pub fn unregister(&self, cgroup_path: &str) {
        let mut reg = self.registry();
        match reg.by_path.remove(cgroup_path) {
            Some(Registration::V2 { wd }) => {
                reg.by_wd.remove(&wd);
                // EINVAL: the kernel already dropped the watch (IN_IGNORED
                // after the cgroup was removed).
                let _ = self.inotify.rm_watch(wd);
            }
            Some(Registration::V1 { token, eventfd, .. }) => {
                reg.by_token.remove(&token);
                let _ = self.epoll.delete(eventfd.as_fd());
            }
            None => {}
        }
    }

    /// Blocks up to `timeout` for notifications and appends the cgroup path
    /// of every container whose counters may have moved to `fired` (a path
    /// may appear more than once). An interrupted wait returns normally.
    pub fn wait(&self, timeout: Duration, fired: &mut Vec<String>) -> Result<(), NotifyError> {
        let mut events = [EpollEvent::empty(); 32];
        let timeout = EpollTimeout::try_from(timeout).unwrap_or(EpollTimeout::MAX);
        let n = match self.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => return Ok(()),
            Err(e) => return Err(NotifyError::Wait(e)),
        };
        let mut reg = self.registry();
        for ev in &events[..n] {
            let token = ev.data();
            if token == INOTIFY_TOKEN {
                self.drain_inotify(&mut reg, fired);
                continue;
            }
            if let Some(path) = reg.by_token.get(&token) {
                if let Some(Registration::V1 { eventfd, .. }) = reg.by_path.get(path) {
                    // Reset the counter so level-triggered epoll goes quiet.
                    let _ = eventfd.read();
                }
                fired.push(path.clone());
            }
        }
        Ok(())
    }

    fn drain_inotify(&self, reg: &mut Registry, fired: &mut Vec<String>) {
        loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    for ev in events {
                        let Some(path) = reg.by_wd.get(&ev.wd) else {
                            continue;
                        };
                        fired.push(path.clone());
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // The file is gone (cgroup removed): the kernel
                            // dropped the watch; the caller's re-read sees
                            // the cgroup gone and unregisters.
                            reg.by_wd.remove(&ev.wd);
                        }
                    }
                }
                Ok(_) | Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "Reading inotify events failed.");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A v2 `memory.events` file in a tempdir is an ordinary file: writing
    /// it raises the same IN_MODIFY the kernel raises for the real one.
    #[test]
    fn v2_watch_fires_on_modify_and_stops_after_unregister() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "oom_kill 0\n").expect("write");
        let n = Notifier::new().expect("notifier");
        n.register("/kubepods/pod1/c1", dir.path(), CgroupVersion::V2)
            .expect("register");
        assert!(n.is_registered("/kubepods/pod1/c1"));

        let mut fired = Vec::new();
        n.wait(Duration::from_millis(10), &mut fired).expect("wait");
        assert!(fired.is_empty(), "nothing changed yet: {fired:?}");

        std::fs::write(&events, "oom_kill 1\n").expect("write");
        let start = Instant::now();
        while fired.is_empty() && start.elapsed() < Duration::from_secs(2) {
            n.wait(Duration::from_millis(100), &mut fired)
                .expect("wait");
        }
        assert!(fired.iter().all(|p| p == "/kubepods/pod1/c1"));
        assert!(!fired.is_empty(), "modify must fire");

        n.unregister("/kubepods/pod1/c1");
        assert!(n.is_empty());
        fired.clear();
        std::fs::write(&events, "oom_kill 2\n").expect("write");
        n.wait(Duration::from_millis(50), &mut fired).expect("wait");
        assert!(fired.is_empty(), "unregistered: {fired:?}");
    }

    #[test]
    fn register_missing_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = Notifier::new().expect("notifier");
        let err = n
            .register("/gone", &dir.path().join("gone"), CgroupVersion::V2)
            .expect_err("missing cgroup");
        assert!(err.to_string().contains("gone/memory.events"), "{err}");
        let err = n
            .register("/gone", &dir.path().join("gone"), CgroupVersion::V1)
            .expect_err("missing cgroup");
        assert!(err.to_string().contains("gone/memory.oom_control"), "{err}");
        assert!(n.is_empty());
    }
}
