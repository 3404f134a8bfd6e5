//! The request guardrails, `error-rate` and `latency`: the presets for common request metrics, the PromQL
//! built from them (through [`Selector`], so every configured name is validated and every value escaped), and
//! the judges, which pass only through a [`Traffic`] proof (fresh, covering, enough requests).
use std::time::{Duration, SystemTime};

use super::config::{Config, GuardrailKind, Settings, TrafficSource};
use super::duration::{self, promql_range};
use super::guardrail::{self, Answers};
use super::promql::{Selector, SelectorError, TargetSelector};
use super::verdict::{
    format_number, judge_limit, round3, unix_seconds, vector, Coverage, Failure, FailureClass,
    Traffic, Verdict,
};
use crate::prometheus::QueryData;

/// The name of each traffic query in metadata (`query.<name>`).
pub mod query_name {
    pub const REQUESTS: &str = "requests";
    pub const ERRORS: &str = "errors";
    pub const LATEST_REQUEST: &str = "latest-request";
    pub const LATENCY: &str = "latency";
}

/// What a preset reads: metric names, the label that carries the status and what counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub request_metric: &'static str,
    pub histogram_metric: &'static str,
    pub error_label: &'static str,
    pub error_regex: &'static str,
    /// Fixed matchers (Istio counts each request twice, once per reporter).
    pub fixed: &'static [(&'static str, &'static str)],
    /// Whether series carry the serving pod's `namespace` and `pod` labels (then they are joined with the
    /// target's pods); otherwise they are selected by namespace and Service labels.
    pub per_pod: bool,
}

impl Preset {
    pub fn of(source: TrafficSource) -> Preset {
        match source {
            TrafficSource::Http => Preset {
                request_metric: "http_requests_total",
                histogram_metric: "http_request_duration_seconds_bucket",
                error_label: "code",
                error_regex: "5..",
                fixed: &[],
                per_pod: true,
            },
            TrafficSource::Istio => Preset {
                request_metric: "istio_requests_total",
                histogram_metric: "istio_request_duration_milliseconds_bucket",
                error_label: "response_code",
                error_regex: "5..",
                fixed: &[("reporter", "destination")],
                per_pod: true,
            },
            TrafficSource::IngressNginx => Preset {
                request_metric: "nginx_ingress_controller_requests",
                histogram_metric: "nginx_ingress_controller_request_duration_seconds_bucket",
                error_label: "status",
                error_regex: "5..",
                fixed: &[],
                per_pod: false,
            },
        }
    }
}

/// ingress-nginx labels as a Prometheus Operator ServiceMonitor leaves them (the controller's own
/// `namespace` and `service` labels renamed because the target has labels of the same names).
pub const INGRESS_NGINX_NAMESPACE_LABEL: &str = "exported_namespace";
pub const INGRESS_NGINX_SERVICE_LABEL: &str = "exported_service";

/// The queries of `error-rate` or `latency`, resolved from the preset, the overrides and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPlan {
    /// The request series as shown in messages.
    pub described: String,
    pub queries: Vec<(&'static str, String)>,
    /// `errorLabel=~"errorRegex"`, for messages.
    pub error_matcher: String,
    /// Multiplies histogram bucket bounds into seconds (`0.001` for `_milliseconds_bucket`).
    pub unit_to_seconds: f64,
}

fn selector_failure(e: SelectorError) -> Failure {
    Failure::new(FailureClass::Config, e.to_string())
}

/// Builds the plan of a traffic guardrail.
pub fn plan(
    config: &Config,
    target: &TargetSelector,
    settings: &Settings,
) -> Result<TrafficPlan, Failure> {
    plan_for(config.guardrail, config, target, settings)
}

