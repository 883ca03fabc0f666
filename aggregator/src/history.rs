//! Compact recent history: the points of one container or GPU, delta- and
//! varint-encoded in small blocks.
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
//! The ring keeps at most `cap` points visible; up to one block more is
//! stored (dropped when the newer blocks alone hold `cap`). A block holds
//! `cap / 8` points (1 to 64), so the slack is at most 1/8 of the ring plus
//! one block.

use std::collections::VecDeque;

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
#[derive(Debug)]
pub struct Ring<L: Layout<N>, const N: usize> {
    cap: usize,
    per_block: u16,
    /// Full blocks, oldest first, each `per_block` points.
    sealed: VecDeque<Box<[u8]>>,
    /// The block being written.
    open: Vec<u8>,
    open_points: u16,
    /// The newest point and its time step (the encoder's state).
    last: [u64; N],
    last_step: i64,
    _layout: std::marker::PhantomData<L>,
}

impl<L: Layout<N>, const N: usize> Ring<L, N> {
    /// An empty ring keeping the newest `cap` points.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            per_block: (cap / 8).clamp(1, 64) as u16,
            sealed: VecDeque::new(),
            open: Vec::new(),
            open_points: 0,
            last: [0; N],
            last_step: 0,
            _layout: std::marker::PhantomData,
        }
    }

    fn stored(&self) -> usize {
        self.sealed.len() * usize::from(self.per_block) + usize::from(self.open_points)
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
            let cap = self.open.len() + self.open.len() / 8;
            let full = std::mem::replace(&mut self.open, Vec::with_capacity(cap));
            self.sealed.push_back(full.into_boxed_slice());
            self.open_points = 0;
        }
        let prev = if self.open_points == 0 {
            self.last_step = 0;
            [0; N]
        } else {
            self.last
        };
        let mut flags = 0u32;
        for i in 1..N {
            if p[i] != prev[i] {
                flags |= 1 << (i - 1);
            }
        }
        put_varint(&mut self.open, u128::from(flags));
        let step = p[0].wrapping_sub(prev[0]) as i64;
        put_varint(
            &mut self.open,
            u128::from(zigzag(step.wrapping_sub(self.last_step))),
        );
        for i in 1..N {
            if flags & (1 << (i - 1)) != 0 {
                put_delta(&mut self.open, L::KINDS[i], prev[i], p[i]);
            }
        }
        self.last = p;
        self.last_step = step;
        self.open_points += 1;
        while !self.sealed.is_empty() && self.stored() - usize::from(self.per_block) >= self.cap {
            self.sealed.pop_front();
        }
    }

    /// The newest `n` points, oldest first.
    pub fn last(&self, n: usize) -> Vec<[u64; N]> {
        let want = n.min(self.len());
        let mut skip = self.stored() - want;
        let mut out = Vec::with_capacity(want);
        let blocks = self
            .sealed
            .iter()
            .map(|b| (&b[..], self.per_block))
            .chain(std::iter::once((&self.open[..], self.open_points)));
        for (block, count) in blocks {
            if skip >= usize::from(count) {
                skip -= usize::from(count);
                continue;
            }
            let mut at = 0;
            let mut p = [0u64; N];
            let mut step = 0i64;
            for k in 0..usize::from(count) {
                let Some(next) = Self::decode(block, &mut at, &p, &mut step) else {
                    // Never for what push wrote; stop rather than invent.
                    return out;
                };
                p = next;
                if k >= skip {
                    out.push(p);
                }
            }
            skip = 0;
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

    /// Heap bytes held (encoded blocks and their table).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.sealed.iter().map(|b| b.len()).sum::<usize>()
            + self.open.capacity()
            + self.sealed.capacity() * std::mem::size_of::<Box<[u8]>>()
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
/// flags fit one byte.
#[derive(Debug)]
pub struct ContainerLayout;

impl Layout<10> for ContainerLayout {
    const KINDS: [Kind; 10] = [
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
    ];
}

/// A container's history.
pub type ContainerRing = Ring<ContainerLayout, 10>;

/// A container point as channels.
pub fn container_channels(p: &ContainerPoint) -> [u64; 10] {
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
    ]
}

/// Channels back into a container point.
pub fn container_point(c: &[u64; 10]) -> ContainerPoint {
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

/// A GPU's history.
pub type GpuRing = Ring<GpuLayout, 8>;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: u64) -> ContainerPoint {
        ContainerPoint {
            time_unix_nanos: 1_764_000_000_000_000_000 + i * 1_000_000_000 + (i % 3) * 1_234,
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
}
