//! The ingest hot path's protobuf reading: a report's container and GPU
//! samples read in place from the received bytes, without building
//! `NodeReport` (whose strings, nested messages and vectors were most of
//! ingest's cost: a fresh `String` for each container's cgroup path, pod
//! UID and container ID, for every GPU's UUID, name, processes and holders,
//! on every report).
//!
//! Only the fields the state keeps are decoded: the container's identity
//! (compared as bytes with the one already known), the memory, CPU and
//! memory-PSI figures of a history point, and a GPU's UUID and point
//! figures; the sample's own bytes are kept as its latest sample and
//! decoded with prost when a query asks. What is accepted is what prost
//! accepts, and the values read are prost's (the `ingest_wire` fuzz target
//! of `aggregator/fuzz` checks both against prost on arbitrary bytes):
//! every field of every nested message is walked and checked for its wire
//! type, unknown fields of any wire type (groups too, as deep as prost's
//! recursion limit) are skipped, a varint overflowing 64 bits is refused,
//! a repeated message field merges, and the strings of a new identity, and
//! of every GPU sample, are checked for UTF-8.
//!
//! The wire contract is `proto/gpuscope/v1/node.proto`: the field numbers
//! below are its `ContainerSample`, `ContainerRef`, `MemoryStats`,
//! `MemoryEvents`, `Reclaim`, `StuckTask`, `CpuStats`, `Pressure`, `Psi`,
//! `PsiLine`, `GpuSample`, `GpuProcess`, `GpuHolder`, `GpuHealth`,
//! `NvLinkStatus` and `NodeReport`
//! numbers.

use std::borrow::Cow;

use gpuscope_proto::v1::{ContainerPoint, GpuPoint};

/// A malformed message: what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

type Result<T> = std::result::Result<T, Malformed>;

/// How deep prost lets messages and groups nest (its `RECURSION_LIMIT`):
/// a group nested this deep in the message being read is refused, as
/// prost refuses it.
const RECURSION_LIMIT: u32 = 100;

/// One field's value.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire type 3 (a proto2 group, skipped to its end): no field of the
    /// gpuscope messages is one, but an unknown field may be, as prost
    /// accepts.
    Group,
}

impl<'a> Value<'a> {
    /// The varint, or an error naming `what`.
    pub fn varint(self, what: &'static str) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(Malformed(what)),
        }
    }

    /// The bytes, or an error naming `what`.
    pub fn bytes(self, what: &'static str) -> Result<&'a [u8]> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(Malformed(what)),
        }
    }

    /// A UTF-8 string, or an error naming `what`.
    pub fn str(self, what: &'static str) -> Result<&'a str> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| Malformed(what))
    }

    /// A `float` or `fixed32`, or an error naming `what`.
    fn fixed32(self, what: &'static str) -> Result<u32> {
        match self {
            Value::Fixed32(v) => Ok(v),
            _ => Err(Malformed(what)),
        }
    }

    /// A `double` or `fixed64`, or an error naming `what`.
    fn fixed64(self, what: &'static str) -> Result<u64> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(Malformed(what)),
        }
    }
}

/// The fields of one message, in order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    /// How much deeper groups may nest here (prost's recursion budget at
    /// this message's depth).
    limit: u32,
}

impl<'a> Fields<'a> {
    /// The fields of `buf`, a message read on its own (as prost's
    /// `decode` reads it).
    pub fn new(buf: &'a [u8]) -> Self {
        Self::at(buf, 0)
    }

    /// The fields of `buf`, a message nested `depth` messages deep in the
    /// one being read.
    fn at(buf: &'a [u8], depth: u32) -> Self {
        Self {
            buf,
            limit: RECURSION_LIMIT - depth,
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // Most keys and many values are one byte.
        if let Some((&b, rest)) = self.buf.split_first()
            && b < 0x80
        {
            self.buf = rest;
            return Ok(u64::from(b));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // A tenth byte over 1 overflows 64 bits: prost refuses it.
                if i == 9 && b > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(v);
            }
        }
        Err(Malformed("bad varint"))
    }

