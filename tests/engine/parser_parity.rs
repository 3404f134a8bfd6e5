//! Parsing is the only validation: every plugin configuration in examples/, manifests/ and the broken
//! fixtures under tests/fixtures/manifests/broken/ gets the same verdict from the parser (`Config::from_metric`, what
//! `validate` calls) and from a measurement. Refused by the parser ⇔ the measurement fails as `config` with
//! the parser's message, before any query is sent.
use crate::support;

use std::path::Path;

use rollouts_guardrails::engine::config::Config;
use rollouts_guardrails::engine::{Engine, MetricSpec, Phase};
use rollouts_guardrails::manifest::template::{self, TemplateError};
use rollouts_guardrails::prometheus::Client;
use support::analysis;
use support::fake_prometheus::{FakePrometheus, Reply, Scenario};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The template's plugin metrics, every arg without a value given a valid one.
fn metrics(path: &Path) -> Vec<template::TemplateMetric> {
    let mut args: Vec<String> = Vec::new();
    for _ in 0..32 {
        match template::load(path, &args) {
            Ok(metrics) => return metrics,
            Err(TemplateError::MissingArg(name) | TemplateError::ValueFrom(name)) => {
                let value = if name.contains("hash") {
                    "6c8d7f9a1"
                } else {
                    "web"
                };
                args.push(format!("{name}={value}"));
            }
            Err(_) => return Vec::new(),
        }
    }
    panic!("{}: too many args", path.display())
}

#[tokio::test]
async fn the_parser_and_a_measurement_agree_on_every_shipped_configuration() {
    let fake = FakePrometheus::start(Scenario::Always(Reply::vector(&[]))).await;
    let engine = Engine::new(Client::new(), Some(fake.url().to_string()));
    let mut files = support::yaml_files(&Path::new(ROOT).join("examples"));
    files.extend(support::yaml_files(&Path::new(ROOT).join("manifests")));
    files.extend(support::yaml_files(
        &Path::new(ROOT).join("tests/fixtures/manifests/broken"),
    ));
    let (mut accepted, mut refused) = (0, 0);
    for file in files {
        for metric in metrics(&file) {
            let mut config = metric.config.clone();
            let spec = |config: &serde_json::Map<String, serde_json::Value>| MetricSpec {
                name: metric.name.clone(),
                plugin_config: Some(serde_json::to_vec(config).unwrap()),
                success_condition: metric.success_condition.clone(),
                failure_condition: metric.failure_condition.clone(),
            };
            let parsed = Config::from_metric(&spec(&config));
            // Only loopback is ever asked: the shipped address (an in-cluster name) is replaced.
            config.remove("address");
            let before = fake.requests().len();
            let m = engine.measure(&analysis::shop_web(), &spec(&config)).await;
            let class = m.metadata.get("failure").map(String::as_str);
            let what = format!("{} / {}: {m:#?}", file.display(), metric.name);
            match parsed {
                Err(e) => {
                    refused += 1;
                    assert_eq!((m.phase, class), (Phase::Failed, Some("config")), "{what}");
                    assert!(m.message.contains(&e.to_string()), "{e} / {what}");
                    assert_eq!(fake.requests().len(), before, "no query for {what}");
                }
                Ok(_) => {
                    accepted += 1;
                    assert_ne!(class, Some("config"), "{what}");
                }
            }
        }
    }
    assert!(
        accepted >= 10 && refused >= 1,
        "{accepted} accepted, {refused} refused"
    );
}
