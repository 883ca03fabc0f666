//! `gpuscope-agent` binary.

fn main() {}
