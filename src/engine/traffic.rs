//! Request metrics, shared by `error-rate`, `latency` and `regression`: the presets for common sources, the
//! request keys parsed into [`TrafficSettings`], the PromQL built from them (through [`Selector`], so every
//! configured name is validated and every value escaped), and the [`Traffic`] proof (fresh, covering, enough
//! requests) every request judge passes through.
use std::time::Duration;

use super::config::read::Keys;
use super::config::{self, ConfigError, Profile};
use super::duration::promql_range;
use super::guardrails::{self, answer, Answers, Evidence, Query};
use super::promql::{self, Matchers, Selector, SelectorError, TargetSelector};
use super::verdict::{
    format_number, unix_seconds, vector, Coverage, Failure, FailureClass, Traffic,
};

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

/// Where request metrics come from: each preset names its metrics and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficSource {
    /// Application metrics per pod: `http_requests_total{code}`, `http_request_duration_seconds_bucket`.
    Http,
    /// Istio sidecars (`reporter="destination"`): `istio_requests_total{response_code}`,
    /// `istio_request_duration_milliseconds_bucket`.
    Istio,
    /// The ingress-nginx controller: `nginx_ingress_controller_requests{status}`,
    /// `nginx_ingress_controller_request_duration_seconds_bucket`, selected by Service.
    IngressNginx,
}

impl TrafficSource {
    pub const ALL: [TrafficSource; 3] = [
        TrafficSource::Http,
        TrafficSource::Istio,
        TrafficSource::IngressNginx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrafficSource::Http => "http",
            TrafficSource::Istio => "istio",
            TrafficSource::IngressNginx => "ingress-nginx",
        }
    }
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

/// The request keys every request guardrail accepts (`errorLabel`/`errorRegex` and `histogramMetric`/`quantile`
/// belong to the guardrails that measure errors or latency).
pub const KEYS: &[&str] = &[
    "window",
    "source",
    "requestMetric",
    "minRequests",
    "service",
    "requestMatchers",
];

/// The largest `minRequests` accepted (a guard against typos that would make every canary "too quiet").
pub const MAX_MIN_REQUESTS: f64 = 1e12;

/// Where requests are counted and how many prove anything, profile defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficSettings {
    pub source: TrafficSource,
    pub request_metric: String,
    pub histogram_metric: String,
    pub error_label: String,
    pub error_regex: String,
    /// `ingress-nginx`: the canary Service the ingress routes to.
    pub service: Option<String>,
    /// `requestMatchers`: exact label matchers on the request series only (a route, a method); the source's
    /// `matchers` apply to them too.
    pub request_matchers: Matchers,
    pub window: Duration,
    /// Fewer requests in the window is "not enough traffic" (10 by default, 50 in `prod`).
    pub min_requests: u64,
}

/// What a request plan measures besides the request count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    Errors,
    /// The quantile of the request-duration histogram.
    Latency(f64),
}

impl TrafficSettings {
    pub fn parse(keys: &Keys, profile: Profile) -> Result<TrafficSettings, ConfigError> {
        let source = keys
            .one_of("source", "source", &TrafficSource::ALL, TrafficSource::name)?
            .unwrap_or(TrafficSource::Http);
        let preset = Preset::of(source);
        let min_requests = keys.count(
            "minRequests",
            MAX_MIN_REQUESTS,
            "must be a whole number of at least 1 (no traffic proves nothing)",
        )?;
        let service = keys.text("service")?;
        match (preset.per_pod, &service) {
            (false, Some(service)) => promql::validate_namespace(service)
                .map_err(|e| keys.invalid("service", &e.to_string()))?,
            (false, None) => {
                return Err(keys.invalid(
                    "service",
                    &format!(
                        "source `{}` needs `service`: the canary Service the ingress routes to",
                        source.name()
                    ),
                ))
            }
            (true, Some(_)) => {
                return Err(keys.invalid(
                    "service",
                    &format!(
                        "not used by source `{}`: its series carry the serving pod",
                        source.name()
                    ),
                ))
            }
            (true, None) => {}
        }
        let or = |key: &str, default: &str| -> Result<String, ConfigError> {
            Ok(keys.text(key)?.unwrap_or_else(|| default.to_string()))
        };
        let settings = TrafficSettings {
            source,
            request_metric: or("requestMetric", preset.request_metric)?,
            histogram_metric: or("histogramMetric", preset.histogram_metric)?,
            error_label: or("errorLabel", preset.error_label)?,
            error_regex: or("errorRegex", preset.error_regex)?,
            service,
            request_matchers: keys.matchers("requestMatchers")?,
            window: config::window(keys, config::default_window(profile))?,
            min_requests: min_requests.unwrap_or(profile.pick(10, 50)),
        };
        if !settings.histogram_metric.ends_with("_bucket") {
            return Err(keys.invalid(
                "histogramMetric",
                &format!(
                    "`{}` must be a histogram's `_bucket` series",
                    settings.histogram_metric
                ),
            ));
        }
        Ok(settings)
    }

