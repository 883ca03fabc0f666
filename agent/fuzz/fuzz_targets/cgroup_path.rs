//! Any string as a cgroup path: the kubelet path parser must never panic,
//! and whatever it returns must name the path it was given.
#![no_main]

use gpuscope_agent::collect::cgroup::path::parse_kubelet_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(c) = parse_kubelet_path(s) {
            assert_eq!(c.cgroup_path, s);
        }
    }
});
