//! The NVML collector: every GPU (and MIG instance), its compute processes
//! and XID errors, through `nvml-wrapper`.
//!
//! NVML calls are blocking FFI calls into the driver and cannot be
//! cancelled, so they run on a worker thread of their own. A collection
//! that does not answer within the deadline is reported as late, naming
//! the call it is stuck in, and no new one is asked for until it returns:
//! a slow or hung driver never stalls cgroup collection or the OOM path,
//! which run on other threads. XID errors come from an NVML event set on a
//! second thread.
//!
//! Health counters of each whole GPU are read on the same worker, each at a
//! cadence that suits it: clock event (throttle) reasons every collection,
//! since a slowdown comes and goes within seconds; ECC errors, remapped
//! rows (through `nvmlDeviceGetFieldValues`, the only way nvml-wrapper
//! exposes them), retired pages (before Ampere) and PCIe link state and
//! replays every
//! [`SLOW_HEALTH_EVERY`] collections, since they only ever move on a fault;
//! limits that never change (maximum SM clock, maximum PCIe generation and
//! width, temperature thresholds) once per GPU. A call a GPU answers
//! `NOT_SUPPORTED` (or a driver lacks) is logged once and not asked again.
//!
//! NVLink is read at the slow cadence too: each link's state
//! (`nvmlDeviceGetNvLinkState`) and its four data-link error counters
//! (`nvmlDeviceGetNvLinkErrorCounter`: CRC flit, CRC data, replay,
//! recovery; asked of links that are up only), links 0, 1, ... up to the
//! first index the driver refuses
//! (`INVALID_ARGUMENT`: the GPU has no such link) or
//! `NVML_NVLINK_MAX_LINKS`; the count found is kept, so later reads ask
//! only the GPU's own links. A GPU without NVLink answers `NOT_SUPPORTED`
//! on link 0: logged once, never asked again. GPU fabric state
//! (`nvmlDeviceGetGpuFabricInfo`, NVSwitch systems) is not read:
//! nvml-wrapper 0.13 does not expose it, and this crate forbids the
//! `unsafe` a direct call would need.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, RetirementCause, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

use gpuscope_model::{GpuHealth, GpuProcess, GpuSample, NvLinkStatus, ThrottleReason, Timestamp};

/// ECC, remapped rows and PCIe link state and replays are read every this
/// many collections (10: every 10 s at the default 1 s interval). They move
/// only on a hardware fault and a finding needs them to stay moved, so a
/// 10 s delay costs nothing, while reading them every second would add
/// about ten driver calls per GPU per second.
pub const SLOW_HEALTH_EVERY: u32 = 10;

/// NVML field ids of row remapping (`NVML_FI_DEV_REMAPPED_COR`, `_UNC`,
/// `_PENDING`, `_FAILURE`).
const REMAP_FIELDS: [FieldId; 4] = [FieldId(142), FieldId(143), FieldId(144), FieldId(145)];

/// The most NVLink links a GPU has (`NVML_NVLINK_MAX_LINKS`: 18 on Hopper).
const NVLINK_MAX_LINKS: u32 = 18;

/// The NVLink error counters read per link, in [`NvLinkStatus`] order,
/// each named for the once-only log of a GPU that lacks it.
const NVLINK_COUNTERS: [(&str, ErrorCounter); 4] = [
    (
        "nvmlDeviceGetNvLinkErrorCounter(crc flit)",
        ErrorCounter::DlCrcFlit,
    ),
    (
        "nvmlDeviceGetNvLinkErrorCounter(crc data)",
        ErrorCounter::DlCrcData,
    ),
    (
        "nvmlDeviceGetNvLinkErrorCounter(replay)",
        ErrorCounter::DlReplay,
    ),
    (
        "nvmlDeviceGetNvLinkErrorCounter(recovery)",
        ErrorCounter::DlRecovery,
    ),
];

