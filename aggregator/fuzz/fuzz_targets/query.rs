//! The query service over arbitrary requests. Its requests are decoded by
//! prost (tonic's codec: no hand-written decoder), so what is fuzzed is
//! the handling that follows: the user's strings (node names, pod UIDs
//! and names, cgroup paths, container IDs, GPU UUIDs) and numbers (time
//! ranges, limits, incident kinds) reaching the incident store's keys and
//! the live state's indexes. Every request must be answered (an answer or
//! a status), never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use gpuscope_aggregator::query::QueryService;
use gpuscope_aggregator::state::{HistoryConfig, State, StreamRefs};
use gpuscope_aggregator::store::Store;
use gpuscope_proto::v1::{
    self as pb, GetSeriesRequest, ListContainersRequest, ListGpusRequest, ListIncidentsRequest,
    ListNodesRequest, query_server::Query,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::Request;

const NODE: &str = "node-a";
const POD: &str = "0f8c3b52-6a0e-4d8e-9d39-2b1f3c6a7e11";

fn container_ref() -> pb::ContainerRef {
    pb::ContainerRef {
        cgroup_path: format!("/kubepods/burstable/pod{POD}/abc"),
        pod_uid: POD.into(),
        container_id: "abc".into(),
        ..Default::default()
    }
}

/// A query service over a store with OOM kills and a state with one
/// container and one GPU, made once.
fn service() -> &'static (tokio::runtime::Runtime, QueryService) {
    static SERVICE: OnceLock<(tokio::runtime::Runtime, QueryService)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let store = Arc::new(Store::open(&dir.join("incidents.redb")).expect("store"));
        let events: Vec<pb::NodeEvent> = (1..=5)
            .map(|seq| pb::NodeEvent {
                seq,
                time_unix_nanos: seq * 1_000_000_000,
                kind: Some(pb::node_event::Kind::OomKill(pb::OomKill {
                    time_unix_nanos: seq * 1_000_000_000,
                    container: Some(container_ref()),
                    ..Default::default()
                })),
            })
            .collect();
        store
            .store_batch(NODE, "boot-1", &events, 1)
            .expect("store events");
        let state = Arc::new(State::new(HistoryConfig::default()));
        let report = pb::NodeReport {
            containers: vec![pb::ContainerSample {
                time_unix_nanos: 1,
                container: Some(container_ref()),
                ..Default::default()
            }],
            gpus: vec![pb::GpuSample {
                uuid: "GPU-1".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec();
        state
            .apply_encoded(NODE, &report, &mut StreamRefs::new())
            .expect("apply report");
        let incidents = tokio::sync::broadcast::channel(16).0;
        let shutdown = tokio::sync::watch::channel(false).1;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        (
            runtime,
            QueryService::new(store, state, incidents, shutdown),
        )
    })
}

/// Decodes `buf` as the request `R` and, when prost accepts it, awaits
/// the handler's answer (dropped: an error status is an answer too).
async fn call<R, T, F>(buf: &[u8], handler: impl FnOnce(Request<R>) -> F)
where
    R: Message + Default,
    F: std::future::Future<Output = Result<T, tonic::Status>>,
{
    if let Ok(r) = R::decode(buf) {
        let _ = handler(Request::new(r)).await;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, buf)) = data.split_first() else {
        return;
    };
    let (runtime, service) = service();
    runtime.block_on(async {
        match pick % 5 {
            0 => {
                call(buf, |r: Request<ListIncidentsRequest>| {
                    service.list_incidents(r)
                })
                .await
            }
            1 => call(buf, |r: Request<GetSeriesRequest>| service.get_series(r)).await,
            2 => {
                call(buf, |r: Request<ListContainersRequest>| {
                    service.list_containers(r)
                })
                .await
            }
            3 => call(buf, |r: Request<ListGpusRequest>| service.list_gpus(r)).await,
            _ => call(buf, |r: Request<ListNodesRequest>| service.list_nodes(r)).await,
        }
    });
});
