//! `memhog MIB [STEP_MS]`: allocates and touches MIB mebibytes, one at a
//! time, then sleeps a second and exits 0. The workload of the real OOM
//! tests: run it in a memory cgroup with a smaller limit and the kernel
//! kills it. Prints `memhog pid=N` first, so a test knows its victim.

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let step_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "memhog pid={}", std::process::id());
    let _ = out.flush();
    let mut chunks = Vec::with_capacity(mib);
    for i in 0..mib {
        // A non-zero fill touches every page, so each MiB is really charged.
        chunks.push(vec![0x5au8; 1 << 20]);
        if step_ms > 0 {
            std::thread::sleep(Duration::from_millis(step_ms));
        }
        if i % 16 == 15 {
            let _ = writeln!(out, "memhog {} MiB", i + 1);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = writeln!(out, "memhog done, {} MiB held", chunks.len());
}