/// Builds the queries of `kind` (`error-rate` or `latency`) for `target`; `regression` uses it for both sides.
pub fn plan_for(
    kind: GuardrailKind,
    config: &Config,
    target: &TargetSelector,
    settings: &Settings,
) -> Result<TrafficPlan, Failure> {
    let source = config.traffic.source.unwrap_or(TrafficSource::Http);
    let preset = Preset::of(source);
    let base = |metric: &str, what: &'static str| -> Result<Selector, SelectorError> {
        let mut s = Selector::new(what, metric)?;
        for (label, value) in preset.fixed {
            s = s.equal(label, value)?;
        }
        if preset.per_pod {
            s = s.equal("namespace", target.namespace())?;
        } else {
            s = s.equal(INGRESS_NGINX_NAMESPACE_LABEL, target.namespace())?;
        }
        for (label, value) in &config.matchers {
            s = s.equal(label, value)?;
        }
        Ok(s)
    };
    let service = match (preset.per_pod, &config.traffic.service) {
        (false, Some(service)) => {
            super::promql::validate_namespace(service)
                .map_err(|e| Failure::new(FailureClass::Config, format!("service: {e}")))?;
            Some(service.clone())
        }
        (false, None) => {
            return Err(Failure::new(
                FailureClass::Config,
                format!(
                    "source `{}` needs `service`: the canary Service the ingress routes to",
                    source.name()
                ),
            ))
        }
        (true, Some(_)) => {
            return Err(Failure::new(
                FailureClass::Config,
                format!(
                    "key `service` is not used by source `{}`: its series carry the serving pod",
                    source.name()
                ),
            ))
        }
        (true, None) => None,
    };
    let scoped = |s: Selector| -> Result<Selector, SelectorError> {
        match &service {
            Some(service) => s.equal(INGRESS_NGINX_SERVICE_LABEL, service),
            None => Ok(s),
        }
    };
    let restrict = |expression: String| -> String {
        if preset.per_pod {
            target.restrict(&expression)
        } else {
            expression
        }
    };
    let range = promql_range(settings.window);
    let error_label = config
        .traffic
        .error_label
        .clone()
        .unwrap_or_else(|| preset.error_label.to_string());
    let error_regex = config
        .traffic
        .error_regex
        .clone()
        .unwrap_or_else(|| preset.error_regex.to_string());
    let error_matcher = format!(
        "{error_label}=~{}",
        super::promql::string_literal(&error_regex)
    );
    let mut queries = Vec::new();
    let (counted, unit_to_seconds) = match kind {
        GuardrailKind::ErrorRate => {
            let metric = config
                .traffic
                .request_metric
                .as_deref()
                .unwrap_or(preset.request_metric);
            // Only series carrying the error label count as requests: a wrong label must not read as
            // "no errors".
            let requests = scoped(
                base(metric, "requestMetric")
                    .and_then(|s| s.has(&error_label))
                    .map_err(selector_failure)?,
            )
            .map_err(selector_failure)?;
            let errors = requests
                .clone()
                .regex(&error_label, &error_regex)
                .map_err(selector_failure)?;
            queries.push((
                query_name::ERRORS,
                format!(
                    "sum({})",
                    restrict(format!("increase({}[{range}])", errors.render()))
                ),
            ));
            (requests, 1.0)
        }
        GuardrailKind::Latency => {
            let metric = config
                .traffic
                .histogram_metric
                .as_deref()
                .unwrap_or(preset.histogram_metric);
            if !metric.ends_with("_bucket") {
                return Err(Failure::new(
                    FailureClass::Config,
                    format!("histogramMetric `{metric}` must be a histogram's `_bucket` series"),
                ));
            }
            let buckets = scoped(base(metric, "histogramMetric").map_err(selector_failure)?)
                .map_err(selector_failure)?;
            queries.push((
                query_name::LATENCY,
                format!(
                    "histogram_quantile({}, sum by (le) ({}))",
                    settings.quantile,
                    restrict(format!("rate({}[{range}])", buckets.render()))
                ),
            ));
            let unit = if metric.ends_with("_milliseconds_bucket") {
                0.001
            } else {
                1.0
            };
            // The `+Inf` bucket counts every request.
            (buckets.equal("le", "+Inf").map_err(selector_failure)?, unit)
        }
        other => {
            return Err(Failure::new(
                FailureClass::Config,
                format!("guardrail `{}` is not a traffic guardrail", other.name()),
            ))
        }
    };
    queries.push((
        query_name::REQUESTS,
        format!(
            "sum({})",
            restrict(format!("increase({}[{range}])", counted.render()))
        ),
    ));
    queries.push((
        query_name::LATEST_REQUEST,
        format!(
            "max({})",
            restrict(format!("timestamp({})", counted.render()))
        ),
    ));
    Ok(TrafficPlan {
        described: counted.render(),
        queries,
        error_matcher,
        unit_to_seconds,
    })
}

