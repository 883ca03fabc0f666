//! The fake `libnvidia-ml.so` loaded through the real `nvml-wrapper`, the way
//! gpuscope's agent loads a driver: every value asserted here went through
//! `dlopen`, `dlsym` and nvml-wrapper's own struct handling.
//!
//! Each scenario test runs its body in a child process (see
//! `support::isolated`), because NVML state and the scenario variable are
//! process-wide.

mod support;

use std::ffi::CStr;
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, RetirementCause, TemperatureSensor, TemperatureThreshold,
};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};

use support::{elf, fake_lib, isolated, scenario};

/// Asserts that `$result` is `Err($pattern)`.
macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!(
                "{} = {other:?}, expected Err({})",
                stringify!($result),
                stringify!($pattern)
            ),
        }
    };
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Every NVML function the fake exports (README's list).
const EXPORTED: &[&str] = &[
    "nvmlInit",
    "nvmlInit_v2",
    "nvmlInitWithFlags",
    "nvmlShutdown",
    "nvmlErrorString",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetNVMLVersion",
    "nvmlDeviceGetCount_v2",
    "nvmlDeviceGetHandleByIndex_v2",
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetIndex",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetPciInfo_v3",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetPersistenceMode",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetProcessUtilization",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceIsMigDeviceHandle",
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetCreate",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetFieldValues",
    "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkWidth",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetTemperatureThreshold",
    "nvmlDeviceGetRetiredPages",
    "nvmlDeviceGetRetiredPages_v2",
    "nvmlDeviceGetRetiredPagesPendingStatus",
    "nvmlDeviceGetNvLinkState",
    "nvmlDeviceGetNvLinkErrorCounter",
    "gpuscope_fake_nvml_info",
];

/// NVML loaded from `lib`, with the instants just before and after init
/// (scenario time zero lies between them).
struct Loaded {
    nvml: Nvml,
    before: Instant,
    after: Instant,
}

impl Loaded {
    fn from(lib: &Path) -> Self {
        let before = Instant::now();
        let nvml = Nvml::builder()
            .lib_path(lib.as_os_str())
            .init()
            .expect("init the fake NVML");
        Loaded {
            nvml,
            before,
            after: Instant::now(),
        }
    }

    fn new() -> Self {
        Self::from(&fake_lib())
    }

    /// Sleeps until scenario time is surely at least `t` seconds.
    fn sleep_until(&self, t: f64) {
        let target = self.after + Duration::from_secs_f64(t);
        std::thread::sleep(target.saturating_duration_since(Instant::now()));
    }

    /// An upper bound of the scenario time now.
    fn at_most(&self) -> f64 {
        self.before.elapsed().as_secs_f64()
    }

    fn device(&self, index: u32) -> Device<'_> {
        self.nvml.device_by_index(index).expect("device by index")
    }
}

fn pids(device: &Device<'_>) -> Vec<u32> {
    let mut pids: Vec<u32> = device
        .running_compute_processes()
        .expect("running compute processes")
        .iter()
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids
}

