//! The ingest hot path's hand-written protobuf reader (`wire`) against
//! prost on the same bytes: a container sample (with its `ContainerRef`,
//! read as the state reads a new identity) or a GPU sample. Both must
//! accept or both refuse, and what `wire` reads must be prost's values
//! (floats compared bit for bit).
#![no_main]

use gpuscope_aggregator::wire;
use gpuscope_proto::v1::{self as pb, ContainerPoint, GpuPoint};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// What the state takes from a container sample: its point (with the PSI
/// average as bits), its identity's strings when it has one, its ref id.
type ContainerRead = (ContainerPoint, Option<u32>, Option<[String; 3]>, u32);

fn wire_container(buf: &[u8]) -> Result<ContainerRead, wire::Malformed> {
    let v = wire::container(buf)?;
    let identity = if v.has_ref {
        let r = wire::container_ref(&v.container_ref)?;
        Some([r.cgroup_path, r.pod_uid, r.container_id].map(str::to_owned))
    } else {
        None
    };
    Ok(split_f32(v.point, identity, v.ref_id))
}

fn split_f32(mut point: ContainerPoint, identity: Option<[String; 3]>, id: u32) -> ContainerRead {
    let bits = point.memory_some_avg10.take().map(f32::to_bits);
    (point, bits, identity, id)
}

fn prost_container(s: pb::ContainerSample) -> ContainerRead {
    let memory = s.memory.unwrap_or_default();
    let reclaim = memory.reclaim.unwrap_or_default();
    let point = ContainerPoint {
        time_unix_nanos: s.time_unix_nanos,
        usage_bytes: memory.usage_bytes,
        limit_bytes: memory.limit_bytes,
        anon_bytes: memory.anon_bytes,
        file_bytes: memory.file_bytes,
        shmem_bytes: memory.shmem_bytes,
        cpu_usage_us: s.cpu.map(|c| c.usage_us),
        memory_some_avg10: s
            .pressure
            .and_then(|p| p.memory)
            .and_then(|m| m.some)
            .map(|l| l.avg10),
        oom_kill: memory.events.map_or(0, |e| e.oom_kill),
        pgmajfault: reclaim.pgmajfault,
        workingset_refault_anon: reclaim.workingset_refault_anon,
        workingset_refault_file: reclaim.workingset_refault_file,
    };
    let identity = s
        .container
        .map(|r| [r.cgroup_path, r.pod_uid, r.container_id]);
    split_f32(point, identity, s.ref_id)
}

/// A GPU's UUID and point, the power as bits.
type GpuRead = (String, GpuPoint, Option<u64>);

fn wire_gpu(buf: &[u8]) -> Result<GpuRead, wire::Malformed> {
    let mut v = wire::gpu(buf)?;
    let bits = v.point.power_draw_watts.take().map(f64::to_bits);
    Ok((v.uuid.to_owned(), v.point, bits))
}

fn prost_gpu(g: pb::GpuSample) -> GpuRead {
    let point = GpuPoint {
        time_unix_nanos: g.time_unix_nanos,
        utilization_gpu_percent: g.utilization_gpu_percent,
        utilization_memory_percent: g.utilization_memory_percent,
        memory_used_bytes: g.memory_used_bytes,
        power_draw_watts: None,
        temperature_celsius: g.temperature_celsius,
        processes: g.processes.len() as u32,
    };
    (g.uuid, point, g.power_draw_watts.map(f64::to_bits))
}

fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    ours: Result<T, wire::Malformed>,
    theirs: Result<T, prost::DecodeError>,
) {
    match (ours, theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: wire read other values than prost"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{what}: wire says {a:?}, prost says {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    if pick % 2 == 0 {
        same(
            "ContainerSample",
            wire_container(buf),
            pb::ContainerSample::decode(buf).map(prost_container),
        );
    } else {
        same(
            "GpuSample",
            wire_gpu(buf),
            pb::GpuSample::decode(buf).map(prost_gpu),
        );
    }
});
