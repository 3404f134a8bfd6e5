//! Unit tests of `promql`.
use super::*;

#[test]
fn string_literals_cannot_be_escaped_from() {
    assert_eq!(string_literal("shop"), "\"shop\"");
    assert_eq!(string_literal(r#"a"b"#), r#""a\"b""#);
    assert_eq!(string_literal(r"a\b"), r#""a\\b""#);
    assert_eq!(string_literal("a\nb\t\u{1}"), "\"a\\nb\\t\\u0001\"");
    let hostile = "shop\"} or vector(1) #";
    let literal = string_literal(hostile);
    // The literal opens and closes exactly once: every inner quote is escaped.
    let unescaped_quotes = literal
        .match_indices('"')
        .filter(|(i, _)| *i == 0 || &literal[i - 1..*i] != "\\")
        .count();
    assert_eq!(unescaped_quotes, 2, "{literal}");
}

#[test]
fn hostile_target_values_are_refused() {
    for bad in [
        "shop\"} or vector(1) #",
        "Shop",
        "-shop",
        "shop-",
        "sh op",
        "shop\n",
        "shop.prod",
        "",
    ] {
        assert!(validate_namespace(bad).is_err(), "{bad:?}");
    }
    assert!(validate_namespace(&"a".repeat(64)).is_err());
    assert!(validate_namespace(&"a".repeat(63)).is_ok());
    for bad in [
        "web\"}", "web}", "web..x", ".web", "we\\b", "web|api", "web.*",
    ] {
        assert!(validate_rollout(bad).is_err(), "{bad:?}");
    }
    assert!(validate_rollout("web.v2").is_ok());
    for bad in ["6c8d7f9a1\"", "6C8D", "6c8d-7f", ".*", ""] {
        assert!(validate_pod_template_hash(bad).is_err(), "{bad:?}");
    }
    let err = TargetSelector::new("shop\"} or vector(1) #", "web", "6c8d7f9a1").unwrap_err();
    assert_eq!(err.what, "namespace");
}

#[test]
fn selectors_take_only_valid_names_and_escaped_values() {
    let s = Selector::new("metric", "http_requests_total")
        .and_then(|s| s.equal("namespace", "shop\"} or vector(1) #"))
        .and_then(|s| s.regex("code", "5.."))
        .and_then(|s| s.has("code"))
        .unwrap();
    assert_eq!(
        s.render(),
        r#"http_requests_total{namespace="shop\"} or vector(1) #",code=~"5..",code!=""}"#
    );
    for bad in ["", "1abc", "a-b", "a{b}", "a b", "up)"] {
        assert!(validate_metric_name("metric", bad).is_err(), "{bad:?}");
    }
    assert!(validate_metric_name("metric", "job:rate5m:sum").is_ok());
    for bad in ["", "__name__", "a:b", "a-b", "a\"", "1a"] {
        assert!(validate_label_name(bad).is_err(), "{bad:?}");
    }
    assert!(Selector::new("metric", "up")
        .unwrap()
        .equal("x", &"v".repeat(MAX_SELECTOR_PART + 1))
        .is_err());
}

#[test]
fn queries_select_the_replica_set_exactly() {
    let target = TargetSelector::new("shop", "web", "6c8d7f9a1").unwrap();
    assert_eq!(target.describe(), "shop/web-6c8d7f9a1");
    assert_eq!(
        target.coverage(),
        r#"timestamp(kube_pod_info{namespace="shop",created_by_kind="ReplicaSet",created_by_name="web-6c8d7f9a1"})"#
    );
    assert_eq!(
        target.restarts_max(Duration::from_secs(300)),
        r#"max_over_time(kube_pod_container_status_restarts_total{namespace="shop",pod=~"web-6c8d7f9a1-.+"}[300s]) and on(namespace, pod) kube_pod_info{namespace="shop",created_by_kind="ReplicaSet",created_by_name="web-6c8d7f9a1"}"#
    );
    assert_eq!(
        target.ready(),
        r#"kube_pod_status_ready{namespace="shop",pod=~"web-6c8d7f9a1-.+",condition="true"} and on(namespace, pod) kube_pod_info{namespace="shop",created_by_kind="ReplicaSet",created_by_name="web-6c8d7f9a1"}"#
    );
    // Ownership is exact everywhere: the only regular expression is the pod-name prefix that narrows what
    // Prometheus reads, and every per-pod query is joined with the exact ReplicaSet. Coverage, and the series
    // whose absence is healthy (a waiting or OOM-killed container), are not narrowed: a pod the ReplicaSet
    // adopted under another name is covered, and then missing from the narrowed answers (a failure).
    let exact = r#"created_by_name="web-6c8d7f9a1"}"#;
    for query in [
        target.coverage(),
        target.waiting(),
        target.oom_killed(Duration::from_secs(60)),
    ] {
        assert!(!query.contains("=~"), "{query}");
        assert!(query.contains(exact), "{query}");
    }
    for query in [
        target.container_images(),
        target.created(),
        target.restarts_min(Duration::from_secs(60)),
        target.cpu_per_pod(Duration::from_secs(60)),
    ] {
        assert_eq!(
            query.matches("=~").count(),
            query.matches(r#"pod=~"web-6c8d7f9a1-.+""#).count(),
            "{query}"
        );
        assert!(query.contains(exact), "{query}");
    }
}

#[test]
fn the_pod_name_prefix_is_what_kubernetes_generates() {
    // `.` in a rollout name is escaped; a long ReplicaSet name is cut to 58 characters as `generateName` is.
    let dotted = TargetSelector::new("shop", "web.v2", "6c8d7f9a1").unwrap();
    assert!(
        dotted.ready().contains(r#"pod=~"web\\.v2-6c8d7f9a1-.+""#),
        "{}",
        dotted.ready()
    );
    let long = "r".repeat(60);
    let target = TargetSelector::new("shop", &long, "6c8d7f9a1").unwrap();
    let prefix: String = format!("{long}-6c8d7f9a1-").chars().take(58).collect();
    assert_eq!(prefix.len(), 58);
    assert!(
        target.ready().contains(&format!(r#"pod=~"{prefix}.+""#)),
        "{}",
        target.ready()
    );
}