#[test]
fn values_of_two_gpus_at_start_and_after_a_step() {
    isolated(
        "values_of_two_gpus_at_start_and_after_a_step",
        Some(&scenario("two_gpus.json")),
        || {
            let f = Loaded::new();
            let nvml = &f.nvml;
            assert_eq!(
                nvml.sys_driver_version().expect("driver"),
                "550.54.15 (simulated)"
            );
            assert_eq!(nvml.device_count().expect("count"), 2);

            let h100 = f.device(0);
            let a100 = f.device(1);
            assert_eq!(h100.index().expect("index"), 0);
            assert_eq!(a100.index().expect("index"), 1);
            assert_eq!(
                h100.uuid().expect("uuid"),
                "GPU-11111111-2222-3333-4444-555555555555"
            );
            assert_eq!(h100.name().expect("name"), "NVIDIA H100 80GB HBM3");
            let pci = h100.pci_info().expect("pci");
            assert_eq!(pci.bus_id, "00000000:19:00.0");
            assert_eq!((pci.domain, pci.bus, pci.device), (0, 0x19, 0));
            assert_eq!(pci.pci_device_id, 0x2330_10DE);
            assert_eq!(pci.pci_sub_system_id, Some(0x16C1_10DE));
            assert_eq!(a100.pci_info().expect("pci").bus_id, "00000000:3B:00.0");
            assert_eq!(a100.pci_info().expect("pci").pci_device_id, 0x20B0_10DE);

            assert!(f.at_most() < 1.0, "the first checks ran before the step");
            let u = h100.utilization_rates().expect("utilization");
            assert_eq!((u.gpu, u.memory), (0, 0));
            let m = h100.memory_info().expect("memory");
            assert_eq!(
                (m.total, m.used, m.free, m.reserved),
                (80 * GIB, 0, 80 * GIB, 0)
            );
            assert_eq!(h100.power_usage().expect("power"), 70_000);
            assert_eq!(h100.enforced_power_limit().expect("limit"), 700_000);
            assert_eq!(h100.power_management_limit().expect("limit"), 700_000);
            assert_eq!(h100.temperature(TemperatureSensor::Gpu).expect("temp"), 31);
            assert_eq!(h100.clock_info(Clock::SM).expect("clock"), 345);
            assert!(h100.is_in_persistent_mode().expect("persistence"));

            let u = a100.utilization_rates().expect("utilization");
            assert_eq!((u.gpu, u.memory), (13, 7));
            let m = a100.memory_info().expect("memory");
            assert_eq!(
                (m.total, m.used, m.reserved, m.free),
                (40 * GIB, 4 * GIB, 512 * MIB, 40 * GIB - 4 * GIB - 512 * MIB)
            );
            assert_eq!(a100.power_usage().expect("power"), 95_000);
            assert_eq!(a100.enforced_power_limit().expect("limit"), 400_000);
            assert_eq!(a100.temperature(TemperatureSensor::Gpu).expect("temp"), 38);
            assert_eq!(a100.clock_info(Clock::SM).expect("clock"), 1410);
            assert!(!a100.is_in_persistent_mode().expect("persistence"));

            f.sleep_until(1.05);
            let u = h100.utilization_rates().expect("utilization");
            assert_eq!((u.gpu, u.memory), (97, 41));
            let m = h100.memory_info().expect("memory");
            assert_eq!((m.used, m.free), (16 * GIB, 64 * GIB));
            assert_eq!(h100.power_usage().expect("power"), 612_000);
            assert_eq!(h100.temperature(TemperatureSensor::Gpu).expect("temp"), 64);
            assert_eq!(h100.clock_info(Clock::SM).expect("clock"), 1980);
            let u = a100.utilization_rates().expect("utilization");
            assert_eq!((u.gpu, u.memory), (13, 7), "a one-point series holds");
        },
    );
}

/// The row-remapping fields, read the way the agent reads them.
const REMAP_FIELDS: [FieldId; 4] = [FieldId(142), FieldId(143), FieldId(144), FieldId(145)];

/// `nvmlDeviceGetFieldValues` answers as `(field, value)` (every one must succeed).
fn remap_fields(device: &Device<'_>) -> Vec<(u32, u32)> {
    device
        .field_values_for(&REMAP_FIELDS)
        .expect("field values")
        .into_iter()
        .map(|s| {
            let s = s.expect("sample");
            match s.value {
                Ok(SampleValue::U32(v)) => (s.field.0, v),
                other => panic!("field {}: {other:?} is not an unsigned int", s.field.0),
            }
        })
        .collect()
}

