//! Compact recent history: the points of one container or GPU, delta- and
//! varint-encoded in small blocks, in two tiers.
//!
//! A point is a fixed set of `u64` channels (time, usage, ...). Within a
//! block each point is written as a varint of flags naming the channels
//! that changed since the previous point, the time as a zigzag varint of
//! the change of its step (delta of delta), then each changed channel as a
//! zigzag varint of its delta (byte channels in 4 KiB or 1 MiB units when
//! the delta is a multiple of that, one tag bit saying which). The first
//! point of a block is written against zeros, so every block decodes on
//! its own and the oldest block can be dropped whole. Lossless: a point
//! reads back exactly as it was pushed.
//!
//! A [`Ring`] keeps at most `cap` points visible; up to one block more is
//! stored (dropped when the newer blocks alone hold `cap`). A block holds
//! `cap / 8` points (1 to 64), so the slack is at most 1/8 of the ring plus
//! one block.
//!
//! A [`Tiered`] series is two rings: the newest points as they came (fine),
//! and one merged point per `step` of time (coarse) reaching further back,
//! read as one time-ordered series.

use std::time::Duration;

use gpuscope_proto::v1::{ContainerPoint, GpuPoint};

/// How a channel's deltas are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A zigzag varint of the delta.
    Plain,
    /// Bytes: the delta in units of `1 << shift` when it is a multiple of
    /// that, else in bytes (one tag bit).
    Bytes(u32),
}

/// Encodes points of `N` channels; channel 0 is the time.
pub trait Layout<const N: usize> {
    /// The kinds of channels 1..N (the time has its own encoding).
    const KINDS: [Kind; N];
}

