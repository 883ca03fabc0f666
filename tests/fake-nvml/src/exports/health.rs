//! Health counters: clock event (throttle) reasons, maximum clocks, ECC
//! errors, row remapping (through `nvmlDeviceGetFieldValues`, as the real
//! driver exposes it), PCIe link state and replays, temperature thresholds.
//! Values come from the GPU's series (`throttle_reasons`, `ecc_*`,
//! `remapped_*`, `remap_*`, `pcie_*`, `retired_*`) and its fixed keys; a
//! MIG device answers `NOT_SUPPORTED`.
#![allow(non_snake_case)]

use std::ffi::{c_int, c_uint, c_ulonglong};
use std::time::{SystemTime, UNIX_EPOCH};

use super::device::gpu_u32;
use crate::ffi::{self, FieldValue, Ret};
use crate::state::{device_call, put};

/// `nvmlDeviceGetCurrentClocksThrottleReasons`: the series' `throttle_reasons`
/// as NVML's bit mask.
///
/// # Safety
/// `reasons` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: ffi::Device,
    reasons: *mut c_ulonglong,
) -> Ret {
    device_call(
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        device,
        |s, dev, now| {
            let gpu = &s.scenario.gpus[dev.whole_gpu()?];
            // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
            unsafe { put(reasons, gpu.point(now).throttle_mask) }
        },
    )
}

/// `nvmlDeviceGetMaxClockInfo`: `sm_clock_max_mhz` for the graphics and SM
/// clocks; memory and video clocks are `NOT_SUPPORTED`.
///
/// # Safety
/// `clock` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    device: ffi::Device,
    clock_type: c_uint,
    clock: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetMaxClockInfo", device, |s, dev, _| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        match clock_type {
            ffi::CLOCK_GRAPHICS | ffi::CLOCK_SM => {
                // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
                unsafe { put(clock, gpu.sm_clock_max_mhz) }
            }
            t if t <= ffi::CLOCK_VIDEO => Err(ffi::ERROR_NOT_SUPPORTED),
            _ => Err(ffi::ERROR_INVALID_ARGUMENT),
        }
    })
}

/// `nvmlDeviceGetTotalEccErrors`: volatile counters from the series
/// (`ecc_corrected`, `ecc_uncorrected`); aggregate ones add
/// `ecc_corrected_before` / `ecc_uncorrected_before`.
///
/// # Safety
/// `count` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: ffi::Device,
    error_type: c_uint,
    counter_type: c_uint,
    count: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetTotalEccErrors", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let p = gpu.point(now);
        let (volatile, before) = match error_type {
            ffi::MEMORY_ERROR_CORRECTED => (p.ecc_corrected, gpu.ecc_corrected_before),
            ffi::MEMORY_ERROR_UNCORRECTED => (p.ecc_uncorrected, gpu.ecc_uncorrected_before),
            _ => return Err(ffi::ERROR_INVALID_ARGUMENT),
        };
        let value = match counter_type {
            ffi::VOLATILE_ECC => volatile,
            ffi::AGGREGATE_ECC => before + volatile,
            _ => return Err(ffi::ERROR_INVALID_ARGUMENT),
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(count, value) }
    })
}

/// `nvmlDeviceGetFieldValues`: the row-remapping fields
/// (`NVML_FI_DEV_REMAPPED_COR`, `_UNC`, `_PENDING`, `_FAILURE`) from the
/// series; every other field gets its own `NOT_SUPPORTED`, as on a GPU
/// without it.
///
/// # Safety
/// `values` must be null or valid for reading and writing `count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: ffi::Device,
    count: c_int,
    values: *mut FieldValue,
) -> Ret {
    device_call("nvmlDeviceGetFieldValues", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let Ok(count) = usize::try_from(count) else {
            return Err(ffi::ERROR_INVALID_ARGUMENT);
        };
        if values.is_null() {
            return Err(ffi::ERROR_INVALID_ARGUMENT);
        }
        // SAFETY: not null, and valid for `count` entries by NVML's contract;
        // nothing else aliases the caller's array during the call.
        let values = unsafe { std::slice::from_raw_parts_mut(values, count) };
        let p = gpu.point(now);
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        for v in values {
            let value = match v.field_id {
                ffi::FI_DEV_REMAPPED_COR => Some(p.remapped_corrected),
                ffi::FI_DEV_REMAPPED_UNC => Some(p.remapped_uncorrected),
                ffi::FI_DEV_REMAPPED_PENDING => Some(u32::from(p.remap_pending)),
                ffi::FI_DEV_REMAPPED_FAILURE => Some(u32::from(p.remap_failed)),
                _ => None,
            };
            v.timestamp = micros;
            v.latency_usec = 0;
            v.value_type = ffi::VALUE_TYPE_UNSIGNED_INT;
            v.nvml_return = if value.is_some() {
                ffi::SUCCESS
            } else {
                ffi::ERROR_NOT_SUPPORTED
            };
            v.value = c_ulonglong::from(value.unwrap_or(0));
        }
        Ok(())
    })
}

/// `nvmlDeviceGetTemperatureThreshold`: `temp_shutdown_c` and
/// `temp_slowdown_c`; other thresholds are `NOT_SUPPORTED`.
///
/// # Safety
/// `temp` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperatureThreshold(
    device: ffi::Device,
    threshold: c_uint,
    temp: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetTemperatureThreshold", device, |s, dev, _| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let value = match threshold {
            ffi::TEMPERATURE_THRESHOLD_SHUTDOWN => gpu.temp_shutdown_c,
            ffi::TEMPERATURE_THRESHOLD_SLOWDOWN => gpu.temp_slowdown_c,
            _ => return Err(ffi::ERROR_NOT_SUPPORTED),
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(temp, value) }
    })
}

