//! Compiles gpuscope's own `proto/gpuscope/v1/*.proto` and the vendored
//! kubelet PodResources v1 API (`proto/k8s.io/.../podresources/v1/api.proto`)
//! with the pure-Rust `protox` compiler, so no system `protoc` is needed, and
//! generates messages plus tonic clients and servers with `tonic-prost-build`
//! (the clients and servers behind the crate's `grpc` feature).
//!
//! It also writes `gpuscope_v1_descriptor.bin`, the encoded
//! `FileDescriptorSet` of `gpuscope.v1` (with comments), which the
//! aggregator's server reflection serves so that generic clients
//! (`grpcurl`, `grpcui`) can list and call the API without the `.proto`
//! files.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let files = [
        root.join("gpuscope/v1/node.proto"),
        root.join("gpuscope/v1/ingest.proto"),
        root.join("gpuscope/v1/query.proto"),
        root.join("k8s.io/kubelet/pkg/apis/podresources/v1/api.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    // Reflection serves gpuscope's own files only: the kubelet's
    // PodResources service is a client of the agent, not served here.
    let mut own = descriptors.clone();
    own.file
        .retain(|f| f.package.as_deref() == Some("gpuscope.v1"));
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("gpuscope_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&own),
    )?;
    // The services' clients and servers exist with the `grpc` feature
    // only, so that crates needing the messages alone build without tonic.
    const GRPC_ONLY: &str = r#"#[cfg(feature = "grpc")]"#;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .server_mod_attribute(".", GRPC_ONLY)
        .client_mod_attribute(".", GRPC_ONLY)
        .compile_fds(descriptors)?;
    Ok(())
}
