//! Event sets: XID errors and lost GPUs.
#![allow(non_snake_case)]

use std::ffi::{c_uint, c_ulonglong};
use std::time::{Duration, Instant};

use crate::ffi::{self, EventData, Ret};
use crate::state::{
    self, Dev, EventSetState, MAX_EVENT_SETS, device_call, event_set_handle, event_set_slot, put,
};

/// `nvmlEventSetCreate`: a new, empty event set.
///
/// # Safety
/// `set` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetCreate(set: *mut ffi::EventSet) -> Ret {
    state::call("nvmlEventSetCreate", |s, _| {
        let slot = (0..MAX_EVENT_SETS)
            .find(|k| !s.event_sets.contains_key(k))
            .ok_or(ffi::ERROR_MEMORY)?;
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(set, event_set_handle(slot)) }?;
        s.event_sets.insert(slot, EventSetState::default());
        Ok(())
    })
}

/// `nvmlEventSetFree`: forgets the set; a thread waiting on it returns
/// `INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlEventSetFree(set: ffi::EventSet) -> Ret {
    state::call("nvmlEventSetFree", |s, _| {
        let slot = event_set_slot(set).ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
        s.event_sets
            .remove(&slot)
            .ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
        state::WAKE.notify_all();
        Ok(())
    })
}

/// `nvmlDeviceGetSupportedEventTypes`: ECC, P-state, XID and clock events
/// (only XIDs ever fire); `NOT_SUPPORTED` on a MIG device.
///
/// # Safety
/// `event_types` must be null or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: ffi::Device,
    event_types: *mut c_ulonglong,
) -> Ret {
    device_call("nvmlDeviceGetSupportedEventTypes", device, |_, dev, _| {
        dev.whole_gpu()?;
        // SAFETY: NVML's contract: a valid out-pointer (or null, rejected by `put`).
        unsafe { put(event_types, ffi::SUPPORTED_EVENTS) }
    })
}

/// `nvmlDeviceRegisterEvents`: adds the GPU to the set; `NOT_SUPPORTED` for
/// a type outside `nvmlDeviceGetSupportedEventTypes` or a MIG device.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceRegisterEvents(
    device: ffi::Device,
    event_types: c_ulonglong,
    set: ffi::EventSet,
) -> Ret {
    device_call("nvmlDeviceRegisterEvents", device, |s, dev, _| {
        let g = dev.whole_gpu()?;
        let slot = event_set_slot(set).ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
        let es = s
            .event_sets
            .get_mut(&slot)
            .ok_or(ffi::ERROR_INVALID_ARGUMENT)?;
        if event_types & !ffi::SUPPORTED_EVENTS != 0 {
            return Err(ffi::ERROR_NOT_SUPPORTED);
        }
        *es.registered.entry(g).or_default() |= event_types;
        state::WAKE.notify_all();
        Ok(())
    })
}

/// What an event set delivers next.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Due {
    /// XID `k` of GPU `g`.
    Xid(usize, usize),
    /// GPU `g` is lost.
    Lost(usize),
}

/// `nvmlEventSetWait_v2`: delivers the earliest due event of the set's GPUs,
/// waiting up to `timeout_ms` for one (`TIMEOUT` when none comes).
///
/// Each XID fires once (per `nvmlInit`), as soon as its time has come and a
/// set registered for XIDs on its GPU waits, so XIDs due before the set was
/// registered are delivered too. XIDs at or after the GPU's `lost_at` (or
/// `present_until`) never fire. A lost GPU is reported once per set, after
/// its earlier XIDs, as `GPU_IS_LOST`; the set then keeps serving its other
/// GPUs.
///
/// # Safety
/// `data` must be null or valid for writing an `nvmlEventData_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: ffi::EventSet,
    data: *mut EventData,
    timeout_ms: c_uint,
) -> Ret {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.into());
    let mut guard = match state::enter("nvmlEventSetWait_v2", None) {
        Ok((guard, _)) => guard,
        Err(code) => return code,
    };
    if data.is_null() {
        return ffi::ERROR_INVALID_ARGUMENT;
    }
    loop {
        let Some(s) = guard.as_mut() else {
            return ffi::ERROR_UNINITIALIZED;
        };
        let Some(es) = event_set_slot(set).and_then(|slot| s.event_sets.get_mut(&slot)) else {
            return ffi::ERROR_INVALID_ARGUMENT;
        };
        let now = s.start.elapsed().as_secs_f64();
        let mut best: Option<(f64, Due)> = None;
        let mut next: Option<f64> = None;
        let mut consider = |t: f64, due: Due| {
            if t <= now {
                if best.is_none_or(|b| (t, due) < b) {
                    best = Some((t, due));
                }
            } else if next.is_none_or(|n| t < n) {
                next = Some(t);
            }
        };
        for (&g, &mask) in &es.registered {
            let gpu = &s.scenario.gpus[g];
            let end = match (gpu.lost_at, gpu.present_until) {
                (Some(l), Some(u)) => Some(l.min(u)),
                (l, u) => l.or(u),
            };
            if mask & ffi::EVENT_XID_CRITICAL_ERROR != 0 {
                for (k, x) in gpu.xids.iter().enumerate() {
                    if !s.xid_delivered[g][k] && end.is_none_or(|e| x.t < e) {
                        consider(x.t, Due::Xid(g, k));
                    }
                }
            }
            if let Some(l) = gpu.lost_at
                && end == Some(l)
                && !es.lost_reported.contains(&g)
            {
                consider(l, Due::Lost(g));
            }
        }
        match best {
            Some((_, Due::Lost(g))) => {
                es.lost_reported.push(g);
                return ffi::ERROR_GPU_IS_LOST;
            }
            Some((_, Due::Xid(g, k))) => {
                s.xid_delivered[g][k] = true;
                let event = EventData {
                    device: Dev::Gpu(g).handle(),
                    event_type: ffi::EVENT_XID_CRITICAL_ERROR,
                    event_data: s.scenario.gpus[g].xids[k].xid,
                    gpu_instance_id: ffi::VALUE_NOT_AVAILABLE_U32,
                    compute_instance_id: ffi::VALUE_NOT_AVAILABLE_U32,
                };
                // SAFETY: `data` is not null (checked) and valid for writes by
                // this function's contract.
                return state::into_ret(unsafe { put(data, event) });
            }
            None => {}
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return ffi::ERROR_TIMEOUT;
        }
        let sleep = next.map_or(remaining, |n| {
            remaining.min(Duration::try_from_secs_f64((n - now).max(0.0)).unwrap_or(Duration::MAX))
        });
        guard = state::wait(guard, sleep);
    }
}
