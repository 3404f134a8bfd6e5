//! Unit tests of `regression`.
use super::ranked::{p_value, significant};
use super::*;
use crate::engine::config::Config;
use crate::engine::guardrails::testing::{at, config, s, AT};
use crate::engine::guardrails::Guardrail;
use crate::prometheus::QueryData;

fn coverage(hash: &str) -> Coverage {
    let target = TargetSelector::new("shop", "web", hash).unwrap();
    let pod = format!("web-{hash}-a");
    let data = QueryData::Vector(vec![s(&[("pod", &pod)], AT)]);
    Coverage::prove(
        &data,
        &target,
        at(),
        std::time::Duration::from_secs(300),
        1,
        &[],
    )
    .unwrap()
}

fn regression(json: &str) -> Regression {
    match config(json).settings {
        Guardrail::Regression(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn canary_fails_above_stable_times_one_plus_tolerance() {
    let r =
        regression(r#"{"guardrail":"regression","signal":"latency","stablePodTemplateHash":"b"}"#);
    assert_eq!(r.tolerance, 0.1);
    let (canary, stable) = (coverage("a"), coverage("b"));
    assert!(matches!(
        r.compare((&canary, 0.21), (&stable, 0.2)),
        Verdict::Pass(_)
    ));
    let Verdict::Fail(f) = r.compare((&canary, 0.3), (&stable, 0.2)) else {
        panic!()
    };
    assert!(
        f.message
            .contains("canary p95 latency (s) 0.3 vs stable 0.2: ratio 1.5"),
        "{}",
        f.message
    );
    let Verdict::Fail(f) = r.compare((&canary, 0.3), (&canary, 0.2)) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::Config);
    let cpu = regression(
        r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","threshold":0.05}"#,
    );
    assert_eq!(cpu.tolerance, 0.5);
    // Below the absolute floor a large ratio is not a regression.
    assert!(matches!(
        cpu.compare((&canary, 0.04), (&stable, 0.001)),
        Verdict::Pass(_)
    ));
}

#[test]
fn regression_needs_a_signal_and_a_stable_hash() {
    assert!(Config::from_json(br#"{"guardrail":"regression","signal":"cpu"}"#).is_err());
    assert!(
        Config::from_json(br#"{"guardrail":"regression","stablePodTemplateHash":"b"}"#).is_err()
    );
    assert!(Config::from_json(
        br#"{"guardrail":"regression","signal":"disk","stablePodTemplateHash":"b"}"#
    )
    .is_err());
}

#[test]
fn both_sides_are_planned_and_the_stable_side_is_labelled() {
    let r = regression(r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b"}"#);
    let plan = r
        .plan(&TargetSelector::new("shop", "web", "a").unwrap())
        .unwrap();
    assert_eq!(plan.sides.len(), 2);
    assert_eq!(plan.sides[1].label, Some("stable"));
    assert_eq!(plan.sides[1].described, "shop/web-b");
    let names: Vec<_> = plan.sides[1].queries.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["coverage", "cpu"]);
}

const MW_CPU: &str = r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#;

/// Two sides of answers for `MW_CPU`: a fresh pod each and one samples series per side.
fn rank_answers(canary: &[f64], stable: &[f64]) -> Vec<Answers> {
    [("a", canary), ("b", stable)]
        .into_iter()
        .map(|(hash, values)| {
            let pod = format!("web-{hash}-a");
            let steps = values.len();
            let series = crate::prometheus::Series {
                labels: Default::default(),
                samples: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (AT - 60.0 * (steps - 1 - i) as f64, *v))
                    .collect(),
            };
            Answers::from([
                (
                    super::super::query_name::COVERAGE,
                    QueryData::Vector(vec![s(&[("pod", &pod)], AT)]),
                ),
                (query_name::SAMPLES, QueryData::Matrix(vec![series])),
            ])
        })
        .collect()
}

fn rank_judge(json: &str, answers: &[Answers]) -> Verdict {
    let c = config(json);
    let Guardrail::Regression(r) = &c.settings else {
        panic!()
    };
    r.judge(
        &TargetSelector::new("shop", "web", "a").unwrap(),
        answers,
        &c.common,
        at(),
    )
    .unwrap_or_else(Verdict::Fail)
}

#[test]
fn mann_whitney_settings_are_parsed_once_with_their_defaults() {
    let r = regression(MW_CPU);
    assert_eq!(
        r.method,
        Method::MannWhitney(RankTest {
            step: Duration::from_secs(60),
            confidence: 0.95,
            min_samples: 10
        })
    );
    let ratio =
        regression(r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b"}"#);
    assert_eq!(ratio.method, Method::Ratio);
    for (json, says) in [
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","step":"30s"}"#,
            "key `step`: only used with `method: mann-whitney`",
        ),
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"rank"}"#,
            "unknown method `rank`",
        ),
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney"}"#,
            "window 5m at step 1m gives at most 5 samples per side, fewer than minSamples 10",
        ),
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","confidence":1}"#,
            "key `confidence`",
        ),
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","minSamples":3}"#,
            "key `minSamples`",
        ),
        (
            r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m","step":"1500ms"}"#,
            "key `step`",
        ),
        (
            r#"{"guardrail":"latency","threshold":1,"minSamples":10}"#,
            "minSamples",
        ),
    ] {
        let err = Config::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(says), "{json}: {err}");
    }
}

