//! The scenario file: what the fake GPUs report, and when.
//!
//! The format is documented in `README.md` next to this crate's `Cargo.toml`.
//! Parsing is strict (`deny_unknown_fields`) so that a typo in a scenario is a
//! clear load error, not a silently ignored key.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::exports::FUNCTIONS;

/// Most GPUs a scenario may describe (the size of the static handle table).
pub const MAX_GPUS: usize = 64;
/// Most MIG instances one GPU may have (the size of its handle table).
pub const MAX_MIG_INSTANCES: usize = 16;
/// Longest UUID, name or version string (NVML's v2 buffers are 96 bytes).
const MAX_STRING: usize = 95;

/// The environment variable naming the scenario file.
pub const SCENARIO_ENV: &str = "GPUSCOPE_FAKE_NVML_SCENARIO";

/// The built-in scenario used when [`SCENARIO_ENV`] is unset: one idle H100.
const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.json");

/// A whole scenario: the driver, its GPUs and the injected faults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What `nvmlSystemGetDriverVersion` reports.
    #[serde(default = "default_driver_version")]
    pub driver_version: String,
    /// The GPUs, in the order NVML enumerates them.
    #[serde(default)]
    pub gpus: Vec<Gpu>,
    /// Calls that fail or block from some time on.
    #[serde(default)]
    pub faults: Vec<Fault>,
}

/// One physical GPU.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// `nvmlDeviceGetUUID`, e.g. `GPU-8c1e...`.
    pub uuid: String,
    /// `nvmlDeviceGetName`.
    #[serde(default = "default_name")]
    pub name: String,
    /// `nvmlDeviceGetPciInfo_v3`'s `busId`, `DDDDDDDD:BB:DD.F` (hex).
    #[serde(default = "default_pci_bus_id")]
    pub pci_bus_id: String,
    /// `pciDeviceId`: device id in the high 16 bits, vendor in the low 16.
    #[serde(default = "default_pci_device_id")]
    pub pci_device_id: u32,
    /// `pciSubSystemId`.
    #[serde(default = "default_pci_subsystem_id")]
    pub pci_subsystem_id: u32,
    /// Framebuffer size in bytes.
    #[serde(default = "default_memory_total")]
    pub memory_total_bytes: u64,
    /// Memory reserved by the driver (`nvmlMemory_v2_t.reserved`).
    #[serde(default)]
    pub memory_reserved_bytes: u64,
    /// Enforced and management power limit, milliwatts.
    #[serde(default = "default_power_limit")]
    pub power_limit_mw: u32,
    /// `nvmlDeviceGetPersistenceMode`.
    #[serde(default)]
    pub persistence_mode: bool,
    /// Sampled values over time (a step function).
    #[serde(default)]
    pub series: Vec<PointSpec>,
    /// Compute processes on the whole GPU (not in a MIG instance).
    #[serde(default)]
    pub processes: Vec<Process>,
    /// XID errors delivered through event sets.
    #[serde(default)]
    pub xids: Vec<Xid>,
    /// From this time on every call on this GPU returns `GPU_IS_LOST`.
    #[serde(default)]
    pub lost_at: Option<f64>,
    /// The GPU is enumerated from this time on (default: from the start).
    #[serde(default)]
    pub present_from: Option<f64>,
    /// The GPU is no longer enumerated from this time on.
    #[serde(default)]
    pub present_until: Option<f64>,
    /// Whether the GPU supports MIG at all (`false`: MIG calls say `NOT_SUPPORTED`).
    #[serde(default = "yes")]
    pub mig_capable: bool,
    /// MIG enabled, with these instances.
    #[serde(default)]
    pub mig: Option<Mig>,
    /// `nvmlDeviceGetMaxClockInfo` for the SM and graphics clocks, MHz.
    #[serde(default = "default_sm_clock_max")]
    pub sm_clock_max_mhz: u32,
    /// `nvmlDeviceGetMaxPcieLinkGeneration`.
    #[serde(default = "default_pcie_gen")]
    pub pcie_link_gen_max: u32,
    /// `nvmlDeviceGetMaxPcieLinkWidth`.
    #[serde(default = "default_pcie_width")]
    pub pcie_link_width_max: u32,
    /// `NVML_TEMPERATURE_THRESHOLD_SLOWDOWN`, °C.
    #[serde(default = "default_temp_slowdown")]
    pub temp_slowdown_c: u32,
    /// `NVML_TEMPERATURE_THRESHOLD_SHUTDOWN`, °C.
    #[serde(default = "default_temp_shutdown")]
    pub temp_shutdown_c: u32,
    /// ECC errors corrected before this driver load: the aggregate counter
    /// is this plus the series' volatile `ecc_corrected`.
    #[serde(default)]
    pub ecc_corrected_before: u64,
    /// ECC errors not corrected before this driver load (aggregate base).
    #[serde(default)]
    pub ecc_uncorrected_before: u64,
    /// The GPU retires pages (before Ampere); `false`: the retired-page
    /// calls answer `NOT_SUPPORTED`, as on Ampere and later.
    #[serde(default)]
    pub page_retirement: bool,
    /// NVLink links (0: no NVLink, the NVLink calls answer
    /// `NOT_SUPPORTED`; at most [`MAX_NVLINKS`]). Links at or past this
    /// index answer `INVALID_ARGUMENT`, as NVML does for a link the GPU
    /// lacks.
    #[serde(default)]
    pub nvlinks: u32,
    /// `series` with every field filled in (carried forward), built at load.
    #[serde(skip)]
    pub points: Vec<Point>,
}

