//! The kubelet PodResources v1 API: which pod and container holds each GPU.
//!
//! The kubelet serves `v1.PodResourcesLister` over gRPC on a unix socket
//! (`/var/lib/kubelet/pod-resources/kubelet.sock` by default). Its `List`
//! answer names, per container, the device IDs the device plugin allocated:
//! GPU UUIDs (`GPU-...`) for `nvidia.com/gpu`, MIG UUIDs (`MIG-...`) for
//! `nvidia.com/mig-<profile>`, either with a `::N` suffix when the NVIDIA
//! device plugin time-slices the device (replica `N`). This is what
//! attributes a GPU that is allocated but runs no process.
//!
//! The agent's threads have no async runtime, so [`PodResourcesClient`] is
//! blocking: it owns a current-thread tokio runtime and opens a fresh
//! connection for every [`PodResourcesClient::list`] (the kubelet restarts
//! and recreates its socket; a unix connect costs microseconds), with one
//! deadline over connect and call together.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gpuscope_proto::podresources::v1::pod_resources_lister_client::PodResourcesListerClient;
use gpuscope_proto::podresources::v1::{ListPodResourcesRequest, ListPodResourcesResponse};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

use gpuscope_model::GpuHolder;

/// The kubelet's default PodResources socket.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The largest `List` answer accepted, bytes: the kubelet's own client
/// (`k8s.io/kubelet/pkg/apis/podresources`) uses 16 MiB, tonic's default of
/// 4 MiB is too small for a busy node.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A failure to ask the kubelet; each names the socket.
#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    /// The socket could not be connected to (missing, refused, not a
    /// socket, no permission) or the HTTP/2 handshake failed.
    #[error("connecting to PodResources socket {}: {}", socket.display(), chain(source))]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// What failed, with the OS error in its source chain.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connect and `List` together took longer than the deadline.
    #[error("PodResources socket {} did not answer List within {after:?}", socket.display())]
    Timeout {
        /// The socket.
        socket: PathBuf,
        /// The deadline that passed.
        after: Duration,
    },
    /// The `List` call failed: an error status from the kubelet, or a
    /// connection that broke or spoke something other than gRPC.
    #[error("PodResources List on {} failed: {}", socket.display(), status_text(status))]
    Call {
        /// The socket.
        socket: PathBuf,
        /// The gRPC status.
        #[source]
        status: tonic::Status,
    },
    /// The client's own runtime could not be created.
    #[error("creating the PodResources client runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// Which extended resources count as GPUs: exact names and name prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFilter {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl Default for ResourceFilter {
    /// `nvidia.com/gpu`, `nvidia.com/gpu.shared` (the device plugin's name
    /// for time-sliced GPUs with `renameByDefault`) and every
    /// `nvidia.com/mig-*` profile (`nvidia.com/mig-1g.10gb`, and its
    /// `.shared` form).
    fn default() -> Self {
        Self {
            exact: vec![
                "nvidia.com/gpu".to_owned(),
                "nvidia.com/gpu.shared".to_owned(),
            ],
            prefixes: vec!["nvidia.com/mig-".to_owned()],
        }
    }
}

