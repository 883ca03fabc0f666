//! The library's process-wide state: the loaded scenario, its clock, the event
//! sets, and the opaque handles given to callers.
//!
//! Everything lives behind one `Mutex`; an injected hang sleeps *without* it,
//! so a hung call blocks only its caller. Event-set waits sleep on a `Condvar`
//! tied to the same mutex.

use std::collections::HashMap;
use std::ffi::{c_char, c_uint};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ffi::{self, Ret};
use crate::scenario::{Gpu, MAX_GPUS, MAX_MIG_INSTANCES, MigInstance, Scenario};

/// Most event sets alive at once.
pub const MAX_EVENT_SETS: usize = 256;
const SLOTS_PER_GPU: usize = 1 + MAX_MIG_INSTANCES;

/// Device handles are addresses in this table: never dereferenced, never
/// dangling, and decodable by offset (GPU `i` is slot `i * SLOTS_PER_GPU`,
/// its MIG device `j` the slot `j + 1` after it).
static DEVICE_SLOTS: [u8; MAX_GPUS * SLOTS_PER_GPU] = [0; MAX_GPUS * SLOTS_PER_GPU];
/// Event-set handles are addresses in this table.
static EVENT_SET_SLOTS: [u8; MAX_EVENT_SETS] = [0; MAX_EVENT_SETS];

/// What a device handle designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dev {
    /// A physical GPU, by index in the scenario's `gpus`.
    Gpu(usize),
    /// A MIG device: parent GPU index, instance index.
    Mig(usize, usize),
}

impl Dev {
    /// The scenario index of the (parent) GPU.
    pub fn gpu(self) -> usize {
        match self {
            Dev::Gpu(g) | Dev::Mig(g, _) => g,
        }
    }

    /// The GPU index, or `NOT_SUPPORTED` for a MIG device (most queries are
    /// not supported on MIG handles by the real NVML either).
    pub fn whole_gpu(self) -> Result<usize, Ret> {
        match self {
            Dev::Gpu(g) => Ok(g),
            Dev::Mig(..) => Err(ffi::ERROR_NOT_SUPPORTED),
        }
    }

    /// The opaque handle for this device.
    pub fn handle(self) -> ffi::Device {
        let slot = match self {
            Dev::Gpu(g) => g * SLOTS_PER_GPU,
            Dev::Mig(g, m) => g * SLOTS_PER_GPU + 1 + m,
        };
        DEVICE_SLOTS.as_ptr().wrapping_add(slot).cast_mut().cast()
    }

    /// Decodes a handle given out by [`Dev::handle`].
    pub fn from_handle(handle: ffi::Device) -> Option<Dev> {
        let slot = handle.addr().wrapping_sub(DEVICE_SLOTS.as_ptr().addr());
        (slot < DEVICE_SLOTS.len()).then(|| {
            let (g, k) = (slot / SLOTS_PER_GPU, slot % SLOTS_PER_GPU);
            if k == 0 {
                Dev::Gpu(g)
            } else {
                Dev::Mig(g, k - 1)
            }
        })
    }
}

/// The opaque handle of event set `slot`.
pub fn event_set_handle(slot: usize) -> ffi::EventSet {
    EVENT_SET_SLOTS
        .as_ptr()
        .wrapping_add(slot)
        .cast_mut()
        .cast()
}

/// Decodes an event-set handle to its slot.
pub fn event_set_slot(handle: ffi::EventSet) -> Option<usize> {
    let slot = handle.addr().wrapping_sub(EVENT_SET_SLOTS.as_ptr().addr());
    (slot < MAX_EVENT_SETS).then_some(slot)
}

/// One event set: which GPUs it listens to, and what it already reported.
#[derive(Debug, Default)]
pub struct EventSetState {
    /// Registered event mask per GPU index.
    pub registered: HashMap<usize, u64>,
    /// GPUs whose loss this set has already reported.
    pub lost_reported: Vec<usize>,
}

/// The state between `nvmlInit` and the matching `nvmlShutdown`.
#[derive(Debug)]
pub struct Session {
    /// The loaded scenario.
    pub scenario: Scenario,
    /// Scenario time zero.
    pub start: Instant,
    /// `nvmlInit` calls not yet matched by `nvmlShutdown`.
    pub refs: u32,
    /// Live event sets by slot.
    pub event_sets: HashMap<usize, EventSetState>,
    /// Per GPU, per XID: already delivered (each XID fires once).
    pub xid_delivered: Vec<Vec<bool>>,
}

impl Session {
    /// A fresh session whose clock starts now.
    pub fn new(scenario: Scenario) -> Self {
        let xid_delivered = scenario
            .gpus
            .iter()
            .map(|g| vec![false; g.xids.len()])
            .collect();
        Session {
            scenario,
            start: Instant::now(),
            refs: 1,
            event_sets: HashMap::new(),
            xid_delivered,
        }
    }

    /// Seconds since `nvmlInit`.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The GPU a handle belongs to.
    pub fn gpu(&self, dev: Dev) -> &Gpu {
        &self.scenario.gpus[dev.gpu()]
    }

    /// The MIG instance of a MIG handle.
    pub fn mig(&self, dev: Dev) -> Option<&MigInstance> {
        match dev {
            Dev::Gpu(_) => None,
            Dev::Mig(g, m) => self.scenario.gpus[g].mig.as_ref()?.instances.get(m),
        }
    }