/// One point of a GPU's series as written; a missing field keeps the
/// previous point's value (or the default, on the first point).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointSpec {
    /// Seconds since `nvmlInit`.
    #[serde(default)]
    pub t: f64,
    /// GPU utilization, percent.
    pub util_gpu: Option<u32>,
    /// Memory-controller utilization, percent.
    pub util_mem: Option<u32>,
    /// Framebuffer memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Power draw, milliwatts.
    pub power_mw: Option<u32>,
    /// GPU temperature, degrees Celsius.
    pub temp_c: Option<u32>,
    /// SM clock, MHz.
    pub sm_clock_mhz: Option<u32>,
    /// Clock event (throttle) reasons, by name (`hw_slowdown`, ...).
    pub throttle_reasons: Option<Vec<String>>,
    /// Volatile ECC errors corrected.
    pub ecc_corrected: Option<u64>,
    /// Volatile ECC errors not corrected.
    pub ecc_uncorrected: Option<u64>,
    /// Rows remapped for correctable errors.
    pub remapped_corrected: Option<u32>,
    /// Rows remapped for uncorrectable errors.
    pub remapped_uncorrected: Option<u32>,
    /// A row remap waits for a reset.
    pub remap_pending: Option<bool>,
    /// A row remap failed.
    pub remap_failed: Option<bool>,
    /// Current PCIe link generation (default: the GPU's maximum).
    pub pcie_gen: Option<u32>,
    /// Current PCIe link width (default: the GPU's maximum).
    pub pcie_width: Option<u32>,
    /// PCIe replay counter.
    pub pcie_replays: Option<u32>,
    /// Pages retired for multiple single-bit errors.
    pub retired_sbe: Option<u32>,
    /// Pages retired for a double-bit error.
    pub retired_dbe: Option<u32>,
    /// A page retirement waits for the next driver load.
    pub retired_pending: Option<bool>,
    /// NVLink links that are down (inactive), by index.
    pub nvlink_down: Option<Vec<u32>>,
    /// Per link (index = position; missing trailing links 0): the data
    /// link's flow-control digit CRC errors (`NVML_NVLINK_ERROR_DL_CRC_FLIT`).
    pub nvlink_crc_flit: Option<Vec<u64>>,
    /// Per link: data CRC errors (`NVML_NVLINK_ERROR_DL_CRC_DATA`).
    pub nvlink_crc_data: Option<Vec<u64>>,
    /// Per link: transmit replays (`NVML_NVLINK_ERROR_DL_REPLAY`).
    pub nvlink_replay: Option<Vec<u64>>,
    /// Per link: transmit recoveries (`NVML_NVLINK_ERROR_DL_RECOVERY`).
    pub nvlink_recovery: Option<Vec<u64>>,
}

