//! The bundle reader over arbitrary files: any bytes as a bundle's files
//! (split at NUL bytes; each file's first byte picks its name among those
//! the reader treats differently) must read into evidence or fail with an
//! error naming the file, never panic.
#![no_main]

use std::path::Path;

use gpuscope_diagnose::bundle::Bundle;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 11] = [
    "pod.json",
    "pods.json",
    "events.json",
    "nodes.json",
    "pvcs.json",
    "meta.json",
    "agent.jsonl",
    "agent-node-a.jsonl",
    "logs/c.log",
    "logs/c.current.log",
    "logs/nested/x.log",
];

fuzz_target!(|data: &[u8]| {
    let files: Vec<(String, Vec<u8>)> = data
        .split(|&b| b == 0)
        .filter_map(|file| {
            let (&pick, contents) = file.split_first()?;
            Some((
                NAMES[pick as usize % NAMES.len()].to_owned(),
                contents.to_vec(),
            ))
        })
        .collect();
    if let Ok(bundle) = Bundle::from_files(Path::new("fuzz"), files) {
        // What was read can be written back.
        let _ = bundle.to_files();
    }
});