#[test]
fn health_counters_at_start_and_after_a_step() {
    isolated(
        "health_counters_at_start_and_after_a_step",
        Some(&scenario("health.json")),
        || {
            let f = Loaded::new();
            let gpu = f.device(0);
            assert!(f.at_most() < 0.6, "the first checks ran before the step");
            assert_eq!(
                gpu.current_throttle_reasons().expect("reasons"),
                ThrottleReasons::empty()
            );
            assert_eq!(gpu.max_clock_info(Clock::SM).expect("max sm"), 1980);
            let ecc = |e, c| gpu.total_ecc_errors(e, c).expect("ecc");
            assert_eq!(ecc(MemoryError::Corrected, EccCounter::Volatile), 3);
            assert_eq!(ecc(MemoryError::Corrected, EccCounter::Aggregate), 103);
            assert_eq!(ecc(MemoryError::Uncorrected, EccCounter::Volatile), 0);
            assert_eq!(
                remap_fields(&gpu),
                vec![(142, 0), (143, 0), (144, 0), (145, 0)]
            );
            assert_eq!(gpu.current_pcie_link_gen().expect("gen"), 5);
            assert_eq!(gpu.current_pcie_link_width().expect("width"), 16);
            // Ampere and later retire no pages (they remap rows).
            assert_err!(
                gpu.retired_pages(RetirementCause::DoubleBitEccError),
                NvmlError::NotSupported
            );
            assert_err!(gpu.are_pages_pending_retired(), NvmlError::NotSupported);
            let v100 = f.device(1);
            let pages = |cause| v100.retired_pages(cause).expect("retired pages").len();
            assert_eq!(pages(RetirementCause::MultipleSingleBitEccErrors), 2);
            assert_eq!(pages(RetirementCause::DoubleBitEccError), 0);
            assert!(!v100.are_pages_pending_retired().expect("pending"));
            assert_eq!(gpu.pcie_replay_counter().expect("replays"), 0);
            assert_eq!(
                gpu.temperature_threshold(TemperatureThreshold::Slowdown)
                    .expect("slowdown"),
                87
            );
            assert_eq!(
                gpu.temperature_threshold(TemperatureThreshold::Shutdown)
                    .expect("shutdown"),
                92
            );

            f.sleep_until(0.7);
            assert_eq!(
                gpu.current_throttle_reasons().expect("reasons"),
                ThrottleReasons::HW_SLOWDOWN | ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN
            );
            assert_eq!(gpu.clock_info(Clock::SM).expect("sm"), 990);
            assert_eq!(ecc(MemoryError::Uncorrected, EccCounter::Volatile), 2);
            assert_eq!(ecc(MemoryError::Uncorrected, EccCounter::Aggregate), 3);
            assert_eq!(
                remap_fields(&gpu),
                vec![(142, 0), (143, 1), (144, 1), (145, 0)]
            );
            assert_eq!(gpu.current_pcie_link_gen().expect("gen"), 3);
            assert_eq!(gpu.max_pcie_link_gen().expect("gen"), 5);
            assert_eq!(gpu.current_pcie_link_width().expect("width"), 8);
            assert_eq!(gpu.max_pcie_link_width().expect("width"), 16);
            assert_eq!(gpu.pcie_replay_counter().expect("replays"), 41);
            let retired = v100
                .retired_pages(RetirementCause::DoubleBitEccError)
                .expect("retired pages");
            assert_eq!(retired.len(), 1);
            assert_eq!(retired[0].address, 0x1000);
            assert!(v100.are_pages_pending_retired().expect("pending"));

            // Another field than the remap ones: its own NOT_SUPPORTED.
            let mut other = gpu.field_values_for(&[FieldId(94)]).expect("call");
            let other = other.remove(0).expect("sample");
            assert_err!(other.value, NvmlError::NotSupported);
            // A GPU without ECC (a fault here) says so per call.
            let b = f.device(1);
            assert_err!(
                b.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile),
                NvmlError::NotSupported
            );
            assert_err!(b.field_values_for(&REMAP_FIELDS), NvmlError::NotSupported);
        },
    );
}

/// Each link's state and its four error counters (replay, recovery, CRC
/// flit, CRC data), links 0..4 of `device`.
fn nvlinks(device: &Device<'_>) -> Vec<(bool, [u64; 4])> {
    (0..4)
        .map(|l| {
            let link = device.link_wrapper_for(l);
            let counter = |c| link.error_counter(c).expect("nvlink error counter");
            (
                link.is_active().expect("nvlink state"),
                [
                    counter(ErrorCounter::DlReplay),
                    counter(ErrorCounter::DlRecovery),
                    counter(ErrorCounter::DlCrcFlit),
                    counter(ErrorCounter::DlCrcData),
                ],
            )
        })
        .collect()
}