    /// Whether a decoded handle names something in this scenario.
    fn valid(&self, dev: Dev) -> bool {
        match dev {
            Dev::Gpu(g) => g < self.scenario.gpus.len(),
            Dev::Mig(..) => dev.gpu() < self.scenario.gpus.len() && self.mig(dev).is_some(),
        }
    }

    /// Indexes (in the scenario) of the GPUs enumerated at `now`.
    pub fn present(&self, now: f64) -> impl Iterator<Item = usize> + '_ {
        self.scenario
            .gpus
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.present(now))
            .map(|(i, _)| i)
    }
}

static STATE: Mutex<Option<Session>> = Mutex::new(None);
/// Woken whenever an event set changes or the library shuts down.
pub static WAKE: Condvar = Condvar::new();

/// Locks the state; a panic elsewhere never makes the library unusable.
pub fn lock() -> MutexGuard<'static, Option<Session>> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits on [`WAKE`] for at most `timeout`.
pub fn wait(
    guard: MutexGuard<'static, Option<Session>>,
    timeout: Duration,
) -> MutexGuard<'static, Option<Session>> {
    match WAKE.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// The common entry of every NVML call but init: checks that the library is
/// initialized and the handle valid and not lost, then applies the first
/// matching fault (sleeping without the lock for a hang). Returns the locked
/// state, which holds a session, and the decoded device.
pub fn enter(
    function: &str,
    device: Option<ffi::Device>,
) -> Result<(MutexGuard<'static, Option<Session>>, Option<Dev>), Ret> {
    let mut guard = lock();
    let Some(session) = guard.as_ref() else {
        return Err(ffi::ERROR_UNINITIALIZED);
    };
    let dev = match device {
        None => None,
        Some(h) => {
            let dev = Dev::from_handle(h)
                .filter(|d| session.valid(*d))
                .ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
            Some(dev)
        }
    };
    let gpu = dev.map(Dev::gpu);
    let now = session.now();
    if let Some(g) = gpu {
        let g = &session.scenario.gpus[g];
        if g.lost(now) || !g.present(now) {
            return Err(ffi::ERROR_GPU_IS_LOST);
        }
    }
    let fault = session
        .scenario
        .faults
        .iter()
        .find(|f| f.applies(function, gpu, now))
        .map(|f| (f.hang_seconds, f.code));
    if let Some((hang, code)) = fault {
        if let Some(secs) = hang {
            drop(guard);
            std::thread::sleep(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
            guard = lock();
            if guard.is_none() {
                return Err(ffi::ERROR_UNINITIALIZED);
            }
        }
        if let Some(code) = code
            && code != ffi::SUCCESS
        {
            return Err(code);
        }
    }
    Ok((guard, dev))
}

/// Runs `body` on the session after [`enter`] for a call without a device.
pub fn call(function: &str, body: impl FnOnce(&mut Session, f64) -> Result<(), Ret>) -> Ret {
    match enter(function, None) {
        Err(code) => code,
        Ok((mut guard, _)) => match guard.as_mut() {
            None => ffi::ERROR_UNINITIALIZED,
            Some(s) => {
                let now = s.now();
                into_ret(body(s, now))
            }
        },
    }
}

/// Runs `body` on the session after [`enter`] for a call on `device`.
pub fn device_call(
    function: &str,
    device: ffi::Device,
    body: impl FnOnce(&mut Session, Dev, f64) -> Result<(), Ret>,
) -> Ret {
    match enter(function, Some(device)) {
        Err(code) => code,
        Ok((_, None)) => ffi::ERROR_INVALID_ARGUMENT,
        Ok((mut guard, Some(dev))) => match guard.as_mut() {
            None => ffi::ERROR_UNINITIALIZED,
            Some(s) => {
                let now = s.now();
                into_ret(body(s, dev, now))
            }
        },
    }
}

/// `Ok` is `NVML_SUCCESS`.
pub fn into_ret(r: Result<(), Ret>) -> Ret {
    r.err().unwrap_or(ffi::SUCCESS)
}

/// Writes `value` to an out-parameter; a null pointer is `INVALID_ARGUMENT`.
///
/// # Safety
/// `out` must be null or valid for writing a `T`.
pub unsafe fn put<T>(out: *mut T, value: T) -> Result<(), Ret> {
    if out.is_null() {
        return Err(ffi::ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: `out` is not null, and the caller guarantees it is valid for a write.
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `s` NUL-terminated into the caller's buffer of `len` bytes;
/// `INSUFFICIENT_SIZE` when it does not fit, as NVML does.
///
/// # Safety
/// `buf` must be null or valid for writing `len` bytes.
pub unsafe fn put_str(buf: *mut c_char, len: c_uint, s: &str) -> Result<(), Ret> {
    if buf.is_null() {
        return Err(ffi::ERROR_INVALID_ARGUMENT);
    }
    let bytes = s.as_bytes();
    if bytes.len() + 1 > len as usize {
        return Err(ffi::ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: `buf` is valid for `len` bytes (caller) and `bytes.len() + 1 <= len`;
    // `bytes` is our own string, so the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

/// Copies `s` NUL-terminated into a fixed C array (truncating, which
/// validated scenario strings never need).
pub fn fill_array<const N: usize>(dst: &mut [c_char; N], s: &str) {
    let n = s.len().min(N - 1);
    for (d, b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}