/// The most NVLink links a GPU has (`NVML_NVLINK_MAX_LINKS`).
pub const MAX_NVLINKS: usize = 18;

/// One NVLink error counter of every link.
pub type PerLink = [u64; MAX_NVLINKS];

/// One point of a GPU's series with every value known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since `nvmlInit`.
    pub t: f64,
    /// GPU utilization, percent.
    pub util_gpu: u32,
    /// Memory-controller utilization, percent.
    pub util_mem: u32,
    /// Framebuffer memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Power draw, milliwatts.
    pub power_mw: u32,
    /// GPU temperature, degrees Celsius.
    pub temp_c: u32,
    /// SM clock, MHz.
    pub sm_clock_mhz: u32,
    /// Clock event reasons as NVML's bit mask.
    pub throttle_mask: u64,
    /// Volatile ECC errors corrected.
    pub ecc_corrected: u64,
    /// Volatile ECC errors not corrected.
    pub ecc_uncorrected: u64,
    /// Rows remapped for correctable errors.
    pub remapped_corrected: u32,
    /// Rows remapped for uncorrectable errors.
    pub remapped_uncorrected: u32,
    /// A row remap waits for a reset.
    pub remap_pending: bool,
    /// A row remap failed.
    pub remap_failed: bool,
    /// Current PCIe link generation (0 before load: the GPU's maximum).
    pub pcie_gen: u32,
    /// Current PCIe link width (0 before load: the GPU's maximum).
    pub pcie_width: u32,
    /// PCIe replay counter.
    pub pcie_replays: u32,
    /// Pages retired for multiple single-bit errors.
    pub retired_sbe: u32,
    /// Pages retired for a double-bit error.
    pub retired_dbe: u32,
    /// A page retirement waits for the next driver load.
    pub retired_pending: bool,
    /// NVLink links that are down, as a bit mask (bit `i`: link `i`).
    pub nvlink_down_mask: u32,
    /// NVLink flow-control digit CRC errors per link.
    pub nvlink_crc_flit: PerLink,
    /// NVLink data CRC errors per link.
    pub nvlink_crc_data: PerLink,
    /// NVLink transmit replays per link.
    pub nvlink_replay: PerLink,
    /// NVLink transmit recoveries per link.
    pub nvlink_recovery: PerLink,
}

/// NVML's `nvmlClocksEventReason*` bits by the names scenarios use.
pub const THROTTLE_REASONS: [(&str, u64); 9] = [
    ("idle", 0x1),
    ("applications_clocks", 0x2),
    ("sw_power_cap", 0x4),
    ("hw_slowdown", 0x8),
    ("sync_boost", 0x10),
    ("sw_thermal", 0x20),
    ("hw_thermal", 0x40),
    ("hw_power_brake", 0x80),
    ("display_clocks", 0x100),
];

/// The values of an idle GPU, used for fields the first point leaves out.
const IDLE: Point = Point {
    t: 0.0,
    util_gpu: 0,
    util_mem: 0,
    memory_used_bytes: 0,
    power_mw: 70_000,
    temp_c: 31,
    sm_clock_mhz: 345,
    throttle_mask: 0,
    ecc_corrected: 0,
    ecc_uncorrected: 0,
    remapped_corrected: 0,
    remapped_uncorrected: 0,
    remap_pending: false,
    remap_failed: false,
    pcie_gen: 0,
    pcie_width: 0,
    pcie_replays: 0,
    retired_sbe: 0,
    retired_dbe: 0,
    retired_pending: false,
    nvlink_down_mask: 0,
    nvlink_crc_flit: [0; MAX_NVLINKS],
    nvlink_crc_data: [0; MAX_NVLINKS],
    nvlink_replay: [0; MAX_NVLINKS],
    nvlink_recovery: [0; MAX_NVLINKS],
};