#[test]
fn mann_whitney_asks_one_subquery_per_side() {
    let r = regression(
        r#"{"guardrail":"regression","signal":"latency","quantile":0.99,"stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#,
    );
    let plan = r
        .plan(&TargetSelector::new("shop", "web", "a").unwrap())
        .unwrap();
    for side in &plan.sides {
        let names: Vec<_> = side.queries.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["coverage", "requests", "latest-request", "samples"]);
        let samples = &side.queries[3].1;
        assert!(
            samples.starts_with("(histogram_quantile(0.99, sum by (le) ((rate(http_request_duration_seconds_bucket{namespace=\"shop\"}[60s]))"),
            "{samples}"
        );
        assert!(samples.ends_with(")[1199s:60s]"), "{samples}");
    }
    let errors = regression(
        r#"{"guardrail":"regression","signal":"error-rate","stablePodTemplateHash":"b","method":"mann-whitney","window":"20m"}"#,
    );
    let plan = errors
        .plan(&TargetSelector::new("shop", "web", "a").unwrap())
        .unwrap();
    let samples = &plan.sides[0].queries[3].1;
    assert!(samples.contains(" or vector(0)) / sum("), "{samples}");
}

#[test]
fn mann_whitney_fails_only_a_significant_and_large_regression() {
    let stable: Vec<f64> = (0..20).map(|i| 0.29 + 0.001 * i as f64).collect();
    let slower: Vec<f64> = stable.iter().map(|v| v * 2.0).collect();
    let Verdict::Fail(f) = rank_judge(MW_CPU, &rank_answers(&slower, &stable)) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::Threshold);
    assert!(
        f.message.starts_with(
            "canary CPU per pod median 0.599 cores vs stable 0.3 cores (×2.00 > 1.50), Mann-Whitney p = 3.4e-08 < 0.05"
        ),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("on 20 vs 20 one-minute samples: regression"),
        "{}",
        f.message
    );
    assert!(f.details.iter().any(|(k, _)| *k == metadata_key::P_VALUE));
    // Significant but inside tolerance (+5 % on cpu's 50 %) passes.
    let a_little: Vec<f64> = stable.iter().map(|v| v * 1.05).collect();
    let Verdict::Pass(p) = rank_judge(MW_CPU, &rank_answers(&a_little, &stable)) else {
        panic!()
    };
    assert!(p.message.contains("< 0.05"), "{}", p.message);
    assert!(p.message.contains("within tolerance"), "{}", p.message);
    // Two spikes in identical samples: large at the spikes, not significant.
    let mut spiky = stable.clone();
    spiky[5] = 5.0;
    spiky[12] = 5.0;
    let Verdict::Pass(p) = rank_judge(MW_CPU, &rank_answers(&spiky, &stable)) else {
        panic!()
    };
    assert!(p.message.contains("not significant"), "{}", p.message);
}

