//! Any bytes as a pressure file.
#![no_main]

use gpuscope_agent::collect::parse::parse_psi;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_psi(data);
});