/// Where to find NVML and how long to wait for it.
#[derive(Debug, Clone)]
pub struct NvmlSettings {
    /// The library to load (`None`: the system's `libnvidia-ml.so.1`).
    pub lib_path: Option<PathBuf>,
    /// How long one collection may take before it is reported late.
    pub deadline: Duration,
    /// Read each GPU's health counters (throttle reasons, ECC, remapped
    /// rows, PCIe link, limits) with its sample.
    pub health: bool,
    /// With `health`: also read each NVLink link's state and error
    /// counters (at the slow cadence).
    pub nvlink: bool,
}

/// Why a collection gave no readings.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NvmlSourceError {
    /// NVML could not be loaded or initialised (no driver, no library, a
    /// missing symbol, a broken fake scenario).
    #[error("NVML is unavailable: {0}")]
    Unavailable(String),
    /// The collection did not finish within the deadline.
    #[error("NVML call {call} has not returned after {waited:?} (driver slow or hung)")]
    Late {
        /// The call (and GPU) the worker is blocked in.
        call: String,
        /// How long it has been waiting.
        waited: Duration,
    },
    /// The worker thread is gone (it panicked).
    #[error("the NVML worker thread stopped")]
    WorkerGone,
}

/// One collection of every GPU.
#[derive(Debug, Clone, Default)]
pub struct NvmlCollection {
    /// Every GPU and MIG instance that could be read.
    pub gpus: Vec<GpuSample>,
    /// `nvmlDeviceGetCount`.
    pub device_count: u32,
    /// `nvmlSystemGetDriverVersion`.
    pub driver_version: String,
    /// The library is gpuscope's fake NVML.
    pub simulated: bool,
    /// GPUs that answered `NVML_ERROR_GPU_IS_LOST`: index and, when known
    /// from an earlier collection, UUID.
    pub lost: Vec<(u32, Option<String>)>,
    /// Calls that failed with another error, each naming the call and GPU.
    pub errors: Vec<String>,
}

/// Something NVML reported between collections.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuNotice {
    /// An XID error from the event set.
    Xid {
        /// When it was received.
        time: Timestamp,
        /// The GPU's UUID (empty when NVML did not say).
        uuid: String,
        /// The XID.
        xid: u64,
    },
    /// An SXid line of the NVSwitch driver in the kernel log (from the
    /// kmsg thread): about a switch, reported as it is.
    SwitchXid {
        /// The record's time.
        time: Timestamp,
        /// The line.
        line: gpuscope_model::SwitchXidLine,
    },
    /// An XID line of the driver in the kernel log (from the kmsg thread).
    KernelXid {
        /// The record's time.
        time: Timestamp,
        /// The XID.
        xid: u64,
        /// The line's details (PCI address, process, message, history).
        line: gpuscope_model::KernelXidLine,
    },
}

