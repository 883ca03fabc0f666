//! Any bytes as a sequence of `/dev/kmsg` records (split at newlines that
//! start a new record): the record parser, the OOM-report assembler and
//! the XID parser must never panic.
#![no_main]

use gpuscope_agent::collect::kmsg::{OomAssembler, parse_record};
use gpuscope_agent::collect::xid::parse_xid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut assembler = OomAssembler::default();
    for record in data.split(|&b| b == 0) {
        if let Ok(rec) = parse_record(record) {
            let _ = parse_xid(&rec);
            let _ = assembler.push(&rec);
        }
    }
    // The report held for a group kill that might follow.
    let _ = assembler.flush();
});
