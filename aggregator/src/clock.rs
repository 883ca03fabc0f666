//! The aggregator's wall clock: when an incident was stored, when
//! retention cuts.

/// Current time, Unix nanoseconds.
pub(crate) fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