#[test]
fn nvlink_state_and_error_counters_at_start_and_after_a_step() {
    isolated(
        "nvlink_state_and_error_counters_at_start_and_after_a_step",
        Some(&scenario("nvlink.json")),
        || {
            let f = Loaded::new();
            let gpu = f.device(0);
            assert!(f.at_most() < 0.6, "the first checks ran before the step");
            assert_eq!(
                nvlinks(&gpu),
                vec![
                    (true, [1, 0, 0, 0]),
                    (true, [0, 0, 7, 0]),
                    (true, [0, 0, 0, 0]),
                    (true, [2, 0, 0, 0]),
                ]
            );
            // Past the GPU's last link, and on a GPU without NVLink.
            assert_err!(gpu.link_wrapper_for(4).is_active(), NvmlError::InvalidArg);
            let pcie = f.device(1);
            assert_err!(
                pcie.link_wrapper_for(0).is_active(),
                NvmlError::NotSupported
            );
            assert_err!(
                pcie.link_wrapper_for(0)
                    .error_counter(ErrorCounter::DlReplay),
                NvmlError::NotSupported
            );

            f.sleep_until(0.7);
            assert_eq!(
                nvlinks(&gpu),
                vec![
                    (true, [1, 0, 0, 0]),
                    (true, [0, 0, 7, 0]),
                    (false, [40, 5, 0, 3]),
                    (true, [2, 0, 0, 0]),
                ]
            );
        },
    );
}

#[test]
fn compute_processes_through_the_two_call_protocol() {
    isolated(
        "compute_processes_through_the_two_call_protocol",
        Some(&scenario("two_gpus.json")),
        || {
            let f = Loaded::new();
            let h100 = f.device(0);
            // nvml-wrapper asks for the count with a null buffer (our
            // INSUFFICIENT_SIZE + count), then fetches with room for it.
            assert_eq!(h100.running_compute_processes_count().expect("count"), 3);
            let mut procs = h100.running_compute_processes().expect("processes");
            assert!(f.at_most() < 1.0);
            procs.sort_by_key(|p| p.pid);
            let summary: Vec<_> = procs
                .iter()
                .map(|p| (p.pid, p.used_gpu_memory.clone()))
                .collect();
            assert_eq!(
                summary,
                [
                    (4242, UsedGpuMemory::Used(GIB)),
                    (4243, UsedGpuMemory::Used(2 * GIB)),
                    (4244, UsedGpuMemory::Unavailable),
                ]
            );
            assert!(procs.iter().all(|p| p.gpu_instance_id.is_none()));
            assert!(procs.iter().all(|p| p.compute_instance_id.is_none()));
            let a100 = f.device(1);
            assert_eq!(a100.running_compute_processes_count().expect("count"), 0);
            assert!(a100.running_compute_processes().expect("none").is_empty());

            f.sleep_until(1.05);
            assert_eq!(pids(&h100), [4242, 4243, 4245], "4244 ended, 4245 started");
        },
    );
}

#[test]
fn per_process_utilization_with_last_seen_timestamp() {
    isolated(
        "per_process_utilization_with_last_seen_timestamp",
        Some(&scenario("two_gpus.json")),
        || {
            let f = Loaded::new();
            let h100 = f.device(0);
            let mut samples = h100.process_utilization_stats(None).expect("samples");
            samples.sort_by_key(|s| s.pid);
            let summary: Vec<_> = samples
                .iter()
                .map(|s| (s.pid, s.sm_util, s.mem_util))
                .collect();
            assert_eq!(summary, [(4242, 90, 40), (4243, 5, 1)]);
            let last_seen = samples.iter().map(|s| s.timestamp).max().expect("a sample");
            let wall_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_micros() as u64;
            assert!(
                last_seen <= wall_us && wall_us - last_seen < 10_000_000,
                "timestamps are wall-clock microseconds"
            );

            std::thread::sleep(Duration::from_millis(2));
            let newer = h100.process_utilization_stats(last_seen).expect("newer");
            assert_eq!(newer.len(), 2);
            assert!(newer.iter().all(|s| s.timestamp > last_seen));
            // Nothing newer than a future timestamp: NVML says NOT_FOUND.
            assert_err!(
                h100.process_utilization_stats(u64::MAX),
                NvmlError::NotFound
            );
            assert_err!(
                f.device(1).process_utilization_stats(None),
                NvmlError::NotFound
            );
        },
    );
}

