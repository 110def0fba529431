//! Compiles the gRPC services between signaling nodes (`grpc/*.proto`).
//!
//! The protos are parsed by `protox`, a protobuf compiler written in Rust,
//! so building needs no system `protoc` (README: a bare machine with Rust
//! and a C compiler builds the server).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "grpc/backend.proto",
        "grpc/handover.proto",
        "grpc/internal.proto",
        "grpc/sessions.proto",
        "grpc/sfu.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["grpc"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
