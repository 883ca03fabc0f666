//! A fake kubelet PodResources server: the kubelet's real v1
//! `PodResourcesLister` gRPC service (the vendored `api.proto`, served by
//! tonic) on a unix socket in a tempdir, answering from a plain Rust
//! description of pods, containers and devices.
//!
//! It runs on its own thread and current-thread runtime, so blocking tests
//! and the agent's blocking client can use it directly, and stops when
//! dropped. [`Mode::Slow`] delays every answer; [`Mode::Garbage`] is not
//! gRPC at all: it writes random bytes to each connection and closes it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use gpuscope_proto::podresources::v1 as pb;
use gpuscope_proto::podresources::v1::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// Devices of one extended resource allocated to a container.
#[derive(Debug, Clone)]
pub struct Devices {
    /// Resource name (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, ...).
    pub resource: String,
    /// Device IDs as the device plugin lists them.
    pub ids: Vec<String>,
}

/// A container and its devices.
#[derive(Debug, Clone)]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Allocated devices.
    pub devices: Vec<Devices>,
}

impl Container {
    /// A container without devices.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            devices: Vec::new(),
        }
    }

    /// Adds `ids` of `resource`.
    pub fn devices(mut self, resource: &str, ids: &[&str]) -> Self {
        self.devices.push(Devices {
            resource: resource.to_owned(),
            ids: ids.iter().map(|&s| s.to_owned()).collect(),
        });
        self
    }
}

/// A pod and its containers.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Containers.
    pub containers: Vec<Container>,
}

impl Pod {
    /// A pod without containers.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            containers: Vec::new(),
        }
    }

    /// Adds a container.
    pub fn container(mut self, container: Container) -> Self {
        self.containers.push(container);
        self
    }
}

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers at once.
    Normal,
    /// Waits this long before every answer.
    Slow(Duration),
    /// Not gRPC: writes random bytes that are not HTTP/2 to every
    /// connection, then closes it.
    Garbage,
}

/// A running fake PodResources server; stops and removes its socket when
/// dropped.
pub struct FakePodResources {
    dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    calls: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakePodResources {
    /// Serves `pods` in `mode` on `<tempdir>/kubelet.sock`. The socket
    /// accepts connections when this returns.
    pub fn start(pods: Vec<Pod>, mode: Mode) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut fake = Self::start_at(&dir.path().join("kubelet.sock"), pods, mode)?;
        fake.dir = Some(dir);
        Ok(fake)
    }

    /// Serves `pods` in `mode` on `socket` (which must not exist), like a
    /// kubelet restarting on the same path; the socket file is removed on
    /// drop.
    pub fn start_at(socket: &Path, pods: Vec<Pod>, mode: Mode) -> std::io::Result<Self> {
        let socket = socket.to_path_buf();
        let listener = std::os::unix::net::UnixListener::bind(&socket)?;
        listener.set_nonblocking(true)?;
        let calls = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let service = Lister {
            pods: Arc::new(pods),
            delay: match mode {
                Mode::Slow(d) => d,
                _ => Duration::ZERO,
            },
            calls: Arc::clone(&calls),
        };
        let thread = std::thread::Builder::new()
            .name("fake-pod-resources".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
                        return;
                    };
                    // Dropping the server future on stop (not a graceful
                    // shutdown) ends at once even with a slow answer in
                    // flight; the runtime's drop cancels its connections.
                    tokio::select! {
                        () = serve(listener, service, mode) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(Self {
            dir: None,
            socket,
            calls,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A server answering `pods` at once.
    pub fn normal(pods: Vec<Pod>) -> std::io::Result<Self> {
        Self::start(pods, Mode::Normal)
    }

    /// The socket to connect to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// How many requests (any method) the gRPC service has received.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for FakePodResources {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(listener: tokio::net::UnixListener, service: Lister, mode: Mode) {
    if mode == Mode::Garbage {
        let mut seed = u64::from(std::process::id()) | 1;
        while let Ok((mut conn, _)) = listener.accept().await {
            let bytes = garbage(&mut seed, 512);
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
        }
        return;
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let _ = tonic::transport::Server::builder()
        .add_service(PodResourcesListerServer::new(service))
        .serve_with_incoming(incoming)
        .await;
}

/// `n` pseudo-random bytes (xorshift64), never starting like an HTTP/2
/// frame the client could accept: the first byte is set to a frame length
/// far beyond the default maximum frame size.
fn garbage(seed: &mut u64, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out[0] = 0xff;
    out
}

#[derive(Clone)]
struct Lister {
    pods: Arc<Vec<Pod>>,
    delay: Duration,
    calls: Arc<AtomicUsize>,
}

impl Lister {
    async fn answer(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

fn to_wire(pod: &Pod) -> pb::PodResources {
    pb::PodResources {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        containers: pod
            .containers
            .iter()
            .map(|c| pb::ContainerResources {
                name: c.name.clone(),
                devices: c.devices.iter().map(devices_to_wire).collect(),
                ..Default::default()
            })
            .collect(),
    }
}

fn devices_to_wire(d: &Devices) -> pb::ContainerDevices {
    pb::ContainerDevices {
        resource_name: d.resource.clone(),
        device_ids: d.ids.clone(),
        topology: None,
    }
}

#[tonic::async_trait]
impl PodResourcesLister for Lister {
    async fn list(
        &self,
        _request: Request<pb::ListPodResourcesRequest>,
    ) -> Result<Response<pb::ListPodResourcesResponse>, Status> {
        self.answer().await;
        Ok(Response::new(pb::ListPodResourcesResponse {
            pod_resources: self.pods.iter().map(to_wire).collect(),
        }))
    }

    /// Every device of the description counts as allocatable.
    async fn get_allocatable_resources(
        &self,
        _request: Request<pb::AllocatableResourcesRequest>,
    ) -> Result<Response<pb::AllocatableResourcesResponse>, Status> {
        self.answer().await;
        let devices = self
            .pods
            .iter()
            .flat_map(|p| &p.containers)
            .flat_map(|c| &c.devices)
            .map(devices_to_wire)
            .collect();
        Ok(Response::new(pb::AllocatableResourcesResponse {
            devices,
            ..Default::default()
        }))
    }

    async fn get(
        &self,
        request: Request<pb::GetPodResourcesRequest>,
    ) -> Result<Response<pb::GetPodResourcesResponse>, Status> {
        self.answer().await;
        let want = request.into_inner();
        let pod = self
            .pods
            .iter()
            .find(|p| p.name == want.pod_name && p.namespace == want.pod_namespace)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "pod {}/{} not found",
                    want.pod_namespace, want.pod_name
                ))
            })?;
        Ok(Response::new(pb::GetPodResourcesResponse {
            pod_resources: Some(to_wire(pod)),
        }))
    }
}
