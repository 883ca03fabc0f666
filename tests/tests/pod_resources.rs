//! The agent's blocking PodResources client against the fake kubelet
//! PodResources v1 server (real proto, real gRPC over a unix socket):
//! attribution of whole, time-sliced and MIG GPUs, and a socket that is
//! missing, slow or speaks garbage.

use std::time::{Duration, Instant};

use gpuscope_agent::collect::gpu::pod_resources::{
    PodResourcesClient, PodResourcesError, ResourceFilter,
};
use gpuscope_model::GpuHolder;
use gpuscope_tests::fake_pod_resources::{Container, FakePodResources, Mode, Pod};

const GPU_A: &str = "GPU-8f1c3a52-7d2e-4b61-9a0f-3c5e7d9b1a24";
const MIG_1: &str = "MIG-4d3e6f2a-1b2c-5d6e-8f90-a1b2c3d4e5f6";
const MIG_2: &str = "MIG-9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

fn client(fake: &FakePodResources) -> PodResourcesClient {
    PodResourcesClient::new(fake.socket_path(), Duration::from_secs(5)).expect("client")
}

fn holder(
    ns: &str,
    pod: &str,
    container: &str,
    resource: &str,
    id: &str,
    replica: Option<u32>,
) -> GpuHolder {
    GpuHolder {
        namespace: ns.to_owned(),
        pod: pod.to_owned(),
        container: container.to_owned(),
        resource_name: resource.to_owned(),
        device_id: id.to_owned(),
        replica,
    }
}

#[test]
fn pod_holding_a_whole_gpu_is_attributed() {
    // Allocated but idle: only the kubelet knows this GPU is taken.
    let fake = FakePodResources::normal(vec![
        Pod::new("ml", "train-0")
            .container(Container::new("worker").devices("nvidia.com/gpu", &[GPU_A])),
    ])
    .expect("fake");
    let holders = client(&fake).list().expect("list");
    assert_eq!(
        holders,
        [holder(
            "ml",
            "train-0",
            "worker",
            "nvidia.com/gpu",
            GPU_A,
            None
        )]
    );
    assert_eq!(fake.calls(), 1);
}

#[test]
fn two_pods_sharing_a_time_sliced_gpu_are_two_replicas() {
    let fake = FakePodResources::normal(vec![
        Pod::new("team-a", "notebook").container(
            Container::new("jupyter").devices("nvidia.com/gpu", &[&format!("{GPU_A}::0")]),
        ),
        Pod::new("team-b", "infer").container(
            Container::new("server").devices("nvidia.com/gpu", &[&format!("{GPU_A}::1")]),
        ),
    ])
    .expect("fake");
    let holders = client(&fake).list().expect("list");
    assert_eq!(
        holders,
        [
            holder(
                "team-a",
                "notebook",
                "jupyter",
                "nvidia.com/gpu",
                &format!("{GPU_A}::0"),
                Some(0)
            ),
            holder(
                "team-b",
                "infer",
                "server",
                "nvidia.com/gpu",
                &format!("{GPU_A}::1"),
                Some(1)
            ),
        ]
    );
    // Both resolve to the same physical GPU.
    for h in &holders {
        assert_eq!(
            gpuscope_agent::collect::gpu::pod_resources::base_uuid(&h.device_id).0,
            GPU_A
        );
    }
}

#[test]
fn mig_devices_one_holder_per_id() {
    let fake = FakePodResources::normal(vec![
        Pod::new("ml", "small")
            .container(Container::new("a").devices("nvidia.com/mig-1g.10gb", &[MIG_1, MIG_2])),
        Pod::new("ml", "shared-mig").container(
            Container::new("b").devices("nvidia.com/mig-1g.10gb.shared", &[&format!("{MIG_1}::3")]),
        ),
    ])
    .expect("fake");
    let holders = client(&fake).list().expect("list");
    assert_eq!(
        holders,
        [
            holder("ml", "small", "a", "nvidia.com/mig-1g.10gb", MIG_1, None),
            holder("ml", "small", "a", "nvidia.com/mig-1g.10gb", MIG_2, None),
            holder(
                "ml",
                "shared-mig",
                "b",
                "nvidia.com/mig-1g.10gb.shared",
                &format!("{MIG_1}::3"),
                Some(3)
            ),
        ]
    );
}

