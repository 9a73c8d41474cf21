//! Generates the protocol code with `protox`, a pure-Rust protobuf compiler,
//! so that building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/FunctionRpc.proto",
        "protos/shared/NullableTypes.proto",
        "protos/identity/ClaimsIdentityRpc.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["protos"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