fn answer<'a>(answers: &'a Answers, name: &'static str) -> Result<&'a QueryData, Failure> {
    answers.get(name).ok_or_else(|| {
        Failure::new(
            FailureClass::QueryError,
            format!("{name} query has no answer"),
        )
    })
}

/// Judges `error-rate` or `latency` from the answers of [`plan`].
pub fn judge(
    kind: GuardrailKind,
    plan: &TrafficPlan,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    at: SystemTime,
) -> Verdict {
    let result = (|| {
        let traffic = prove_traffic(plan, coverage, answers, settings, at)?;
        match kind {
            GuardrailKind::ErrorRate => error_rate(&traffic, plan, coverage, answers, settings),
            _ => latency(&traffic, plan, coverage, answers, settings),
        }
    })();
    result.unwrap_or_else(Verdict::Fail)
}

/// The [`Traffic`] proof from the `requests` and `latest-request` answers.
pub fn prove_traffic(
    plan: &TrafficPlan,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
    at: SystemTime,
) -> Result<Traffic, Failure> {
    Traffic::prove(
        coverage,
        answer(answers, query_name::REQUESTS)?,
        answer(answers, query_name::LATEST_REQUEST)?,
        at,
        settings.window,
        settings.staleness,
        settings.min_requests,
        &plan.described,
        canary_age(coverage, answers, at),
    )
}

/// How long the canary has existed: since its oldest covered pod was created (`None` without a `created`
/// answer, as for `regression`, whose plan does not ask it).
pub fn canary_age(coverage: &Coverage, answers: &Answers, at: SystemTime) -> Option<Duration> {
    let samples = vector(answers.get(guardrail::query_name::CREATED)?, "created").ok()?;
    let oldest = coverage
        .by_pod(samples)
        .values()
        .flatten()
        .map(|s| s.value)
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    oldest
        .is_finite()
        .then(|| Duration::from_secs_f64((unix_seconds(at) - oldest).max(0.0)))
}

/// `(errors, ratio)` over proven traffic.
pub fn error_ratio(traffic: &Traffic, answers: &Answers) -> Result<(f64, f64), Failure> {
    let samples = vector(answer(answers, query_name::ERRORS)?, query_name::ERRORS)?;
    // No error series among proven request series: no request matched the error regex.
    let errors = match samples {
        [] => 0.0,
        [one] if one.value.is_finite() && one.value >= 0.0 => one.value,
        _ => {
            return Err(Failure::new(
                FailureClass::QueryError,
                "errors query returned something other than one finite count",
            ))
        }
    };
    Ok((errors, errors / traffic.requests))
}

fn error_rate(
    traffic: &Traffic,
    plan: &TrafficPlan,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
) -> Result<Verdict, Failure> {
    let (errors, ratio) = error_ratio(traffic, answers)?;
    let limit = settings.threshold.unwrap_or(0.0);
    let value = format_number(round6(ratio));
    let message = format!(
        "error ratio {value} ({} of {} requests with {}) in the last {} to ReplicaSet {} (threshold {})",
        format_number(round3(errors)),
        format_number(round3(traffic.requests)),
        plan.error_matcher,
        duration::format(settings.window),
        coverage.target(),
        format_number(limit)
    );
    Ok(judge_limit(traffic, ratio > limit, value, message))
}