/// A compute process on a GPU or MIG instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Process id (in the host's PID namespace).
    pub pid: u32,
    /// GPU memory used; absent or `null`: NVML's "not available".
    #[serde(default)]
    pub used_memory_bytes: Option<u64>,
    /// Listed from this time on.
    #[serde(default)]
    pub from: f64,
    /// Listed until this time (exclusive); `null`: forever.
    #[serde(default)]
    pub until: Option<f64>,
    /// SM utilization, percent: with `mem_util`, makes the process appear in
    /// `nvmlDeviceGetProcessUtilization`.
    #[serde(default)]
    pub sm_util: Option<u32>,
    /// Memory utilization, percent.
    #[serde(default)]
    pub mem_util: Option<u32>,
    /// Encoder utilization, percent.
    #[serde(default)]
    pub enc_util: u32,
    /// Decoder utilization, percent.
    #[serde(default)]
    pub dec_util: u32,
}

impl Process {
    /// Whether the process is listed at `now`.
    pub fn active(&self, now: f64) -> bool {
        self.from <= now && self.until.is_none_or(|u| now < u)
    }

    /// Whether the process has per-process utilization samples.
    pub fn sampled(&self) -> bool {
        self.sm_util.is_some() || self.mem_util.is_some()
    }
}

/// An XID error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xid {
    /// Seconds since `nvmlInit` when it happens.
    pub t: f64,
    /// The XID number (e.g. 79: fallen off the bus).
    pub xid: u64,
}

/// MIG enabled on a GPU.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mig {
    /// `nvmlDeviceGetMaxMigDeviceCount` (default: the number of instances);
    /// indexes past the instances answer `NOT_FOUND`.
    #[serde(default)]
    pub max_devices: Option<u32>,
    /// The MIG devices, by index.
    #[serde(default)]
    pub instances: Vec<MigInstance>,
}

/// One MIG device.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigInstance {
    /// `nvmlDeviceGetUUID` on the MIG handle, e.g. `MIG-...`.
    pub uuid: String,
    /// `nvmlDeviceGetName` on the MIG handle (default: parent's name + " MIG").
    #[serde(default)]
    pub name: Option<String>,
    /// Memory of the instance, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use in the instance, bytes.
    #[serde(default)]
    pub memory_used_bytes: u64,
    /// GPU instance id reported with its processes (default: its index).
    #[serde(default)]
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id reported with its processes.
    #[serde(default)]
    pub compute_instance_id: u32,
    /// Compute processes in this instance.
    #[serde(default)]
    pub processes: Vec<Process>,
}

/// A call that fails or blocks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The exported NVML function, e.g. `nvmlDeviceGetPowerUsage`.
    pub function: String,
    /// The `nvmlReturn_t` it returns (after the hang, if any).
    #[serde(default)]
    pub code: Option<u32>,
    /// Seconds the call blocks before answering.
    #[serde(default)]
    pub hang_seconds: Option<f64>,
    /// From this time on (seconds since `nvmlInit`).
    #[serde(default)]
    pub after: f64,
    /// Until this time (exclusive); `null`: forever.
    #[serde(default)]
    pub until: Option<f64>,
    /// Only calls on this GPU (index in `gpus`); absent: every call.
    #[serde(default)]
    pub gpu: Option<usize>,
}

impl Fault {
    /// Whether the fault applies at `now` to a call on `gpu`.
    pub fn applies(&self, function: &str, gpu: Option<usize>, now: f64) -> bool {
        self.function == function
            && self.after <= now
            && self.until.is_none_or(|u| now < u)
            && self.gpu.is_none_or(|g| gpu == Some(g))
    }
}

