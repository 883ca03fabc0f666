//! Initialization, shutdown, error strings and system queries.
#![allow(non_snake_case)]

use std::ffi::{CStr, c_char, c_uint};

use crate::ffi::{self, Ret};
use crate::scenario;
use crate::state::{self, Session, put_str};

/// What `gpuscope_fake_nvml_info` returns.
const INFO: &CStr = match CStr::from_bytes_with_nul(
    concat!(
        "gpuscope-fake-nvml ",
        env!("CARGO_PKG_VERSION"),
        ": simulated NVML driven by a scenario file\0"
    )
    .as_bytes(),
) {
    Ok(info) => info,
    Err(_) => panic!("INFO is NUL-terminated"),
};

/// Shared by the three init entry points: the first call loads the scenario
/// (from `GPUSCOPE_FAKE_NVML_SCENARIO`, else the built-in one) and starts its
/// clock; later calls only count, as NVML's init is reference-counted.
fn init(function: &str) -> Ret {
    {
        let mut guard = state::lock();
        match guard.as_mut() {
            Some(session) => session.refs += 1,
            None => match scenario::load_from_env() {
                Ok(scenario) => *guard = Some(Session::new(scenario)),
                Err(message) => {
                    eprintln!("gpuscope-fake-nvml: {message}");
                    return ffi::ERROR_UNKNOWN;
                }
            },
        }
    }
    match state::enter(function, None) {
        Ok(_) => ffi::SUCCESS,
        Err(code) => {
            release();
            code
        }
    }
}

/// Drops one reference; the last one ends the session and wakes any waiter.
fn release() {
    let mut guard = state::lock();
    if let Some(session) = guard.as_mut() {
        session.refs = session.refs.saturating_sub(1);
        if session.refs == 0 {
            *guard = None;
            state::WAKE.notify_all();
        }
    }
}

/// `nvmlInit` (v1): same as `nvmlInit_v2`.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit() -> Ret {
    init("nvmlInit")
}

/// `nvmlInit_v2`: the first call loads the scenario and starts its clock;
/// later calls only count (init is reference-counted).
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Ret {
    init("nvmlInit_v2")
}

/// `nvmlInitWithFlags`: the flags are accepted and ignored.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> Ret {
    init("nvmlInitWithFlags")
}

/// `nvmlShutdown`: the last call forgets the scenario and its event sets.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Ret {
    match state::enter("nvmlShutdown", None) {
        Ok((guard, _)) => {
            drop(guard);
            release();
            ffi::SUCCESS
        }
        Err(code) => code,
    }
}

/// `nvmlErrorString`: a static, NUL-terminated description of `result`.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: Ret) -> *const c_char {
    ffi::error_string(result).as_ptr()
}

/// Not part of NVML: identifies this library as the simulated one, so that
/// a caller can label its output as simulated (`dlsym` fails on a real NVML).
#[unsafe(no_mangle)]
pub extern "C" fn gpuscope_fake_nvml_info() -> *const c_char {
    INFO.as_ptr()
}

/// `nvmlSystemGetDriverVersion`: the scenario's `driver_version` followed
/// by ` (simulated)`, so every reading an agent makes through the fake is
/// labelled as such without any other channel.
///
/// # Safety
/// `version` must be null or valid for writing `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> Ret {
    state::call("nvmlSystemGetDriverVersion", |s, _| {
        // SAFETY: the caller passes a buffer of `length` bytes (NVML's contract).
        unsafe {
            put_str(
                version,
                length,
                &format!("{} (simulated)", s.scenario.driver_version),
            )
        }
    })
}

/// `nvmlSystemGetNVMLVersion`: `12.` followed by the driver version.
///
/// # Safety
/// `version` must be null or valid for writing `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> Ret {
    state::call("nvmlSystemGetNVMLVersion", |s, _| {
        let text = format!("12.{}", s.scenario.driver_version);
        // SAFETY: the caller passes a buffer of `length` bytes (NVML's contract).
        unsafe { put_str(version, length, &text) }
    })
}
