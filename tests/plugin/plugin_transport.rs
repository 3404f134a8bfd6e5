//! Plugin mode against the real Go peers: runs the Go tests in `tests/go/transport-peer/` (hashicorp/go-plugin's
//! client configured as Argo Rollouts does, and hashicorp/yamux driven directly) against the built binary,
//! once per supported go-plugin version (v1.6.3 is what argo-rollouts v1.9.1 pins).
//!
//! Needs `go` on PATH and the Go module proxy (or a warm module cache); without `go` this test fails.
use std::path::Path;
use std::process::Command;

/// go.mod files of the peer module, one per go-plugin version under test.
const MODFILES: &[(&str, &str)] = &[
    ("v1.6.3", "go.mod"),
    ("v1.7.0", "go-plugin-v1.7.0.mod"),
    ("v1.8.0", "go-plugin-v1.8.0.mod"),
];

fn go_test(version: &str, modfile: &str) {
    let peer = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/transport-peer");
    let output = Command::new("go")
        .args(["test", "-count=1", &format!("-modfile={modfile}"), "./..."])
        .current_dir(&peer)
        .env("PLUGIN_BIN", env!("CARGO_BIN_EXE_rollouts-guardrails"))
        .env("GOFLAGS", "-mod=mod")
        // The plugin inherits this environment: no controller-wide Prometheus address here.
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `go` ({e}): install Go (1.22+) to run the plugin transport interop tests \
                 against hashicorp/go-plugin and hashicorp/yamux"
            )
        });
    assert!(
        output.status.success(),
        "Go peer tests failed with go-plugin {version}:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn go_plugin_v1_6_3_peer_interoperates() {
    go_test(MODFILES[0].0, MODFILES[0].1);
}

#[test]
fn go_plugin_v1_7_0_peer_interoperates() {
    go_test(MODFILES[1].0, MODFILES[1].1);
}

#[test]
fn go_plugin_v1_8_0_peer_interoperates() {
    go_test(MODFILES[2].0, MODFILES[2].1);
}
