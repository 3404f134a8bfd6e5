//! `rollouts-guardrails validate` through the real binary, one test per check family: every broken fixture under
//! tests/fixtures/validate/broken/ is caught with the lines of its `expect.txt` (file, object, field path, message),
//! the good fixtures and the shipped manifests/ and examples/ pass `--policy all`, each policy fixture's first problem
//! is the message the ValidatingAdmissionPolicy gives (tests/go/validate proves the cluster side), each immutable-field
//! case is refused or allowed as the API server's validation decides (tests/go/validate again), and the JSON and SARIF
//! outputs carry the same problems. Exit statuses: 0 clean, 1 problems, 2 usage.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn validate<S: AsRef<std::ffi::OsStr>>(args: &[S], dir: &Path) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS");
    // .ci/install-deps builds kustomize here when neither kustomize nor kubectl is on PATH.
    let built = Path::new(ROOT).join("target/tools/kustomize");
    if built.is_file() {
        command.env("GUARDRAILS_KUSTOMIZE", built);
    }
    command.output().expect("run rollouts-guardrails validate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixtures() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/validate")
}

#[test]
fn each_broken_fixture_is_caught_with_file_object_and_field_path() {
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures().join("broken"))
        .expect("read broken/")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "plugin-query-without-threshold" {
            continue; // see the_query_guardrail_without_threshold_or_condition_is_a_problem
        }
        let shown = format!("tests/fixtures/validate/broken/{name}");
        let mut args: Vec<String> = std::fs::read_to_string(dir.join("args.txt"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        args.push(shown.clone());
        let out = validate(&args, Path::new(ROOT));
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {stdout}{}",
            text(&out.stderr)
        );
        let expect = std::fs::read_to_string(dir.join("expect.txt")).expect("expect.txt");
        for want in expect.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.starts_with(&shown) && line.contains(want)),
                "{name}: want a line containing {want:?}, got:\n{stdout}"
            );
        }
        assert_eq!(
            stdout.lines().count(),
            expect.lines().filter(|l| !l.trim().is_empty()).count(),
            "{name}: unexpected extra problems:\n{stdout}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "too few broken fixtures");
}

#[test]

fn the_query_guardrail_without_threshold_or_condition_is_a_problem() {
    let out = validate(
        &["tests/fixtures/validate/broken/plugin-query-without-threshold"],
        Path::new(ROOT),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("template.yaml:errors: ")
            && stdout.contains("spec.metrics[0].provider.plugin"),
        "{stdout}"
    );
}

#[test]
fn good_fixtures_and_the_shipped_manifests_and_examples_pass_every_policy() {
    for paths in [
        vec!["tests/fixtures/validate/good"],
        vec!["manifests", "examples"],
    ] {
        let mut args = vec!["--policy", "all"];
        args.extend(paths.iter());
        let out = validate(&args, Path::new(ROOT));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{paths:?}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "");
    }
}

/// The `rollouts-guardrails.test/expect` annotation of every object in `file`, by `Kind/name`.
fn expected_messages(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("read fixture");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("yaml"))
        .filter_map(|doc| {
            let message = doc
                .pointer("/metadata/annotations/rollouts-guardrails.test~1expect")?
                .as_str()?
                .to_string();
            let object = format!(
                "{}/{}",
                doc["kind"].as_str()?,
                doc.pointer("/metadata/name")?.as_str()?
            );
            Some((object, message))
        })
        .collect()
}

