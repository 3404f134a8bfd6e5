//! The `check` command through the real binary: its exit statuses, table and JSON output, `--set`, `--at` and
//! `--template`, against a real Prometheus with the canonical fixture.
use crate::support;

use std::process::{Command, Output};

use serde_json::Value;
use support::scenarios;

const BIN: &str = env!("CARGO_BIN_EXE_rollouts-guardrails");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ARGO_ROLLOUTS_RPC_PLUGIN")
        .env_remove("GUARDRAILS_PROMETHEUS_ADDRESS")
        .env_remove("RUST_LOG")
        .output()
        .expect("run rollouts-guardrails")
}

fn check(extra: &[&str]) -> Output {
    let prometheus = support::prometheus::shared().url().to_string();
    let mut args = vec![
        "check",
        "--prometheus",
        prometheus.as_str(),
        "--at",
        scenarios::END_RFC3339,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn target(s: &scenarios::Scenario) -> Vec<String> {
    vec![
        "--namespace".into(),
        s.namespace.into(),
        "--rollout".into(),
        s.rollout.into(),
        "--pod-template-hash".into(),
        s.hash.into(),
    ]
}

fn with_target<'a>(s: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = s.iter().map(String::as_str).collect();
    v.extend_from_slice(extra);
    v
}

#[test]
fn started_by_hand_it_explains_itself_on_stderr_and_exits_1() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "stdout belongs to the plugin handshake"
    );
    assert!(stderr(&o).contains("check"), "{}", stderr(&o));
    assert!(stderr(&o).contains("Argo Rollouts"), "{}", stderr(&o));
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_healthy_canary_exits_0_with_a_pass_row() {
    let t = target(&scenarios::SHOP_WEB);
    let o = check(&with_target(&t, &["--guardrail", "restarts"]));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("METRIC"), "{out}");
    assert!(
        out.contains("restarts  shop/web-6c8d7f9a1  PASS    0"),
        "{out}"
    );
}

#[test]
fn a_failing_guardrail_exits_1_and_names_the_offender() {
    let t = target(&scenarios::PAY_API);
    let o = check(&with_target(&t, &["--guardrail", "restarts"]));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains(&format!(
            "{}/api: 3 restarts (CrashLoopBackOff)",
            scenarios::PAY_API_CRASHING_POD
        )),
        "{out}"
    );
}

#[test]
fn json_output_is_one_object_per_metric() {
    let t = target(&scenarios::PAY_API);
    let o = check(&with_target(
        &t,
        &["--guardrail", "not-ready", "--output", "json"],
    ));
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1);
    let m = &lines[0];
    assert_eq!(m["metric"], "not-ready");
    assert_eq!(m["phase"], "Failed");
    assert_eq!(m["value"], "1");
    assert!(m["message"].as_str().unwrap().contains("not ready"));
    assert_eq!(m["metadata"]["failure"], "threshold");
    assert!(m["metadata"]["query.ready"]
        .as_str()
        .unwrap()
        .contains("kube_pod_status_ready"));
}

#[test]
fn set_types_values_and_reaches_every_key() {
    let t = target(&scenarios::PAY_API);
    let o = check(&with_target(
        &t,
        &["--guardrail", "restarts", "--set", "threshold=3"],
    ));
    assert_eq!(
        o.status.code(),
        Some(0),
        "3 restarts within threshold 3: {}",
        stdout(&o)
    );
    let o = check(&with_target(
        &t,
        &["--guardrail", "restarts", "--set", "thresold=3"],
    ));
    assert_eq!(o.status.code(), Some(2), "a flag typo is a usage error");
    assert!(
        stderr(&o).contains("unknown key `thresold`; did you mean `threshold`?"),
        "{}",
        stderr(&o)
    );
    let t = target(&scenarios::OPS_STALE);
    let o = check(&with_target(
        &t,
        &["--guardrail", "not-ready", "--set", "staleness=1m"],
    ));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("older than staleness 1m"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn at_asks_what_the_guardrail_would_have_said_then() {
    // pay/api's first restart is at END−4m: at END−5m the canary was still clean.
    let t = target(&scenarios::PAY_API);
    let prometheus = support::prometheus::shared().url().to_string();
    let earlier = (scenarios::END - 5 * 60).to_string();
    let mut args = vec![
        "check",
        "--prometheus",
        prometheus.as_str(),
        "--at",
        earlier.as_str(),
        "--guardrail",
        "restarts",
    ];
    args.extend(t.iter().map(String::as_str));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn a_template_is_evaluated_metric_by_metric_with_its_args() {
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/template.yaml");
    let o = check(&[
        "--template",
        template,
        "--arg",
        "namespace=media",
        "--arg",
        "rollout=uploader",
        "--arg",
        "pod-template-hash=4d5e6f7a8",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let rows: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let phases: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["metric"].as_str().unwrap(), r["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases,
        [
            ("restarts", "Successful"),
            ("not-ready", "Failed"),
            ("latest-image", "Failed")
        ]
    );
}

#[test]
fn usage_errors_exit_2() {
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo/template.yaml");
    for (args, expected) in [
        (
            vec!["check", "--guardrail", "restarts", "--at", "yesterday"],
            "--at yesterday",
        ),
        (
            vec!["check", "--guardrail", "restarts", "--set", "threshold"],
            "--set threshold: expected KEY=VALUE",
        ),
        (vec!["check"], "--guardrail"),
        (
            vec!["check", "--template", template, "--arg", "namespce=x"],
            "declares no such arg",
        ),
        (vec!["check", "--template", template], "has no value"),
        (
            vec!["check", "--template", "/nonexistent.yaml"],
            "cannot read template",
        ),
        (
            vec!["check", "--guardrail", "restarts", "--output", "xml"],
            "xml",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn without_any_address_check_is_a_usage_error_naming_the_flag() {
    let o = run(&[
        "check",
        "--guardrail",
        "restarts",
        "--namespace",
        "shop",
        "--rollout",
        "web",
        "--pod-template-hash",
        "6c8d7f9a1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--prometheus URL"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn a_missing_target_is_a_usage_error_in_terms_of_the_flags() {
    let o = run(&[
        "check",
        "--guardrail",
        "restarts",
        "--prometheus",
        "http://127.0.0.1:9",
        "--namespace",
        "shop",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "--namespace, --rollout and --pod-template-hash are needed, or --template with a Rollout-side arg"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("AnalysisRun"), "{}", stderr(&o));
}

#[test]
fn help_lists_every_guardrail_and_a_near_miss_is_suggested() {
    let o = run(&["check", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    for kind in rollouts_guardrails::engine::GuardrailKind::ALL {
        assert!(
            stdout(&o).contains(kind.name()),
            "{}: {}",
            kind.name(),
            stdout(&o)
        );
    }
    let o = run(&["check", "--guardrail", "restart"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'restarts'"), "{}", stderr(&o));
}
