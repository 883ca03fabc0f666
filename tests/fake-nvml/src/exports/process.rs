//! Compute processes and per-process utilization.
#![allow(non_snake_case)]

use std::ffi::{c_uint, c_ulonglong};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ffi::{self, ProcessInfo, ProcessUtilizationSample, Ret};
use crate::scenario::Process;
use crate::state::{Dev, Session, device_call, put};

/// The processes listed on `dev` at `now`, with their MIG instance ids.
///
/// A whole GPU lists its own processes and then, as NVML does on a MIG-enabled
/// GPU, every MIG instance's processes; a MIG device lists its own.
fn listed(s: &Session, dev: Dev, now: f64) -> Vec<(&Process, u32, u32)> {
    let none = ffi::VALUE_NOT_AVAILABLE_U32;
    let gpu = s.gpu(dev);
    let instances = gpu.mig.as_ref().map_or(&[][..], |m| &m.instances[..]);
    let mut out = Vec::new();
    if let Dev::Gpu(_) = dev {
        out.extend(gpu.processes.iter().map(|p| (p, none, none)));
    }
    for (k, m) in instances.iter().enumerate() {
        if matches!(dev, Dev::Gpu(_)) || dev == Dev::Mig(dev.gpu(), k) {
            let ids = (m.gpu_instance_id(k), m.compute_instance_id);
            out.extend(m.processes.iter().map(|p| (p, ids.0, ids.1)));
        }
    }
    out.retain(|(p, ..)| p.active(now));
    out
}

/// Copies `items` to the caller's array of `*count` entries with NVML's
/// two-call protocol: a null array or one too small sets `*count` to what is
/// needed and returns `INSUFFICIENT_SIZE` (`SUCCESS` when nothing is needed).
///
/// # Safety
/// `count` must be null or valid for reads and writes; `array` null or valid
/// for writing `*count` entries.
unsafe fn two_call<T: Copy>(items: &[T], count: *mut c_uint, array: *mut T) -> Result<(), Ret> {
    if count.is_null() {
        return Err(ffi::ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: not null, and valid for reads by the caller's contract.
    let room = unsafe { *count } as usize;
    // SAFETY: as above, valid for writes.
    unsafe { *count = items.len() as c_uint };
    if items.is_empty() {
        return Ok(());
    }
    if array.is_null() || room < items.len() {
        return Err(ffi::ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: `array` holds `room >= items.len()` entries (caller's contract), and
    // `items` is our own memory, so the regions do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), array, items.len()) };
    Ok(())
}

/// `nvmlDeviceGetComputeRunningProcesses_v3`: the scenario's processes with
/// `from <= now < until`, with the two-call protocol (`INSUFFICIENT_SIZE` and
/// the count for a null or small array).
///
/// # Safety
/// `info_count` must be valid for reads and writes; `infos` null or valid
/// for writing `*info_count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: ffi::Device,
    info_count: *mut c_uint,
    infos: *mut ProcessInfo,
) -> Ret {
    device_call(
        "nvmlDeviceGetComputeRunningProcesses_v3",
        device,
        |s, dev, now| {
            let items: Vec<ProcessInfo> = listed(s, dev, now)
                .into_iter()
                .map(|(p, gi, ci)| ProcessInfo {
                    pid: p.pid,
                    used_gpu_memory: p.used_memory_bytes.unwrap_or(ffi::VALUE_NOT_AVAILABLE_U64),
                    gpu_instance_id: gi,
                    compute_instance_id: ci,
                })
                .collect();
            // SAFETY: the pointers satisfy `two_call`'s contract by this function's.
            unsafe { two_call(&items, info_count, infos) }
        },
    )
}

/// `nvmlDeviceGetProcessUtilization`: one sample stamped "now" (wall clock,
/// microseconds) for each listed process that has `sm_util` or `mem_util`,
/// if now is after `last_seen_time_stamp`; `NOT_FOUND` when there is no
/// sample, as NVML says. Two-call protocol as for the process list.
/// `NOT_SUPPORTED` on MIG devices and on a GPU in MIG mode, as on real GPUs.
///
/// # Safety
/// `samples_count` must be valid for reads and writes; `utilization` null or
/// valid for writing `*samples_count` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    device: ffi::Device,
    utilization: *mut ProcessUtilizationSample,
    samples_count: *mut c_uint,
    last_seen_time_stamp: c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetProcessUtilization", device, |s, dev, now| {
        if s.scenario.gpus[dev.whole_gpu()?].mig.is_some() {
            return Err(ffi::ERROR_NOT_SUPPORTED);
        }
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let items: Vec<ProcessUtilizationSample> = if stamp > last_seen_time_stamp {
            listed(s, dev, now)
                .into_iter()
                .filter(|(p, ..)| p.sampled())
                .map(|(p, ..)| ProcessUtilizationSample {
                    pid: p.pid,
                    time_stamp: stamp,
                    sm_util: p.sm_util.unwrap_or(0),
                    mem_util: p.mem_util.unwrap_or(0),
                    enc_util: p.enc_util,
                    dec_util: p.dec_util,
                })
                .collect()
        } else {
            Vec::new()
        };
        if items.is_empty() {
            // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
            unsafe { put(samples_count, 0) }?;
            return Err(ffi::ERROR_NOT_FOUND);
        }
        // SAFETY: the pointers satisfy `two_call`'s contract by this function's.
        unsafe { two_call(&items, samples_count, utilization) }
    })
}
