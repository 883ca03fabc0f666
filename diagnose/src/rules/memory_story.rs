//! The memory story of a killed container instance: a leak, a step, or a
//! plateau at the limit.
//!
//! The mechanism. A container's charge grows until it reaches its limit;
//! there the kernel first reclaims (page cache, then swap if any) and only
//! kills when reclaim no longer frees enough. So the minutes just before a
//! kill (the agent's flight-recorder window) always sit at the limit: they
//! show the end, not how the memory got there. How it got there is in the
//! instance's whole history: the agent's samples of that container ID
//! (the aggregator keeps exact points and coarser ones for hours; a bundle
//! holds what `gpuscope bundle` or `watch --samples` wrote) plus the
//! recorder window of the kill.
//!
//! - A **leak** rises steadily over the instance's life: a straight line
//!   through the points (R² near 1) spanning minutes to hours, usually
//!   anonymous memory rising while the page cache stays flat. A bigger
//!   limit only moves the kill later, by (added bytes / rate).
//! - A **step** is one large rise between two neighbouring samples: a
//!   batch, a file or a model loaded at once. It is measured between the
//!   samples around it (`+20 GiB in 2 s`), not from the window's minimum.
//! - A **plateau** is a long stay at the limit before the kill: the kernel
//!   reclaimed what it could (the job ran slowly, under memory pressure)
//!   until an allocation could not be met.
//!
//! Sparse history (a few points, or minutes between them) cannot tell
//! these apart; the story then says so instead of guessing.

use std::time::Duration;

use gpuscope_model::{ContainerSample, RecorderPoint, Timestamp};

/// One memory reading of the instance, from a sample or the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    /// When.
    pub time: Timestamp,
    /// Charged memory, bytes.
    pub usage: u64,
    /// Anonymous memory, bytes.
    pub anon: u64,
    /// Page cache, bytes (shmem included).
    pub file: u64,
    /// Shared memory / tmpfs, bytes.
    pub shmem: u64,
}

impl From<&RecorderPoint> for Point {
    fn from(p: &RecorderPoint) -> Self {
        Self {
            time: p.time,
            usage: p.usage_bytes,
            anon: p.anon_bytes,
            file: p.file_bytes,
            shmem: p.shmem_bytes,
        }
    }
}

impl From<&ContainerSample> for Point {
    fn from(s: &ContainerSample) -> Self {
        Self {
            time: s.time,
            usage: s.memory.usage_bytes,
            anon: s.memory.anon_bytes,
            file: s.memory.file_bytes,
            shmem: s.memory.shmem_bytes,
        }
    }
}

/// The settings the story is judged by (the `oom` family's thresholds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Fewest points to judge at all.
    pub min_points: usize,
    /// Median spacing above which the history is sparse, seconds.
    pub sparse_gap_s: u64,
    /// Least span of a leak, seconds.
    pub leak_min_span_s: u64,
    /// Least R² of a leak.
    pub leak_min_r2: f64,
    /// Least rise of a step, percent of the limit (or of the peak when
    /// the limit is unknown).
    pub step_min_percent: u64,
    /// Longest gap between the two samples of a step, seconds.
    pub step_max_s: u64,
    /// Share of the limit that counts as "at the limit", percent.
    pub near_limit_percent: u64,
    /// Least time at the limit before the kill to call it a plateau,
    /// seconds.
    pub plateau_min_s: u64,
}

/// What the history says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// A steady rise.
    Leak,
    /// One large rise between neighbouring samples.
    Step,
    /// At the limit for long before the kill, no leak or step before it.
    Plateau,
    /// Enough points, none of the three.
    Unclear,
    /// Too few points, or too far apart, to tell.
    Sparse,
}

/// A steady rise: the least-squares line through the points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Trend {
    /// First point of the fit.
    pub from: Point,
    /// Last point of the fit.
    pub to: Point,
    /// Slope of charged memory, bytes per hour.
    pub per_hour: f64,
    /// Slope of anonymous memory, bytes per hour.
    pub anon_per_hour: f64,
    /// Slope of the page cache, bytes per hour.
    pub file_per_hour: f64,
    /// How straight (1: a line).
    pub r2: f64,
}

