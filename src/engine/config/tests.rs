//! Unit tests of `config`.
use super::*;
use crate::engine::guardrails::alerts::Severity;
use crate::engine::guardrails::restarts::Restarts;

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::from_json(json.as_bytes())
}

#[test]
fn a_typo_names_the_key_and_the_nearest_valid_one() {
    let err = parse(r#"{"guardrail":"restarts","thresold":1}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `thresold`; did you mean `threshold`?"
    );
    let err = parse(r#"{"guardrail":"restarts","podtemplatehash":"abc"}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `podtemplatehash`; did you mean `podTemplateHash`?"
    );
    let err = parse(r#"{"guardrail":"restarts","colour":"red"}"#).unwrap_err();
    assert_eq!(err.to_string(), "unknown key `colour`");
    let err = parse(r#"{"guardrail":"restarts","basicAuth":{"username":"u","pasword":"p"}}"#)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `basicAuth.pasword`; did you mean `password`?"
    );
    let err = parse(r#"{"guardrail":"restarts","tls":{"insecureSkipVerfy":true}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown key `tls.insecureSkipVerfy`; did you mean `insecureSkipVerify`?"
    );
}

fn restarts(json: &str) -> (Restarts, Common) {
    let c = parse(json).unwrap();
    match c.settings {
        Guardrail::Restarts(r) => (r, c.common),
        other => panic!("{other:?}"),
    }
}

#[test]
fn profile_defaults_and_explicit_keys() {
    let (r, c) = restarts(r#"{"guardrail":"restarts"}"#);
    assert_eq!(
        (
            r.window,
            r.threshold,
            c.staleness,
            c.min_pods,
            c.timeout.unwrap_or(DEFAULT_TIMEOUT)
        ),
        (
            Duration::from_secs(300),
            1.0,
            Duration::from_secs(300),
            1,
            DEFAULT_TIMEOUT
        )
    );
    let (r, c) = restarts(r#"{"guardrail":"restarts","profile":"prod"}"#);
    assert_eq!(
        (r.window, r.threshold, c.staleness),
        (Duration::from_secs(600), 0.0, Duration::from_secs(120))
    );
    let (r, c) = restarts(
        r#"{"guardrail":"restarts","profile":"prod","window":"15m","threshold":"2","staleness":"90s","minPods":"3"}"#,
    );
    assert_eq!(
        (r.window, r.threshold, c.staleness, c.min_pods),
        (Duration::from_secs(900), 2.0, Duration::from_secs(90), 3)
    );
    let Guardrail::NotReady(n) = parse(r#"{"guardrail":"not-ready"}"#).unwrap().settings else {
        panic!()
    };
    assert_eq!(n.threshold, 0.0);
    let Guardrail::LatestImage(l) = parse(r#"{"guardrail":"latest-image"}"#).unwrap().settings
    else {
        panic!()
    };
    assert_eq!(l.threshold, 0.0);
    let Guardrail::Query(q) = parse(r#"{"guardrail":"query","query":"up"}"#)
        .unwrap()
        .settings
    else {
        panic!()
    };
    assert_eq!(q.threshold, None);
}

#[test]
fn staleness_bounds_the_query_guardrail_answer_too() {
    let c = parse(r#"{"guardrail":"query","query":"up","threshold":1,"staleness":"1m"}"#).unwrap();
    assert_eq!(c.common.staleness, Duration::from_secs(60));
}

#[test]
fn the_parser_knows_the_conditions() {
    let metric = |json: &str, success: &str| MetricSpec {
        name: "m".into(),
        plugin_config: Some(json.as_bytes().to_vec()),
        success_condition: success.into(),
        failure_condition: String::new(),
    };
    let err =
        Config::from_metric(&metric(r#"{"guardrail":"query","query":"up"}"#, "")).unwrap_err();
    assert_eq!(err, ConfigError::NothingToJudge);
    assert!(Config::from_metric(&metric(
        r#"{"guardrail":"query","query":"up"}"#,
        "result[0] > 1"
    ))
    .unwrap()
    .is_some());
    let err =
        Config::from_metric(&metric(r#"{"guardrail":"restarts"}"#, "result == 0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "successCondition is not used by guardrail `restarts`: it is judged by `threshold` (conditions apply to guardrail `query`)"
    );
    assert!(
        Config::from_metric(&metric(r#"{"guardrail":"query","query":"up"}"#, "result +")).is_err()
    );
    let no_entry = MetricSpec::default();
    assert_eq!(Config::from_metric(&no_entry), Ok(None));
}

#[test]
fn values_are_type_checked() {
    let cases = [
        (r#"{"guardrail":"restarts","threshold":"one"}"#, "key `threshold` must be a number"),
        (r#"{"guardrail":"restarts","threshold":-1}"#, "key `threshold`: must not be negative"),
        (r#"{"guardrail":"restarts","minPods":0}"#, "key `minPods`: must be a whole number of at least 1"),
        (r#"{"guardrail":"restarts","minPods":1.5}"#, "key `minPods`: must be a whole number of at least 1"),
        (r#"{"guardrail":"restarts","window":"5"}"#, "key `window`: invalid duration `5`: expected a number followed by a unit (ms, s, m, h, d, w), e.g. `5m` or `1h30m`"),
        (r#"{"guardrail":"restarts","window":300}"#, "key `window` must be a duration such as `5m`"),
        (r#"{"guardrail":"restarts","timeout":"1h"}"#, "key `timeout`: must be between 1ms and 5m"),
        (r#"{"guardrail":"restarts","profile":"production"}"#, "key `profile`: unknown profile `production`; expected `default` or `prod`"),
        (r#"{"guardrail":"restart"}"#, "key `guardrail`: unknown guardrail `restart` (did you mean `restarts`?); expected one of `restarts`, `not-ready`, `latest-image`, `waiting-reasons`, `oom-killed`, `error-rate`, `latency`, `alerts`, `regression`, `gitops`, `query`, `replicas`"),
        (r#"{"threshold":1}"#, "missing key `guardrail`"),
        (r#"{"guardrail":"query"}"#, "missing key `query`"),
        (r#"{"guardrail":"query","query":"  "}"#, "missing key `query`"),
        (r#"[1]"#, "the plugin configuration must be a JSON object"),
        (r#"{"guardrail":"restarts","images":["nginx"]}"#, "key `images` is not used by guardrail `restarts`"),
        (r#"{"guardrail":"not-ready","window":"5m"}"#, "key `window` is not used by guardrail `not-ready`"),
        (r#"{"guardrail":"query","query":"up","namespace":"x"}"#, "key `namespace` is not used by guardrail `query`"),
        (r#"{"guardrail":"restarts","tls":{"certFile":"/c"}}"#, "key `tls`: `certFile` and `keyFile` go together"),
        (r#"{"guardrail":"restarts","headers":{"X-A":"a\r\nb"}}"#, "key `headers.X-A`: contains a line break"),
    ];
    for (json, message) in cases {
        assert_eq!(parse(json).unwrap_err().to_string(), message, "{json}");
    }
    assert!(matches!(parse("{").unwrap_err(), ConfigError::Json(_)));
}

#[test]
fn credentials_never_show_in_debug_or_errors() {
    let c = parse(r#"{"guardrail":"restarts","bearerToken":"tok-SECRET-1","headers":{"X-Api-Key":"hdr-SECRET-2"}}"#).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    let c =
        parse(r#"{"guardrail":"restarts","basicAuth":{"username":"u","password":"pw-SECRET-3"}}"#)
            .unwrap();
    assert!(!format!("{c:?}").contains("SECRET"));
    let err = parse(r#"{"guardrail":"restarts","bearerToken":"tok-SECRET-1","basicAuth":{"username":"u","password":"pw-SECRET-3"}}"#).unwrap_err();
    assert!(!err.to_string().contains("SECRET"));
    let err = parse(r#"{"guardrail":"restarts","headers":{"X-Api-Key":7}}"#).unwrap_err();
    assert_eq!(err.to_string(), "key `headers.X-Api-Key` must be a string");
}

#[test]
fn target_and_images_accept_argument_shapes() {
    let c = parse(r#"{"guardrail":"latest-image","namespace":"","rollout":"web","images":"nginx:1.25","minPods":2}"#).unwrap();
    assert_eq!(
        c.target.namespace, None,
        "an empty substituted arg falls back to the AnalysisRun"
    );
    assert_eq!(c.target.rollout.as_deref(), Some("web"));
    assert_eq!(c.common.min_pods, 2);
    let Guardrail::LatestImage(l) = c.settings else {
        panic!()
    };
    assert_eq!(l.images, vec!["nginx:1.25".to_string()]);
    let Guardrail::LatestImage(l) = parse(r#"{"guardrail":"latest-image","images":["a:1","b"]}"#)
        .unwrap()
        .settings
    else {
        panic!()
    };
    assert_eq!(l.images.len(), 2);
    assert!(parse(r#"{"guardrail":"latest-image","images":[1]}"#).is_err());
}

#[test]
fn new_guardrail_keys_and_defaults() {
    let cases = [
        (r#"{"guardrail":"waiting-reasons","reasons":["CrashLoop BackOff"]}"#, "key `reasons`: `CrashLoop BackOff` is not a reason such as `CrashLoopBackOff`"),
        (r#"{"guardrail":"waiting-reasons","window":"5m"}"#, "key `window` is not used by guardrail `waiting-reasons`"),
        (r#"{"guardrail":"error-rate","source":"linkerd"}"#, "key `source`: unknown source `linkerd`; expected one of `http`, `istio`, `ingress-nginx`"),
        (r#"{"guardrail":"error-rate","minRequests":0}"#, "key `minRequests`: must be a whole number of at least 1 (no traffic proves nothing)"),
        (r#"{"guardrail":"error-rate","quantile":0.9}"#, "key `quantile` is not used by guardrail `error-rate`"),
        (r#"{"guardrail":"latency","threshold":1,"quantile":1}"#, "key `quantile`: must be between 0 and 1 (exclusive), e.g. 0.95"),
        (r#"{"guardrail":"latency"}"#, "missing key `threshold`"),
        (r#"{"guardrail":"alerts","rollout":"web"}"#, "key `rollout` is not used by guardrail `alerts`"),
        (r#"{"guardrail":"alerts","minSeverity":"page"}"#, "key `minSeverity`: unknown severity `page`; expected one of `none`, `info`, `warning`, `critical`"),
        (r#"{"guardrail":"alerts","matchers":{"__name__":"x"}}"#, "key `matchers`: label name `__name__` is not valid: names starting with `__` are reserved"),
        (r#"{"guardrail":"regression","signal":"cpu","stablePodTemplateHash":"a","tolerance":-1}"#, "key `tolerance`: must be between 0 and 100 (0.1 = 10 % worse allowed)"),
    ];
    for (json, message) in cases {
        assert_eq!(parse(json).unwrap_err().to_string(), message, "{json}");
    }
    let Guardrail::WaitingReasons(w) =
        parse(r#"{"guardrail":"waiting-reasons","reasons":"CrashLoopBackOff, OOMKilled"}"#)
            .unwrap()
            .settings
    else {
        panic!()
    };
    assert_eq!(
        w.reasons,
        vec!["CrashLoopBackOff".to_string(), "OOMKilled".to_string()]
    );
    let Guardrail::ErrorRate(d) = parse(r#"{"guardrail":"error-rate"}"#).unwrap().settings else {
        panic!()
    };
    let Guardrail::ErrorRate(p) = parse(r#"{"guardrail":"error-rate","profile":"prod"}"#)
        .unwrap()
        .settings
    else {
        panic!()
    };
    assert_eq!(
        (
            d.threshold,
            d.traffic.min_requests,
            d.traffic.window.as_secs()
        ),
        (0.05, 10, 300)
    );
    assert_eq!(
        (
            p.threshold,
            p.traffic.min_requests,
            p.traffic.window.as_secs()
        ),
        (0.01, 50, 600)
    );
    let Guardrail::Latency(l) =
        parse(r#"{"guardrail":"latency","threshold":"0.25","profile":"prod"}"#)
            .unwrap()
            .settings
    else {
        panic!()
    };
    assert_eq!((l.threshold, l.quantile), (0.25, 0.99));
    let Guardrail::Alerts(a) = parse(r#"{"guardrail":"alerts"}"#).unwrap().settings else {
        panic!()
    };
    assert_eq!((a.min_severity, a.threshold), (Severity::Warning, 0.0));
    let Guardrail::Regression(r) =
        parse(r#"{"guardrail":"regression","signal":"memory","stablePodTemplateHash":"a"}"#)
            .unwrap()
            .settings
    else {
        panic!()
    };
    assert_eq!(r.tolerance, 0.5);
}

#[test]
fn every_guardrail_names_its_keys_and_the_parser_accepts_exactly_those() {
    for kind in GuardrailKind::ALL {
        for key in GuardrailKind::all_keys() {
            let applies = kind.uses(key);
            let json = format!(r#"{{"guardrail":"{}","{key}":"x"}}"#, kind.name());
            let refused_as_not_applicable =
                matches!(parse(&json), Err(ConfigError::NotApplicable { .. }));
            assert_eq!(applies, !refused_as_not_applicable, "{json}");
        }
    }
}