#[test]
fn each_policy_denies_with_the_message_the_admission_policy_gives() {
    let denied = fixtures().join("policies/denied.yaml");
    let expected = expected_messages(&denied);
    assert!(expected.len() >= 7, "{expected:?}");
    let out = validate(
        &[
            "--policy",
            "all",
            "--output",
            "json",
            "tests/fixtures/validate/policies/denied.yaml",
        ],
        Path::new(ROOT),
    );
    assert_eq!(out.status.code(), Some(1));
    let problems: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for (object, message) in &expected {
        let first = problems
            .iter()
            .find(|p| {
                format!(
                    "{}/{}",
                    p["object"]["kind"].as_str().unwrap(),
                    p["object"]["name"].as_str().unwrap()
                ) == *object
            })
            .unwrap_or_else(|| panic!("no problem for {object}"));
        assert_eq!(first["message"], Value::from(message.as_str()), "{object}");
        assert_eq!(
            first["check"],
            Value::from(message.split(':').next().unwrap())
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    // Opt-in: without --policy the same objects pass.
    let out = validate(
        &["tests/fixtures/validate/policies/denied.yaml"],
        Path::new(ROOT),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = validate(
        &[
            "--policy",
            "all",
            "tests/fixtures/validate/policies/admitted.yaml",
        ],
        Path::new(ROOT),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // One policy alone reports only its own problems.
    let out = validate(
        &[
            "--policy",
            "require-limits",
            "tests/fixtures/validate/policies/denied.yaml",
        ],
        Path::new(ROOT),
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.lines().all(|l| l.contains("require-limits: ")),
        "{stdout}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// Writes the first document of `case` into a fresh repository, commits it, writes the second, and runs
/// `validate --against HEAD`; the problems as JSON.
fn against(case: &Path) -> (Option<i32>, Vec<Value>) {
    let text_of_case = std::fs::read_to_string(case).expect("read case");
    let (old, new) = text_of_case.split_once("\n---\n").expect("two documents");
    let repo = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(repo.path().join("deploy")).unwrap();
    git(repo.path(), &["init", "-q"]);
    std::fs::write(repo.path().join("deploy/object.yaml"), old).unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "old"]);
    std::fs::write(repo.path().join("deploy/object.yaml"), new).unwrap();
    let out = validate(
        &["--against", "HEAD", "--output", "json", "deploy"],
        repo.path(),
    );
    let problems = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    (out.status.code(), problems)
}

#[test]
fn immutable_field_changes_are_refused_and_allowed_changes_are_not() {
    let mut refused = 0;
    for entry in std::fs::read_dir(fixtures().join("immutable/refused")).unwrap() {
        let case = entry.unwrap().path();
        let want = std::fs::read_to_string(&case)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("# path: ").map(str::to_string))
            .expect("# path: line");
        let (status, problems) = against(&case);
        assert_eq!(status, Some(1), "{}: {problems:#?}", case.display());
        assert!(
            problems.iter().any(|p| p["check"] == "immutable-field"
                && p["path"] == want.as_str()
                && p["file"] == "deploy/object.yaml"),
            "{}: want an immutable-field problem at {want}, got {problems:#?}",
            case.display()
        );
        refused += 1;
    }
    assert!(refused >= 11);
    for entry in std::fs::read_dir(fixtures().join("immutable/allowed")).unwrap() {
        let case = entry.unwrap().path();
        let (status, problems) = against(&case);
        assert_eq!(status, Some(0), "{}: {problems:#?}", case.display());
    }
}

#[test]
fn against_builds_kustomize_directories_at_both_revisions() {
    let repo = tempfile::tempdir().expect("temp dir");
    let base = repo.path().join("app");
    std::fs::create_dir_all(&base).unwrap();
    git(repo.path(), &["init", "-q"]);
    std::fs::write(
        base.join("kustomization.yaml"),
        "resources: [deployment.yaml]\ncommonLabels: {app: web}\n",
    )
    .unwrap();
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {tier: a}}\n  template:\n    metadata: {labels: {tier: a}}\n    spec: {containers: [{name: web, image: web:1}]}\n";
    std::fs::write(base.join("deployment.yaml"), deployment).unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "old"]);
    // commonLabels adds to the selector: changing it changes the built selector.
    std::fs::write(
        base.join("kustomization.yaml"),
        "resources: [deployment.yaml]\ncommonLabels: {app: web2}\n",
    )
    .unwrap();
    let out = validate(&["--against", "HEAD", "app"], repo.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with(
            "app/kustomization.yaml: Deployment/web: spec.selector: immutable field changed"
        ),
        "{stdout}"
    );
    let out = validate(&["--against", "no-such-revision", "app"], repo.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--against no-such-revision: no such revision"));
}

#[test]
fn json_and_sarif_carry_every_problem() {
    let path = "tests/fixtures/validate/broken/schema";
    let table = text(&validate(&[path], Path::new(ROOT)).stdout);
    let json = text(&validate(&["--output", "json", path], Path::new(ROOT)).stdout);
    assert_eq!(table.lines().count(), json.lines().count());
    let first: Value = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|p| p["suggestion"] == "clusterScope")
        .expect("the clusterScoped problem");
    assert_eq!(first["check"], "schema");
    assert_eq!(
        first["file"],
        "tests/fixtures/validate/broken/schema/rollout.yaml"
    );
    assert_eq!(first["object"]["kind"], "Rollout");
    assert_eq!(first["object"]["namespace"], "shop");
    assert_eq!(
        first["path"],
        "spec.strategy.canary.steps[1].analysis.templates[0].clusterScoped"
    );
    let out = validate(&["--output", "sarif", path], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("one SARIF document");
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), table.lines().count());
    assert!(results.iter().all(
        |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            == "tests/fixtures/validate/broken/schema/rollout.yaml"
    ));
    let rules: Vec<&str> = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["reference", "schema"]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["--policy", "no-latest", "manifests"],
        vec!["--output", "xml", "manifests"],
    ] {
        let out = validate(&args, Path::new(ROOT));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = validate(&["--policy", "no-latest", "manifests"], Path::new(ROOT));
    assert!(
        text(&out.stderr).contains("unknown policy `no-latest`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_kustomize_or_kubectl_a_kustomization_is_a_problem() {
    let out = Command::new(BIN)
        .args([
            "validate",
            "tests/fixtures/validate/broken/kustomize-missing-file",
        ])
        .current_dir(ROOT)
        .env("PATH", "")
        .output()
        .unwrap();
    // Without kustomize and kubectl the problem says so rather than skipping the directory.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("neither kustomize nor kubectl is on PATH"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn templates_resolve_through_the_templates_flag() {
    let alone = validate(&["examples/canary/rollout.yaml"], Path::new(ROOT));
    let stdout = text(&alone.stdout);
    assert_eq!(alone.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "templateName: no ClusterAnalysisTemplate `rollouts-guardrails` among the given paths"
        ),
        "{stdout}"
    );
    let with = validate(
        &[
            "--templates",
            "manifests/analysis",
            "examples/canary/rollout.yaml",
        ],
        Path::new(ROOT),
    );
    assert_eq!(with.status.code(), Some(0), "{}", text(&with.stdout));
}
