//! The per-container flight recorder: a bounded ring of recent memory and
//! pressure samples, so the minutes before an OOM kill can still be shown
//! after the kill (when the container's own counters are gone).
//!
//! Points are stored compactly (40 bytes: times as millisecond offsets,
//! sizes in KiB) and expire by age. The sampler feeds a container every
//! `--interval` normally and every `--fast-interval` while it is hot
//! (above 80 % of its limit, or its memory pressure rising), so the ring
//! holds at most `window / fast_interval` points: with the defaults (5 min,
//! 250 ms) 1,200 points, 48,000 bytes, for a hot container; about 300
//! points, 12,000 bytes, for a quiet one.

use std::collections::VecDeque;
use std::time::Duration;

use gpuscope_model::{ContainerSample, RecorderPoint, Timestamp};

/// One stored point: [`RecorderPoint`] in 40 bytes.
#[derive(Debug, Clone, Copy)]
struct Compact {
    /// Milliseconds after the ring's base time.
    offset_ms: u32,
    usage_kib: u32,
    anon_kib: u32,
    file_kib: u32,
    shmem_kib: u32,
    /// Memory PSI some avg10, hundredths of a percent.
    some_avg10_centi: u16,
    some_total_us: u64,
    full_total_us: u64,
}

fn kib(bytes: u64) -> u32 {
    (bytes / 1024).min(u64::from(u32::MAX)) as u32
}

/// A container's recent history.
#[derive(Debug)]
pub struct Recorder {
    base: Timestamp,
    window: Duration,
    capacity: usize,
    points: VecDeque<Compact>,
}

