//! A fake `libnvidia-ml.so`: the NVML C functions gpuscope's agent calls
//! through `nvml-wrapper`, answering from a scenario file (GPUs, values over
//! time, processes, XIDs, a GPU lost, calls that fail or hang).
//!
//! Load it with `Nvml::builder().lib_path(".../libgpuscope_fake_nvml.so")`.
//! The scenario is read at `nvmlInit` from the file named by
//! `GPUSCOPE_FAKE_NVML_SCENARIO`, or is the built-in one idle H100 when that
//! is unset. Everything it reports is simulated; `gpuscope_fake_nvml_info`
//! lets a caller tell. The format and the behaviour are in `README.md`.

pub mod exports;
pub mod ffi;
pub mod scenario;
pub mod state;
