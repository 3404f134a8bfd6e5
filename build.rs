//! Compiles `proto/` into the gRPC service and client (`tonic-prost-build`), with the protoc vendored by
//! `protoc-bin-vendored`: nothing is downloaded at build time and no system protoc is needed. Also embeds the git
//! commit for `--version` (`GUARDRAILS_GIT_COMMIT`; "unknown" outside a git checkout, e.g. a source tarball).
use std::path::PathBuf;
use std::process::Command;

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
    embed_git_commit();
    Ok(())
}

/// `git rev-parse HEAD` as `GUARDRAILS_GIT_COMMIT`, rebuilt when HEAD moves (a commit, a checkout).
fn embed_git_commit() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|text| text.trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GUARDRAILS_GIT_COMMIT={commit}");
    // HEAD names the branch; the branch's ref file (or packed-refs) moves on every commit. In a worktree they
    // live in different git directories, hence --git-path. A path that does not exist is left out: cargo would
    // rerun this script on every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref());
    for path in watched {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            if std::path::Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
}
