//! Enumeration and per-device queries.
#![allow(non_snake_case)]

use std::ffi::{CStr, c_char, c_uint};

use crate::ffi::{self, PciInfo, Ret};
use crate::scenario::parse_pci_bus_id;
use crate::state::{self, Dev, device_call, fill_array, put, put_str};

/// `nvmlDeviceGetCount_v2`: the GPUs present now (`present_from`/`present_until`).
///
/// # Safety
/// `device_count` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(device_count: *mut c_uint) -> Ret {
    state::call("nvmlDeviceGetCount_v2", |s, now| {
        let count = s.present(now).count() as c_uint;
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(device_count, count) }
    })
}

/// `nvmlDeviceGetHandleByIndex_v2`: the `index`-th GPU present now;
/// `GPU_IS_LOST` if that GPU is lost.
///
/// # Safety
/// `device` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut ffi::Device,
) -> Ret {
    state::call("nvmlDeviceGetHandleByIndex_v2", |s, now| {
        let g = s
            .present(now)
            .nth(index as usize)
            .ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
        if s.scenario.gpus[g].lost(now) {
            return Err(ffi::ERROR_GPU_IS_LOST);
        }
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(device, Dev::Gpu(g).handle()) }
    })
}

/// `nvmlDeviceGetHandleByUUID`: a present GPU or one of its MIG devices.
///
/// # Safety
/// `uuid` must be null or a NUL-terminated string; `device` null or valid for
/// writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut ffi::Device,
) -> Ret {
    state::call("nvmlDeviceGetHandleByUUID", |s, now| {
        if uuid.is_null() {
            return Err(ffi::ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: not null, and NUL-terminated by NVML's contract.
        let wanted = unsafe { CStr::from_ptr(uuid) }.to_bytes();
        let mut found = None;
        for g in s.present(now) {
            let gpu = &s.scenario.gpus[g];
            if gpu.uuid.as_bytes() == wanted {
                found = Some(Dev::Gpu(g));
            }
            let instances = gpu.mig.as_ref().map_or(&[][..], |m| &m.instances[..]);
            if let Some(m) = instances.iter().position(|m| m.uuid.as_bytes() == wanted) {
                found = Some(Dev::Mig(g, m));
            }
        }
        let dev = found.ok_or(ffi::ERROR_NOT_FOUND)?;
        if s.gpu(dev).lost(now) {
            return Err(ffi::ERROR_GPU_IS_LOST);
        }
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(device, dev.handle()) }
    })
}

/// `nvmlDeviceGetIndex`: the GPU's position among the GPUs present now.
///
/// # Safety
/// `index` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: ffi::Device, index: *mut c_uint) -> Ret {
    device_call("nvmlDeviceGetIndex", device, |s, dev, now| {
        let g = dev.whole_gpu()?;
        let position = s
            .present(now)
            .position(|p| p == g)
            .ok_or(ffi::ERROR_GPU_IS_LOST)?;
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(index, position as c_uint) }
    })
}

/// `nvmlDeviceGetUUID`: the GPU's or MIG device's `uuid`.
///
/// # Safety
/// `uuid` must be null or valid for writing `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: ffi::Device,
    uuid: *mut c_char,
    length: c_uint,
) -> Ret {
    device_call("nvmlDeviceGetUUID", device, |s, dev, _| {
        let text = match s.mig(dev) {
            Some(m) => &m.uuid,
            None => &s.gpu(dev).uuid,
        };
        // SAFETY: the caller passes a buffer of `length` bytes (NVML's contract).
        unsafe { put_str(uuid, length, text) }
    })
}

/// `nvmlDeviceGetName`: the GPU's `name`; a MIG device's `name`, by default
/// its parent's name followed by ` MIG`.
///
/// # Safety
/// `name` must be null or valid for writing `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: ffi::Device,
    name: *mut c_char,
    length: c_uint,
) -> Ret {
    device_call("nvmlDeviceGetName", device, |s, dev, _| {
        let text = match s.mig(dev) {
            Some(m) => m
                .name
                .clone()
                .unwrap_or_else(|| format!("{} MIG", s.gpu(dev).name)),
            None => s.gpu(dev).name.clone(),
        };
        // SAFETY: the caller passes a buffer of `length` bytes (NVML's contract).
        unsafe { put_str(name, length, &text) }
    })
}

/// `nvmlDeviceGetPciInfo_v3`: from `pci_bus_id`, `pci_device_id`,
/// `pci_subsystem_id`.
///
/// # Safety
/// `pci` must be null or valid for writing an `nvmlPciInfo_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(device: ffi::Device, pci: *mut PciInfo) -> Ret {
    device_call("nvmlDeviceGetPciInfo_v3", device, |s, dev, _| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let address = parse_pci_bus_id(&gpu.pci_bus_id).ok_or(ffi::ERROR_UNKNOWN)?;
        let mut info = PciInfo {
            bus_id_legacy: [0; 16],
            domain: address.domain,
            bus: address.bus,
            device: address.device,
            pci_device_id: gpu.pci_device_id,
            pci_sub_system_id: gpu.pci_subsystem_id,
            bus_id: [0; 32],
        };
        fill_array(&mut info.bus_id, &gpu.pci_bus_id);
        let legacy = format!(
            "{:04x}:{}",
            address.domain,
            gpu.pci_bus_id.split_once(':').map_or("", |(_, rest)| rest)
        );
        fill_array(&mut info.bus_id_legacy, &legacy);
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(pci, info) }
    })
}