#[test]
fn non_gpu_resources_are_ignored_unless_asked_for() {
    let fake = FakePodResources::normal(vec![
        Pod::new("net", "router").container(
            Container::new("dp")
                .devices("intel.com/sriov_netdevice", &["0000:3b:02.1"])
                .devices("nvidia.com/gpu", &[GPU_A])
                .devices("amd.com/gpu", &["card1"]),
        ),
        Pod::new("default", "plain").container(Container::new("app")),
    ])
    .expect("fake");
    let holders = client(&fake).list().expect("list");
    assert_eq!(
        holders,
        [holder("net", "router", "dp", "nvidia.com/gpu", GPU_A, None)]
    );

    // The filter is a parameter.
    let mut amd = client(&fake).with_filter(ResourceFilter::none().with_exact("amd.com/gpu"));
    let holders = amd.list().expect("list");
    assert_eq!(
        holders,
        [holder("net", "router", "dp", "amd.com/gpu", "card1", None)]
    );
}

#[test]
fn missing_socket_is_a_connect_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("pod-resources/kubelet.sock");
    let timeout = Duration::from_secs(5);
    let mut client = PodResourcesClient::new(&socket, timeout).expect("client");
    let started = Instant::now();
    let err = client.list().expect_err("no socket");
    // A connect error, at once: not a wait for the call's deadline.
    assert!(
        started.elapsed() < timeout,
        "waited for the deadline: {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        matches!(&err, PodResourcesError::Connect { socket: s, .. } if *s == socket),
        "{err:?}"
    );
    assert!(text.contains(&socket.display().to_string()), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
}

#[test]
fn slow_server_times_out_within_the_deadline() {
    let delay = Duration::from_secs(10);
    let fake = FakePodResources::start(
        vec![
            Pod::new("ml", "train-0")
                .container(Container::new("worker").devices("nvidia.com/gpu", &[GPU_A])),
        ],
        Mode::Slow(delay),
    )
    .expect("fake");
    let timeout = Duration::from_millis(300);
    let mut client = PodResourcesClient::new(fake.socket_path(), timeout).expect("client");
    let started = Instant::now();
    let err = client.list().expect_err("too slow");
    let took = started.elapsed();
    assert!(
        matches!(&err, PodResourcesError::Timeout { socket, after }
            if socket == fake.socket_path() && *after == timeout),
        "{err:?}"
    );
    assert!(took >= timeout, "gave up early: {took:?}");
    // The client gave up at its deadline, not when the server answered.
    assert!(took < delay, "waited for the slow server: {took:?}");
    assert_eq!(fake.calls(), 1, "the call reached the server");
    let text = err.to_string();
    assert!(
        text.contains(&fake.socket_path().display().to_string()),
        "{text}"
    );
}

#[test]
fn garbage_server_is_an_error_not_a_panic() {
    let fake = FakePodResources::start(Vec::new(), Mode::Garbage).expect("fake");
    let timeout = Duration::from_secs(5);
    let mut client = PodResourcesClient::new(fake.socket_path(), timeout).expect("client");
    for _ in 0..3 {
        let started = Instant::now();
        let err = client.list().expect_err("garbage");
        assert!(
            started.elapsed() < timeout,
            "a broken peer must fail fast, not wait for the deadline: {err}"
        );
        assert!(
            matches!(
                &err,
                PodResourcesError::Connect { .. } | PodResourcesError::Call { .. }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&fake.socket_path().display().to_string()),
            "{text}"
        );
        eprintln!("garbage -> {text}");
    }
}

#[test]
fn kubelet_restart_on_the_same_socket_is_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kubelet.sock");
    let pods = |id: &str| {
        vec![
            Pod::new("ml", "train-0")
                .container(Container::new("worker").devices("nvidia.com/gpu", &[id])),
        ]
    };
    let mut client = PodResourcesClient::new(&socket, Duration::from_secs(5)).expect("client");

    let first = FakePodResources::start_at(&socket, pods("GPU-first"), Mode::Normal).expect("fake");
    assert_eq!(client.list().expect("list")[0].device_id, "GPU-first");
    drop(first);
    assert!(matches!(
        client.list(),
        Err(PodResourcesError::Connect { .. })
    ));
    let _second =
        FakePodResources::start_at(&socket, pods("GPU-second"), Mode::Normal).expect("fake");
    assert_eq!(client.list().expect("list")[0].device_id, "GPU-second");
}