#[test]
fn xids_arrive_through_the_event_set_in_time() {
    isolated(
        "xids_arrive_through_the_event_set_in_time",
        Some(&scenario("xid_and_lost.json")),
        || {
            let f = Loaded::new();
            let (gpu0, gpu1) = (f.device(0), f.device(1));
            assert!(
                gpu0.supported_event_types()
                    .expect("supported")
                    .contains(EventTypes::CRITICAL_XID_ERROR)
            );
            let set = f.nvml.create_event_set().expect("event set");
            let set = gpu0
                .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .expect("register gpu0");
            let set = gpu1
                .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .expect("register gpu1");

            // In scenario order, none before its time, each waking the
            // wait that was blocked on it (not the wait's 5 s timeout).
            let wait_ms = 5_000;
            for (t, uuid, xid) in [
                (0.3, "GPU-aaaaaaaa-0000-0000-0000-000000000000", 13),
                (0.5, "GPU-bbbbbbbb-0000-0000-0000-000000000000", 31),
                (0.8, "GPU-aaaaaaaa-0000-0000-0000-000000000000", 79),
            ] {
                let waited = Instant::now();
                let event = set.wait(wait_ms).expect("an XID");
                let waited = waited.elapsed();
                let since_before = f.before.elapsed().as_secs_f64();
                assert!(
                    since_before >= t,
                    "XID {xid} at {since_before}s, not before {t}s"
                );
                assert!(
                    waited < Duration::from_millis(wait_ms.into()),
                    "XID {xid} came at the wait's timeout ({waited:?}), not when it fired"
                );
                assert_eq!(event.event_type, EventTypes::CRITICAL_XID_ERROR);
                assert_eq!(event.event_data, Some(XidError::Value(xid)));
                if t < 1.0 && f.at_most() < 1.0 {
                    assert_eq!(event.device.uuid().expect("uuid"), uuid);
                }
            }
            // GPU 0 falls off the bus at 1.0: reported once, then its XID at
            // 1.2 never fires and the wait times out.
            assert_err!(set.wait(5_000), NvmlError::GpuLost);
            assert!(f.before.elapsed() >= Duration::from_secs(1));
            let waited = Instant::now();
            assert_err!(set.wait(500), NvmlError::Timeout);
            assert!(waited.elapsed() >= Duration::from_millis(500));
            set.release_events().expect("free the set");
        },
    );
}

#[test]
fn gpu_lost_mid_run() {
    isolated(
        "gpu_lost_mid_run",
        Some(&scenario("xid_and_lost.json")),
        || {
            let f = Loaded::new();
            let (gpu0, gpu1) = (f.device(0), f.device(1));
            assert!(gpu0.memory_info().is_ok());
            assert!(f.at_most() < 1.0);

            f.sleep_until(1.05);
            assert_err!(gpu0.memory_info(), NvmlError::GpuLost);
            assert_err!(gpu0.utilization_rates(), NvmlError::GpuLost);
            assert_err!(gpu0.uuid(), NvmlError::GpuLost);
            assert_err!(gpu0.running_compute_processes(), NvmlError::GpuLost);
            assert_err!(f.nvml.device_by_index(0), NvmlError::GpuLost);
            assert_eq!(f.nvml.device_count().expect("count"), 2, "still enumerated");
            assert!(gpu1.memory_info().is_ok(), "the other GPU keeps working");
        },
    );
}