impl Gpu {
    /// Whether NVML enumerates this GPU at `now`.
    pub fn present(&self, now: f64) -> bool {
        self.present_from.is_none_or(|f| f <= now) && self.present_until.is_none_or(|u| now < u)
    }

    /// Whether the GPU has fallen off the bus at `now`.
    pub fn lost(&self, now: f64) -> bool {
        self.lost_at.is_some_and(|l| l <= now)
    }

    /// The series point that holds at `now`.
    pub fn point(&self, now: f64) -> Point {
        let later = self.points.partition_point(|p| p.t <= now);
        self.points[later.saturating_sub(1)]
    }

    /// `nvmlDeviceGetMaxMigDeviceCount`.
    pub fn max_mig_devices(&self) -> u32 {
        self.mig
            .as_ref()
            .map_or(0, |m| m.max_devices.unwrap_or(m.instances.len() as u32))
    }
}

impl MigInstance {
    /// The GPU instance id its processes carry.
    pub fn gpu_instance_id(&self, index: usize) -> u32 {
        self.gpu_instance_id.unwrap_or(index as u32)
    }
}

fn default_driver_version() -> String {
    "550.54.15".to_owned()
}
fn default_name() -> String {
    "NVIDIA H100 80GB HBM3".to_owned()
}
fn default_pci_bus_id() -> String {
    "00000000:19:00.0".to_owned()
}
fn default_pci_device_id() -> u32 {
    0x2330_10DE
}
fn default_pci_subsystem_id() -> u32 {
    0x16C1_10DE
}
fn default_memory_total() -> u64 {
    80 << 30
}
fn default_power_limit() -> u32 {
    700_000
}
fn yes() -> bool {
    true
}
fn default_sm_clock_max() -> u32 {
    1980
}
fn default_pcie_gen() -> u32 {
    5
}
fn default_pcie_width() -> u32 {
    16
}
fn default_temp_slowdown() -> u32 {
    87
}
fn default_temp_shutdown() -> u32 {
    92
}

/// The NVML mask of throttle reason names; the error names the unknown one.
fn throttle_mask(names: &[String]) -> Result<u64, String> {
    names.iter().try_fold(0, |mask, name| {
        THROTTLE_REASONS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bit)| mask | bit)
            .ok_or_else(|| {
                let known: Vec<&str> = THROTTLE_REASONS.iter().map(|(n, _)| *n).collect();
                format!(
                    "{name:?} is not a throttle reason; known: {}",
                    known.join(" ")
                )
            })
    })
}

/// The bit mask of the NVLink links listed down; the error names a link
/// the GPU does not have.
fn nvlink_mask(links: u32, down: &[u32]) -> Result<u32, String> {
    down.iter().try_fold(0, |mask, &l| {
        if l < links {
            Ok(mask | 1 << l)
        } else {
            Err(format!("link {l}, but the GPU has {links} (nvlinks)"))
        }
    })
}

/// One counter of every link from a point's list (absent: the previous
/// point's values; a short list: 0 for the links past its end).
fn per_link(links: u32, given: Option<&[u64]>, last: PerLink) -> Result<PerLink, String> {
    let Some(given) = given else {
        return Ok(last);
    };
    if given.len() > links as usize {
        return Err(format!(
            "{} values, but the GPU has {links} links (nvlinks)",
            given.len()
        ));
    }
    let mut out = [0; MAX_NVLINKS];
    out[..given.len()].copy_from_slice(given);
    Ok(out)
}

/// A parsed `DDDDDDDD:BB:DD.F` PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    /// PCI domain.
    pub domain: u32,
    /// PCI bus.
    pub bus: u32,
    /// PCI device.
    pub device: u32,
}