/// `nvmlDeviceGetUtilizationRates`: the series' `util_gpu`/`util_mem` now;
/// `NOT_SUPPORTED` on a GPU in MIG mode, as on real GPUs.
///
/// # Safety
/// `utilization` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: ffi::Device,
    utilization: *mut ffi::Utilization,
) -> Ret {
    device_call("nvmlDeviceGetUtilizationRates", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        if gpu.mig.is_some() {
            return Err(ffi::ERROR_NOT_SUPPORTED);
        }
        let p = gpu.point(now);
        let value = ffi::Utilization {
            gpu: p.util_gpu,
            memory: p.util_mem,
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(utilization, value) }
    })
}

/// (total, reserved, used) bytes of a GPU now or of a MIG device.
fn memory(s: &state::Session, dev: Dev, now: f64) -> (u64, u64, u64) {
    match s.mig(dev) {
        Some(m) => (m.memory_total_bytes, 0, m.memory_used_bytes),
        None => {
            let g = s.gpu(dev);
            (
                g.memory_total_bytes,
                g.memory_reserved_bytes,
                g.point(now).memory_used_bytes,
            )
        }
    }
}

/// `nvmlDeviceGetMemoryInfo` (v1): total, free, used.
///
/// # Safety
/// `memory` must be null or valid for writing an `nvmlMemory_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: ffi::Device,
    memory_out: *mut ffi::Memory,
) -> Ret {
    device_call("nvmlDeviceGetMemoryInfo", device, |s, dev, now| {
        let (total, reserved, used) = memory(s, dev, now);
        let value = ffi::Memory {
            total,
            free: total.saturating_sub(used + reserved),
            used,
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(memory_out, value) }
    })
}

/// `nvmlDeviceGetMemoryInfo_v2`: checks the caller's struct version, as NVML
/// does (`ARGUMENT_VERSION_MISMATCH`); free = total - reserved - used.
///
/// # Safety
/// `memory` must be null or valid for reading and writing an `nvmlMemory_v2_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: ffi::Device,
    memory_out: *mut ffi::MemoryV2,
) -> Ret {
    device_call("nvmlDeviceGetMemoryInfo_v2", device, |s, dev, now| {
        if memory_out.is_null() {
            return Err(ffi::ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: not null, and valid for reads by NVML's contract.
        let version = unsafe { (*memory_out).version };
        if version != ffi::MEMORY_V2_VERSION {
            return Err(ffi::ERROR_ARGUMENT_VERSION_MISMATCH);
        }
        let (total, reserved, used) = memory(s, dev, now);
        let value = ffi::MemoryV2 {
            version,
            total,
            reserved,
            free: total.saturating_sub(used + reserved),
            used,
        };
        // SAFETY: NVML's contract: a valid out-pointer (checked not null above).
        unsafe { put(memory_out, value) }
    })
}

/// Defines an exported `fn(device, *mut c_uint) -> Ret` that answers one
/// value of a whole GPU (`NOT_SUPPORTED` on a MIG device).
macro_rules! gpu_u32 {
    ($(#[$doc:meta])* $name:ident, |$gpu:ident, $now:ident| $value:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The out-pointer must be null or valid for writing.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(device: ffi::Device, out: *mut c_uint) -> Ret {
            device_call(stringify!($name), device, |s, dev, $now| {
                let $gpu = &s.scenario.gpus[dev.whole_gpu()?];
                let value: c_uint = $value;
                // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
                unsafe { put(out, value) }
            })
        }
    };
}

pub(crate) use gpu_u32;

gpu_u32!(
    /// `nvmlDeviceGetPowerUsage`: the series' `power_mw` now (milliwatts).
    nvmlDeviceGetPowerUsage,
    |gpu, now| gpu.point(now).power_mw
);
gpu_u32!(
    /// `nvmlDeviceGetEnforcedPowerLimit`: `power_limit_mw`.
    nvmlDeviceGetEnforcedPowerLimit,
    |gpu, _now| gpu.power_limit_mw
);
gpu_u32!(
    /// `nvmlDeviceGetPowerManagementLimit`: `power_limit_mw`.
    nvmlDeviceGetPowerManagementLimit,
    |gpu, _now| gpu.power_limit_mw
);
gpu_u32!(
    /// `nvmlDeviceGetPersistenceMode`: `persistence_mode` as an `nvmlEnableState_t`.
    nvmlDeviceGetPersistenceMode,
    |gpu, _now| if gpu.persistence_mode {
        ffi::FEATURE_ENABLED
    } else {
        ffi::FEATURE_DISABLED
    }
);

/// `nvmlDeviceGetTemperature`: the series' `temp_c` for `NVML_TEMPERATURE_GPU`;
/// other sensors are `INVALID_ARGUMENT`.
///
/// # Safety
/// `temp` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: ffi::Device,
    sensor: c_uint,
    temp: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetTemperature", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        if sensor != ffi::TEMPERATURE_GPU {
            return Err(ffi::ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(temp, gpu.point(now).temp_c) }
    })
}

/// `nvmlDeviceGetClockInfo`: the series' `sm_clock_mhz` for the graphics and
/// SM clocks; memory and video clocks are `NOT_SUPPORTED`.
///
/// # Safety
/// `clock` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: ffi::Device,
    clock_type: c_uint,
    clock: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetClockInfo", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        match clock_type {
            ffi::CLOCK_GRAPHICS | ffi::CLOCK_SM => {
                // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
                unsafe { put(clock, gpu.point(now).sm_clock_mhz) }
            }
            t if t <= ffi::CLOCK_VIDEO => Err(ffi::ERROR_NOT_SUPPORTED),
            _ => Err(ffi::ERROR_INVALID_ARGUMENT),
        }
    })
}
