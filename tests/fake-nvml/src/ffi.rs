//! NVML's C types, with the layouts of `nvml.h` (as bound by `nvml-wrapper-sys`).

use std::ffi::{c_char, c_uint, c_ulonglong, c_void};
use std::mem::size_of;

/// `nvmlReturn_t`.
pub type Ret = c_uint;
/// `nvmlDevice_t`: an opaque handle.
pub type Device = *mut c_void;
/// `nvmlEventSet_t`: an opaque handle.
pub type EventSet = *mut c_void;

/// `NVML_SUCCESS`.
pub const SUCCESS: Ret = 0;
/// `NVML_ERROR_UNINITIALIZED`.
pub const ERROR_UNINITIALIZED: Ret = 1;
/// `NVML_ERROR_INVALID_ARGUMENT`.
pub const ERROR_INVALID_ARGUMENT: Ret = 2;
/// `NVML_ERROR_NOT_SUPPORTED`.
pub const ERROR_NOT_SUPPORTED: Ret = 3;
/// `NVML_ERROR_NOT_FOUND`.
pub const ERROR_NOT_FOUND: Ret = 6;
/// `NVML_ERROR_INSUFFICIENT_SIZE`.
pub const ERROR_INSUFFICIENT_SIZE: Ret = 7;
/// `NVML_ERROR_TIMEOUT`.
pub const ERROR_TIMEOUT: Ret = 10;
/// `NVML_ERROR_GPU_IS_LOST`.
pub const ERROR_GPU_IS_LOST: Ret = 15;
/// `NVML_ERROR_MEMORY`.
pub const ERROR_MEMORY: Ret = 20;
/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
pub const ERROR_ARGUMENT_VERSION_MISMATCH: Ret = 25;
/// `NVML_ERROR_UNKNOWN`.
pub const ERROR_UNKNOWN: Ret = 999;

/// `NVML_VALUE_NOT_AVAILABLE` for 64-bit values.
pub const VALUE_NOT_AVAILABLE_U64: u64 = u64::MAX;
/// `NVML_VALUE_NOT_AVAILABLE` for 32-bit ids (no GPU/compute instance).
pub const VALUE_NOT_AVAILABLE_U32: u32 = u32::MAX;

/// `NVML_TEMPERATURE_GPU`.
pub const TEMPERATURE_GPU: c_uint = 0;
/// `NVML_CLOCK_GRAPHICS`.
pub const CLOCK_GRAPHICS: c_uint = 0;
/// `NVML_CLOCK_SM`.
pub const CLOCK_SM: c_uint = 1;
/// `NVML_CLOCK_VIDEO`: the last clock type.
pub const CLOCK_VIDEO: c_uint = 3;
/// `NVML_FEATURE_ENABLED`.
pub const FEATURE_ENABLED: c_uint = 1;
/// `NVML_FEATURE_DISABLED`.
pub const FEATURE_DISABLED: c_uint = 0;

/// `nvmlEventTypeXidCriticalError`.
pub const EVENT_XID_CRITICAL_ERROR: c_ulonglong = 8;
/// The event types the fake GPUs accept in `nvmlDeviceRegisterEvents`:
/// single- and double-bit ECC, P-state, XID and clock (only XIDs ever fire).
pub const SUPPORTED_EVENTS: c_ulonglong = 1 | 2 | 4 | EVENT_XID_CRITICAL_ERROR | 16;

/// `nvmlPciInfo_t` (the v3 layout).
#[repr(C)]
pub struct PciInfo {
    /// `DDDD:BB:DD.F`.
    pub bus_id_legacy: [c_char; 16],
    /// PCI domain.
    pub domain: c_uint,
    /// PCI bus.
    pub bus: c_uint,
    /// PCI device.
    pub device: c_uint,
    /// Device id (high 16 bits) and vendor id (low 16 bits).
    pub pci_device_id: c_uint,
    /// Sub-system id.
    pub pci_sub_system_id: c_uint,
    /// `DDDDDDDD:BB:DD.F`.
    pub bus_id: [c_char; 32],
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    /// GPU utilization, percent.
    pub gpu: c_uint,
    /// Memory utilization, percent.
    pub memory: c_uint,
}

/// `nvmlMemory_t` (v1).
#[repr(C)]
pub struct Memory {
    /// Total bytes.
    pub total: c_ulonglong,
    /// Free bytes.
    pub free: c_ulonglong,
    /// Used bytes.
    pub used: c_ulonglong,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    /// `NVML_STRUCT_VERSION(Memory, 2)`, set by the caller.
    pub version: c_uint,
    /// Total bytes.
    pub total: c_ulonglong,
    /// Bytes reserved by the driver.
    pub reserved: c_ulonglong,
    /// Free bytes.
    pub free: c_ulonglong,
    /// Used bytes.
    pub used: c_ulonglong,
}

/// The version `nvmlDeviceGetMemoryInfo_v2` expects in `MemoryV2::version`.
pub const MEMORY_V2_VERSION: c_uint = (size_of::<MemoryV2>() as c_uint) | (2 << 24);

/// `nvmlProcessInfo_t` (v2 layout, used by the `_v3` process calls).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: c_uint,
    /// GPU memory used, or `VALUE_NOT_AVAILABLE_U64`.
    pub used_gpu_memory: c_ulonglong,
    /// MIG GPU instance id, or `VALUE_NOT_AVAILABLE_U32`.
    pub gpu_instance_id: c_uint,
    /// MIG compute instance id, or `VALUE_NOT_AVAILABLE_U32`.
    pub compute_instance_id: c_uint,
}