/// The latency quantile in seconds (the traffic proof must be made first).
pub fn latency_seconds(
    plan: &TrafficPlan,
    coverage: &Coverage,
    answers: &Answers,
) -> Result<f64, Failure> {
    let samples = vector(answer(answers, query_name::LATENCY)?, query_name::LATENCY)?;
    Ok(match samples {
        [one] if one.value.is_finite() => one.value * plan.unit_to_seconds,
        [one] => {
            return Err(Failure::new(
                FailureClass::QueryError,
                format!(
                    "latency query returned {} (a histogram without finite buckets, or all requests in +Inf)",
                    format_number(one.value)
                ),
            ))
        }
        [] => {
            return Err(Failure::new(
                FailureClass::NoData,
                format!("no latency histogram for ReplicaSet {}", coverage.target()),
            ))
        }
        more => {
            return Err(Failure::new(
                FailureClass::QueryError,
                format!("latency query returned {} samples; expected one", more.len()),
            ))
        }
    })
}

fn latency(
    traffic: &Traffic,
    plan: &TrafficPlan,
    coverage: &Coverage,
    answers: &Answers,
    settings: &Settings,
) -> Result<Verdict, Failure> {
    let quantile = latency_seconds(plan, coverage, answers)?;
    let limit = settings.threshold.unwrap_or(0.0);
    let value = format_number(round6(quantile));
    let message = format!(
        "p{} latency {value}s over {} requests in the last {} to ReplicaSet {} (threshold {}s)",
        format_number(settings.quantile * 100.0),
        format_number(round3(traffic.requests)),
        duration::format(settings.window),
        coverage.target(),
        format_number(limit)
    );
    Ok(judge_limit(traffic, quantile > limit, value, message))
}

pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::Sample;
    use std::time::{Duration, UNIX_EPOCH};

    const AT: f64 = 1_767_268_800.0;

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(AT as u64)
    }

    fn target() -> TargetSelector {
        TargetSelector::new("shop", "web", "6c8d7f9a1").unwrap()
    }

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    fn one(value: f64) -> QueryData {
        QueryData::Vector(vec![Sample {
            labels: Default::default(),
            timestamp: AT,
            value,
        }])
    }

    fn coverage() -> Coverage {
        let data = QueryData::Vector(vec![Sample {
            labels: [("pod".to_string(), "web-6c8d7f9a1-a".to_string())].into(),
            timestamp: AT,
            value: AT,
        }]);
        Coverage::prove(&data, &target(), at(), Duration::from_secs(300), 1).unwrap()
    }

    #[test]
    fn presets_name_their_metrics_and_join_on_the_target_pods() {
        let c = config(r#"{"guardrail":"error-rate"}"#);
        let p = plan(&c, &target(), &c.settings()).unwrap();
        assert_eq!(
            p.queries[0].1,
            r#"sum((increase(http_requests_total{namespace="shop",code!="",code=~"5.."}[300s])) and on(namespace, pod) kube_pod_info{namespace="shop",created_by_kind="ReplicaSet",created_by_name="web-6c8d7f9a1"})"#
        );
        let c = config(r#"{"guardrail":"latency","source":"istio","threshold":0.5}"#);
        let p = plan(&c, &target(), &c.settings()).unwrap();
        assert_eq!(p.unit_to_seconds, 0.001);
        assert!(p.queries[0].1.starts_with(r#"histogram_quantile(0.95, sum by (le) ((rate(istio_request_duration_milliseconds_bucket{reporter="destination",namespace="shop"}[300s]))"#), "{}", p.queries[0].1);
        let c =
            config(r#"{"guardrail":"error-rate","source":"ingress-nginx","service":"web-canary"}"#);
        let p = plan(&c, &target(), &c.settings()).unwrap();
        assert_eq!(
            p.queries[1].1,
            r#"sum(increase(nginx_ingress_controller_requests{exported_namespace="shop",status!="",exported_service="web-canary"}[300s]))"#
        );
        let c = config(r#"{"guardrail":"error-rate","source":"ingress-nginx"}"#);
        assert_eq!(
            plan(&c, &target(), &c.settings()).unwrap_err().class,
            FailureClass::Config
        );
    }

    #[test]
    fn hostile_overrides_never_reach_promql() {
        for json in [
            r#"{"guardrail":"error-rate","requestMetric":"up) or vector(1"}"#,
            r#"{"guardrail":"error-rate","errorLabel":"code\"}"}"#,
            r#"{"guardrail":"latency","threshold":1,"histogramMetric":"http_seconds"}"#,
        ] {
            let c = config(json);
            assert_eq!(
                plan(&c, &target(), &c.settings()).unwrap_err().class,
                FailureClass::Config,
                "{json}"
            );
        }
        assert!(
            Config::from_json(br#"{"guardrail":"error-rate","matchers":{"a-b":"x"}}"#).is_err()
        );
        let c = config(r#"{"guardrail":"error-rate","matchers":{"route":"/a\"} or vector(1)"}}"#);
        let p = plan(&c, &target(), &c.settings()).unwrap();
        assert!(
            p.queries[0].1.contains(r#"route="/a\"} or vector(1)""#),
            "{}",
            p.queries[0].1
        );
    }

    #[test]
    fn error_ratio_above_threshold_fails_and_no_error_series_is_zero() {
        let c = config(r#"{"guardrail":"error-rate","threshold":0.05}"#);
        let s = c.settings();
        let p = plan(&c, &target(), &s).unwrap();
        let answers = |errors: QueryData| -> Answers {
            [
                (query_name::REQUESTS, one(200.0)),
                (query_name::LATEST_REQUEST, one(AT - 20.0)),
                (query_name::ERRORS, errors),
            ]
            .into()
        };
        let Verdict::Fail(f) = judge(
            GuardrailKind::ErrorRate,
            &p,
            &coverage(),
            &answers(one(40.0)),
            &s,
            at(),
        ) else {
            panic!()
        };
        assert_eq!(
            (f.class, f.value.as_str()),
            (FailureClass::Threshold, "0.2")
        );
        assert!(f.message.contains("40 of 200 requests"), "{}", f.message);
        let Verdict::Pass(ok) = judge(
            GuardrailKind::ErrorRate,
            &p,
            &coverage(),
            &answers(QueryData::Vector(vec![])),
            &s,
            at(),
        ) else {
            panic!()
        };
        assert_eq!(ok.value, "0");
    }

    #[test]
    fn latency_is_converted_to_seconds_and_compared() {
        let c = config(r#"{"guardrail":"latency","source":"istio","threshold":0.3}"#);
        let s = c.settings();
        let p = plan(&c, &target(), &s).unwrap();
        let answers = |ms: f64| -> Answers {
            [
                (query_name::REQUESTS, one(500.0)),
                (query_name::LATEST_REQUEST, one(AT)),
                (query_name::LATENCY, one(ms)),
            ]
            .into()
        };
        assert!(matches!(
            judge(
                GuardrailKind::Latency,
                &p,
                &coverage(),
                &answers(250.0),
                &s,
                at()
            ),
            Verdict::Pass(_)
        ));
        let Verdict::Fail(f) = judge(
            GuardrailKind::Latency,
            &p,
            &coverage(),
            &answers(450.0),
            &s,
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.value, "0.45");
        let Verdict::Fail(f) = judge(
            GuardrailKind::Latency,
            &p,
            &coverage(),
            &answers(f64::NAN),
            &s,
            at(),
        ) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::QueryError);
    }
}