impl ResourceFilter {
    /// A filter that matches nothing yet.
    pub fn none() -> Self {
        Self {
            exact: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    /// Also matches the resource named exactly `name`.
    pub fn with_exact(mut self, name: impl Into<String>) -> Self {
        self.exact.push(name.into());
        self
    }

    /// Also matches every resource whose name starts with `prefix`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into());
        self
    }

    /// Whether `resource_name` is a GPU resource.
    pub fn matches(&self, resource_name: &str) -> bool {
        self.exact.iter().any(|e| e == resource_name)
            || self.prefixes.iter().any(|p| resource_name.starts_with(p))
    }
}

/// Splits a device ID into the GPU or MIG UUID and the time-slicing replica:
/// `GPU-abc::3` -> (`GPU-abc`, `Some(3)`), `MIG-def` -> (`MIG-def`, `None`).
/// An ID whose `::` suffix is not a number is returned whole, with `None`.
pub fn base_uuid(device_id: &str) -> (&str, Option<u32>) {
    match device_id.rsplit_once("::") {
        Some((base, replica)) if !base.is_empty() => match replica.parse() {
            Ok(n) => (base, Some(n)),
            Err(_) => (device_id, None),
        },
        _ => (device_id, None),
    }
}

/// One holder per GPU device ID that `filter` accepts, in the kubelet's
/// order. The one place where the wire answer becomes [`GpuHolder`]s.
pub fn holders(response: &ListPodResourcesResponse, filter: &ResourceFilter) -> Vec<GpuHolder> {
    let mut out = Vec::new();
    for pod in &response.pod_resources {
        for container in &pod.containers {
            for devices in &container.devices {
                if !filter.matches(&devices.resource_name) {
                    continue;
                }
                for id in &devices.device_ids {
                    out.push(GpuHolder {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        container: container.name.clone(),
                        resource_name: devices.resource_name.clone(),
                        device_id: id.clone(),
                        replica: base_uuid(id).1,
                    });
                }
            }
        }
    }
    out
}

/// A blocking client of the kubelet's PodResources v1 `List`.
#[derive(Debug)]
pub struct PodResourcesClient {
    socket: PathBuf,
    timeout: Duration,
    filter: ResourceFilter,
    runtime: tokio::runtime::Runtime,
}

impl PodResourcesClient {
    /// A client of the socket at `socket` whose calls (connect and `List`
    /// together) give up after `timeout`, with the default
    /// [`ResourceFilter`]. Connects nothing yet.
    pub fn new(socket: &Path, timeout: Duration) -> Result<Self, PodResourcesError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(PodResourcesError::Runtime)?;
        Ok(Self {
            socket: socket.to_path_buf(),
            timeout,
            filter: ResourceFilter::default(),
            runtime,
        })
    }

    /// The same client with another resource filter.
    pub fn with_filter(mut self, filter: ResourceFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The socket this client asks.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Asks the kubelet who holds which GPU: connects, calls `List`, and
    /// returns one [`GpuHolder`] per GPU device ID. Blocks for at most the
    /// client's timeout (plus scheduling slack).
    pub fn list(&mut self) -> Result<Vec<GpuHolder>, PodResourcesError> {
        let response = self.list_raw()?;
        Ok(holders(&response, &self.filter))
    }

    /// Like [`list`](Self::list), but the kubelet's whole answer, every
    /// resource included.
    pub fn list_raw(&mut self) -> Result<ListPodResourcesResponse, PodResourcesError> {
        let call = list_once(self.socket.clone());
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, call).await });
        answer.unwrap_or_else(|_elapsed| {
            Err(PodResourcesError::Timeout {
                socket: self.socket.clone(),
                after: self.timeout,
            })
        })
    }
}

/// One connection, one `List`.
async fn list_once(socket: PathBuf) -> Result<ListPodResourcesResponse, PodResourcesError> {
    let path = socket.clone();
    // The URI is required by the HTTP/2 layer and ignored by the connector.
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| PodResourcesError::Connect {
            socket: socket.clone(),
            source,
        })?;
    let mut client =
        PodResourcesListerClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    client
        .list(ListPodResourcesRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| PodResourcesError::Call { socket, status })
}

/// An error's own message and those of its sources, `: `-separated
/// (tonic's transport error says only "transport error" by itself).
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let more = e.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = e.source();
    }
    text
}