    /// A field's key: its number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u64)> {
        let key = self.varint()?;
        let tag = (key >> 3) as u32;
        if tag == 0 || key >> 3 > u64::from(u32::MAX >> 3) {
            return Err(Malformed("invalid field number"));
        }
        Ok((tag, key & 7))
    }

    #[inline]
    fn field(&mut self) -> Result<(u32, Value<'a>)> {
        let (tag, wire_type) = self.key()?;
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| Malformed("short"))?,
            )),
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(usize::try_from(n).map_err(|_| Malformed("length"))?)?)
            }
            3 => {
                self.skip_group(tag, self.limit)?;
                Value::Group
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| Malformed("short"))?,
            )),
            _ => return Err(Malformed("unsupported wire type")),
        };
        Ok((tag, value))
    }

    /// Skips a group's fields up to its end (prost's `skip_field`): each
    /// field inside takes one from `limit`, and none may be read at 0.
    fn skip_group(&mut self, tag: u32, limit: u32) -> Result<()> {
        loop {
            let (inner, wire_type) = self.key()?;
            if wire_type == 4 {
                return if inner == tag {
                    Ok(())
                } else {
                    Err(Malformed("group ends with another field number"))
                };
            }
            let limit = limit - 1;
            if limit == 0 {
                return Err(Malformed("groups nested too deep"));
            }
            match wire_type {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let n = self.varint()?;
                    self.take(usize::try_from(n).map_err(|_| Malformed("length"))?)?;
                }
                3 => self.skip_group(inner, limit)?,
                5 => {
                    self.take(4)?;
                }
                _ => return Err(Malformed("unsupported wire type")),
            }
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Malformed("field runs past the end of its message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.buf = &[];
        }
        Some(field)
    }
}

/// What the state takes from one container sample.
#[derive(Debug, Clone, Default)]
pub struct ContainerView<'a> {
    /// The `ContainerRef` message's bytes (empty when absent). A sample
    /// with the field twice (never sent, but valid protobuf) has them
    /// joined: prost merges the two, and the merge of two messages reads
    /// as their concatenation.
    pub container_ref: Cow<'a, [u8]>,
    /// Whether the sample had a `container` field.
    pub has_ref: bool,
    /// Its stream-local container id (protocol 2; 0: none).
    pub ref_id: u32,
    /// Its history point.
    pub point: ContainerPoint,
}