/// Parses `DDDDDDDD:BB:DD.F` (or the legacy `DDDD:BB:DD.F`).
pub fn parse_pci_bus_id(id: &str) -> Option<PciAddress> {
    let (domain, rest) = id.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max)
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
    };
    hex(function, 1)?;
    Some(PciAddress {
        domain: hex(domain, 8)?,
        bus: hex(bus, 2)?,
        device: hex(device, 2)?,
    })
}

/// Loads the scenario named by [`SCENARIO_ENV`], or the built-in default when
/// it is unset. The error is one line naming the file and what is wrong.
pub fn load_from_env() -> Result<Scenario, String> {
    match std::env::var_os(SCENARIO_ENV) {
        None => parse(DEFAULT_SCENARIO)
            .map_err(|e| format!("the built-in default scenario is invalid: {e}")),
        Some(path) => load_file(Path::new(&path)).map_err(|e| {
            format!(
                "cannot load scenario {} (from {SCENARIO_ENV}): {e}",
                Path::new(&path).display()
            )
        }),
    }
}

fn load_file(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse(&text)
}

/// Parses and validates a scenario, filling in each GPU's `points`.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let mut scenario: Scenario = serde_json::from_str(text).map_err(|e| e.to_string())?;
    validate(&mut scenario)?;
    Ok(scenario)
}

fn check_time(what: &str, t: f64) -> Result<(), String> {
    if t.is_finite() && t >= 0.0 {
        Ok(())
    } else {
        Err(format!("{what}: {t} is not a time (seconds >= 0)"))
    }
}

fn check_string(what: &str, s: &str) -> Result<(), String> {
    if s.len() > MAX_STRING || s.contains('\0') {
        Err(format!(
            "{what}: {s:?} must be at most {MAX_STRING} bytes without NUL"
        ))
    } else {
        Ok(())
    }
}

fn check_processes(what: &str, processes: &[Process]) -> Result<(), String> {
    for (k, p) in processes.iter().enumerate() {
        check_time(&format!("{what}.processes[{k}].from"), p.from)?;
        if let Some(u) = p.until {
            check_time(&format!("{what}.processes[{k}].until"), u)?;
        }
    }
    Ok(())
}