/// A status as `Code: message`, with the cause chain when it has one.
fn status_text(status: &tonic::Status) -> String {
    let mut text = format!("{:?}", status.code());
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    if let Some(source) = status.source() {
        let causes = chain(source);
        if !status.message().contains(&causes) {
            text.push_str(" (");
            text.push_str(&causes);
            text.push(')');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpuscope_proto::podresources::v1::{ContainerDevices, ContainerResources, PodResources};

    #[test]
    fn base_uuid_splits_replica() {
        assert_eq!(base_uuid("GPU-8f1c"), ("GPU-8f1c", None));
        assert_eq!(base_uuid("GPU-8f1c::0"), ("GPU-8f1c", Some(0)));
        assert_eq!(base_uuid("GPU-8f1c::12"), ("GPU-8f1c", Some(12)));
        assert_eq!(
            base_uuid("MIG-4d3e6f2a-1b2c-5d6e-8f90-a1b2c3d4e5f6::1"),
            ("MIG-4d3e6f2a-1b2c-5d6e-8f90-a1b2c3d4e5f6", Some(1))
        );
        // Old-style MIG IDs contain single colons and slashes, no replica.
        assert_eq!(base_uuid("MIG-GPU-8f1c/1/0"), ("MIG-GPU-8f1c/1/0", None));
    }

    #[test]
    fn base_uuid_keeps_odd_ids_whole() {
        assert_eq!(base_uuid("GPU-8f1c::x"), ("GPU-8f1c::x", None));
        assert_eq!(base_uuid("GPU-8f1c::"), ("GPU-8f1c::", None));
        assert_eq!(base_uuid("::3"), ("::3", None));
        assert_eq!(base_uuid("GPU-8f1c::-1"), ("GPU-8f1c::-1", None));
        assert_eq!(base_uuid(""), ("", None));
    }

    #[test]
    fn default_filter_takes_nvidia_gpus_and_mig_profiles() {
        let f = ResourceFilter::default();
        assert!(f.matches("nvidia.com/gpu"));
        assert!(f.matches("nvidia.com/gpu.shared"));
        assert!(f.matches("nvidia.com/mig-1g.10gb"));
        assert!(f.matches("nvidia.com/mig-3g.40gb.shared"));
        assert!(!f.matches("nvidia.com/gpu-extra"));
        assert!(!f.matches("amd.com/gpu"));
        assert!(!f.matches("example.com/nic"));
        let custom = ResourceFilter::none().with_exact("amd.com/gpu");
        assert!(custom.matches("amd.com/gpu"));
        assert!(!custom.matches("nvidia.com/gpu"));
    }

    #[test]
    fn holders_one_per_gpu_device_id() {
        let response = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "train-0".to_owned(),
                namespace: "ml".to_owned(),
                containers: vec![ContainerResources {
                    name: "worker".to_owned(),
                    devices: vec![
                        ContainerDevices {
                            resource_name: "nvidia.com/gpu".to_owned(),
                            device_ids: vec!["GPU-a::0".to_owned(), "GPU-b".to_owned()],
                            topology: None,
                        },
                        ContainerDevices {
                            resource_name: "example.com/nic".to_owned(),
                            device_ids: vec!["nic0".to_owned()],
                            topology: None,
                        },
                    ],
                    ..Default::default()
                }],
            }],
        };
        let got = holders(&response, &ResourceFilter::default());
        let ids: Vec<_> = got
            .iter()
            .map(|h| (h.device_id.as_str(), h.replica))
            .collect();
        assert_eq!(ids, [("GPU-a::0", Some(0)), ("GPU-b", None)]);
        assert!(got.iter().all(|h| h.namespace == "ml"
            && h.pod == "train-0"
            && h.container == "worker"
            && h.resource_name == "nvidia.com/gpu"));
    }

    #[test]
    fn missing_socket_names_the_path() {
        let dir = std::env::temp_dir().join(format!("gpuscope-podres-{}", std::process::id()));
        let socket = dir.join("kubelet.sock");
        let mut client = PodResourcesClient::new(&socket, Duration::from_secs(2)).expect("runtime");
        let err = client.list().expect_err("no socket");
        assert!(
            matches!(&err, PodResourcesError::Connect { socket: s, .. } if *s == socket),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&socket.display().to_string()), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }
}