/// Reads a `ContainerSample`; its `container` is read by
/// [`container_ref`], when its identity is new.
pub fn container(buf: &[u8]) -> Result<ContainerView<'_>> {
    let mut v = ContainerView::default();
    let mut cpu_seen = false;
    let mut cpu_usage = 0;
    for f in Fields::new(buf) {
        match f? {
            (1, x) => v.point.time_unix_nanos = x.varint("ContainerSample.time_unix_nanos")?,
            (2, x) => {
                let b = x.bytes("ContainerSample.container")?;
                if v.has_ref {
                    // Each part must be valid on its own, as prost reads it.
                    container_ref(&v.container_ref)?;
                    v.container_ref.to_mut().extend_from_slice(b);
                } else {
                    v.container_ref = Cow::Borrowed(b);
                }
                v.has_ref = true;
            }
            (3 | 7, x) => {
                x.varint("ContainerSample enum")?;
            }
            // A uint32 keeps the low 32 bits of its varint, as prost does.
            (8, x) => v.ref_id = x.varint("ContainerSample.ref_id")? as u32,
            (4, x) => memory(x.bytes("ContainerSample.memory")?, &mut v.point)?,
            (5, x) => {
                cpu_seen = true;
                for f in Fields::at(x.bytes("ContainerSample.cpu")?, 1) {
                    match f? {
                        (1, x) => cpu_usage = x.varint("CpuStats.usage_us")?,
                        (2 | 3, x) => {
                            x.varint("CpuStats")?;
                        }
                        _ => {}
                    }
                }
            }
            (9, x) => stuck_task(x.bytes("ContainerSample.stuck")?)?,
            (6, x) => {
                for f in Fields::at(x.bytes("ContainerSample.pressure")?, 1) {
                    match f? {
                        (1, x) => psi(x.bytes("Pressure.memory")?, &mut v.point)?,
                        (2 | 3, x) => psi(x.bytes("Pressure")?, &mut ContainerPoint::default())?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    v.point.cpu_usage_us = cpu_seen.then_some(cpu_usage);
    Ok(v)
}

/// A `Psi` two messages deep: its `some` line's `avg10` into `p`.
fn psi(buf: &[u8], p: &mut ContainerPoint) -> Result<()> {
    for f in Fields::at(buf, 2) {
        let (tag, x) = f?;
        if !matches!(tag, 1 | 2) {
            continue;
        }
        let mut avg10 = None;
        for f in Fields::at(x.bytes("Psi line")?, 3) {
            match f? {
                (1, x) => avg10 = Some(f32::from_bits(x.fixed32("PsiLine.avg10")?)),
                (2 | 3, x) => {
                    x.fixed32("PsiLine average")?;
                }
                (4, x) => {
                    x.varint("PsiLine.total_us")?;
                }
                _ => {}
            }
        }
        if tag == 1 {
            // A line without `avg10` keeps the value a previous one set.
            let line = p.memory_some_avg10.get_or_insert(0.0);
            if let Some(avg10) = avg10 {
                *line = avg10;
            }
        }
    }
    Ok(())
}

fn memory(buf: &[u8], p: &mut ContainerPoint) -> Result<()> {
    for f in Fields::at(buf, 1) {
        match f? {
            (1, x) => p.usage_bytes = x.varint("MemoryStats.usage_bytes")?,
            (2, x) => p.limit_bytes = Some(x.varint("MemoryStats.limit_bytes")?),
            (3, x) => {
                x.varint("MemoryStats.peak_bytes")?;
            }
            (4, x) => p.anon_bytes = x.varint("MemoryStats.anon_bytes")?,
            (5, x) => p.file_bytes = x.varint("MemoryStats.file_bytes")?,
            (6, x) => p.shmem_bytes = x.varint("MemoryStats.shmem_bytes")?,
            (7, x) => {
                for f in Fields::at(x.bytes("MemoryStats.events")?, 2) {
                    match f? {
                        (2, x) => p.oom_kill = x.varint("MemoryEvents.oom_kill")?,
                        (1 | 3..=7, x) => {
                            x.varint("MemoryEvents")?;
                        }
                        _ => {}
                    }
                }
            }
            (8, x) => {
                for f in Fields::at(x.bytes("MemoryStats.reclaim")?, 2) {
                    match f? {
                        (1, x) => p.pgmajfault = Some(x.varint("Reclaim.pgmajfault")?),
                        (2, x) => {
                            p.workingset_refault_anon =
                                Some(x.varint("Reclaim.workingset_refault_anon")?);
                        }
                        (3, x) => {
                            p.workingset_refault_file =
                                Some(x.varint("Reclaim.workingset_refault_file")?);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `StuckTask`, checked as prost checks it (the state keeps the
/// sample's bytes; a query decodes them).
fn stuck_task(buf: &[u8]) -> Result<()> {
    for f in Fields::at(buf, 1) {
        match f? {
            (1 | 3 | 5, x) => {
                x.varint("StuckTask number")?;
            }
            (2 | 4 | 6 | 7 | 8, x) => {
                x.str("StuckTask string")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `ContainerRef`'s strings, checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefView<'a> {
    /// `cgroup_path`.
    pub cgroup_path: &'a str,
    /// `pod_uid`.
    pub pod_uid: &'a str,
    /// `container_id`.
    pub container_id: &'a str,
}

/// Reads and checks a `ContainerSample`'s `ContainerRef`.
pub fn container_ref(buf: &[u8]) -> Result<RefView<'_>> {
    ref_at(buf, 1)
}

/// Reads and checks a `ContainerRef` nested `depth` messages deep.
fn ref_at(buf: &[u8], depth: u32) -> Result<RefView<'_>> {
    let mut r = RefView::default();
    for f in Fields::at(buf, depth) {
        match f? {
            (1, x) => r.cgroup_path = x.str("ContainerRef.cgroup_path")?,
            (2, x) => r.pod_uid = x.str("ContainerRef.pod_uid")?,
            (3, x) => r.container_id = x.str("ContainerRef.container_id")?,
            (4..=6, x) => {
                x.varint("ContainerRef enum")?;
            }
            _ => {}
        }
    }
    Ok(r)
}

/// What the state takes from one GPU sample.
#[derive(Debug, Clone, Default)]
pub struct GpuView<'a> {
    /// `uuid`.
    pub uuid: &'a str,
    /// Its history point.
    pub point: GpuPoint,
}

/// Reads and checks a `GpuSample` (every string is checked for UTF-8).
pub fn gpu(buf: &[u8]) -> Result<GpuView<'_>> {
    let mut v = GpuView::default();
    for f in Fields::new(buf) {
        match f? {
            (1, x) => v.point.time_unix_nanos = x.varint("GpuSample.time_unix_nanos")?,
            (3, x) => v.uuid = x.str("GpuSample.uuid")?,
            (4..=6, x) => {
                x.str("GpuSample string")?;
            }
            (7, x) => {
                v.point.utilization_gpu_percent = Some(x.varint("GpuSample.utilization")? as u32);
            }
            (8, x) => {
                v.point.utilization_memory_percent =
                    Some(x.varint("GpuSample.utilization_memory")? as u32);
            }
            (10, x) => v.point.memory_used_bytes = x.varint("GpuSample.memory_used_bytes")?,
            (11, x) => {
                v.point.power_draw_watts =
                    Some(f64::from_bits(x.fixed64("GpuSample.power_draw_watts")?));
            }
            (12, x) => {
                x.fixed64("GpuSample.power_limit_watts")?;
            }
            (13, x) => {
                v.point.temperature_celsius = Some(x.varint("GpuSample.temperature")? as u32);
            }
            (2 | 9 | 14 | 15 | 18, x) => {
                x.varint("GpuSample")?;
            }
            (16, x) => {
                v.point.processes += 1;
                for f in Fields::at(x.bytes("GpuSample.processes")?, 1) {
                    match f? {
                        (5, x) => {
                            ref_at(x.bytes("GpuProcess.container")?, 2)?;
                        }
                        (1..=4, x) => {
                            x.varint("GpuProcess")?;
                        }
                        _ => {}
                    }
                }
            }
            (19, x) => {
                // Not kept in history, but checked as prost checks it:
                // every field of GpuHealth is a varint but its NVLink
                // links, messages of varints.
                for f in Fields::at(x.bytes("GpuSample.health")?, 1) {
                    match f? {
                        (1..=20, x) => {
                            x.varint("GpuHealth")?;
                        }
                        (21, x) => {
                            for f in Fields::at(x.bytes("GpuHealth.nvlinks")?, 2) {
                                if let (1..=6, x) = f? {
                                    x.varint("NvLinkStatus")?;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            (17, x) => {
                for f in Fields::at(x.bytes("GpuSample.holders")?, 1) {
                    match f? {
                        (1..=5, x) => {
                            x.str("GpuHolder string")?;
                        }
                        (6, x) => {
                            x.varint("GpuHolder.replica")?;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_proto::v1 as pb;
    use prost::Message;

    #[test]
    fn reads_what_prost_wrote() {
        let s = pb::ContainerSample {
            time_unix_nanos: 1_764_000_000_123_456_789,
            container: Some(pb::ContainerRef {
                cgroup_path: "/kubepods/pod1/abc".into(),
                pod_uid: "1".into(),
                container_id: "abc".into(),
                qos: 2,
                ..Default::default()
            }),
            cgroup_version: 2,
            memory: Some(pb::MemoryStats {
                usage_bytes: 5 << 20,
                limit_bytes: Some(1 << 30),
                peak_bytes: Some(6 << 20),
                anon_bytes: 4 << 20,
                file_bytes: 1 << 20,
                shmem_bytes: 4096,
                events: Some(pb::MemoryEvents {
                    oom: Some(1),
                    oom_kill: 3,
                    ..Default::default()
                }),
                reclaim: None,
            }),
            cpu: Some(pb::CpuStats {
                usage_us: 0,
                ..Default::default()
            }),
            pressure: Some(pb::Pressure {
                memory: Some(pb::Psi {
                    some: Some(pb::PsiLine {
                        avg10: 1.25,
                        ..Default::default()
                    }),
                    full: None,
                }),
                ..Default::default()
            }),
            pressure_scope: 1,
            ref_id: 7,
            stuck: Vec::new(),
        };
        let bytes = s.encode_to_vec();
        let v = container(&bytes).expect("reads");
        assert_eq!(v.ref_id, 7);
        let r = container_ref(&v.container_ref).expect("ref");
        assert_eq!(
            (r.cgroup_path, r.pod_uid, r.container_id),
            ("/kubepods/pod1/abc", "1", "abc")
        );
        assert_eq!(
            v.point,
            ContainerPoint {
                time_unix_nanos: s.time_unix_nanos,
                usage_bytes: 5 << 20,
                limit_bytes: Some(1 << 30),
                anon_bytes: 4 << 20,
                file_bytes: 1 << 20,
                shmem_bytes: 4096,
                cpu_usage_us: Some(0),
                memory_some_avg10: Some(1.25),
                oom_kill: 3,
                ..ContainerPoint::default()
            }
        );
        let empty_bytes = pb::ContainerSample::default().encode_to_vec();
        let empty = container(&empty_bytes).expect("empty");
        assert!(!empty.has_ref);
        assert_eq!(empty.point, ContainerPoint::default());

        let g = pb::GpuSample {
            time_unix_nanos: 9,
            uuid: "GPU-1".into(),
            utilization_gpu_percent: Some(0),
            memory_used_bytes: 77,
            power_draw_watts: Some(81.5),
            temperature_celsius: Some(40),
            processes: vec![pb::GpuProcess::default(); 3],
            holders: vec![pb::GpuHolder {
                pod: "p".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let g_bytes = g.encode_to_vec();
        let v = gpu(&g_bytes).expect("gpu");
        assert_eq!(v.uuid, "GPU-1");
        assert_eq!(
            v.point,
            GpuPoint {
                time_unix_nanos: 9,
                utilization_gpu_percent: Some(0),
                utilization_memory_percent: None,
                memory_used_bytes: 77,
                power_draw_watts: Some(81.5),
                temperature_celsius: Some(40),
                processes: 3,
            }
        );
    }

    #[test]
    fn reclaim_counters_and_stuck_tasks_read_as_prost_reads_them() {
        let s = pb::ContainerSample {
            time_unix_nanos: 5,
            memory: Some(pb::MemoryStats {
                usage_bytes: 9,
                reclaim: Some(pb::Reclaim {
                    pgmajfault: Some(1200),
                    workingset_refault_anon: None,
                    workingset_refault_file: Some(0),
                }),
                ..Default::default()
            }),
            stuck: vec![pb::StuckTask {
                pid: 4242,
                comm: "python3".into(),
                since_unix_nanos: 1 << 60,
                wchan: "rpc_wait_bit_killable".into(),
                wait: pb::WaitKind::Nfs as i32,
                stack: vec!["rpc_wait_bit_killable+0x24/0xa0 [sunrpc]".into()],
                file: "/data/shard-0042.tar".into(),
                fstype: "nfs4".into(),
            }],
            ..Default::default()
        };
        let bytes = s.encode_to_vec();
        let back = pb::ContainerSample::decode(&bytes[..]).expect("prost");
        let v = container(&bytes).expect("reads");
        let r = back.memory.and_then(|m| m.reclaim).expect("reclaim");
        assert_eq!(
            (
                v.point.pgmajfault,
                v.point.workingset_refault_anon,
                v.point.workingset_refault_file
            ),
            (
                r.pgmajfault,
                r.workingset_refault_anon,
                r.workingset_refault_file
            )
        );
        assert_eq!(v.point.pgmajfault, Some(1200));
        assert_eq!(v.point.workingset_refault_file, Some(0));
        assert_eq!(back.stuck, s.stuck);

        // A stuck task's comm that is not UTF-8: both refuse the sample.
        let mut bad = bytes.clone();
        let at = bad.windows(7).position(|w| w == b"python3").expect("comm");
        bad[at] = 0xff;
        assert!(pb::ContainerSample::decode(&bad[..]).is_err());
        assert!(container(&bad).is_err());
        // The same in the filesystem type.
        let mut bad = bytes.clone();
        let at = bad.windows(4).position(|w| w == b"nfs4").expect("fstype");
        bad[at] = 0xff;
        assert!(pb::ContainerSample::decode(&bad[..]).is_err());
        assert!(container(&bad).is_err());
        // A string where the pid belongs: both refuse.
        let wrong = [9 << 3 | 2, 3, 1 << 3 | 2, 1, b'x'];
        assert!(pb::ContainerSample::decode(&wrong[..]).is_err());
        assert!(container(&wrong).is_err());
        // A varint where the reclaim message belongs: both refuse.
        let wrong = [4 << 3 | 2, 2, 8 << 3, 1];
        assert!(pb::ContainerSample::decode(&wrong[..]).is_err());
        assert!(container(&wrong).is_err());
    }

    #[test]
    fn rejects_what_prost_rejects() {
        // A string that is not UTF-8.
        let bad = pb::GpuHolder {
            pod: "x".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let mut holder = bad.clone();
        let at = holder.iter().position(|&b| b == b'x').expect("x");
        holder[at] = 0xff;
        let mut g = pb::GpuSample::default().encode_to_vec();
        g.push(17 << 3 | 2);
        g.push(holder.len() as u8);
        g.extend_from_slice(&holder);
        assert!(gpu(&g).is_err());
        // Truncated.
        let s = pb::ContainerSample {
            time_unix_nanos: 1 << 40,
            ..Default::default()
        }
        .encode_to_vec();
        assert!(container(&s[..s.len() - 1]).is_err());
        // A varint where a message belongs.
        assert!(container(&[4 << 3, 1]).is_err());
        // A varint whose tenth byte overflows 64 bits.
        let mut over = vec![1 << 3];
        over.extend([0xff; 9]);
        over.push(0x02);
        assert!(pb::ContainerSample::decode(&over[..]).is_err());
        assert!(container(&over).is_err());
        // A wrong wire type in a field the state does not keep.
        let cpu_psi = [6 << 3 | 2, 4, 2 << 3 | 2, 2, 1 << 3, 0];
        assert!(pb::ContainerSample::decode(&cpu_psi[..]).is_err());
        assert!(container(&cpu_psi).is_err());
        // The same in the GPU's health counters (a fixed64 where
        // GpuHealth.sm_clock_max_mhz, a varint, belongs).
        // Key 19 << 3 | 2 = 154 takes two varint bytes.
        let health = [0x9a, 0x01, 9, 2 << 3 | 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(pb::GpuSample::decode(&health[..]).is_err());
        assert!(gpu(&health).is_err());
        // ... and in an NVLink link of them (a fixed32 where
        // NvLinkStatus.replay_errors, a varint, belongs), and an NVLink
        // link that is a varint instead of a message.
        let link = [0x9a, 0x01, 8, 21 << 3 | 2, 5, 5 << 3 | 5, 0, 0, 0, 0];
        assert!(pb::GpuSample::decode(&link[..]).is_err());
        assert!(gpu(&link).is_err());
        let flat = [0x9a, 0x01, 3, 0xa8, 0x01, 1];
        assert!(pb::GpuSample::decode(&flat[..]).is_err());
        assert!(gpu(&flat).is_err());
        // A well-formed link is read by both.
        let ok = pb::GpuSample {
            health: Some(pb::GpuHealth {
                nvlinks: vec![pb::NvLinkStatus {
                    link: 17,
                    active: true,
                    replay_errors: Some(1 << 40),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        assert!(pb::GpuSample::decode(&ok[..]).is_ok());
        assert!(gpu(&ok).is_ok());
    }

    #[test]
    fn accepts_what_prost_accepts() {
        // An unknown field that is a group, with a group inside.
        let group = [
            15 << 3 | 3,
            14 << 3 | 3,
            1 << 3,
            5,
            14 << 3 | 4,
            15 << 3 | 4,
            1 << 3,
            7,
        ];
        let s = pb::ContainerSample::decode(&group[..]).expect("prost reads it");
        let v = container(&group).expect("reads a group");
        assert_eq!(v.point.time_unix_nanos, s.time_unix_nanos);
        // Groups nested past prost's recursion limit are refused by both.
        let deep = |n: usize| {
            let mut b = vec![15 << 3 | 3; n];
            b.extend(vec![15 << 3 | 4; n]);
            b
        };
        assert!(pb::ContainerSample::decode(&deep(100)[..]).is_ok());
        assert!(container(&deep(100)).is_ok());
        assert!(pb::ContainerSample::decode(&deep(101)[..]).is_err());
        assert!(container(&deep(101)).is_err());
        // Two `container` fields merge, as prost merges them.
        let a = pb::ContainerRef {
            cgroup_path: "/a".into(),
            pod_uid: "1".into(),
            ..Default::default()
        };
        let b = pb::ContainerRef {
            pod_uid: "2".into(),
            ..Default::default()
        };
        let mut twice = pb::ContainerSample {
            container: Some(a),
            ..Default::default()
        }
        .encode_to_vec();
        twice.extend(
            pb::ContainerSample {
                container: Some(b),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let merged = pb::ContainerSample::decode(&twice[..])
            .expect("prost")
            .container
            .expect("container");
        let v = container(&twice).expect("reads");
        let r = container_ref(&v.container_ref).expect("ref");
        assert_eq!(
            (r.cgroup_path, r.pod_uid),
            (merged.cgroup_path.as_str(), merged.pod_uid.as_str())
        );
        assert_eq!((r.cgroup_path, r.pod_uid), ("/a", "2"));
    }
}