gpu_u32!(
    /// `nvmlDeviceGetCurrPcieLinkGeneration`: the series' `pcie_gen`.
    nvmlDeviceGetCurrPcieLinkGeneration,
    |gpu, now| gpu.point(now).pcie_gen
);
gpu_u32!(
    /// `nvmlDeviceGetMaxPcieLinkGeneration`: `pcie_link_gen_max`.
    nvmlDeviceGetMaxPcieLinkGeneration,
    |gpu, _now| gpu.pcie_link_gen_max
);
gpu_u32!(
    /// `nvmlDeviceGetCurrPcieLinkWidth`: the series' `pcie_width`.
    nvmlDeviceGetCurrPcieLinkWidth,
    |gpu, now| gpu.point(now).pcie_width
);
gpu_u32!(
    /// `nvmlDeviceGetMaxPcieLinkWidth`: `pcie_link_width_max`.
    nvmlDeviceGetMaxPcieLinkWidth,
    |gpu, _now| gpu.pcie_link_width_max
);
gpu_u32!(
    /// `nvmlDeviceGetPcieReplayCounter`: the series' `pcie_replays`.
    nvmlDeviceGetPcieReplayCounter,
    |gpu, now| gpu.point(now).pcie_replays
);

/// The retired-page count of `cause` now; `NOT_SUPPORTED` unless the GPU
/// has `page_retirement`.
fn retired(gpu: &crate::scenario::Gpu, cause: c_uint, now: f64) -> Result<u32, Ret> {
    if !gpu.page_retirement {
        return Err(ffi::ERROR_NOT_SUPPORTED);
    }
    let p = gpu.point(now);
    match cause {
        ffi::RETIREMENT_CAUSE_SBE => Ok(p.retired_sbe),
        ffi::RETIREMENT_CAUSE_DBE => Ok(p.retired_dbe),
        _ => Err(ffi::ERROR_INVALID_ARGUMENT),
    }
}

/// Writes `have` retired pages (addresses from 0x1000, timestamps now)
/// with NVML's count protocol: a `count` below `have` gets
/// `INSUFFICIENT_SIZE` and the count needed.
///
/// # Safety
/// `count` must be null or valid for reading and writing; `addresses` and
/// `timestamps` null or valid for `*count` entries.
unsafe fn put_pages(
    have: u32,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> Result<(), Ret> {
    if count.is_null() {
        return Err(ffi::ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: not null, valid by the caller's contract.
    let room = unsafe { count.read() };
    // SAFETY: as above.
    unsafe { count.write(have) };
    if room < have {
        return Err(ffi::ERROR_INSUFFICIENT_SIZE);
    }
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    for k in 0..have as usize {
        if !addresses.is_null() {
            // SAFETY: `k < have <= room`, and the array holds `room` entries.
            unsafe { addresses.add(k).write(0x1000 * (k as u64 + 1)) };
        }
        if !timestamps.is_null() {
            // SAFETY: as above.
            unsafe { timestamps.add(k).write(micros) };
        }
    }
    Ok(())
}

/// `nvmlDeviceGetRetiredPages`: the series' `retired_sbe` / `retired_dbe`
/// pages of `cause`.
///
/// # Safety
/// `count` must be null or valid for reading and writing; `addresses` null
/// or valid for `*count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages(
    device: ffi::Device,
    cause: c_uint,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetRetiredPages", device, |s, dev, now| {
        let have = retired(&s.scenario.gpus[dev.whole_gpu()?], cause, now)?;
        // SAFETY: the pointers come from the caller under NVML's contract.
        unsafe { put_pages(have, count, addresses, std::ptr::null_mut()) }
    })
}

/// `nvmlDeviceGetRetiredPages_v2`: as `nvmlDeviceGetRetiredPages`, with
/// timestamps.
///
/// # Safety
/// `count` must be null or valid for reading and writing; `addresses` and
/// `timestamps` null or valid for `*count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages_v2(
    device: ffi::Device,
    cause: c_uint,
    count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetRetiredPages_v2", device, |s, dev, now| {
        let have = retired(&s.scenario.gpus[dev.whole_gpu()?], cause, now)?;
        // SAFETY: the pointers come from the caller under NVML's contract.
        unsafe { put_pages(have, count, addresses, timestamps) }
    })
}

/// `nvmlDeviceGetRetiredPagesPendingStatus`: the series' `retired_pending`;
/// `NOT_SUPPORTED` without `page_retirement`.
///
/// # Safety
/// `pending` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPagesPendingStatus(
    device: ffi::Device,
    pending: *mut c_uint,
) -> Ret {
    device_call(
        "nvmlDeviceGetRetiredPagesPendingStatus",
        device,
        |s, dev, now| {
            let gpu = &s.scenario.gpus[dev.whole_gpu()?];
            if !gpu.page_retirement {
                return Err(ffi::ERROR_NOT_SUPPORTED);
            }
            let value = if gpu.point(now).retired_pending {
                ffi::FEATURE_ENABLED
            } else {
                ffi::FEATURE_DISABLED
            };
            // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
            unsafe { put(pending, value) }
        },
    )
}