/// The call the worker is in and on which GPU, for late reports (kept
/// unformatted: it is set before every call and read only when late).
type CurrentCall = Arc<Mutex<(&'static str, Option<u32>)>>;

/// Handle to the NVML worker thread.
pub struct NvmlSource {
    requests: SyncSender<()>,
    responses: Receiver<Result<NvmlCollection, String>>,
    current: CurrentCall,
    outstanding: Option<Instant>,
    deadline: Duration,
}

impl NvmlSource {
    /// Starts the worker thread; XID errors go to `notices`.
    pub fn start(settings: NvmlSettings, notices: Sender<GpuNotice>) -> std::io::Result<Self> {
        let (requests, request_rx) = mpsc::sync_channel(1);
        let (response_tx, responses) = mpsc::sync_channel(1);
        let current: CurrentCall = Arc::new(Mutex::new(("", None)));
        let worker = Worker {
            settings: settings.clone(),
            current: current.clone(),
            notices,
            nvml: None,
            last_seen: HashMap::new(),
            uuids: HashMap::new(),
            health: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("nvml".into())
            .spawn(move || worker.run(&request_rx, &response_tx))?;
        Ok(Self {
            requests,
            responses,
            current,
            outstanding: None,
            deadline: settings.deadline,
        })
    }

    /// Collects every GPU, waiting at most the deadline. While an earlier
    /// collection is still stuck, reports it late without asking again.
    pub fn collect(&mut self) -> Result<NvmlCollection, NvmlSourceError> {
        if let Some(asked) = self.outstanding {
            match self.responses.try_recv() {
                // The late collection finally finished: its readings are
                // stale, drop them and ask afresh.
                Ok(_) => self.outstanding = None,
                Err(TryRecvError::Empty) => return Err(self.late(asked)),
                Err(TryRecvError::Disconnected) => return Err(NvmlSourceError::WorkerGone),
            }
        }
        self.requests
            .send(())
            .map_err(|_| NvmlSourceError::WorkerGone)?;
        let asked = Instant::now();
        match self.responses.recv_timeout(self.deadline) {
            Ok(result) => {
                self.outstanding = None;
                result.map_err(NvmlSourceError::Unavailable)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.outstanding = Some(asked);
                Err(self.late(asked))
            }
            Err(RecvTimeoutError::Disconnected) => Err(NvmlSourceError::WorkerGone),
        }
    }

    fn late(&self, asked: Instant) -> NvmlSourceError {
        let (call, index) = *self.current.lock().unwrap_or_else(|e| e.into_inner());
        NvmlSourceError::Late {
            call: match index {
                Some(i) => format!("{call} on GPU {i}"),
                None => call.to_owned(),
            },
            waited: asked.elapsed(),
        }
    }
}

struct Worker {
    settings: NvmlSettings,
    current: CurrentCall,
    notices: Sender<GpuNotice>,
    nvml: Option<&'static Nvml>,
    /// Per GPU UUID: the newest process-utilization sample seen.
    last_seen: HashMap<String, u64>,
    /// Index -> UUID, remembered so a lost GPU can be named.
    uuids: HashMap<u32, String>,
    /// Per GPU UUID: what the health reads carry between collections.
    health: HashMap<String, HealthState>,
}

/// The health reads of one GPU between collections.
#[derive(Default)]
struct HealthState {
    /// The newest reading, slow counters and limits included.
    last: GpuHealth,
    /// Collections since the slow counters were read (`None`: never).
    since_slow: Option<u32>,
    /// The fixed limits have been read.
    limits_read: bool,
    /// NVLink links found on the GPU (`None`: not probed yet).
    nvlink_count: Option<u32>,
    /// Calls this GPU does not support: not asked again.
    unsupported: HashSet<&'static str>,
}

/// Asks health calls of one GPU: skips the unsupported ones and turns
/// `NOT_SUPPORTED` into a single log line.
struct HealthProbe<'a> {
    current: &'a CurrentCall,
    state: &'a mut HealthState,
    errors: &'a mut Vec<String>,
    index: u32,
}

impl HealthProbe<'_> {
    /// Runs `read` unless `call` is known unsupported. `GpuLost` is passed
    /// up (the whole GPU is gone); other errors are recorded, as `None`.
    fn ask<T>(
        &mut self,
        call: &'static str,
        read: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Result<Option<T>, NvmlError> {
        if self.state.unsupported.contains(call) {
            return Ok(None);
        }
        if let Ok(mut c) = self.current.lock() {
            *c = (call, Some(self.index));
        }
        match read() {
            Ok(v) => Ok(Some(v)),
            Err(NvmlError::GpuLost) => Err(NvmlError::GpuLost),
            Err(
                e @ (NvmlError::NotSupported
                | NvmlError::NoPermission
                | NvmlError::FailedToLoadSymbol(_)),
            ) => {
                tracing::info!(gpu = self.index, call, reason = %describe(&e), "GPU health call unsupported; not asking again.");
                self.state.unsupported.insert(call);
                Ok(None)
            }
            Err(e) => {
                self.errors
                    .push(format!("{call} on GPU {}: {}", self.index, describe(&e)));
                Ok(None)
            }
        }
    }
}

/// Reads the health of one whole GPU into `state.last`, each counter at its
/// cadence (see the module documentation).
fn read_health(
    device: &Device<'static>,
    mut probe: HealthProbe<'_>,
    nvlink: bool,
) -> Result<GpuHealth, NvmlError> {
    let throttle = probe.ask("nvmlDeviceGetCurrentClocksThrottleReasons", || {
        device.current_throttle_reasons()
    })?;
    probe.state.last.throttle_reasons = throttle.map(|r| ThrottleReason::from_mask(r.bits()));
    if !probe.state.limits_read {
        probe.state.limits_read = true;
        let limits = GpuHealth {
            sm_clock_max_mhz: probe.ask("nvmlDeviceGetMaxClockInfo", || {
                device.max_clock_info(Clock::SM)
            })?,
            pcie_link_gen_max: probe.ask("nvmlDeviceGetMaxPcieLinkGeneration", || {
                device.max_pcie_link_gen()
            })?,
            pcie_link_width_max: probe.ask("nvmlDeviceGetMaxPcieLinkWidth", || {
                device.max_pcie_link_width()
            })?,
            temperature_slowdown_celsius: probe
                .ask("nvmlDeviceGetTemperatureThreshold(slowdown)", || {
                    device.temperature_threshold(TemperatureThreshold::Slowdown)
                })?,
            temperature_shutdown_celsius: probe
                .ask("nvmlDeviceGetTemperatureThreshold(shutdown)", || {
                    device.temperature_threshold(TemperatureThreshold::Shutdown)
                })?,
            ..GpuHealth::default()
        };
        let last = &mut probe.state.last;
        last.sm_clock_max_mhz = limits.sm_clock_max_mhz;
        last.pcie_link_gen_max = limits.pcie_link_gen_max;
        last.pcie_link_width_max = limits.pcie_link_width_max;
        last.temperature_slowdown_celsius = limits.temperature_slowdown_celsius;
        last.temperature_shutdown_celsius = limits.temperature_shutdown_celsius;
    }
    let due = probe
        .state
        .since_slow
        .is_none_or(|n| n + 1 >= SLOW_HEALTH_EVERY);
    if due {
        read_slow_health(device, &mut probe)?;
        if nvlink {
            read_nvlinks(device, &mut probe)?;
        }
        probe.state.since_slow = Some(0);
    } else {
        probe.state.since_slow = probe.state.since_slow.map(|n| n + 1);
    }
    Ok(probe.state.last.clone())
}

/// ECC, row remapping and PCIe link state: the counters read every
/// [`SLOW_HEALTH_EVERY`] collections.
fn read_slow_health(
    device: &Device<'static>,
    probe: &mut HealthProbe<'_>,
) -> Result<(), NvmlError> {
    let ecc = |e: MemoryError, c: EccCounter| move || device.total_ecc_errors(e, c);
    let ecc_corrected_volatile = probe.ask(
        "nvmlDeviceGetTotalEccErrors",
        ecc(MemoryError::Corrected, EccCounter::Volatile),
    )?;
    // One call answers for all four counters: once unsupported, it is
    // skipped for the others too.
    let ecc_uncorrected_volatile = probe.ask(
        "nvmlDeviceGetTotalEccErrors",
        ecc(MemoryError::Uncorrected, EccCounter::Volatile),
    )?;
    let ecc_corrected_aggregate = probe.ask(
        "nvmlDeviceGetTotalEccErrors",
        ecc(MemoryError::Corrected, EccCounter::Aggregate),
    )?;
    let ecc_uncorrected_aggregate = probe.ask(
        "nvmlDeviceGetTotalEccErrors",
        ecc(MemoryError::Uncorrected, EccCounter::Aggregate),
    )?;
    let remap = probe
        .ask("nvmlDeviceGetFieldValues(remapped rows)", || {
            device.field_values_for(&REMAP_FIELDS)
        })?
        .unwrap_or_default();
    let field = |k: usize| match remap.get(k) {
        Some(Ok(s)) => match s.value {
            Ok(SampleValue::U32(v)) => Some(v),
            Ok(SampleValue::U64(v)) => u32::try_from(v).ok(),
            _ => None,
        },
        _ => None,
    };
    let pcie_link_gen = probe.ask("nvmlDeviceGetCurrPcieLinkGeneration", || {
        device.current_pcie_link_gen()
    })?;
    let pcie_link_width = probe.ask("nvmlDeviceGetCurrPcieLinkWidth", || {
        device.current_pcie_link_width()
    })?;
    let pcie_replays = probe.ask("nvmlDeviceGetPcieReplayCounter", || {
        device.pcie_replay_counter()
    })?;
    // Before Ampere: page retirement (later GPUs answer NOT_SUPPORTED, once).
    let pages = |cause: RetirementCause| {
        move || {
            device
                .retired_pages(cause)
                .map(|p| u32::try_from(p.len()).unwrap_or(u32::MAX))
        }
    };
    let retired_pages_sbe = probe.ask(
        "nvmlDeviceGetRetiredPages",
        pages(RetirementCause::MultipleSingleBitEccErrors),
    )?;
    let retired_pages_dbe = probe.ask(
        "nvmlDeviceGetRetiredPages",
        pages(RetirementCause::DoubleBitEccError),
    )?;
    let retired_pages_pending = probe.ask("nvmlDeviceGetRetiredPagesPendingStatus", || {
        device.are_pages_pending_retired()
    })?;
    let last = &mut probe.state.last;
    last.ecc_corrected_volatile = ecc_corrected_volatile;
    last.ecc_uncorrected_volatile = ecc_uncorrected_volatile;
    last.ecc_corrected_aggregate = ecc_corrected_aggregate;
    last.ecc_uncorrected_aggregate = ecc_uncorrected_aggregate;
    last.remapped_rows_corrected = field(0);
    last.remapped_rows_uncorrected = field(1);
    last.remap_pending = field(2).map(|v| v != 0);
    last.remap_failed = field(3).map(|v| v != 0);
    last.pcie_link_gen = pcie_link_gen;
    last.pcie_link_width = pcie_link_width;
    last.pcie_replays = pcie_replays;
    last.retired_pages_sbe = retired_pages_sbe;
    last.retired_pages_dbe = retired_pages_dbe;
    last.retired_pages_pending = retired_pages_pending;
    Ok(())
}

/// Every NVLink link's state and error counters into `state.last`.
fn read_nvlinks(device: &Device<'static>, probe: &mut HealthProbe<'_>) -> Result<(), NvmlError> {
    let mut links = std::mem::take(&mut probe.state.last.nvlinks);
    links.clear();
    let upto = probe.state.nvlink_count.unwrap_or(NVLINK_MAX_LINKS);
    // The links found are the GPU's count only when the walk ended where
    // the driver said "no such link", not on another error.
    let mut complete = true;
    for l in 0..upto {
        let link = device.link_wrapper_for(l);
        let active = if l == 0 {
            // Link 0 tells whether the GPU has NVLink at all: unsupported
            // is logged once and the GPU not asked again.
            probe.ask("nvmlDeviceGetNvLinkState", || link.is_active())?
        } else {
            match link.is_active() {
                Ok(a) => Some(a),
                Err(NvmlError::GpuLost) => return Err(NvmlError::GpuLost),
                // No such link: the GPU has `l` links.
                Err(NvmlError::InvalidArg | NvmlError::NotSupported) => None,
                Err(e) => {
                    probe.errors.push(format!(
                        "nvmlDeviceGetNvLinkState({l}) on GPU {}: {}",
                        probe.index,
                        describe(&e)
                    ));
                    complete = false;
                    None
                }
            }
        };
        let Some(active) = active else { break };
        // A link that is down counts nothing, and a driver may answer
        // NOT_SUPPORTED for its counters, which would silence them on
        // every link: only up links are asked.
        let mut counts = [None; 4];
        if active {
            for (count, (call, counter)) in counts.iter_mut().zip(NVLINK_COUNTERS) {
                *count = probe.ask(call, || link.error_counter(counter))?;
            }
        }
        let [
            crc_flit_errors,
            crc_data_errors,
            replay_errors,
            recovery_errors,
        ] = counts;
        links.push(NvLinkStatus {
            link: l,
            active,
            crc_flit_errors,
            crc_data_errors,
            replay_errors,
            recovery_errors,
        });
    }
    if complete && probe.state.nvlink_count.is_none() && !links.is_empty() {
        probe.state.nvlink_count = Some(links.len() as u32);
    }
    probe.state.last.nvlinks = links;
    Ok(())
}

impl Worker {
    fn run(
        mut self,
        requests: &Receiver<()>,
        responses: &SyncSender<Result<NvmlCollection, String>>,
    ) {
        for () in requests {
            let result = self.ensure_init().map(|nvml| self.collect(nvml));
            if responses.send(result).is_err() {
                return;
            }
        }
    }

    fn ensure_init(&mut self) -> Result<&'static Nvml, String> {
        if let Some(n) = self.nvml {
            return Ok(n);
        }
        self.enter("nvmlInit", None);
        let mut builder = Nvml::builder();
        if let Some(p) = &self.settings.lib_path {
            builder.lib_path(p.as_os_str());
        } else {
            builder.lib_path(OsStr::new("libnvidia-ml.so.1"));
        }
        let nvml = builder.init().map_err(|e| {
            let lib = self.settings.lib_path.as_ref().map_or_else(
                || "libnvidia-ml.so.1".to_owned(),
                |p| p.display().to_string(),
            );
            format!("loading {lib}: {}", describe(&e))
        })?;
        // NVML lives as long as the agent: leaking it lets the XID thread
        // share it without a shutdown racing a blocked call.
        let nvml: &'static Nvml = Box::leak(Box::new(nvml));
        let notices = self.notices.clone();
        let spawned = std::thread::Builder::new()
            .name("nvml-events".into())
            .spawn(move || xid_loop(nvml, &notices));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Cannot start the XID event thread.");
        }
        self.nvml = Some(nvml);
        Ok(nvml)
    }

    fn enter(&self, call: &'static str, index: Option<u32>) {
        if let Ok(mut c) = self.current.lock() {
            *c = (call, index);
        }
    }

    fn collect(&mut self, nvml: &'static Nvml) -> NvmlCollection {
        let time = Timestamp::now();
        let mut out = NvmlCollection::default();
        self.enter("nvmlSystemGetDriverVersion", None);
        out.driver_version = nvml.sys_driver_version().unwrap_or_default();
        out.simulated = out.driver_version.contains("simulated");
        self.enter("nvmlDeviceGetCount", None);
        out.device_count = match nvml.device_count() {
            Ok(n) => n,
            Err(e) => {
                out.errors
                    .push(format!("nvmlDeviceGetCount: {}", describe(&e)));
                return out;
            }
        };
        for index in 0..out.device_count {
            self.enter("nvmlDeviceGetHandleByIndex", Some(index));
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(NvmlError::GpuLost) => {
                    out.lost.push((index, self.uuids.get(&index).cloned()));
                    continue;
                }
                Err(e) => {
                    out.errors.push(format!(
                        "nvmlDeviceGetHandleByIndex({index}): {}",
                        describe(&e)
                    ));
                    continue;
                }
            };
            match self.read_device(&device, index, None, time, &mut out) {
                Ok(gpu) => {
                    self.uuids.insert(index, gpu.uuid.clone());
                    let parent = gpu.uuid.clone();
                    out.gpus.push(gpu);
                    self.read_mig(&device, index, &parent, time, &mut out);
                }
                Err(NvmlError::GpuLost) => out.lost.push((index, self.uuids.get(&index).cloned())),
                Err(e) => out.errors.push(format!("GPU {index}: {}", describe(&e))),
            }
        }
        for gpu in &mut out.gpus {
            gpu.simulated = out.simulated;
        }
        out
    }

    fn read_mig(
        &mut self,
        device: &Device<'static>,
        index: u32,
        parent: &str,
        time: Timestamp,
        out: &mut NvmlCollection,
    ) {
        self.enter("nvmlDeviceGetMigMode", Some(index));
        let enabled = device.mig_mode().is_ok_and(|m| m.current == 1);
        if !enabled {
            return;
        }
        self.enter("nvmlDeviceGetMaxMigDeviceCount", Some(index));
        let slots = device.mig_device_count().unwrap_or(0);
        for slot in 0..slots {
            self.enter("nvmlDeviceGetMigDeviceHandleByIndex", Some(index));
            let Ok(mig) = device.mig_device_by_index(slot) else {
                // Empty slots answer NotFound.
                continue;
            };
            match self.read_device(&mig, index, Some(parent), time, out) {
                Ok(instance) => out.gpus.push(instance),
                Err(e) => out
                    .errors
                    .push(format!("GPU {index} MIG slot {slot}: {}", describe(&e))),
            }
        }
    }

    /// Reads one GPU or MIG instance. Only the identity and memory calls
    /// are required; the others degrade to `None` (not supported on this
    /// GPU, or failing, which is recorded in `out.errors`).
    fn read_device(
        &mut self,
        device: &Device<'static>,
        index: u32,
        parent: Option<&str>,
        time: Timestamp,
        out: &mut NvmlCollection,
    ) -> Result<GpuSample, NvmlError> {
        let i = Some(index);
        self.enter("nvmlDeviceGetUUID", i);
        let uuid = device.uuid()?;
        self.enter("nvmlDeviceGetMemoryInfo", i);
        let memory = device.memory_info()?;
        let mut optional =
            |call: &'static str, r: Result<u32, NvmlError>| -> Result<Option<u32>, NvmlError> {
                match r {
                    Ok(v) => Ok(Some(v)),
                    Err(NvmlError::GpuLost) => Err(NvmlError::GpuLost),
                    Err(NvmlError::NotSupported | NvmlError::NoPermission) => Ok(None),
                    Err(e) => {
                        out.errors
                            .push(format!("{call} on GPU {index}: {}", describe(&e)));
                        Ok(None)
                    }
                }
            };
        self.enter("nvmlDeviceGetName", i);
        let name = device.name().unwrap_or_default();
        self.enter("nvmlDeviceGetPciInfo", i);
        let pci_bus_id = device.pci_info().map(|p| p.bus_id).unwrap_or_default();
        self.enter("nvmlDeviceGetUtilizationRates", i);
        let util = device.utilization_rates();
        let (utilization_gpu_percent, utilization_memory_percent) = match util {
            Ok(u) => (Some(u.gpu), Some(u.memory)),
            Err(e) => {
                optional("nvmlDeviceGetUtilizationRates", Err(e))?;
                (None, None)
            }
        };
        self.enter("nvmlDeviceGetPowerUsage", i);
        let power = optional("nvmlDeviceGetPowerUsage", device.power_usage())?;
        self.enter("nvmlDeviceGetEnforcedPowerLimit", i);
        let limit = optional(
            "nvmlDeviceGetEnforcedPowerLimit",
            device.enforced_power_limit(),
        )?;
        self.enter("nvmlDeviceGetTemperature", i);
        let temp = optional(
            "nvmlDeviceGetTemperature",
            device.temperature(TemperatureSensor::Gpu),
        )?;
        self.enter("nvmlDeviceGetClockInfo", i);
        let sm_clock = optional("nvmlDeviceGetClockInfo", device.clock_info(Clock::SM))?;
        self.enter("nvmlDeviceGetPersistenceMode", i);
        let persistence_mode = device.is_in_persistent_mode().ok();
        self.enter("nvmlDeviceGetComputeRunningProcesses", i);
        let processes = match device.running_compute_processes() {
            Ok(p) => p,
            Err(NvmlError::GpuLost) => return Err(NvmlError::GpuLost),
            Err(NvmlError::NotSupported | NvmlError::NoPermission) => Vec::new(),
            Err(e) => {
                out.errors.push(format!(
                    "nvmlDeviceGetComputeRunningProcesses on GPU {index}: {}",
                    describe(&e)
                ));
                Vec::new()
            }
        };
        self.enter("nvmlDeviceGetProcessUtilization", i);
        let per_process = self.process_utilization(device, &uuid);
        let health = if parent.is_none() && self.settings.health {
            let probe = HealthProbe {
                current: &self.current,
                state: self.health.entry(uuid.clone()).or_default(),
                errors: &mut out.errors,
                index,
            };
            Some(read_health(device, probe, self.settings.nvlink)?)
                .filter(|h| *h != GpuHealth::default())
        } else {
            None
        };
        Ok(GpuSample {
            time,
            index,
            parent_uuid: parent.map(str::to_owned),
            name,
            pci_bus_id,
            utilization_gpu_percent,
            utilization_memory_percent,
            memory_total_bytes: memory.total,
            memory_used_bytes: memory.used,
            power_draw_watts: power.map(|mw| f64::from(mw) / 1000.0),
            power_limit_watts: limit.map(|mw| f64::from(mw) / 1000.0),
            temperature_celsius: temp,
            sm_clock_mhz: sm_clock,
            persistence_mode,
            processes: processes
                .iter()
                .map(|p| process(p, per_process.get(&p.pid)))
                .collect(),
            holders: Vec::new(),
            simulated: false,
            health,
            uuid,
        })
    }

    /// Per-process SM and memory utilization since the last call for this
    /// GPU (the driver keeps a sample buffer; `last_seen` carries on).
    fn process_utilization(
        &mut self,
        device: &Device<'static>,
        uuid: &str,
    ) -> HashMap<u32, (u32, u32)> {
        let last = self.last_seen.get(uuid).copied();
        let Ok(samples) = device.process_utilization_stats(last) else {
            return HashMap::new();
        };
        let mut newest = last.unwrap_or(0);
        let mut by_pid = HashMap::new();
        for s in samples {
            newest = newest.max(s.timestamp);
            by_pid.insert(s.pid, (s.sm_util, s.mem_util));
        }
        self.last_seen.insert(uuid.to_owned(), newest);
        by_pid
    }
}

