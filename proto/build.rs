//! Compiles gpuscope's own `proto/gpuscope/v1/*.proto` and the vendored
//! kubelet PodResources v1 API (`proto/k8s.io/.../podresources/v1/api.proto`)
//! with the pure-Rust `protox` compiler, so no system `protoc` is needed, and
//! generates messages plus tonic clients and servers with `tonic-prost-build`.

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
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
