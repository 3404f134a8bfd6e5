//! Support code shared by the integration tests: kube-state-metrics fixtures, a real Prometheus, and a fake
//! Prometheus for fault cases, the plugin-mode and gRPC faces with the fault catalogue they share, fakes of the
//! managed stores' identity services, and the capture of every log line.
//!
//! A library (tests/support/Cargo.toml), a dev-dependency of the package: each face uses what it needs of it.

/// The modules name each other `crate::support::…`, as the test targets name them.
use crate as support;

pub mod analysis;
pub mod faces;
pub mod fake_cluster;
pub mod fake_prometheus;
pub mod faults;
pub mod ksm;
pub mod logs;
pub mod managed;
pub mod prometheus;
pub mod scenarios;

use std::path::{Path, PathBuf};

/// Every `.yaml`/`.yml` file under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The package's root directory (where its Cargo.toml is): this crate lives in `tests/support/`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory of the running test executable's profile (`target/debug`): the test executable is in its
/// `deps/`. Cargo's own `CARGO_BIN_EXE_*` and `CARGO_TARGET_TMPDIR` exist only when compiling a test target,
/// not this library, so the library finds them from where cargo put the test.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// The `rollouts-guardrails` binary cargo built for this test run.
pub fn plugin_binary() -> PathBuf {
    profile_dir().join(format!(
        "rollouts-guardrails{}",
        std::env::consts::EXE_SUFFIX
    ))
}

/// A directory inside the target directory the tests may write to (cargo's `CARGO_TARGET_TMPDIR`).
pub fn target_tmpdir() -> PathBuf {
    let tmp = profile_dir().join("../tmp");
    std::fs::create_dir_all(&tmp).expect("target/tmp");
    tmp
}
