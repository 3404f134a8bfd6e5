//! `rollouts-guardrails validate` through the real binary: every YAML under manifests/ and examples/ passes, each
//! broken fixture under tests/fixtures/manifests/broken/ with an `expect-validate.txt` is caught with that message, and
//! a damaged copy of the shipped policy is refused. Exit statuses: 0 clean, 1 problems, 2 usage.
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn validate<P: AsRef<Path>>(files: &[P]) -> Output {
    Command::new(BIN)
        .arg("validate")
        .args(files.iter().map(AsRef::as_ref))
        .env_remove("ARGO_ROLLOUTS_RPC_PLUGIN")
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .output()
        .expect("run rollouts-guardrails validate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_manifest_and_example_validates() {
    let mut files = crate::support::yaml_files(&Path::new(ROOT).join("manifests"));
    files.extend(crate::support::yaml_files(
        &Path::new(ROOT).join("examples"),
    ));
    assert!(files.len() >= 10, "too few YAML files found: {files:?}");
    let out = validate(&files);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn the_shipped_policy_is_checked_metric_by_metric() {
    for name in [
        "cluster-analysis-template.yaml",
        "cluster-analysis-template-prod.yaml",
    ] {
        let file = Path::new(ROOT).join("manifests/analysis").join(name);
        let out = validate(&[&file]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(
            text(&out.stderr)
                .contains("4 metric(s) using rollouts-guardrails/prometheus, 0 problem(s)"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn each_broken_fixture_is_caught_with_its_message() {
    let broken = Path::new(ROOT).join("tests/fixtures/manifests/broken");
    let mut checked = 0;
    for entry in std::fs::read_dir(&broken).expect("read broken/") {
        let dir = entry.expect("dir entry").path();
        let Ok(expect) = std::fs::read_to_string(dir.join("expect-validate.txt")) else {
            continue;
        };
        checked += 1;
        let files = crate::support::yaml_files(&dir);
        let out = validate(&files);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{}: {stdout}", dir.display());
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(expect.trim())
                    && line.starts_with(&dir.display().to_string())),
            "{}: want a `FILE:METRIC: …` line containing {:?}, got:\n{stdout}",
            dir.display(),
            expect.trim()
        );
    }
    assert!(
        checked >= 2,
        "expected the misspelt-plugin-key and bad-plugin-config fixtures"
    );
}

#[test]
fn a_damaged_copy_of_the_policy_is_refused() {
    let original = std::fs::read_to_string(
        Path::new(ROOT).join("manifests/analysis/cluster-analysis-template.yaml"),
    )
    .expect("read the standard template");
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "guardrail: not-ready",
            "guardrail: notready",
            "not-ready: key `guardrail`: unknown guardrail `notready`",
        ),
        (
            "{{args.canary-hash}}\"\n    - name: not-ready",
            "{{args.canary_hash}}\"\n    - name: not-ready",
            "restarts: {{args.canary_hash}} is not declared in the template's args",
        ),
        (
            "images: \"{{args.image}}\"",
            "image: \"{{args.image}}\"",
            "latest-image: unknown key `image`; did you mean `images`?",
        ),
    ];
    for (from, to, want) in cases {
        assert!(
            original.contains(from),
            "the template no longer holds {from:?}"
        );
        let file = dir.path().join("damaged.yaml");
        std::fs::write(&file, original.replacen(from, to, 1)).expect("write");
        let out = validate(&[&file]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{to}: {stdout}");
        assert!(
            stdout.contains(&format!("{}:{want}", file.display())),
            "{to}: want {want:?}, got:\n{stdout}"
        );
    }
}

#[test]
fn usage_errors_and_unreadable_files() {
    let out = validate::<&str>(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = validate(&["/nonexistent/template.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("/nonexistent/template.yaml: cannot read: "),
        "{}",
        text(&out.stdout)
    );
}