/// The memory story of one instance up to its kill.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Story {
    /// The verdict.
    pub verdict: Verdict,
    /// Points read.
    pub points: usize,
    /// From the first point to the last.
    pub span: Duration,
    /// Median spacing of the points.
    pub interval: Duration,
    /// The largest rise between neighbouring points: (before, after).
    pub step: Option<(Point, Point)>,
    /// The steady rise, when the points make one.
    pub trend: Option<Trend>,
    /// How long memory sat at the limit before the last point.
    pub at_limit: Option<Duration>,
    /// The highest point.
    pub peak: Option<Point>,
}

/// Merges the instance's samples and the kill's recorder window into one
/// series up to `until`, oldest first, one point per instant.
pub(crate) fn series(
    samples: &[&ContainerSample],
    window: &[RecorderPoint],
    until: Timestamp,
) -> Vec<Point> {
    let mut v: Vec<Point> = samples
        .iter()
        .map(|s| Point::from(*s))
        .chain(window.iter().map(Point::from))
        .filter(|p| p.time <= until)
        .collect();
    v.sort_by_key(|p| p.time);
    v.dedup_by_key(|p| p.time);
    v
}

/// Reads the story from a series ([`series`]) and the limit.
pub(crate) fn read(points: &[Point], limit: Option<u64>, s: &Settings) -> Story {
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => b.time.since(a.time),
        _ => Duration::ZERO,
    };
    let mut gaps: Vec<Duration> = points
        .windows(2)
        .map(|w| w[1].time.since(w[0].time))
        .collect();
    gaps.sort();
    let interval = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    let max = points.iter().map(|p| p.usage).max().unwrap_or(0);
    // The last stretch at the highest level (within 1 %), and where it
    // began: the peak the kill came from (an earlier epoch may have reached
    // the same level and come back down).
    let top = max - max / 100;
    let last_top = points.iter().rposition(|p| p.usage >= top);
    let rise_end = last_top.map_or(0, |end| {
        let mut i = end;
        while i > 0 && points[i - 1].usage >= top {
            i -= 1;
        }
        i
    });
    let peak = points.get(rise_end).copied();
    let scale = limit.or(peak.map(|p| p.usage)).unwrap_or(0);
    let step = largest_rise(points, Duration::from_secs(s.step_max_s), STEP_INTERVALS);
    let big_step =
        step.filter(|(a, b)| scale > 0 && (b.usage - a.usage) * 100 >= scale * s.step_min_percent);
    let near =
        |p: &Point| limit.is_some_and(|l| l > 0 && p.usage * 100 >= l * s.near_limit_percent);
    let at_limit = points.last().filter(|p| near(p)).map(|last| {
        let start = points
            .iter()
            .rev()
            .take_while(|p| near(p))
            .last()
            .map_or(last.time, |p| p.time);
        last.time.since(start)
    });
    // The steady rise: from the last low point before the peak to the
    // peak; the flat top of a plateau is not part of it.
    let rise = &points[..(rise_end + 1).min(points.len())];
    let low = rise
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| (p.usage, std::cmp::Reverse(p.time)))
        .map_or(0, |(i, _)| i);
    let trend = fit(&rise[low..]);
    // Memory that came back down before the rise (an epoch, a cache
    // flushed) makes the rise one cycle of a pattern, not a leak.
    let fell_before = trend.is_some_and(|t| {
        let half = t.to.usage.saturating_sub(t.from.usage) / 2;
        rise[..low]
            .iter()
            .any(|p| p.usage > t.from.usage.saturating_add(half))
    });
    let few = points.len() < s.min_points;
    let sparse = few || interval > Duration::from_secs(s.sparse_gap_s);
    let leak = !fell_before
        && trend.is_some_and(|t| {
            t.per_hour > 0.0
                && t.to.time.since(t.from.time) >= Duration::from_secs(s.leak_min_span_s)
                && t.r2 >= s.leak_min_r2
        });
    let plateau = at_limit.is_some_and(|d| d >= Duration::from_secs(s.plateau_min_s));
    // A step is seen between two samples however few there are; a line
    // through many points far apart is still a line; anything else needs
    // the points close together.
    let verdict = if big_step.is_some() {
        Verdict::Step
    } else if few {
        Verdict::Sparse
    } else if leak {
        Verdict::Leak
    } else if sparse {
        Verdict::Sparse
    } else if plateau {
        Verdict::Plateau
    } else {
        Verdict::Unclear
    };
    Story {
        verdict,
        points: points.len(),
        span,
        interval,
        step: big_step.or(step),
        trend: trend.filter(|_| leak || verdict == Verdict::Sparse),
        at_limit,
        peak,
    }
}

