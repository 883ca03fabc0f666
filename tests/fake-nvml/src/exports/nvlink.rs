//! NVLink: each link's state and its data-link error counters, from the
//! GPU's `nvlinks` key (how many links it has) and its series
//! (`nvlink_down`, `nvlink_crc_flit`, `nvlink_crc_data`, `nvlink_replay`,
//! `nvlink_recovery`). A GPU without NVLink (`nvlinks` 0) answers
//! `NOT_SUPPORTED`, as a PCIe-only board does; a link index the GPU lacks
//! answers `INVALID_ARGUMENT`, as NVML does; a MIG device answers
//! `NOT_SUPPORTED`.
#![allow(non_snake_case)]

use std::ffi::{c_uint, c_ulonglong};

use crate::ffi::{self, Ret};
use crate::scenario::Gpu;
use crate::state::{device_call, put};

/// The link's index if `gpu` has it; `NOT_SUPPORTED` without NVLink,
/// `INVALID_ARGUMENT` past its last link.
fn link_of(gpu: &Gpu, link: c_uint) -> Result<usize, Ret> {
    if gpu.nvlinks == 0 {
        Err(ffi::ERROR_NOT_SUPPORTED)
    } else if link < gpu.nvlinks {
        Ok(link as usize)
    } else {
        Err(ffi::ERROR_INVALID_ARGUMENT)
    }
}

/// `nvmlDeviceGetNvLinkState`: `NVML_FEATURE_ENABLED` unless the series
/// lists the link in `nvlink_down`.
///
/// # Safety
/// `is_active` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    device: ffi::Device,
    link: c_uint,
    is_active: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetNvLinkState", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let l = link_of(gpu, link)?;
        let down = gpu.point(now).nvlink_down_mask & (1 << l) != 0;
        let state = if down {
            ffi::FEATURE_DISABLED
        } else {
            ffi::FEATURE_ENABLED
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(is_active, state) }
    })
}

/// `nvmlDeviceGetNvLinkErrorCounter`: the series' per-link counter
/// (`NVML_NVLINK_ERROR_DL_REPLAY`, `_RECOVERY`, `_CRC_FLIT`, `_CRC_DATA`;
/// any other counter is `NOT_SUPPORTED`, as `DL_ECC_DATA` is before
/// Ampere).
///
/// # Safety
/// `value` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkErrorCounter(
    device: ffi::Device,
    link: c_uint,
    counter: c_uint,
    value: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetNvLinkErrorCounter", device, |s, dev, now| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        let l = link_of(gpu, link)?;
        let p = gpu.point(now);
        let per_link = match counter {
            ffi::NVLINK_ERROR_DL_REPLAY => &p.nvlink_replay,
            ffi::NVLINK_ERROR_DL_RECOVERY => &p.nvlink_recovery,
            ffi::NVLINK_ERROR_DL_CRC_FLIT => &p.nvlink_crc_flit,
            ffi::NVLINK_ERROR_DL_CRC_DATA => &p.nvlink_crc_data,
            _ => return Err(ffi::ERROR_NOT_SUPPORTED),
        };
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(value, per_link[l]) }
    })
}