fn validate(s: &mut Scenario) -> Result<(), String> {
    check_string("driver_version", &s.driver_version)?;
    if s.gpus.len() > MAX_GPUS {
        return Err(format!("{} gpus, at most {MAX_GPUS}", s.gpus.len()));
    }
    for (i, gpu) in s.gpus.iter_mut().enumerate() {
        let at = format!("gpus[{i}]");
        check_string(&format!("{at}.uuid"), &gpu.uuid)?;
        check_string(&format!("{at}.name"), &gpu.name)?;
        if gpu.pci_bus_id.len() > 31 || parse_pci_bus_id(&gpu.pci_bus_id).is_none() {
            return Err(format!(
                "{at}.pci_bus_id: {:?} is not DDDDDDDD:BB:DD.F",
                gpu.pci_bus_id
            ));
        }
        for (name, t) in [
            ("lost_at", gpu.lost_at),
            ("present_from", gpu.present_from),
            ("present_until", gpu.present_until),
        ] {
            if let Some(t) = t {
                check_time(&format!("{at}.{name}"), t)?;
            }
        }
        if gpu.nvlinks as usize > MAX_NVLINKS {
            return Err(format!(
                "{at}.nvlinks: {}, at most {MAX_NVLINKS}",
                gpu.nvlinks
            ));
        }
        let mut points = Vec::with_capacity(gpu.series.len().max(1));
        let mut last = Point {
            pcie_gen: gpu.pcie_link_gen_max,
            pcie_width: gpu.pcie_link_width_max,
            ..IDLE
        };
        for (k, p) in gpu.series.iter().enumerate() {
            check_time(&format!("{at}.series[{k}].t"), p.t)?;
            if k > 0 && p.t < last.t {
                return Err(format!(
                    "{at}.series[{k}].t: {} is before the previous point's {}",
                    p.t, last.t
                ));
            }
            let links = |name: &str, given: &Option<Vec<u64>>, last: PerLink| {
                per_link(gpu.nvlinks, given.as_deref(), last)
                    .map_err(|e| format!("{at}.series[{k}].{name}: {e}"))
            };
            last = Point {
                t: p.t,
                util_gpu: p.util_gpu.unwrap_or(last.util_gpu),
                util_mem: p.util_mem.unwrap_or(last.util_mem),
                memory_used_bytes: p.memory_used_bytes.unwrap_or(last.memory_used_bytes),
                power_mw: p.power_mw.unwrap_or(last.power_mw),
                temp_c: p.temp_c.unwrap_or(last.temp_c),
                sm_clock_mhz: p.sm_clock_mhz.unwrap_or(last.sm_clock_mhz),
                throttle_mask: match &p.throttle_reasons {
                    Some(names) => throttle_mask(names)
                        .map_err(|e| format!("{at}.series[{k}].throttle_reasons: {e}"))?,
                    None => last.throttle_mask,
                },
                ecc_corrected: p.ecc_corrected.unwrap_or(last.ecc_corrected),
                ecc_uncorrected: p.ecc_uncorrected.unwrap_or(last.ecc_uncorrected),
                remapped_corrected: p.remapped_corrected.unwrap_or(last.remapped_corrected),
                remapped_uncorrected: p.remapped_uncorrected.unwrap_or(last.remapped_uncorrected),
                remap_pending: p.remap_pending.unwrap_or(last.remap_pending),
                remap_failed: p.remap_failed.unwrap_or(last.remap_failed),
                pcie_gen: p.pcie_gen.unwrap_or(last.pcie_gen),
                pcie_width: p.pcie_width.unwrap_or(last.pcie_width),
                pcie_replays: p.pcie_replays.unwrap_or(last.pcie_replays),
                retired_sbe: p.retired_sbe.unwrap_or(last.retired_sbe),
                retired_dbe: p.retired_dbe.unwrap_or(last.retired_dbe),
                retired_pending: p.retired_pending.unwrap_or(last.retired_pending),
                nvlink_down_mask: match &p.nvlink_down {
                    Some(links) => nvlink_mask(gpu.nvlinks, links)
                        .map_err(|e| format!("{at}.series[{k}].nvlink_down: {e}"))?,
                    None => last.nvlink_down_mask,
                },
                nvlink_crc_flit: links(
                    "nvlink_crc_flit",
                    &p.nvlink_crc_flit,
                    last.nvlink_crc_flit,
                )?,
                nvlink_crc_data: links(
                    "nvlink_crc_data",
                    &p.nvlink_crc_data,
                    last.nvlink_crc_data,
                )?,
                nvlink_replay: links("nvlink_replay", &p.nvlink_replay, last.nvlink_replay)?,
                nvlink_recovery: links(
                    "nvlink_recovery",
                    &p.nvlink_recovery,
                    last.nvlink_recovery,
                )?,
            };
            points.push(last);
        }
        if points.is_empty() {
            points.push(last);
        }
        gpu.points = points;
        check_processes(&at, &gpu.processes)?;
        for (k, x) in gpu.xids.iter().enumerate() {
            check_time(&format!("{at}.xids[{k}].t"), x.t)?;
        }
        if let Some(mig) = &gpu.mig {
            if !gpu.mig_capable {
                return Err(format!("{at}: has mig but mig_capable is false"));
            }
            if mig.instances.len() > MAX_MIG_INSTANCES {
                return Err(format!(
                    "{at}.mig: {} instances, at most {MAX_MIG_INSTANCES}",
                    mig.instances.len()
                ));
            }
            for (k, m) in mig.instances.iter().enumerate() {
                let at = format!("{at}.mig.instances[{k}]");
                check_string(&format!("{at}.uuid"), &m.uuid)?;
                if let Some(name) = &m.name {
                    check_string(&format!("{at}.name"), name)?;
                }
                check_processes(&at, &m.processes)?;
            }
        }
    }
    for (k, f) in s.faults.iter().enumerate() {
        let at = format!("faults[{k}]");
        if !FUNCTIONS.contains(&f.function.as_str()) {
            let mut known = String::new();
            for name in FUNCTIONS {
                let _ = write!(known, " {name}");
            }
            return Err(format!(
                "{at}.function: {:?} is not a function of this fake; known:{known}",
                f.function
            ));
        }
        if f.code.is_none() && f.hang_seconds.is_none() {
            return Err(format!("{at}: needs \"code\" or \"hang_seconds\""));
        }
        check_time(&format!("{at}.after"), f.after)?;
        if let Some(h) = f.hang_seconds {
            check_time(&format!("{at}.hang_seconds"), h)?;
        }
        if let Some(u) = f.until {
            check_time(&format!("{at}.until"), u)?;
        }
        if let Some(g) = f.gpu
            && g >= s.gpus.len()
        {
            return Err(format!("{at}.gpu: {g} but there are {} gpus", s.gpus.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_is_one_idle_h100() {
        let s = parse(DEFAULT_SCENARIO).expect("default scenario parses");
        assert_eq!(s.gpus.len(), 1);
        assert_eq!(s.gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(s.gpus[0].point(100.0).util_gpu, 0);
    }

    #[test]
    fn example_scenario_parses() {
        let s = parse(include_str!("../scenarios/example.json")).expect("example parses");
        assert!(!s.gpus.is_empty());
    }

    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../README.md");
        let start = readme.find("```json\n").expect("a json block") + "```json\n".len();
        let len = readme[start..].find("```").expect("end of the block");
        let s = parse(&readme[start..start + len]).expect("README example parses");
        assert_eq!(s.gpus[0].point(3.0).util_gpu, 97);
        assert_eq!(s.gpus[0].point(3.0).power_mw, 70_000, "carried forward");
    }

    #[test]
    fn series_is_a_step_function_that_carries_fields_forward() {
        let s = parse(
            r#"{"gpus":[{"uuid":"GPU-a","series":[
                {"t":1,"util_gpu":5,"temp_c":40},{"t":2.5,"util_gpu":97}]}]}"#,
        )
        .expect("parses");
        let g = &s.gpus[0];
        assert_eq!(
            g.point(0.0).util_gpu,
            5,
            "before the first point: the first"
        );
        assert_eq!(g.point(2.4).util_gpu, 5);
        assert_eq!(g.point(2.5).util_gpu, 97);
        assert_eq!(g.point(9.0).temp_c, 40, "missing fields carry forward");
        assert_eq!(g.point(9.0).power_mw, IDLE.power_mw);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(r#"{"gpus":[{"uuid":"GPU-a","series":[{"t":2},{"t":1}]}]}"#)
            .expect_err("unsorted");
        assert!(e.contains("gpus[0].series[1].t"), "{e}");
        let e = parse(r#"{"gpus":[{"uuid":"GPU-a","pci_bus_id":"nope"}]}"#).expect_err("pci");
        assert!(e.contains("pci_bus_id"), "{e}");
        let e = parse(r#"{"faults":[{"function":"nvmlDeviceGetPowrUsage","code":3}]}"#)
            .expect_err("typo");
        assert!(e.contains("nvmlDeviceGetPowrUsage"), "{e}");
        let e = parse(r#"{"gpus":[{"uuid":"GPU-a","utl_gpu":3}]}"#).expect_err("unknown");
        assert!(e.contains("utl_gpu"), "{e}");
    }

    #[test]
    fn pci_bus_ids() {
        assert_eq!(
            parse_pci_bus_id("00000000:19:00.0"),
            Some(PciAddress {
                domain: 0,
                bus: 0x19,
                device: 0
            })
        );
        assert_eq!(parse_pci_bus_id("0001:AF:1f.0").map(|p| p.bus), Some(0xAF));
        assert_eq!(parse_pci_bus_id("0000:19:00"), None);
    }
}
