//! GPUs: NVML readings, the kubelet's device assignments, and which
//! container each GPU process belongs to.

pub mod attribute;
pub mod nvml;
pub mod pod_resources;