/// How many sampling intervals one step may span: a load read by 1 s
/// samples rises over two or three of them; a rise spread over more is
/// growth, however fast.
const STEP_INTERVALS: usize = 5;

/// The largest rise within `max` of time, in the shortest time: over the
/// runs of consecutive rising samples (a jump read by 1 s samples spans a
/// few of them), the pair of a run's samples at most `max` and `intervals`
/// apart with the largest rise, the shorter on a tie.
fn largest_rise(points: &[Point], max: Duration, intervals: usize) -> Option<(Point, Point)> {
    let rising = |i: usize| {
        points[i + 1].usage > points[i].usage && points[i + 1].time.since(points[i].time) <= max
    };
    let mut best: Option<(Point, Point)> = None;
    let better = |a: &Point, b: &Point, best: &Option<(Point, Point)>| match best {
        None => true,
        Some((x, y)) => {
            let (r, br) = (b.usage - a.usage, y.usage - x.usage);
            r > br || (r == br && b.time.since(a.time) < y.time.since(x.time))
        }
    };
    let mut i = 0;
    while i + 1 < points.len() {
        if !rising(i) {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i + 1;
        while end + 1 < points.len() && rising(end) {
            end += 1;
        }
        let mut l = start;
        for r in start + 1..=end {
            while points[r].time.since(points[l].time) > max || r - l > intervals {
                l += 1;
            }
            if l < r && better(&points[l], &points[r], &best) {
                best = Some((points[l], points[r]));
            }
        }
        i = end;
    }
    best
}

/// The least-squares line through the points (at least 3, over a non-zero
/// span).
fn fit(points: &[Point]) -> Option<Trend> {
    if points.len() < 3 {
        return None;
    }
    let (first, last) = (points.first()?, points.last()?);
    let xs: Vec<f64> = points
        .iter()
        .map(|p| p.time.since(first.time).as_secs_f64() / 3600.0)
        .collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = |f: &dyn Fn(&Point) -> u64| -> (f64, f64) {
        let ys: Vec<f64> = points.iter().map(|p| f(p) as f64).collect();
        let my = ys.iter().sum::<f64>() / n;
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
        let r2 = if syy > 0.0 {
            sxy * sxy / (sxx * syy)
        } else {
            0.0
        };
        (sxy / sxx, r2)
    };
    let (per_hour, r2) = slope(&|p| p.usage);
    Some(Trend {
        from: *first,
        to: *last,
        per_hour,
        anon_per_hour: slope(&|p| p.anon).0,
        file_per_hour: slope(&|p| p.file).0,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const T0: u64 = 1_764_150_000_000_000_000;

    fn p(s: u64, usage: u64) -> Point {
        Point {
            time: Timestamp(T0 + s * 1_000_000_000),
            usage,
            anon: usage,
            file: 0,
            shmem: 0,
        }
    }

    fn settings() -> Settings {
        Settings {
            min_points: 6,
            sparse_gap_s: 120,
            leak_min_span_s: 240,
            leak_min_r2: 0.95,
            step_min_percent: 20,
            step_max_s: 120,
            near_limit_percent: 90,
            plateau_min_s: 120,
        }
    }

    #[test]
    fn a_steady_rise_over_hours_is_a_leak_with_its_rate() {
        // 8 GiB -> 64 GiB over 4 h, a point every 30 s, then the kill.
        let pts: Vec<Point> = (0..=480)
            .map(|i| p(i * 30, 8 * GIB + (56 * GIB) * i / 480))
            .collect();
        let s = read(&pts, Some(64 * GIB), &settings());
        assert_eq!(s.verdict, Verdict::Leak);
        let t = s.trend.expect("trend");
        assert!(
            (t.per_hour / GIB as f64 - 14.0).abs() < 0.1,
            "{}",
            t.per_hour
        );
        assert!(t.r2 > 0.99);
    }

    #[test]
    fn a_jump_is_measured_between_its_neighbours_not_from_the_window_minimum() {
        // Flat at 10 GiB for 10 min, +20 GiB in 2 s, then at the limit.
        let mut pts: Vec<Point> = (0..60).map(|i| p(i * 10, 10 * GIB)).collect();
        pts.push(p(601, 10 * GIB));
        pts.push(p(602, 20 * GIB));
        pts.push(p(603, 30 * GIB + GIB));
        pts.extend((0..5).map(|i| p(610 + i * 10, 31 * GIB)));
        let s = read(&pts, Some(32 * GIB), &settings());
        assert_eq!(s.verdict, Verdict::Step);
        let (a, b) = s.step.expect("step");
        assert_eq!(b.usage - a.usage, 21 * GIB);
        assert_eq!(b.time.since(a.time), Duration::from_secs(2));
    }

    #[test]
    fn one_epoch_of_a_sawtooth_is_not_a_leak() {
        // Four 30-minute epochs climbing 40 -> 60 GiB and falling back.
        let pts: Vec<Point> = (0..720)
            .map(|i| p(i * 10, 40 * GIB + 20 * GIB * (i % 180) / 180))
            .collect();
        let s = read(&pts, Some(64 * GIB), &settings());
        assert_ne!(s.verdict, Verdict::Leak, "{s:?}");
    }

    #[test]
    fn a_long_stay_at_the_limit_is_a_plateau() {
        // Up from 3 GiB, 5 GiB up and 1 GiB down every 10 s (no step of a
        // fifth of the limit, no rise long enough for a leak), then ten
        // minutes at the limit.
        let mut pts: Vec<Point> = (0..14)
            .map(|i| p(i * 10, (3 + 2 * i + 3 * (i % 2)) * GIB))
            .collect();
        pts.extend((0..60).map(|i| p(140 + i * 10, 31 * GIB)));
        let s = read(&pts, Some(32 * GIB), &settings());
        assert_eq!(s.verdict, Verdict::Plateau, "{s:?}");
        assert_eq!(s.at_limit, Some(Duration::from_secs(600)));
    }

    #[test]
    fn coarse_points_over_hours_still_show_a_leak() {
        // One merged point every 5 min for 6 h: too far apart for a step,
        // enough for a line.
        let pts: Vec<Point> = (0..=72)
            .map(|i| p(i * 300, 4 * GIB + GIB * i / 3))
            .collect();
        let s = read(&pts, Some(29 * GIB), &settings());
        assert_eq!(s.verdict, Verdict::Leak);
        let t = s.trend.expect("trend");
        assert!(
            (t.per_hour / GIB as f64 - 4.0).abs() < 0.05,
            "{}",
            t.per_hour
        );
    }

    #[test]
    fn a_few_points_minutes_apart_are_sparse_not_healthy_nor_a_leak() {
        let pts: Vec<Point> = (0..5).map(|i| p(i * 600, (10 + i * 5) * GIB)).collect();
        let s = read(&pts, Some(32 * GIB), &settings());
        assert_eq!(s.verdict, Verdict::Sparse);
        assert_eq!(s.interval, Duration::from_secs(600));
    }
}