fn process(p: &ProcessInfo, util: Option<&(u32, u32)>) -> GpuProcess {
    GpuProcess {
        pid: p.pid,
        used_memory_bytes: match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        },
        sm_util_percent: util.map(|u| u.0),
        mem_util_percent: util.map(|u| u.1),
        container: None,
    }
}

/// An NVML error in words, with the C name where there is one.
fn describe(e: &NvmlError) -> String {
    match e {
        NvmlError::FailedToLoadSymbol(s) => format!("the library lacks the symbol {s}"),
        NvmlError::LibloadingError(e) => format!("cannot load the library: {e}"),
        other => other.to_string(),
    }
}

/// Waits for XID errors on every GPU and forwards them. Re-registers after
/// an error (a GPU fell off the bus, the device count changed).
fn xid_loop(nvml: &'static Nvml, notices: &Sender<GpuNotice>) {
    loop {
        match register_xids(nvml) {
            Ok(Some(set)) => loop {
                match set.wait(1000) {
                    Ok(data) => {
                        if !data.event_type.contains(EventTypes::CRITICAL_XID_ERROR) {
                            continue;
                        }
                        let xid = match data.event_data {
                            Some(XidError::Value(v)) => v,
                            _ => 0,
                        };
                        let notice = GpuNotice::Xid {
                            time: Timestamp::now(),
                            uuid: data.device.uuid().unwrap_or_default(),
                            xid,
                        };
                        if notices.send(notice).is_err() {
                            return;
                        }
                    }
                    Err(NvmlError::Timeout) => {}
                    Err(e) => {
                        tracing::warn!(error = %describe(&e), "Waiting for XID events failed; registering again.");
                        break;
                    }
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %describe(&e), "Cannot register for XID events."),
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

fn register_xids(
    nvml: &'static Nvml,
) -> Result<Option<nvml_wrapper::EventSet<'static>>, NvmlError> {
    let mut set = nvml.create_event_set()?;
    let mut registered = HashSet::new();
    for index in 0..nvml.device_count()? {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        let supported = device
            .supported_event_types()
            .is_ok_and(|t| t.contains(EventTypes::CRITICAL_XID_ERROR));
        if !supported {
            continue;
        }
        set = device
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .map_err(|e| e.error)?;
        registered.insert(index);
    }
    Ok((!registered.is_empty()).then_some(set))
}
