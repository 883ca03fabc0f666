//! The agent's own health, sent with every report (`NodeReport.agent`) so
//! that the aggregator can export it beside the node's samples: the
//! event queue's depth and drops, reconnects of the stream, and the
//! process's own CPU time and resident memory.
//!
//! CPU time and memory come from `/proc/self/stat` (`utime`, `stime` in
//! clock ticks, fields 14 and 15: `USER_HZ`, which the kernel fixes at 100
//! for userspace on every architecture the agent runs on) and
//! `/proc/self/status` (`VmRSS`, kB), read once per report (1 s by
//! default) into a reused buffer.

use std::io::Read;

use gpuscope_proto::v1 as pb;

use crate::ship::queue::QueueStats;

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`).
const USER_HZ: f64 = 100.0;

/// Reads the process's own usage; one per stream thread.
#[derive(Debug)]
pub struct SelfUsage {
    buf: Vec<u8>,
}

impl Default for SelfUsage {
    fn default() -> Self {
        Self::new()
    }
}

impl SelfUsage {
    /// A reader for this process.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(2048),
        }
    }

    /// The agent's health now, with the queue's counters, the stream's
    /// reconnects and the kernel-log records ignored for not being the
    /// kernel's. A `/proc` file that cannot be read leaves its figure 0.
    pub fn health(
        &mut self,
        queue: QueueStats,
        reconnects: u64,
        kmsg_not_kernel_records: u64,
    ) -> pb::AgentHealth {
        let cpu_seconds = self
            .read("/proc/self/stat")
            .and_then(cpu_ticks)
            .map_or(0.0, |t| t as f64 / USER_HZ);
        let resident_memory_bytes = self
            .read("/proc/self/status")
            .and_then(vm_rss_kb)
            .map_or(0, |kb| kb * 1024);
        pb::AgentHealth {
            queue_events: queue.unacked_events as u64,
            queue_bytes: queue.unacked_bytes,
            queue_dropped_events: queue.dropped,
            reconnects,
            cpu_seconds,
            resident_memory_bytes,
            kmsg_not_kernel_records,
        }
    }

    fn read(&mut self, path: &str) -> Option<&[u8]> {
        self.buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.buf))
            .ok()?;
        Some(&self.buf)
    }
}

/// `utime + stime` from a `/proc/PID/stat` line: the fields after the
/// command name, which is in parentheses and may contain spaces.
fn cpu_ticks(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    // After ")": state is field 3, utime 14, stime 15.
    let rest = &stat[close + 1..];
    Some(field(rest, 11)? + field(rest, 12)?)
}

/// `VmRSS:   1234 kB` of `/proc/PID/status`, in kB.
fn vm_rss_kb(status: &[u8]) -> Option<u64> {
    let line = status
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"VmRSS:"))?;
    field(&line[6..], 0)
}

/// The `i`-th (from 0) whitespace-separated number of `s`.
fn field(s: &[u8], i: usize) -> Option<u64> {
    std::str::from_utf8(
        s.split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty())
            .nth(i)?,
    )
    .ok()?
    .parse()
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = b"4242 (gpu (scope) a) S 1 4242 4242 0 -1 4194560 1500 0 0 0 123 45 0 0 20 0 9 0 1 2 3\n";
        assert_eq!(cpu_ticks(stat), Some(168));
    }

    #[test]
    fn vm_rss_is_read_in_kb() {
        assert_eq!(
            vm_rss_kb(b"Name:\tx\nVmRSS:\t   9676 kB\nVmHWM: 1 kB\n"),
            Some(9676)
        );
    }

    #[test]
    fn this_process_has_used_memory_and_reads_its_own_figures() {
        let mut u = SelfUsage::new();
        let h = u.health(QueueStats::default(), 3, 0);
        assert!(h.resident_memory_bytes > 1 << 20, "{h:?}");
        assert_eq!(h.reconnects, 3);
    }
}