#[test]
fn fault_code_is_returned_from_its_time_on() {
    isolated(
        "fault_code_is_returned_from_its_time_on",
        Some(&scenario("faults.json")),
        || {
            let f = Loaded::new();
            let (gpu0, gpu1) = (f.device(0), f.device(1));
            assert_err!(gpu0.power_usage(), NvmlError::NotSupported);
            assert_eq!(gpu1.power_usage().expect("only gpu 0 faults"), 70_000);
            assert!(f.at_most() < 0.5);
            assert_eq!(gpu1.temperature(TemperatureSensor::Gpu).expect("temp"), 31);

            f.sleep_until(0.55);
            for gpu in [&gpu0, &gpu1] {
                assert_err!(
                    gpu.temperature(TemperatureSensor::Gpu),
                    NvmlError::NotSupported
                );
            }
        },
    );
}

#[test]
fn hung_call_blocks_only_itself() {
    isolated(
        "hung_call_blocks_only_itself",
        Some(&scenario("faults.json")),
        || {
            let f = Loaded::new();
            let (gpu0, gpu1) = (f.device(0), f.device(1));
            let started = Barrier::new(2);
            let hung_returned = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let hung = scope.spawn(|| {
                    started.wait();
                    let t = Instant::now();
                    let u = gpu0.utilization_rates().expect("answers after the hang");
                    hung_returned.store(true, Ordering::SeqCst);
                    (t.elapsed(), u.gpu)
                });
                started.wait();
                // Let the other thread enter its call (it hangs for 2 s).
                std::thread::sleep(Duration::from_millis(100));
                assert!(gpu0.memory_info().is_ok());
                assert_eq!(gpu1.utilization_rates().expect("not hung").gpu, 66);
                // Ordering, not a stopwatch: the other calls answered while
                // the hung one had not returned.
                assert!(
                    !hung_returned.load(Ordering::SeqCst),
                    "the other calls returned only after the hung one"
                );
                let (blocked, gpu) = hung.join().expect("hung thread");
                assert!(
                    blocked >= Duration::from_secs(2),
                    "blocked only {blocked:?}"
                );
                assert_eq!(gpu, 55);
            });
        },
    );
}

#[test]
fn missing_symbol_fails_only_its_method() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = elf::copy_without_symbol(&fake_lib(), dir.path(), "nvmlDeviceGetPowerUsage");
    assert!(!elf::exports_name(&lib, "nvmlDeviceGetPowerUsage"));
    assert!(elf::exports_name(&lib, "nvmlDeviceGetMemoryInfo_v2"));
    let lib_str = lib.to_str().expect("utf-8 path").to_owned();
    isolated("missing_symbol_fails_only_its_method", None, move || {
        let f = Loaded::from(Path::new(&lib_str));
        let gpu = f.device(0);
        match gpu.power_usage() {
            Err(NvmlError::FailedToLoadSymbol(message)) => {
                assert!(message.contains("nvmlDeviceGetPowerUsage"), "{message}");
            }
            other => panic!("expected FailedToLoadSymbol, got {other:?}"),
        }
        assert_eq!(gpu.memory_info().expect("memory").total, 80 * GIB);
        assert_eq!(gpu.enforced_power_limit().expect("limit"), 700_000);
    });
}

#[test]
fn malformed_scenario_fails_init_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.json");
    std::fs::write(&path, r#"{"gpus": [{"uuid": 5}]}"#).expect("write");
    let output = isolated(
        "malformed_scenario_fails_init_with_a_clear_message",
        Some(&path),
        || {
            let err = Nvml::builder()
                .lib_path(fake_lib().as_os_str())
                .init()
                .expect_err("init must fail");
            assert!(matches!(err, NvmlError::Unknown), "{err:?}");
        },
    );
    if let Some(output) = output {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("gpuscope-fake-nvml: "))
            .unwrap_or_else(|| panic!("no message in stderr:\n{stderr}"));
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("GPUSCOPE_FAKE_NVML_SCENARIO"), "{line}");
        assert!(
            line.contains("invalid type: integer `5`, expected a string"),
            "{line}"
        );
        assert!(line.contains("line 1 column"), "{line}");
    }
}

#[test]
fn missing_scenario_file_fails_init() {
    let path = Path::new("/nonexistent/gpuscope/scenario.json");
    let output = isolated("missing_scenario_file_fails_init", Some(path), || {
        let err = Nvml::builder()
            .lib_path(fake_lib().as_os_str())
            .init()
            .expect_err("init must fail");
        assert!(matches!(err, NvmlError::Unknown), "{err:?}");
    });
    if let Some(output) = output {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("cannot load scenario /nonexistent/gpuscope/scenario.json")
                && stderr.contains("No such file"),
            "{stderr}"
        );
    }
}

