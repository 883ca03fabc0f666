//! The query service (`gpuscope.v1.Query`): live state from [`State`],
//! incidents from the [`Store`], new incidents from the ingest broadcast.

use std::pin::Pin;
use std::sync::Arc;

use gpuscope_proto::v1::{
    GetSeriesRequest, GetSeriesResponse, Incident, ListContainersRequest, ListContainersResponse,
    ListGpusRequest, ListGpusResponse, ListIncidentsRequest, ListIncidentsResponse,
    ListNodesRequest, ListNodesResponse, WatchIncidentsRequest, WatchIncidentsResponse,
    WatchLagged, get_series_request::Target, query_server::Query, watch_incidents_response,
};
use tokio::sync::{broadcast, watch};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::state::{Series, SeriesTarget, State};
use crate::store::{Store, matches};

/// ListIncidents' limit when the request sets none.
pub const DEFAULT_LIMIT: usize = 1000;

/// The Query service.
#[derive(Debug, Clone)]
pub struct QueryService {
    store: Arc<Store>,
    state: Arc<State>,
    incidents: broadcast::Sender<Arc<Incident>>,
    shutdown: watch::Receiver<bool>,
}

impl QueryService {
    /// A query service over `store` and `state`, watching `incidents`.
    pub fn new(
        store: Arc<Store>,
        state: Arc<State>,
        incidents: broadcast::Sender<Arc<Incident>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            state,
            incidents,
            shutdown,
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchIncidentsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(ListNodesResponse {
            nodes: self.state.nodes(),
        }))
    }

    async fn list_gpus(
        &self,
        request: Request<ListGpusRequest>,
    ) -> Result<Response<ListGpusResponse>, Status> {
        Ok(Response::new(ListGpusResponse {
            gpus: self.state.gpus(&request.get_ref().node_name),
        }))
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        let r = request.get_ref();
        Ok(Response::new(ListContainersResponse {
            containers: self.state.containers(&r.node_name, &r.pod_uid),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        let r = request.into_inner();
        if r.until_unix_nanos != 0 && r.until_unix_nanos <= r.since_unix_nanos {
            return Err(Status::invalid_argument(
                "until_unix_nanos must be after since_unix_nanos",
            ));
        }
        let limit = if r.limit == 0 {
            DEFAULT_LIMIT
        } else {
            r.limit as usize
        };
        let store = self.store.clone();
        let filter = r.filter.unwrap_or_default();
        let (incidents, truncated) = tokio::task::spawn_blocking(move || {
            store.list(&filter, r.since_unix_nanos, r.until_unix_nanos, limit)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?
        .map_err(|e| Status::internal(format!("reading incidents failed: {e}")))?;
        Ok(Response::new(ListIncidentsResponse {
            incidents,
            truncated,
        }))
    }

    async fn get_series(
        &self,
        request: Request<GetSeriesRequest>,
    ) -> Result<Response<GetSeriesResponse>, Status> {
        let r = request.get_ref();
        let target = match &r.target {
            Some(Target::CgroupPath(p)) => SeriesTarget::CgroupPath(p),
            Some(Target::ContainerId(id)) => SeriesTarget::ContainerId(id),
            Some(Target::GpuUuid(u)) => SeriesTarget::GpuUuid(u),
            None => {
                return Err(Status::invalid_argument(
                    "GetSeriesRequest needs a target: cgroup_path, container_id or gpu_uuid",
                ));
            }
        };
        let Some(series) = self.state.series(&r.node_name, target) else {
            return Err(Status::not_found(format!("no history for {target:?}")));
        };
        Ok(Response::new(match series {
            Series::Container {
                node_name,
                latest,
                points,
            } => GetSeriesResponse {
                node_name,
                container: latest.container,
                container_points: points,
                ..Default::default()
            },
            Series::Gpu {
                node_name,
                uuid,
                points,
            } => GetSeriesResponse {
                node_name,
                gpu_uuid: uuid,
                gpu_points: points,
                ..Default::default()
            },
        }))
    }

    type WatchIncidentsStream = WatchStream;

    async fn watch_incidents(
        &self,
        request: Request<WatchIncidentsRequest>,
    ) -> Result<Response<Self::WatchIncidentsStream>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let mut rx = self.incidents.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    n = rx.recv() => n,
                    _ = crate::stopped(&mut shutdown) => {
                        let _ = tx.send(Err(Status::unavailable("aggregator shutting down"))).await;
                        return;
                    }
                    _ = tx.closed() => return,
                };
                let msg = match next {
                    Ok(incident) if matches(&filter, &incident) => {
                        watch_incidents_response::Kind::Incident((*incident).clone())
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "Incident watcher lagged.");
                        watch_incidents_response::Kind::Lagged(WatchLagged { skipped })
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let resp = WatchIncidentsResponse { kind: Some(msg) };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}