    /// Refuses what no target can make valid (metric and label names, value lengths), by planning once
    /// for a placeholder target.
    pub fn check(&self, measure: Measure) -> Result<(), ConfigError> {
        plan(self, measure, &TargetSelector::placeholder())
            .map(|_| ())
            .map_err(|f| ConfigError::Plan(f.message))
    }
}

/// `quantile`: strictly between 0 and 1; 0.95 by default, 0.99 in `prod`.
pub fn quantile(keys: &Keys, profile: Profile) -> Result<f64, ConfigError> {
    Ok(keys
        .number_where(
            "quantile",
            |q| q > 0.0 && q < 1.0,
            "must be between 0 and 1 (exclusive), e.g. 0.95",
        )?
        .unwrap_or(profile.pick(0.95, 0.99)))
}

/// The queries of a request guardrail, resolved from the preset, the overrides and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPlan {
    /// The request series as shown in messages.
    pub described: String,
    pub queries: Vec<Query>,
    /// `errorLabel=~"errorRegex"`, for messages.
    pub error_matcher: String,
    /// Multiplies histogram bucket bounds into seconds (`0.001` for `_milliseconds_bucket`).
    pub unit_to_seconds: f64,
}

fn selector_failure(e: SelectorError) -> Failure {
    Failure::new(FailureClass::Config, e.to_string())
}

/// Selectors and expressions of one request plan: the preset's metrics for one target.
struct Builder<'a> {
    traffic: &'a TrafficSettings,
    preset: Preset,
    target: &'a TargetSelector,
}

impl Builder<'_> {
    /// `metric{<fixed>,<namespace>,<matchers>}`.
    fn base(&self, metric: &str, what: &'static str) -> Result<Selector, SelectorError> {
        let mut s = Selector::new(what, metric)?;
        for (label, value) in self.preset.fixed {
            s = s.equal(label, value)?;
        }
        let namespace_label = if self.preset.per_pod {
            "namespace"
        } else {
            INGRESS_NGINX_NAMESPACE_LABEL
        };
        s = s.equal(namespace_label, self.target.namespace())?;
        self.target
            .matchers()
            .merged(&self.traffic.request_matchers)
            .apply(s)
    }

    /// The selector narrowed to the canary Service (sources selected by Service).
    fn scoped(&self, s: Selector) -> Result<Selector, SelectorError> {
        match &self.traffic.service {
            Some(service) => s.equal(INGRESS_NGINX_SERVICE_LABEL, service),
            None => Ok(s),
        }
    }

    /// Per-pod series kept to the target's pods.
    fn restrict(&self, expression: String) -> String {
        if self.preset.per_pod {
            self.target.restrict(&expression)
        } else {
            expression
        }
    }

    /// The measured query, and the selector counting requests with its unit factor.
    fn measured(&self, measure: Measure) -> Result<(Query, Selector, f64), SelectorError> {
        let range = promql_range(self.traffic.window);
        let (error_label, error_regex) = (&self.traffic.error_label, &self.traffic.error_regex);
        Ok(match measure {
            Measure::Errors => {
                // Only series carrying the error label count as requests: a wrong label must not read as
                // "no errors".
                let requests = self
                    .base(&self.traffic.request_metric, "requestMetric")
                    .and_then(|s| s.has(error_label))
                    .and_then(|s| self.scoped(s))?;
                let errors = requests.clone().regex(error_label, error_regex)?;
                let increase = format!("increase({}[{range}])", errors.render());
                let query = format!("sum({})", self.restrict(increase));
                ((query_name::ERRORS, query), requests, 1.0)
            }
            Measure::Latency(quantile) => {
                let metric = &self.traffic.histogram_metric;
                let buckets = self
                    .base(metric, "histogramMetric")
                    .and_then(|s| self.scoped(s))?;
                let rate = format!("rate({}[{range}])", buckets.render());
                let query = format!(
                    "histogram_quantile({quantile}, sum by (le) ({}))",
                    self.restrict(rate)
                );
                let unit = if metric.ends_with("_milliseconds_bucket") {
                    0.001
                } else {
                    1.0
                };
                // The `+Inf` bucket counts every request.
                (
                    (query_name::LATENCY, query),
                    buckets.equal("le", "+Inf")?,
                    unit,
                )
            }
        })
    }
}