#[test]
fn init_fault_code_fails_init() {
    isolated(
        "init_fault_code_fails_init",
        Some(&scenario("init_fails.json")),
        || {
            let lib = fake_lib();
            let err = Nvml::builder()
                .lib_path(lib.as_os_str())
                .init()
                .expect_err("driver not loaded");
            assert!(matches!(err, NvmlError::DriverNotLoaded), "{err:?}");
            // The failed init left nothing initialized behind it.
            let err = Nvml::builder()
                .lib_path(lib.as_os_str())
                .init()
                .expect_err("still not loaded");
            assert!(matches!(err, NvmlError::DriverNotLoaded), "{err:?}");
        },
    );
}

#[test]
fn mig_instances() {
    isolated("mig_instances", Some(&scenario("mig.json")), || {
        let f = Loaded::new();
        let gpu = f.device(0);
        let mode = gpu.mig_mode().expect("mig mode");
        assert_eq!((mode.current, mode.pending), (1, 1));
        assert_eq!(gpu.mig_device_count().expect("max"), 7);
        assert!(!gpu.mig_is_mig_device_handle().expect("is mig"));
        assert_err!(gpu.utilization_rates(), NvmlError::NotSupported);

        let mig0 = gpu.mig_device_by_index(0).expect("mig 0");
        assert!(mig0.mig_is_mig_device_handle().expect("is mig"));
        assert_eq!(
            mig0.uuid().expect("uuid"),
            "MIG-11111111-1111-5111-8111-111111111111"
        );
        assert_eq!(mig0.name().expect("name"), "NVIDIA A100-SXM4-40GB MIG");
        let m = mig0.memory_info().expect("memory");
        assert_eq!(
            (m.total, m.used, m.free),
            (10 * GIB, 512 * MIB, 10 * GIB - 512 * MIB)
        );
        let procs = mig0.running_compute_processes().expect("processes");
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0].pid, 5151);
        assert_eq!(procs[0].used_gpu_memory, UsedGpuMemory::Used(512 * MIB));
        assert_eq!(
            (procs[0].gpu_instance_id, procs[0].compute_instance_id),
            (Some(3), Some(0))
        );
        assert_eq!(
            mig0.mig_parent_device()
                .expect("parent")
                .uuid()
                .expect("uuid"),
            "GPU-aaaaaaaa-0000-0000-0000-000000000000"
        );

        let mig1 = gpu.mig_device_by_index(1).expect("mig 1");
        assert_eq!(
            mig1.name().expect("name"),
            "NVIDIA A100-SXM4-40GB MIG 2g.20gb"
        );
        assert_eq!(pids(&mig1), [6161]);
        assert_eq!(
            pids(&gpu),
            [5151, 6161],
            "the parent lists every instance's"
        );
        assert_err!(gpu.mig_device_by_index(2), NvmlError::NotFound);
        assert_err!(gpu.mig_device_by_index(7), NvmlError::InvalidArg);

        let plain = f.device(1);
        let mode = plain.mig_mode().expect("mig mode");
        assert_eq!((mode.current, mode.pending), (0, 0));
        assert_eq!(plain.mig_device_count().expect("max"), 0);
        assert!(plain.utilization_rates().is_ok());
        assert_err!(f.device(2).mig_mode(), NvmlError::NotSupported);
    });
}