impl Recorder {
    /// A recorder keeping `window` of history and at most `capacity` points.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            base: Timestamp::default(),
            window,
            capacity: capacity.max(1),
            points: VecDeque::new(),
        }
    }

    /// The largest number of points the recorder keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Points held now.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Bytes one stored point takes.
    pub const POINT_BYTES: usize = std::mem::size_of::<Compact>();

    /// Records one sample. Samples older than the newest are ignored.
    pub fn push(&mut self, sample: &ContainerSample) {
        let t = sample.time;
        if self.points.is_empty() {
            self.base = t;
        }
        if let Some(last) = self.points.back()
            && self.time_of(last) > t
        {
            return;
        }
        if t.since(self.base).as_millis() > u128::from(u32::MAX / 2) {
            self.rebase(t);
        }
        let offset_ms = t.since(self.base).as_millis() as u32;
        if self.points.len() == self.points.capacity() {
            // Grow in small steps, not by doubling: a quiet container
            // needs ~300 points and would otherwise reserve 512.
            let step = 64.min(self.capacity + 1 - self.points.len()).max(1);
            self.points.reserve_exact(step);
        }
        let mem = &sample.memory;
        let psi = sample.pressure.memory.unwrap_or_default();
        self.points.push_back(Compact {
            offset_ms,
            usage_kib: kib(mem.usage_bytes),
            anon_kib: kib(mem.anon_bytes),
            file_kib: kib(mem.file_bytes),
            shmem_kib: kib(mem.shmem_bytes),
            some_avg10_centi: (psi.some.avg10 * 100.0).clamp(0.0, 10_000.0) as u16,
            some_total_us: psi.some.total_us,
            full_total_us: psi.full.map_or(0, |f| f.total_us),
        });
        self.expire(t);
    }

    /// Moves the base time to `t`, shifting stored offsets (points older
    /// than the base are expired first).
    fn rebase(&mut self, t: Timestamp) {
        self.expire(t);
        let Some(shift) = self.points.front().map(|p| p.offset_ms) else {
            self.base = t;
            return;
        };
        for p in &mut self.points {
            p.offset_ms -= shift;
        }
        self.base = Timestamp(self.base.0 + u64::from(shift) * 1_000_000);
    }

    fn expire(&mut self, now: Timestamp) {
        let oldest = now.saturating_sub(self.window);
        while let Some(front) = self.points.front() {
            let t = self.time_of(front);
            if t < oldest || self.points.len() > self.capacity {
                self.points.pop_front();
            } else {
                break;
            }
        }
    }

    fn time_of(&self, p: &Compact) -> Timestamp {
        Timestamp(self.base.0 + u64::from(p.offset_ms) * 1_000_000)
    }

    /// The points from `until - window` to `until`, oldest first.
    pub fn window_until(&self, until: Timestamp) -> Vec<RecorderPoint> {
        let from = until.saturating_sub(self.window);
        self.points
            .iter()
            .map(|p| RecorderPoint {
                time: self.time_of(p),
                usage_bytes: u64::from(p.usage_kib) * 1024,
                anon_bytes: u64::from(p.anon_kib) * 1024,
                file_bytes: u64::from(p.file_kib) * 1024,
                shmem_bytes: u64::from(p.shmem_kib) * 1024,
                memory_some_avg10: f32::from(p.some_avg10_centi) / 100.0,
                memory_some_total_us: p.some_total_us,
                memory_full_total_us: p.full_total_us,
            })
            .filter(|p| p.time >= from && p.time <= until)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_model::{
        CgroupVersion, ContainerRef, MemoryStats, Pressure, Psi, PsiLine, PsiScope,
    };

    fn sample(ms: u64, usage: u64, some_total: u64) -> ContainerSample {
        ContainerSample {
            time: Timestamp(1_700_000_000_000_000_000 + ms * 1_000_000),
            container: ContainerRef::default(),
            cgroup_version: CgroupVersion::V1,
            memory: MemoryStats {
                usage_bytes: usage,
                anon_bytes: usage,
                ..MemoryStats::default()
            },
            cpu: None,
            pressure: Pressure {
                memory: Some(Psi {
                    some: PsiLine {
                        avg10: 12.34,
                        total_us: some_total,
                        ..PsiLine::default()
                    },
                    full: None,
                }),
                ..Pressure::default()
            },
            pressure_scope: PsiScope::Container,
            stuck: Vec::new(),
        }
    }

    #[test]
    fn point_is_forty_bytes() {
        assert_eq!(Recorder::POINT_BYTES, 40);
    }

    #[test]
    fn keeps_the_window_and_expires_by_age() {
        let mut r = Recorder::new(Duration::from_secs(300), 1200);
        // 10 minutes at 1 s.
        for s in 0..600 {
            r.push(&sample(s * 1000, s * 1024 * 1024, s));
        }
        let w = r.window_until(sample(599_000, 0, 0).time);
        assert_eq!(w.len(), 301, "5 min at 1 s, both ends included");
        assert_eq!(w[0].usage_bytes, 299 * 1024 * 1024);
        assert_eq!(w.last().map(|p| p.usage_bytes), Some(599 * 1024 * 1024));
        assert_eq!(w.last().map(|p| p.memory_some_total_us), Some(599));
        assert!((w[0].memory_some_avg10 - 12.34).abs() < 0.01);
    }

    #[test]
    fn capacity_bounds_a_hot_container() {
        let mut r = Recorder::new(Duration::from_secs(300), 1200);
        // 10 minutes at 100 ms: more than the capacity allows.
        for i in 0..6000 {
            r.push(&sample(i * 100, 1 << 20, 0));
        }
        assert_eq!(r.len(), 1200);
    }

    #[test]
    fn survives_a_rebase_after_weeks() {
        let mut r = Recorder::new(Duration::from_secs(300), 1200);
        let month_ms = 30 * 24 * 3600 * 1000;
        for i in 0..10 {
            r.push(&sample(month_ms + i * 1000, i, 0));
        }
        // Jump beyond the u32 offset range.
        r.push(&sample(3 * month_ms, 42, 0));
        let w = r.window_until(sample(3 * month_ms, 0, 0).time);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].usage_bytes, 0, "42 bytes round down to 0 KiB");
        assert_eq!(w[0].time, sample(3 * month_ms, 0, 0).time);
    }

    #[test]
    fn a_quiet_container_reserves_little_more_than_its_window() {
        let mut r = Recorder::new(Duration::from_secs(300), 1200);
        for s in 0..600 {
            r.push(&sample(s * 1000, 1 << 20, 0));
        }
        assert_eq!(r.len(), 301);
        assert!(
            r.points.capacity() < 301 + 64,
            "capacity {}",
            r.points.capacity()
        );
    }

    #[test]
    fn older_samples_are_ignored() {
        let mut r = Recorder::new(Duration::from_secs(300), 1200);
        r.push(&sample(5000, 1 << 20, 0));
        r.push(&sample(4000, 2 << 20, 0));
        assert_eq!(r.len(), 1);
    }
}
