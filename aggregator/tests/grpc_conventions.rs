//! The gRPC conventions through real clients over loopback: the standard
//! health service (tonic-health's client: Check, Watch, NOT_SERVING once
//! shutdown starts) and server reflection (tonic-reflection's client: the
//! services listed, the descriptors of gpuscope.v1.Query fetched), then a
//! call made the way `grpcurl` makes it: with only what reflection
//! returned (prost-reflect's dynamic messages, raw bytes on the wire), no
//! generated types and no `.proto` files.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use gpuscope_aggregator::{Aggregator, Config};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn start(query_listen: bool) -> (Aggregator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    if query_listen {
        config.query_listen = Some("127.0.0.1:0".parse().unwrap());
        config.health_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    (Aggregator::start(config).await.unwrap(), dir)
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Checks `service` until it is SERVING (the first store check runs at
/// start), failing after [`WAIT`].
async fn until_serving(health: &mut HealthClient<Channel>, service: &str) {
    until_status(health, service, ServingStatus::Serving).await;
}

/// Checks `service` until its status is `want`, failing after [`WAIT`].
async fn until_status(health: &mut HealthClient<Channel>, service: &str, want: ServingStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == want as i32 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service:?} not {want:?} after {WAIT:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_is_serving_then_not_serving_on_shutdown() {
    let (agg, _dir) = start(true).await;
    let mut health = HealthClient::new(channel(agg.local_addr()).await);
    for service in ["", "gpuscope.v1.Ingest", "gpuscope.v1.Query"] {
        until_serving(&mut health, service).await;
    }
    // A service that is not served is NOT_FOUND, as the protocol says.
    let unknown = health
        .check(HealthCheckRequest {
            service: "gpuscope.v1.Nothing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // The Query-only listener answers too.
    let mut query_health = HealthClient::new(channel(agg.query_addr().unwrap()).await);
    until_serving(&mut query_health, "gpuscope.v1.Query").await;
    // So does the plain-text health-only listener (the kubelet's probes),
    // and it serves nothing else.
    let probe_channel = channel(agg.health_addr().unwrap()).await;
    let mut probe = HealthClient::new(probe_channel.clone());
    until_serving(&mut probe, "").await;
    let not_here = ServerReflectionClient::new(probe_channel)
        .server_reflection_info(tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await
        .unwrap_err();
    assert_eq!(not_here.code(), tonic::Code::Unimplemented);

    // A Watch sees SERVING, then NOT_SERVING when shutdown starts, then
    // ends (it does not hold the graceful shutdown).
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(WAIT, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(agg.shutdown(Duration::from_secs(10)));
    let next = tokio::time::timeout(WAIT, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    stopping.await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} behind the health watch",
        started.elapsed()
    );
}

/// Sends one reflection request and returns its answer.
async fn reflect(
    client: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> MessageResponse {
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    answers
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

async fn services(client: &mut ServerReflectionClient<Channel>) -> Vec<String> {
    match reflect(client, MessageRequest::ListServices(String::new())).await {
        MessageResponse::ListServicesResponse(l) => {
            let mut names: Vec<_> = l.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The raw bytes of a message, as a generic client sends and receives
/// them: no generated type on either side.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        use prost::bytes::Buf;
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[tokio::test]
async fn reflection_lists_the_services_and_a_generic_client_calls_query() {
    let (agg, _dir) = start(true).await;
    // One stored incident, so that the generic call has something to read.
    let url = format!("http://{}", agg.local_addr());
    let mut agent = Agent::connect(&url, "node-r", "boot-r").await;
    agent.send_batch("boot-r", vec![xid(1, now())]).await;

    let mut client = ServerReflectionClient::new(channel(agg.local_addr()).await);
    assert_eq!(
        services(&mut client).await,
        [
            "gpuscope.v1.Ingest",
            "gpuscope.v1.Query",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );
    // The Query-only listener lists what it serves: no Ingest.
    let mut query_client = ServerReflectionClient::new(channel(agg.query_addr().unwrap()).await);
    assert_eq!(
        services(&mut query_client).await,
        [
            "gpuscope.v1.Query",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    // The file that defines gpuscope.v1.Query, then the files it imports
    // by name, as grpcurl asks for them.
    let mut set = prost_types::FileDescriptorSet::default();
    let mut request = MessageRequest::FileContainingSymbol("gpuscope.v1.Query".into());
    loop {
        let files = match reflect(&mut client, request).await {
            MessageResponse::FileDescriptorResponse(f) => f.file_descriptor_proto,
            other => panic!("unexpected answer {other:?}"),
        };
        for bytes in &files {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            if !set.file.iter().any(|f| f.name == file.name) {
                set.file.push(file);
            }
        }
        let missing = set
            .file
            .iter()
            .flat_map(|f| &f.dependency)
            .find(|d| !set.file.iter().any(|f| f.name() == d.as_str()));
        match missing {
            Some(name) => request = MessageRequest::FileByFilename(name.clone()),
            None => break,
        }
    }
    // Dependencies first, as a descriptor pool wants them.
    set.file.reverse();
    let names: Vec<_> = set.file.iter().map(|f| f.name().to_owned()).collect();
    assert!(
        names.contains(&"gpuscope/v1/query.proto".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"gpuscope/v1/node.proto".to_owned()),
        "{names:?}"
    );
    let pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
    let service = pool.get_service_by_name("gpuscope.v1.Query").unwrap();
    let methods: Vec<_> = service.methods().map(|m| m.name().to_owned()).collect();
    for m in [
        "ListNodes",
        "ListIncidents",
        "Explain",
        "Diagnose",
        "WatchIncidents",
    ] {
        assert!(
            methods.iter().any(|x| x == m),
            "{m} missing from {methods:?}"
        );
    }
    // The comments travel with the descriptors (`grpcurl describe` shows
    // them).
    let query_file = pool.get_file_by_name("gpuscope/v1/query.proto").unwrap();
    let comments: Vec<_> = query_file
        .file_descriptor_proto()
        .source_code_info
        .iter()
        .flat_map(|i| &i.location)
        .filter_map(|l| l.leading_comments.as_deref())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Why one pod failed or is wasting GPUs")),
        "Explain's comment missing from the reflected query.proto"
    );

    // The call, built from the reflected descriptors alone.
    let method = service
        .methods()
        .find(|m| m.name() == "ListIncidents")
        .unwrap();
    let request = DynamicMessage::new(method.input());
    let mut grpc = tonic::client::Grpc::new(channel(agg.local_addr()).await);
    grpc.ready().await.unwrap();
    let path = format!("/{}/{}", service.full_name(), method.name());
    let answer = grpc
        .unary(
            tonic::Request::new(request.encode_to_vec()),
            path.parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap()
        .into_inner();
    let answer = DynamicMessage::decode(method.output(), answer.as_slice()).unwrap();
    let incidents = answer.get_field_by_name("incidents").unwrap();
    let Value::List(incidents) = incidents.as_ref() else {
        panic!("incidents is not a list: {incidents:?}");
    };
    assert_eq!(incidents.len(), 1, "{answer:?}");
    let Value::Message(incident) = &incidents[0] else {
        panic!("not a message: {:?}", incidents[0]);
    };
    assert_eq!(
        incident.get_field_by_name("node_name").unwrap().as_str(),
        Some("node-r")
    );
    agg.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The health follows the store: a batch that cannot be committed (the
/// data directory's filesystem is full) makes every status NOT_SERVING
/// within a check or two. Needs root (a 4 MiB tmpfs is mounted for the
/// data directory); fails under CI without it, skips loudly elsewhere.
#[tokio::test]
async fn health_is_not_serving_when_the_store_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&data)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "this test needs root to mount a tmpfs, which this CI machine lacks"
        );
        eprintln!(
            "SKIPPED: this test needs root to mount a tmpfs (it fails instead when CI is set)"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-l"])
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(data.clone());

    let config = Config::new("127.0.0.1:0".parse().unwrap(), data.clone());
    let agg = Aggregator::start(config).await.unwrap();
    let mut health = HealthClient::new(channel(agg.local_addr()).await);
    until_serving(&mut health, "").await;
    let url = format!("http://{}", agg.local_addr());
    let mut agent = Agent::connect(&url, "node-full", "boot-1").await;
    agent.send_batch("boot-1", vec![xid(1, now())]).await;

    // Fill the filesystem, then send a batch that cannot be stored.
    let filler = data.join("filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let big: Vec<_> = (2..2000).map(|seq| xid(seq, now())).collect();
    agent.tx.send(batch("boot-1", big)).await.unwrap();
    // NOT_SERVING within a check or two of the failed commit.
    until_status(&mut health, "gpuscope.v1.Ingest", ServingStatus::NotServing).await;
    drop(agent);
    let _ = agg.shutdown(Duration::from_secs(5)).await;
}
