//! Compiles `proto/` into the gRPC service and client (`tonic-prost-build`), with the protoc vendored by
//! `protoc-bin-vendored`: nothing is downloaded at build time and no system protoc is needed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/rollouts_guardrails/v1/provider.proto";
    // prost-build finds protoc through PROTOC: point it at the vendored binary.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .btree_map(".")
        .file_descriptor_set_path(out_dir.join("rollouts_guardrails_v1_descriptor.bin"))
        .compile_protos(
            &[PathBuf::from(PROTO)],
            &[PathBuf::from("proto"), well_known],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
