//! Multi-Instance GPU: mode, MIG device handles and their parent.
#![allow(non_snake_case)]

use std::ffi::c_uint;

use crate::ffi::{self, Ret};
use crate::state::{Dev, device_call, put};

/// `nvmlDeviceGetMigMode`: enabled (current and pending) when the GPU has
/// `mig`, disabled otherwise; `NOT_SUPPORTED` when `mig_capable` is false.
///
/// # Safety
/// `current_mode` and `pending_mode` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: ffi::Device,
    current_mode: *mut c_uint,
    pending_mode: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetMigMode", device, |s, dev, _| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        if !gpu.mig_capable {
            return Err(ffi::ERROR_NOT_SUPPORTED);
        }
        let mode = c_uint::from(gpu.mig.is_some());
        // SAFETY: NVML's contract: valid out-pointers (or null, rejected by `put`).
        unsafe {
            put(current_mode, mode)?;
            put(pending_mode, mode)
        }
    })
}

/// `nvmlDeviceGetMaxMigDeviceCount`: `mig.max_devices`, by default the number
/// of instances; 0 when MIG is disabled.
///
/// # Safety
/// `count` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: ffi::Device,
    count: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceGetMaxMigDeviceCount", device, |s, dev, _| {
        let gpu = &s.scenario.gpus[dev.whole_gpu()?];
        if !gpu.mig_capable {
            return Err(ffi::ERROR_NOT_SUPPORTED);
        }
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(count, gpu.max_mig_devices()) }
    })
}

/// `nvmlDeviceGetMigDeviceHandleByIndex`: the handle of instance `index`;
/// `NOT_FOUND` for an index below the maximum with no instance,
/// `INVALID_ARGUMENT` past it (or when MIG is disabled).
///
/// # Safety
/// `mig_device` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: ffi::Device,
    index: c_uint,
    mig_device: *mut ffi::Device,
) -> Ret {
    device_call(
        "nvmlDeviceGetMigDeviceHandleByIndex",
        device,
        |s, dev, _| {
            let g = dev.whole_gpu()?;
            let gpu = &s.scenario.gpus[g];
            if index >= gpu.max_mig_devices() {
                return Err(ffi::ERROR_INVALID_ARGUMENT);
            }
            let instances = gpu.mig.as_ref().map_or(0, |m| m.instances.len());
            if index as usize >= instances {
                return Err(ffi::ERROR_NOT_FOUND);
            }
            // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
            unsafe { put(mig_device, Dev::Mig(g, index as usize).handle()) }
        },
    )
}

/// `nvmlDeviceIsMigDeviceHandle`: 1 for a MIG device handle, 0 for a GPU.
///
/// # Safety
/// `is_mig_device` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceIsMigDeviceHandle(
    device: ffi::Device,
    is_mig_device: *mut c_uint,
) -> Ret {
    device_call("nvmlDeviceIsMigDeviceHandle", device, |_, dev, _| {
        let value = c_uint::from(matches!(dev, Dev::Mig(..)));
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(is_mig_device, value) }
    })
}

/// `nvmlDeviceGetDeviceHandleFromMigDeviceHandle`: a MIG device's parent GPU;
/// `INVALID_ARGUMENT` for a GPU handle.
///
/// # Safety
/// `parent` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDeviceHandleFromMigDeviceHandle(
    mig_device: ffi::Device,
    parent: *mut ffi::Device,
) -> Ret {
    device_call(
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
        mig_device,
        |_, dev, _| match dev {
            Dev::Gpu(_) => Err(ffi::ERROR_INVALID_ARGUMENT),
            // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
            Dev::Mig(g, _) => unsafe { put(parent, Dev::Gpu(g).handle()) },
        },
    )
}