/// Appends `v` as a varint.
fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint; `None` past the end (never for what `put_varint` wrote).
fn get_varint(buf: &[u8], at: &mut usize) -> Option<u128> {
    let mut v = 0u128;
    let mut shift = 0;
    loop {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u128::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 127 {
            return None;
        }
    }
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn put_delta(out: &mut Vec<u8>, kind: Kind, old: u64, new: u64) {
    let d = new.wrapping_sub(old) as i64;
    match kind {
        Kind::Plain => put_varint(out, u128::from(zigzag(d))),
        Kind::Bytes(shift) => {
            let unit = 1i64 << shift;
            if d % unit == 0 {
                put_varint(out, (u128::from(zigzag(d >> shift)) << 1) | 1);
            } else {
                put_varint(out, u128::from(zigzag(d)) << 1);
            }
        }
    }
}

fn get_delta(buf: &[u8], at: &mut usize, kind: Kind, old: u64) -> Option<u64> {
    let v = get_varint(buf, at)?;
    let d = match kind {
        Kind::Plain => unzigzag(v as u64),
        Kind::Bytes(shift) => {
            let d = unzigzag((v >> 1) as u64);
            if v & 1 == 1 { d << shift } else { d }
        }
    };
    Some(old.wrapping_add(d as u64))
}

/// A bounded ring of encoded points.
///
/// All blocks lie back to back in one buffer, oldest first, the block
/// being written last, each after a 2-byte length (little endian; the open
/// block's is written when it is sealed): one allocation per ring, sized
/// for the full ring when its first block is sealed and reused as the
/// oldest block is cut off the front, so that half a million rings do not
/// each hold a dozen small, short-lived allocations (the allocator's slack
/// around those cost about half as much again as the points themselves).
#[derive(Debug)]
pub struct Ring<L: Layout<N>, const N: usize> {
    cap: usize,
    per_block: u16,
    /// `sealed` full blocks of `per_block` points, then the open one of
    /// `open_points` (with its length still 0), each after its length.
    buf: Vec<u8>,
    sealed: u32,
    open_points: u16,
    /// Where the open block's length is in `buf`.
    open_at: usize,
    /// The newest point and its time step (the encoder's state).
    last: [u64; N],
    last_step: i64,
    _layout: std::marker::PhantomData<L>,
}

/// Bytes of a block's length.
const BLOCK_LEN: usize = 2;

thread_local! {
    /// One point's encoding, before it is appended to its ring.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<L: Layout<N>, const N: usize> Ring<L, N> {
    /// An empty ring keeping the newest `cap` points.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            per_block: (cap / 8).clamp(1, 64) as u16,
            buf: Vec::new(),
            sealed: 0,
            open_points: 0,
            open_at: 0,
            last: [0; N],
            last_step: 0,
            _layout: std::marker::PhantomData,
        }
    }

    fn stored(&self) -> usize {
        self.sealed as usize * usize::from(self.per_block) + usize::from(self.open_points)
    }

    /// Points visible (at most `cap`).
    pub fn len(&self) -> usize {
        self.stored().min(self.cap)
    }

    /// Appends a point; the oldest falls out past `cap`.
    pub fn push(&mut self, p: [u64; N]) {
        if self.cap == 0 {
            return;
        }
        if self.open_points == self.per_block {
            // A block is at most 64 points of at most 10 bytes a channel.
            let len = (self.buf.len() - self.open_at - BLOCK_LEN) as u16;
            self.buf[self.open_at..self.open_at + BLOCK_LEN].copy_from_slice(&len.to_le_bytes());
            self.sealed += 1;
            self.open_points = 0;
            self.reserve_full();
        }
        let prev = if self.open_points == 0 {
            self.last_step = 0;
            [0; N]
        } else {
            self.last
        };
        SCRATCH.with_borrow_mut(|point| {
            point.clear();
            if self.open_points == 0 {
                point.extend_from_slice(&[0; BLOCK_LEN]);
            }
            let mut flags = 0u32;
            for i in 1..N {
                if p[i] != prev[i] {
                    flags |= 1 << (i - 1);
                }
            }
            put_varint(point, u128::from(flags));
            let step = p[0].wrapping_sub(prev[0]) as i64;
            put_varint(point, u128::from(zigzag(step.wrapping_sub(self.last_step))));
            for i in 1..N {
                if flags & (1 << (i - 1)) != 0 {
                    put_delta(point, L::KINDS[i], prev[i], p[i]);
                }
            }
            self.last_step = step;
            if self.buf.capacity() - self.buf.len() < point.len() {
                self.buf
                    .reserve_exact(point.len().max(self.buf.len() / 8).max(64));
            }
            if self.open_points == 0 {
                self.open_at = self.buf.len();
            }
            self.buf.extend_from_slice(point);
        });
        self.last = p;
        self.open_points += 1;
        while self.sealed > 0 && self.stored() - usize::from(self.per_block) >= self.cap {
            self.drop_oldest();
        }
    }

    /// Sizes the buffer for a full ring at the sealed blocks' average
    /// size, once a block is sealed: one reallocation early instead of one
    /// every few points while the ring fills (with half a million rings
    /// filling, reallocation was a third of ingest's CPU), and no more
    /// room than a full ring needs (doubling would leave up to half of it
    /// unused once the ring is steady).
    fn reserve_full(&mut self) {
        let per_block = self.buf.len() / self.sealed.max(1) as usize;
        let blocks = self.cap.div_ceil(usize::from(self.per_block)) + 1;
        let full = per_block * blocks + per_block / 8;
        if self.buf.capacity() < full {
            self.buf.reserve_exact(full - self.buf.len());
        }
    }

    /// The length of the block whose length is at `at`.
    fn block_len(&self, at: usize) -> usize {
        usize::from(u16::from_le_bytes([self.buf[at], self.buf[at + 1]]))
    }

    /// Cuts the oldest sealed block off the front.
    fn drop_oldest(&mut self) {
        let end = BLOCK_LEN + self.block_len(0);
        self.buf.drain(..end);
        self.sealed -= 1;
        self.open_at -= end;
    }

    /// The newest `n` points, oldest first.
    pub fn last(&self, n: usize) -> Vec<[u64; N]> {
        let want = n.min(self.len());
        let mut skip = self.stored() - want;
        let mut out = Vec::with_capacity(want);
        let mut at = 0;
        let blocks = std::iter::repeat_n(self.per_block, self.sealed as usize)
            .chain(std::iter::once(self.open_points))
            .filter(|&count| count > 0);
        for count in blocks {
            let start = at + BLOCK_LEN;
            let end = if at == self.open_at {
                self.buf.len()
            } else {
                start + self.block_len(at)
            };
            at = end;
            if skip >= usize::from(count) {
                skip -= usize::from(count);
                continue;
            }
            // Each block starts afresh (against zeros).
            let block = &self.buf[start..end];
            let mut pos = 0;
            let mut p = [0u64; N];
            let mut step = 0i64;
            for _ in 0..count {
                let Some(next) = Self::decode(block, &mut pos, &p, &mut step) else {
                    // Never for what push wrote; stop rather than invent.
                    return out;
                };
                p = next;
                if skip > 0 {
                    skip -= 1;
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    fn decode(buf: &[u8], at: &mut usize, prev: &[u64; N], step: &mut i64) -> Option<[u64; N]> {
        let flags = get_varint(buf, at)? as u32;
        let dd = unzigzag(get_varint(buf, at)? as u64);
        *step = step.wrapping_add(dd);
        let mut p = *prev;
        p[0] = prev[0].wrapping_add(*step as u64);
        for i in 1..N {
            if flags & (1 << (i - 1)) != 0 {
                p[i] = get_delta(buf, at, L::KINDS[i], prev[i])?;
            }
        }
        Some(p)
    }

    /// Every visible point, oldest first.
    pub fn to_vec(&self) -> Vec<[u64; N]> {
        self.last(usize::MAX)
    }

    /// Heap bytes held (the buffer's capacity).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Merges the points of one coarse bucket.
pub trait Merge<const N: usize>: Layout<N> {
    /// `older` and `newer` (pushed after it, in the same bucket) as one
    /// point.
    fn merge(older: &[u64; N], newer: &[u64; N]) -> [u64; N];
}

/// A series in two tiers: the newest `points` points exactly as pushed
/// (fine), and before them up to `coarse_points` points each merging the
/// points of one `step` of time (coarse), so that a long window costs few
/// points while the recent past keeps every sample.
///
/// Buckets are aligned to multiples of `step` in Unix time, by each
/// point's own time (channel 0). Points accumulate into the bucket of the
/// newest point; a point in another bucket pushes the finished bucket's
/// merged point to the coarse ring and starts its own. Only buckets that
/// saw a point exist: a gap in the points (the agent was down) stays a gap.
/// A clock stepped back starts a new bucket rather than merging across
/// the step.
///
/// Reads return the coarse points strictly older than the oldest fine
/// point, then the fine points, oldest first: `step`-spaced points far
/// back, every point recently, no time range twice.
#[derive(Debug)]
pub struct Tiered<L: Layout<N>, const N: usize> {
    fine: Ring<L, N>,
    coarse: Ring<L, N>,
    /// Bucket length, nanoseconds (at least 1).
    step: u64,
    /// The merge of the bucket being filled; its time is its newest point's.
    open: Option<[u64; N]>,
}

impl<L: Merge<N>, const N: usize> Tiered<L, N> {
    /// An empty series keeping the newest `points` points and
    /// `coarse_points` merged `step`s. No coarse points, or a zero step,
    /// turn the coarse tier off: the series is then a plain [`Ring`].
    pub fn new(points: usize, coarse_points: usize, step: Duration) -> Self {
        let step = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let coarse_points = if step == 0 { 0 } else { coarse_points };
        Self {
            fine: Ring::new(points),
            coarse: Ring::new(coarse_points),
            step: step.max(1),
            open: None,
        }
    }

    /// Appends a point to the fine tier and to the bucket of its time.
    pub fn push(&mut self, p: [u64; N]) {
        self.fine.push(p);
        if self.coarse.cap == 0 {
            return;
        }
        self.open = Some(match self.open {
            Some(acc) if acc[0] / self.step == p[0] / self.step => L::merge(&acc, &p),
            Some(done) => {
                self.coarse.push(done);
                p
            }
            None => p,
        });
    }

    /// The newest `n` points, oldest first.
    pub fn last(&self, n: usize) -> Vec<[u64; N]> {
        let mut fine = self.fine.last(n);
        if fine.len() == n || self.coarse.cap == 0 {
            return fine;
        }
        // Every fine point is in `fine`; before them, the coarse points
        // (the bucket being filled included) strictly older than the oldest.
        let oldest = fine.first().map(|p| p[0]);
        let mut out = self.coarse.to_vec();
        out.extend(self.open);
        out.retain(|p| oldest.is_none_or(|t| p[0] < t));
        out.drain(..out.len().saturating_sub(n - fine.len()));
        out.append(&mut fine);
        out
    }

    /// Every visible point, oldest first.
    pub fn to_vec(&self) -> Vec<[u64; N]> {
        self.last(usize::MAX)
    }

    /// Points visible (decodes them all).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.to_vec().len()
    }

    /// Heap bytes held by both tiers.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.fine.heap_bytes() + self.coarse.heap_bytes()
    }
}

/// `None` as a channel value.
const NONE: u64 = u64::MAX;

fn opt(v: Option<u64>) -> u64 {
    v.unwrap_or(NONE)
}

fn unopt(v: u64) -> Option<u64> {
    (v != NONE).then_some(v)
}

/// A float that is a whole number of `1/scale` written as that number
/// (first channel), anything else as its bits (second channel, else 0).
fn split_f64(v: Option<f64>, scale: f64) -> (u64, u64) {
    match v {
        None => (NONE, 0),
        Some(x) => {
            let n = (x * scale).round();
            if (0.0..1e15).contains(&n) && n / scale == x {
                (n as u64, 0)
            } else {
                (NONE - 1, x.to_bits())
            }
        }
    }
}

fn join_f64(n: u64, bits: u64, scale: f64) -> Option<f64> {
    match n {
        NONE => None,
        n if n == NONE - 1 => Some(f64::from_bits(bits)),
        n => Some(n as f64 / scale),
    }
}

fn split_f32(v: Option<f32>, scale: f32) -> (u64, u64) {
    match v {
        None => (NONE, 0),
        Some(x) => {
            let n = (x * scale).round();
            if (0.0..1e7).contains(&n) && n / scale == x {
                (n as u64, 0)
            } else {
                (NONE - 1, u64::from(x.to_bits()))
            }
        }
    }
}

fn join_f32(n: u64, bits: u64, scale: f32) -> Option<f32> {
    match n {
        NONE => None,
        n if n == NONE - 1 => Some(f32::from_bits(bits as u32)),
        n => Some(n as f32 / scale),
    }
}

/// Container point channels: time, usage, anon, file, shmem, cpu, PSI
/// (hundredths), PSI (bits), oom_kill, limit — ordered so that the usual
/// flags fit one byte — then the reclaim counters (major faults, anon and
/// file refaults), which cost nothing while they do not move.
#[derive(Debug)]
pub struct ContainerLayout;

impl Layout<13> for ContainerLayout {
    const KINDS: [Kind; 13] = [
        Kind::Plain,
        Kind::Bytes(12),
        Kind::Bytes(12),
        Kind::Bytes(12),
        Kind::Bytes(12),
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
        Kind::Bytes(12),
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
    ];
}

impl Merge<13> for ContainerLayout {
    fn merge(older: &[u64; 13], newer: &[u64; 13]) -> [u64; 13] {
        container_channels(&merge_container_points(
            &container_point(older),
            &container_point(newer),
        ))
    }
}

/// A container's history.
pub type ContainerHistory = Tiered<ContainerLayout, 13>;

/// A container point as channels.
pub fn container_channels(p: &ContainerPoint) -> [u64; 13] {
    let (psi, psi_bits) = split_f32(p.memory_some_avg10, 100.0);
    [
        p.time_unix_nanos,
        p.usage_bytes,
        p.anon_bytes,
        p.file_bytes,
        p.shmem_bytes,
        opt(p.cpu_usage_us),
        psi,
        psi_bits,
        p.oom_kill,
        opt(p.limit_bytes),
        opt(p.pgmajfault),
        opt(p.workingset_refault_anon),
        opt(p.workingset_refault_file),
    ]
}

/// Channels back into a container point.
pub fn container_point(c: &[u64; 13]) -> ContainerPoint {
    ContainerPoint {
        time_unix_nanos: c[0],
        usage_bytes: c[1],
        limit_bytes: unopt(c[9]),
        anon_bytes: c[2],
        file_bytes: c[3],
        shmem_bytes: c[4],
        cpu_usage_us: unopt(c[5]),
        memory_some_avg10: join_f32(c[6], c[7], 100.0),
        oom_kill: c[8],
        pgmajfault: unopt(c[10]),
        workingset_refault_anon: unopt(c[11]),
        workingset_refault_file: unopt(c[12]),
    }
}

/// GPU point channels: time, memory used, utilization, memory
/// utilization, power (milliwatts), power (bits), temperature, processes.
#[derive(Debug)]
pub struct GpuLayout;

impl Layout<8> for GpuLayout {
    const KINDS: [Kind; 8] = [
        Kind::Plain,
        Kind::Bytes(20),
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
        Kind::Plain,
    ];
}

impl Merge<8> for GpuLayout {
    fn merge(older: &[u64; 8], newer: &[u64; 8]) -> [u64; 8] {
        gpu_channels(&merge_gpu_points(&gpu_point(older), &gpu_point(newer)))
    }
}

/// A GPU's history.
pub type GpuHistory = Tiered<GpuLayout, 8>;

fn opt32(v: Option<u32>) -> u64 {
    v.map_or(NONE, u64::from)
}

fn unopt32(v: u64) -> Option<u32> {
    (v != NONE).then_some(v as u32)
}

/// A GPU point as channels.
pub fn gpu_channels(p: &GpuPoint) -> [u64; 8] {
    let (mw, bits) = split_f64(p.power_draw_watts, 1000.0);
    [
        p.time_unix_nanos,
        p.memory_used_bytes,
        opt32(p.utilization_gpu_percent),
        opt32(p.utilization_memory_percent),
        mw,
        bits,
        opt32(p.temperature_celsius),
        u64::from(p.processes),
    ]
}

/// Channels back into a GPU point.
pub fn gpu_point(c: &[u64; 8]) -> GpuPoint {
    GpuPoint {
        time_unix_nanos: c[0],
        utilization_gpu_percent: unopt32(c[2]),
        utilization_memory_percent: unopt32(c[3]),
        memory_used_bytes: c[1],
        power_draw_watts: join_f64(c[4], c[5], 1000.0),
        temperature_celsius: unopt32(c[6]),
        processes: c[7] as u32,
    }
}

/// The larger of two optional values; `None` only when both are.
fn max_opt<T>(a: Option<T>, b: Option<T>, max: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(max(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Two container points of one coarse bucket (`newer` sampled after
/// `older`) as one, at `newer`'s time.
///
/// Gauges keep their maximum (usage, anon, file, shmem, the memory PSI;
/// a present PSI beats an absent one): a coarse point must never hide a
/// peak, since memory peaks are what ends in an OOM kill. Counters and
/// settings keep `newer`'s value as it is, absent included (CPU time, the
/// OOM-kill count, the limit, the reclaim counters): they are readings at that time, so rates
/// and kill counts between coarse points stay exact.
pub fn merge_container_points(older: &ContainerPoint, newer: &ContainerPoint) -> ContainerPoint {
    ContainerPoint {
        time_unix_nanos: newer.time_unix_nanos,
        usage_bytes: older.usage_bytes.max(newer.usage_bytes),
        limit_bytes: newer.limit_bytes,
        anon_bytes: older.anon_bytes.max(newer.anon_bytes),
        file_bytes: older.file_bytes.max(newer.file_bytes),
        shmem_bytes: older.shmem_bytes.max(newer.shmem_bytes),
        cpu_usage_us: newer.cpu_usage_us,
        memory_some_avg10: max_opt(older.memory_some_avg10, newer.memory_some_avg10, f32::max),
        oom_kill: newer.oom_kill,
        pgmajfault: newer.pgmajfault,
        workingset_refault_anon: newer.workingset_refault_anon,
        workingset_refault_file: newer.workingset_refault_file,
    }
}

/// Two GPU points of one coarse bucket (`newer` sampled after `older`) as
/// one, at `newer`'s time.
///
/// Every field is a gauge and keeps its maximum (a present value beats an
/// absent one): a coarse point must never hide a moment of GPU use, or
/// the idle rule would call a GPU idle that was busy for one second, nor a
/// peak of memory, power or temperature.
pub fn merge_gpu_points(older: &GpuPoint, newer: &GpuPoint) -> GpuPoint {
    GpuPoint {
        time_unix_nanos: newer.time_unix_nanos,
        utilization_gpu_percent: max_opt(
            older.utilization_gpu_percent,
            newer.utilization_gpu_percent,
            u32::max,
        ),
        utilization_memory_percent: max_opt(
            older.utilization_memory_percent,
            newer.utilization_memory_percent,
            u32::max,
        ),
        memory_used_bytes: older.memory_used_bytes.max(newer.memory_used_bytes),
        power_draw_watts: max_opt(older.power_draw_watts, newer.power_draw_watts, f64::max),
        temperature_celsius: max_opt(
            older.temperature_celsius,
            newer.temperature_celsius,
            u32::max,
        ),
        processes: older.processes.max(newer.processes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type ContainerRing = Ring<ContainerLayout, 13>;
    type GpuRing = Ring<GpuLayout, 8>;

    const SEC: u64 = 1_000_000_000;
    /// A multiple of the step: bucket `b` holds points `15 b .. 15 b + 15`.
    const T0: u64 = 1_764_000_000 * SEC;
    const STEP: Duration = Duration::from_secs(15);

    fn point(i: u64) -> ContainerPoint {
        ContainerPoint {
            time_unix_nanos: T0 + i * SEC + (i % 3) * 1_234,
            usage_bytes: (100 << 20) + i * 4096 * 7,
            limit_bytes: if i < 50 { Some(1 << 30) } else { None },
            anon_bytes: (80 << 20) + i * 13,
            file_bytes: 20 << 20,
            shmem_bytes: i % 2,
            cpu_usage_us: (i != 7).then_some(1_000_000 * i),
            memory_some_avg10: match i % 4 {
                0 => None,
                1 => Some(0.25),
                2 => Some(1.0 / 3.0),
                _ => Some(12.34),
            },
            oom_kill: i / 10,
            pgmajfault: (i > 3).then_some(i * i),
            workingset_refault_anon: (!i.is_multiple_of(5)).then_some(7),
            workingset_refault_file: Some(i / 3),
        }
    }

    #[test]
    fn container_points_read_back_exactly_newest_cap() {
        for cap in [0, 1, 3, 60, 600] {
            let mut r = ContainerRing::new(cap);
            for i in 0..700 {
                r.push(container_channels(&point(i)));
                let n = (i as usize + 1).min(cap);
                assert_eq!(r.len(), n);
            }
            let got: Vec<_> = r.to_vec().iter().map(container_point).collect();
            let want: Vec<_> = (700 - cap as u64..700).map(point).collect();
            assert_eq!(got, want, "cap {cap}");
            let tail: Vec<_> = r.last(5).iter().map(container_point).collect();
            assert_eq!(tail, want[want.len().saturating_sub(5)..]);
        }
    }

    #[test]
    fn gpu_points_read_back_exactly() {
        let p = |i: u64| GpuPoint {
            time_unix_nanos: 5 + i * 1_000_000_000,
            utilization_gpu_percent: (!i.is_multiple_of(5)).then_some(i as u32 % 101),
            utilization_memory_percent: Some(3),
            memory_used_bytes: if i.is_multiple_of(2) {
                i << 20
            } else {
                i * 1001
            },
            power_draw_watts: match i % 3 {
                0 => Some(123.456),
                1 => Some(f64::from(i as u32) * 6.2 + 80.0),
                _ => None,
            },
            temperature_celsius: Some(40 + i as u32 % 7),
            processes: i as u32 % 4,
        };
        let mut r = GpuRing::new(600);
        for i in 0..1000 {
            r.push(gpu_channels(&p(i)));
        }
        let got: Vec<_> = r.to_vec().iter().map(gpu_point).collect();
        let want: Vec<_> = (400..1000).map(p).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn steady_points_are_small() {
        // Page-sized changes, CPU time moving, a steady 1 s step: flags,
        // time, usage (2 bytes), CPU (3 bytes) and the blocks' slack.
        let mut r = ContainerRing::new(600);
        for i in 0..600u64 {
            let mut p = point(0);
            p.time_unix_nanos += i * 1_000_000_000;
            p.usage_bytes += (i % 5) * 4096;
            p.cpu_usage_us = Some(i * 20_000);
            r.push(container_channels(&p));
        }
        let per_point = r.heap_bytes() as f64 / 600.0;
        assert!(per_point < 8.0, "{per_point} bytes a point");
    }

    fn gpu(i: u64) -> GpuPoint {
        GpuPoint {
            time_unix_nanos: T0 + i * SEC,
            utilization_gpu_percent: (i % 11 != 3).then_some((i * 7 % 13) as u32),
            utilization_memory_percent: Some((i % 5) as u32),
            memory_used_bytes: (1 << 30) + (i % 4) * 4096,
            power_draw_watts: (!i.is_multiple_of(9)).then_some(60.0 + (i % 6) as f64 * 0.125),
            temperature_celsius: Some(40 + (i % 3) as u32),
            processes: (i % 5 == 2) as u32,
        }
    }

    /// What bucket `b` of `point` must read back as: its points folded
    /// with the merge, oldest first.
    fn bucket(b: u64) -> ContainerPoint {
        (15 * b + 1..15 * b + 15).fold(point(15 * b), |acc, i| {
            merge_container_points(&acc, &point(i))
        })
    }

    fn read(h: &ContainerHistory) -> Vec<ContainerPoint> {
        h.to_vec().iter().map(container_point).collect()
    }

    fn secs(points: &[ContainerPoint]) -> Vec<u64> {
        points
            .iter()
            .map(|p| (p.time_unix_nanos - T0) / SEC)
            .collect()
    }

    #[test]
    fn merged_container_points_keep_peaks_and_the_last_counters() {
        let older = ContainerPoint {
            time_unix_nanos: 10,
            usage_bytes: 900,
            limit_bytes: Some(1 << 30),
            anon_bytes: 100,
            file_bytes: 800,
            shmem_bytes: 0,
            cpu_usage_us: Some(5_000),
            memory_some_avg10: Some(12.5),
            oom_kill: 1,
            pgmajfault: Some(40),
            workingset_refault_anon: Some(3),
            workingset_refault_file: Some(9),
        };
        let newer = ContainerPoint {
            time_unix_nanos: 11,
            usage_bytes: 700,
            limit_bytes: None,
            anon_bytes: 300,
            file_bytes: 400,
            shmem_bytes: 7,
            cpu_usage_us: None,
            memory_some_avg10: None,
            oom_kill: 2,
            pgmajfault: Some(90),
            workingset_refault_anon: None,
            workingset_refault_file: Some(12),
        };
        assert_eq!(
            merge_container_points(&older, &newer),
            ContainerPoint {
                time_unix_nanos: 11,
                usage_bytes: 900,
                limit_bytes: None,
                anon_bytes: 300,
                file_bytes: 800,
                shmem_bytes: 7,
                cpu_usage_us: None,
                memory_some_avg10: Some(12.5),
                oom_kill: 2,
                pgmajfault: Some(90),
                workingset_refault_anon: None,
                workingset_refault_file: Some(12),
            },
            "peaks of either, the newer's counters and limit, absent ones too"
        );
        let psi = |a, b| {
            let p = |v| ContainerPoint {
                memory_some_avg10: v,
                ..ContainerPoint::default()
            };
            merge_container_points(&p(a), &p(b)).memory_some_avg10
        };
        assert_eq!(psi(None, Some(0.0)), Some(0.0));
        assert_eq!(psi(Some(3.25), None), Some(3.25));
        assert_eq!(psi(Some(3.25), Some(40.0)), Some(40.0));
        assert_eq!(psi(None, None), None);
    }

    #[test]
    fn merged_gpu_points_keep_every_moment_of_use() {
        let busy_second = GpuPoint {
            time_unix_nanos: 5,
            utilization_gpu_percent: Some(97),
            utilization_memory_percent: None,
            memory_used_bytes: 40 << 30,
            power_draw_watts: Some(412.5),
            temperature_celsius: Some(71),
            processes: 1,
        };
        let idle = GpuPoint {
            time_unix_nanos: 6,
            utilization_gpu_percent: Some(0),
            utilization_memory_percent: Some(2),
            memory_used_bytes: 1 << 30,
            power_draw_watts: None,
            temperature_celsius: None,
            processes: 0,
        };
        let merged = GpuPoint {
            time_unix_nanos: 6,
            utilization_gpu_percent: Some(97),
            utilization_memory_percent: Some(2),
            memory_used_bytes: 40 << 30,
            power_draw_watts: Some(412.5),
            temperature_celsius: Some(71),
            processes: 1,
        };
        assert_eq!(merge_gpu_points(&busy_second, &idle), merged);
        // Through the channels, as the coarse tier merges.
        let c = GpuLayout::merge(&gpu_channels(&busy_second), &gpu_channels(&idle));
        assert_eq!(gpu_point(&c), merged);
        let none = GpuPoint {
            time_unix_nanos: 7,
            utilization_gpu_percent: None,
            ..idle
        };
        assert_eq!(
            merge_gpu_points(&idle, &none).utilization_gpu_percent,
            Some(0),
            "a reading beats no reading"
        );
    }

    #[test]
    fn reads_coarse_points_strictly_older_than_the_fine_ones_then_the_fine() {
        // 100 points at 1 Hz; the fine tier holds 70..99. Buckets 0-5 are
        // finished; 4 (at 74) and the open 6 overlap the fine points.
        let mut h = ContainerHistory::new(30, 10, STEP);
        for i in 0..100 {
            h.push(container_channels(&point(i)));
        }
        let got = read(&h);
        let want: Vec<_> = (0..4).map(bucket).chain((70..100).map(point)).collect();
        assert_eq!(got, want);
        assert_eq!(
            secs(&got[..6]),
            [14, 29, 44, 59, 70, 71],
            "each bucket at its last point's time"
        );
        assert_eq!(h.len(), 34);
        let last = |n| -> Vec<_> { h.last(n).iter().map(container_point).collect() };
        assert_eq!(last(5), want[29..]);
        assert_eq!(last(30), want[4..]);
        assert_eq!(last(32), want[2..], "two coarse points, then the fine");
        assert_eq!(last(1000), want);
        assert!(last(0).is_empty());
        // The fine tier starting at a bucket's last point: that bucket is
        // not strictly older, so it is left out.
        let mut h = ContainerHistory::new(26, 10, STEP);
        for i in 0..100 {
            h.push(container_channels(&point(i)));
        }
        let want: Vec<_> = (0..4).map(bucket).chain((74..100).map(point)).collect();
        assert_eq!(read(&h), want);
        // The channels of a merged bucket, checked by hand once: the
        // usage peak is the bucket's last, the PSI peak 12.34.
        let b1 = bucket(1);
        assert_eq!(b1.usage_bytes, point(29).usage_bytes);
        assert_eq!(b1.anon_bytes, point(29).anon_bytes);
        assert_eq!(b1.shmem_bytes, 1);
        assert_eq!(b1.memory_some_avg10, Some(12.34));
        assert_eq!(b1.cpu_usage_us, point(29).cpu_usage_us);
        assert_eq!(b1.oom_kill, 2);
        assert_eq!(b1.limit_bytes, Some(1 << 30));
    }

    #[test]
    fn gpu_buckets_read_back_as_their_merge() {
        let mut h = GpuHistory::new(15, 100, STEP);
        for i in 0..150 {
            h.push(gpu_channels(&gpu(i)));
        }
        let got: Vec<_> = h.to_vec().iter().map(gpu_point).collect();
        let merged = |b: u64| {
            (15 * b + 1..15 * b + 15).fold(gpu(15 * b), |acc, i| merge_gpu_points(&acc, &gpu(i)))
        };
        // Fine: 135..149, exactly bucket 9, which is still open.
        let want: Vec<_> = (0..9).map(merged).chain((135..150).map(gpu)).collect();
        assert_eq!(got, want);
        let util: Vec<_> = got[..9].iter().map(|p| p.utilization_gpu_percent).collect();
        // Bucket 6's 12 % fell on a sample without a reading (102).
        let want = [12, 12, 12, 12, 12, 12, 11, 12, 12].map(Some);
        assert_eq!(util, want, "each bucket's peak");
        assert!(got[..9].iter().all(|p| p.processes == 1));
    }

    #[test]
    fn the_coarse_tier_keeps_its_bound() {
        let mut h = ContainerHistory::new(10, 5, STEP);
        for i in 0..1000 {
            h.push(container_channels(&point(i)));
        }
        // Fine: 990..999 (the open bucket 66); coarse: the newest 5
        // finished buckets, 61-65.
        let got = read(&h);
        assert_eq!(secs(&got[..5]), [929, 944, 959, 974, 989]);
        assert_eq!(got[..5], (61..66).map(bucket).collect::<Vec<_>>());
        assert_eq!(got[5..], (990..1000).map(point).collect::<Vec<_>>());
        assert_eq!(h.len(), 15);
    }

    #[test]
    fn without_coarse_points_or_step_it_is_the_plain_ring() {
        for cap in [0, 1, 3, 60, 600] {
            let mut ring = ContainerRing::new(cap);
            let mut none = ContainerHistory::new(cap, 0, STEP);
            let mut zero_step = ContainerHistory::new(cap, 240, Duration::ZERO);
            for i in 0..700 {
                let p = container_channels(&point(i));
                ring.push(p);
                none.push(p);
                zero_step.push(p);
            }
            for h in [&none, &zero_step] {
                assert_eq!(h.to_vec(), ring.to_vec(), "cap {cap}");
                assert_eq!(h.last(7), ring.last(7), "cap {cap}");
                assert_eq!(h.len(), ring.len(), "cap {cap}");
                assert_eq!(h.heap_bytes(), ring.heap_bytes(), "cap {cap}");
            }
        }
    }

    #[test]
    fn without_fine_points_the_open_bucket_is_read_too() {
        let mut h = ContainerHistory::new(0, 10, STEP);
        for i in 0..40 {
            h.push(container_channels(&point(i)));
        }
        let partial = (31..40).fold(point(30), |acc, i| merge_container_points(&acc, &point(i)));
        assert_eq!(read(&h), [bucket(0), bucket(1), partial]);
    }

    #[test]
    fn a_gap_in_time_invents_no_points() {
        // 40 s of points, the agent down for an hour, 40 s more.
        let later = 3600 + 15 * 3;
        let times: Vec<u64> = (0..40).chain(later..later + 40).collect();
        let at = |t: u64| ContainerPoint {
            time_unix_nanos: T0 + t * SEC,
            ..point(t)
        };
        let mut h = ContainerHistory::new(10, 100, STEP);
        for &t in &times {
            h.push(container_channels(&at(t)));
        }
        let got = read(&h);
        // Buckets 0, 1, 2 (its 30..39), then 3600+45.. : 15 s each, the
        // fine points from later+30.
        assert_eq!(
            secs(&got[..5]),
            [14, 29, 39, later + 14, later + 29],
            "one point per bucket that saw points, none in the gap"
        );
        assert_eq!(
            secs(&got[5..]),
            (later + 30..later + 40).collect::<Vec<_>>()
        );
    }

    #[test]
    fn tiered_steady_points_are_small() {
        // A quiet container for 2 hours at 1 Hz, the default tiers, per
        // visible point with the rings' slack: about 8.5 bytes a fine
        // point (flags, time, usage in pages, CPU time: 6 bytes, and the
        // slack), 7.4 a coarse one (a steady 15 s step, the usage peak
        // steady, CPU time moving 3 bytes).
        let mut h = ContainerHistory::new(300, 240, STEP);
        for i in 0..7200u64 {
            let mut p = point(0);
            p.time_unix_nanos += i * SEC;
            p.usage_bytes += (i % 5) * 4096;
            p.cpu_usage_us = Some(i * 20_000);
            h.push(container_channels(&p));
        }
        let fine = h.fine.heap_bytes() as f64 / 300.0;
        let coarse = h.coarse.heap_bytes() as f64 / 240.0;
        assert!(fine < 9.0, "{fine} bytes a fine point");
        assert!(coarse < 8.0, "{coarse} bytes a coarse point");
        assert!(h.len() >= 300 + 200, "{} points visible", h.len());
        // An idle GPU, 0 %, power moving by milliwatts: about 4.9 and 3.7.
        let mut g = GpuHistory::new(300, 240, STEP);
        for i in 0..7200u64 {
            g.push(gpu_channels(&GpuPoint {
                time_unix_nanos: T0 + i * SEC,
                utilization_gpu_percent: Some(0),
                utilization_memory_percent: Some(0),
                memory_used_bytes: 1 << 30,
                power_draw_watts: Some((61_000 + i % 4) as f64 / 1000.0),
                temperature_celsius: Some(38),
                processes: 0,
            }));
        }
        let fine = g.fine.heap_bytes() as f64 / 300.0;
        let coarse = g.coarse.heap_bytes() as f64 / 240.0;
        assert!(fine < 6.0, "{fine} bytes a fine GPU point");
        assert!(coarse < 6.0, "{coarse} bytes a coarse GPU point");
    }
}
