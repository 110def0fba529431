//! Compiles the gRPC services between signaling nodes (`grpc/*.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "grpc/backend.proto",
        "grpc/internal.proto",
        "grpc/sessions.proto",
        "grpc/sfu.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    tonic_prost_build::configure().compile_protos(&files, &["grpc"])?;
    Ok(())
}