/// Builds the queries measuring `measure` for `target`; `regression` uses it for both sides.
pub fn plan(
    traffic: &TrafficSettings,
    measure: Measure,
    target: &TargetSelector,
) -> Result<TrafficPlan, Failure> {
    let builder = Builder {
        traffic,
        preset: Preset::of(traffic.source),
        target,
    };
    let (measured, counted, unit_to_seconds) =
        builder.measured(measure).map_err(selector_failure)?;
    let range = promql_range(traffic.window);
    let increase = format!("increase({}[{range}])", counted.render());
    let latest = format!("timestamp({})", counted.render());
    let queries = vec![
        measured,
        (
            query_name::REQUESTS,
            format!("sum({})", builder.restrict(increase)),
        ),
        (
            query_name::LATEST_REQUEST,
            format!("max({})", builder.restrict(latest)),
        ),
    ];
    let error_matcher = format!(
        "{}=~{}",
        traffic.error_label,
        promql::string_literal(&traffic.error_regex)
    );
    Ok(TrafficPlan {
        described: counted.render(),
        queries,
        error_matcher,
        unit_to_seconds,
    })
}

/// The measured signal over one `step`, as an instant expression, and the factor into seconds of its values
/// (`regression` with `mann-whitney` asks it as a subquery, one sample per step): the error ratio, with
/// `0` errors where no request matched the error regex, or the latency quantile in the histogram's unit.
pub fn per_step(
    traffic: &TrafficSettings,
    measure: Measure,
    target: &TargetSelector,
    step: Duration,
) -> Result<(String, f64), Failure> {
    let stepped = TrafficSettings {
        window: step,
        ..traffic.clone()
    };
    let plan = plan(&stepped, measure, target)?;
    let named = |name: &str| {
        plan.queries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, q)| q.clone())
            .ok_or_else(|| Failure::new(FailureClass::Config, format!("no {name} query planned")))
    };
    Ok(match measure {
        Measure::Errors => (
            format!(
                "({} or vector(0)) / {}",
                named(query_name::ERRORS)?,
                named(query_name::REQUESTS)?
            ),
            1.0,
        ),
        Measure::Latency(_) => (named(query_name::LATENCY)?, plan.unit_to_seconds),
    })
}

/// How long the canary has existed: since its oldest covered pod was created (`None` without a `created`
/// answer, as for `regression`, whose plan does not ask it).
fn canary_age(evidence: &Evidence) -> Option<Duration> {
    let samples = vector(
        evidence.answers.get(guardrails::query_name::CREATED)?,
        "created",
    )
    .ok()?;
    let oldest = evidence
        .coverage
        .by_pod(samples)
        .values()
        .flatten()
        .map(|s| s.value)
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    oldest
        .is_finite()
        .then(|| Duration::from_secs_f64((unix_seconds(evidence.at) - oldest).max(0.0)))
}

impl TrafficSettings {
    /// The plan of `measure` for the evidence's target, and the [`Traffic`] proof over its answers.
    pub fn proven(
        &self,
        measure: Measure,
        evidence: &Evidence,
    ) -> Result<(TrafficPlan, Traffic), Failure> {
        let plan = plan(self, measure, evidence.target)?;
        let proof = Traffic::prove(
            &evidence.coverage,
            answer(evidence.answers, query_name::REQUESTS)?,
            answer(evidence.answers, query_name::LATEST_REQUEST)?,
            evidence.at,
            self.window,
            evidence.staleness,
            self.min_requests,
            &plan.described,
            canary_age(evidence),
        )?;
        Ok((plan, proof))
    }
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

pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests;