/// `nvmlProcessUtilizationSample_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcessUtilizationSample {
    /// Process id.
    pub pid: c_uint,
    /// CPU timestamp of the sample, microseconds since the Unix epoch.
    pub time_stamp: c_ulonglong,
    /// SM utilization, percent.
    pub sm_util: c_uint,
    /// Memory utilization, percent.
    pub mem_util: c_uint,
    /// Encoder utilization, percent.
    pub enc_util: c_uint,
    /// Decoder utilization, percent.
    pub dec_util: c_uint,
}

/// `nvmlEventData_t`.
#[repr(C)]
pub struct EventData {
    /// The device the event happened on.
    pub device: Device,
    /// The event type (one bit).
    pub event_type: c_ulonglong,
    /// For XID events: the XID.
    pub event_data: c_ulonglong,
    /// MIG GPU instance id, or `VALUE_NOT_AVAILABLE_U32`.
    pub gpu_instance_id: c_uint,
    /// MIG compute instance id, or `VALUE_NOT_AVAILABLE_U32`.
    pub compute_instance_id: c_uint,
}

/// `nvmlFieldValue_t`: one value asked of `nvmlDeviceGetFieldValues`.
#[repr(C)]
pub struct FieldValue {
    /// `NVML_FI_*`, set by the caller.
    pub field_id: c_uint,
    /// Link or other scope, set by the caller.
    pub scope_id: c_uint,
    /// CPU timestamp, microseconds since the Unix epoch.
    pub timestamp: i64,
    /// How long the driver took to read it, microseconds.
    pub latency_usec: i64,
    /// `nvmlValueType_t` of `value`.
    pub value_type: c_uint,
    /// This field's own `nvmlReturn_t`.
    pub nvml_return: Ret,
    /// The value (`nvmlValue_t`, a union of 8 bytes; kept as its `ullVal`).
    pub value: c_ulonglong,
}

/// `NVML_VALUE_TYPE_UNSIGNED_INT`.
pub const VALUE_TYPE_UNSIGNED_INT: c_uint = 1;
/// `NVML_FI_DEV_REMAPPED_COR`: rows remapped for correctable errors.
pub const FI_DEV_REMAPPED_COR: c_uint = 142;
/// `NVML_FI_DEV_REMAPPED_UNC`: rows remapped for uncorrectable errors.
pub const FI_DEV_REMAPPED_UNC: c_uint = 143;
/// `NVML_FI_DEV_REMAPPED_PENDING`: a remap waits for a reset.
pub const FI_DEV_REMAPPED_PENDING: c_uint = 144;
/// `NVML_FI_DEV_REMAPPED_FAILURE`: a remap failed.
pub const FI_DEV_REMAPPED_FAILURE: c_uint = 145;

/// `NVML_MEMORY_ERROR_TYPE_CORRECTED`.
pub const MEMORY_ERROR_CORRECTED: c_uint = 0;
/// `NVML_MEMORY_ERROR_TYPE_UNCORRECTED`.
pub const MEMORY_ERROR_UNCORRECTED: c_uint = 1;
/// `NVML_VOLATILE_ECC`.
pub const VOLATILE_ECC: c_uint = 0;
/// `NVML_AGGREGATE_ECC`.
pub const AGGREGATE_ECC: c_uint = 1;
/// `NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS`.
pub const RETIREMENT_CAUSE_SBE: c_uint = 0;
/// `NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR`.
pub const RETIREMENT_CAUSE_DBE: c_uint = 1;
/// `NVML_TEMPERATURE_THRESHOLD_SHUTDOWN`.
pub const TEMPERATURE_THRESHOLD_SHUTDOWN: c_uint = 0;
/// `NVML_TEMPERATURE_THRESHOLD_SLOWDOWN`.
pub const TEMPERATURE_THRESHOLD_SLOWDOWN: c_uint = 1;

// The sizes nvml-wrapper-sys's bindgen layout tests check for these structs.
const _: () = assert!(size_of::<PciInfo>() == 68);
const _: () = assert!(size_of::<Utilization>() == 8);
const _: () = assert!(size_of::<Memory>() == 24);
const _: () = assert!(size_of::<MemoryV2>() == 40);
const _: () = assert!(size_of::<ProcessInfo>() == 24);
const _: () = assert!(size_of::<ProcessUtilizationSample>() == 32);
const _: () = assert!(size_of::<EventData>() == 32);
const _: () = assert!(size_of::<FieldValue>() == 40);

/// `nvmlErrorString`'s text for a return code.
pub fn error_string(code: Ret) -> &'static std::ffi::CStr {
    match code {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        4 => c"Insufficient Permissions",
        5 => c"Already Initialized",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        8 => c"Insufficient External Power",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        11 => c"Interrupted by the system",
        12 => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        14 => c"Corrupted infoROM",
        15 => c"GPU is lost",
        16 => c"GPU requires restart",
        17 => c"Operating System Error",
        18 => c"RM has detected an NVML/RM version mismatch",
        19 => c"In use by another client",
        20 => c"Insufficient Memory",
        21 => c"No data",
        25 => c"Argument version mismatch",
        _ => c"Unknown Error",
    }
}
/// `NVML_NVLINK_ERROR_DL_REPLAY`.
pub const NVLINK_ERROR_DL_REPLAY: c_uint = 0;
/// `NVML_NVLINK_ERROR_DL_RECOVERY`.
pub const NVLINK_ERROR_DL_RECOVERY: c_uint = 1;
/// `NVML_NVLINK_ERROR_DL_CRC_FLIT`.
pub const NVLINK_ERROR_DL_CRC_FLIT: c_uint = 2;
/// `NVML_NVLINK_ERROR_DL_CRC_DATA`.
pub const NVLINK_ERROR_DL_CRC_DATA: c_uint = 3;
