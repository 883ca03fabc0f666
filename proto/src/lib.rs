//! gpuscope's wire contract, package `gpuscope.v1`, and the kubelet APIs the
//! agent speaks.
//!
//! The `.proto` files under `proto/` are the source of truth and the API
//! reference; this crate is their generated Rust form: the messages
//! always, the tonic clients and servers with the `grpc` feature, and
//! with `client` the aggregator's address and TLS settings as clients
//! connect to it ([`client`]).

#[cfg(feature = "client")]
pub mod client;

/// The ingest protocol revision of this contract (`Hello.protocol`): 2,
/// containers named by stream-local ids (`ContainerSample.ref_id`) after
/// their first sample on a stream.
pub const INGEST_PROTOCOL: u32 = 2;

/// The encoded `google.protobuf.FileDescriptorSet` of `gpuscope.v1`
/// (`node.proto`, `ingest.proto`, `query.proto`, with their comments), as
/// server reflection serves it (`tonic-reflection`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gpuscope_v1_descriptor.bin"));

/// Messages of `gpuscope.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/gpuscope.v1.rs"));
}

/// The kubelet's APIs, vendored under `proto/k8s.io/kubelet/`.
pub mod podresources {
    /// The kubelet PodResources API v1 (proto package `v1`, served on
    /// `/var/lib/kubelet/pod-resources/kubelet.sock`): which pod and
    /// container holds which device. Messages, the
    /// `pod_resources_lister_client` and the `pod_resources_lister_server`.
    #[allow(missing_docs, clippy::all)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/v1.rs"));
    }
}