#[test]
fn mann_whitney_without_enough_finite_samples_is_unproven() {
    let stable = vec![0.3; 20];
    let mut canary = vec![0.6; 20];
    for v in canary.iter_mut().take(12) {
        *v = f64::NAN;
    }
    let Verdict::Fail(f) = rank_judge(MW_CPU, &rank_answers(&canary, &stable)) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::NoData, "{}", f.message);
    assert!(
        f.message.starts_with("canary: 8 finite one-minute samples"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("12 NaN/Inf steps dropped (canary 12, stable 0)"),
        "{}",
        f.message
    );
    assert!(f
        .details
        .contains(&(metadata_key::DROPPED, "canary 12, stable 0".to_string())));
}

#[test]
fn mann_whitney_samples_must_be_one_fresh_series() {
    let mut answers = rank_answers(&[0.3; 20], &[0.3; 20]);
    let QueryData::Matrix(series) = answers[1][query_name::SAMPLES].clone() else {
        panic!()
    };
    answers[1].insert(
        query_name::SAMPLES,
        QueryData::Matrix(vec![series[0].clone(), series[0].clone()]),
    );
    let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::Ambiguous, "{}", f.message);
    assert!(f
        .message
        .starts_with("stable: samples query returned 2 series"));
    answers[1].insert(query_name::SAMPLES, QueryData::Vector(vec![s(&[], 0.3)]));
    let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::QueryError, "{}", f.message);
    answers[1].insert(query_name::SAMPLES, QueryData::Matrix(vec![]));
    let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::NoData, "{}", f.message);
    // The last step ten minutes before the evaluation instant (staleness 5m).
    let old = crate::prometheus::Series {
        labels: Default::default(),
        samples: (0..20)
            .rev()
            .map(|i| (AT - 600.0 - 60.0 * i as f64, 0.3))
            .collect(),
    };
    answers[1].insert(query_name::SAMPLES, QueryData::Matrix(vec![old]));
    let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
        panic!()
    };
    assert_eq!(f.class, FailureClass::Stale, "{}", f.message);
    assert!(
        f.message
            .contains("the last step is 10m before the evaluation instant"),
        "{}",
        f.message
    );
    // Steps out of order, or one repeated (it would count twice in the rank test): not Prometheus' answer.
    let steps = |times: &[f64]| crate::prometheus::Series {
        labels: Default::default(),
        samples: times.iter().map(|t| (*t, 0.3)).collect(),
    };
    let in_order: Vec<f64> = (0..20).rev().map(|i| AT - 60.0 * i as f64).collect();
    for bad in [
        [&in_order[..10], &in_order[9..]].concat(),
        [&in_order[1..], &in_order[..1]].concat(),
    ] {
        answers[1].insert(query_name::SAMPLES, QueryData::Matrix(vec![steps(&bad)]));
        let Verdict::Fail(f) = rank_judge(MW_CPU, &answers) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError, "{}", f.message);
        assert!(f
            .message
            .contains("out of order or with repeated timestamps"));
    }
}

#[test]
fn p_values_read_as_people_write_them() {
    assert_eq!(p_value(3.4e-8), "3.4e-08");
    assert_eq!(p_value(0.3123), "0.31");
    assert_eq!(p_value(0.0042), "0.0042");
    assert_eq!(p_value(1.0), "1");
    assert_eq!(significant(0.4412, 3), 0.441);
}