#[test]
fn device_count_changes_mid_run() {
    isolated(
        "device_count_changes_mid_run",
        Some(&scenario("hotplug.json")),
        || {
            let f = Loaded::new();
            let uuids = |nvml: &Nvml| -> Vec<String> {
                (0..nvml.device_count().expect("count"))
                    .map(|i| {
                        let d = nvml.device_by_index(i).expect("device");
                        assert_eq!(d.index().expect("index"), i);
                        d.uuid().expect("uuid")
                    })
                    .collect()
            };
            let (a, b, c) = (
                "GPU-aaaaaaaa-0000-0000-0000-000000000000",
                "GPU-bbbbbbbb-0000-0000-0000-000000000000",
                "GPU-cccccccc-0000-0000-0000-000000000000",
            );
            assert_eq!(uuids(&f.nvml), [a, c]);
            let gpu_c = f.device(1);
            assert!(f.at_most() < 0.5);

            f.sleep_until(0.55);
            assert_eq!(uuids(&f.nvml), [a, b, c]);
            assert!(f.at_most() < 1.0);

            f.sleep_until(1.05);
            assert_eq!(uuids(&f.nvml), [a, b]);
            assert_err!(gpu_c.uuid(), NvmlError::GpuLost);
        },
    );
}

#[test]
fn default_scenario_is_one_idle_h100() {
    isolated("default_scenario_is_one_idle_h100", None, || {
        let f = Loaded::new();
        assert_eq!(f.nvml.device_count().expect("count"), 1);
        let gpu = f.device(0);
        assert_eq!(gpu.name().expect("name"), "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.utilization_rates().expect("utilization").gpu, 0);
        assert_eq!(gpu.memory_info().expect("memory").total, 80 * GIB);
        assert!(gpu.running_compute_processes().expect("none").is_empty());
        assert_eq!(
            f.nvml.sys_nvml_version().expect("nvml version"),
            "12.550.54.15"
        );

        // The fake identifies itself; a real NVML has no such symbol.
        // SAFETY: the symbol is `const char *gpuscope_fake_nvml_info(void)`,
        // returning a static NUL-terminated string.
        let info = unsafe {
            let info = f
                .nvml
                .lib()
                .__library
                .get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(
                    b"gpuscope_fake_nvml_info\0",
                )
                .expect("info symbol");
            CStr::from_ptr(info()).to_string_lossy().into_owned()
        };
        assert!(info.contains("simulated"), "{info}");

        // SAFETY: nvmlErrorString returns a static NUL-terminated string.
        let lost = unsafe {
            let error_string = f.nvml.lib().nvmlErrorString.as_ref().expect("symbol");
            CStr::from_ptr(error_string(15))
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(lost, "GPU is lost");

        // Strings respect the caller's buffer: too small is INSUFFICIENT_SIZE.
        let mut small = [0 as std::ffi::c_char; 8];
        // SAFETY: `small` is a writable buffer of the length passed.
        let code = unsafe {
            let get_name = f.nvml.lib().nvmlDeviceGetName.as_ref().expect("symbol");
            get_name(
                f.nvml.device_by_index(0).expect("d").handle(),
                small.as_mut_ptr(),
                8,
            )
        };
        assert_eq!(code, 7);

        // Init is reference-counted: a second Nvml shares the session and
        // dropping it leaves the first working.
        let second = Loaded::new();
        assert_eq!(second.nvml.device_count().expect("count"), 1);
        drop(second);
        assert_eq!(gpu.power_usage().expect("still initialized"), 69_000);

        // Thread-safe: many threads at once.
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        assert_eq!(gpu.temperature(TemperatureSensor::Gpu).expect("t"), 31);
                        assert_eq!(f.nvml.device_count().expect("count"), 1);
                    }
                });
            }
        });

        // Shut down and initialize again: a fresh session.
        drop(f);
        let again = Loaded::new();
        assert_eq!(again.device(0).index().expect("index"), 0);
    });
}

#[test]
fn no_library_at_all() {
    let err = Nvml::builder()
        .lib_path(std::ffi::OsStr::new("/nonexistent/libnvidia-ml.so.1"))
        .init()
        .expect_err("no library");
    assert!(matches!(err, NvmlError::LibloadingError(_)), "{err:?}");
}

#[test]
fn exports_every_documented_symbol() {
    let mut listed = gpuscope_fake_nvml::exports::FUNCTIONS.to_vec();
    listed.push("gpuscope_fake_nvml_info");
    assert_eq!(listed, EXPORTED, "the library's list and this one agree");
    let lib = fake_lib();
    let missing: Vec<_> = EXPORTED
        .iter()
        .filter(|name| !elf::exports_name(&lib, name))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}
