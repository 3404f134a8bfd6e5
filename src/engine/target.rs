//! What a measurement judges: the configuration's target keys, completed from the AnalysisRun (its namespace,
//! its owner Rollout, its pod-template-hash label), validated into a [`Target`] before any query is built.
use super::config::{Config, TargetKeys};
use super::context::AnalysisContext;
use super::guardrails::{Scope, Target};
use super::promql::{
    validate_namespace, Matchers, TargetSelector, PLACEHOLDER_HASH, PLACEHOLDER_NAMESPACE,
    PLACEHOLDER_ROLLOUT,
};
use super::verdict::{Failure, FailureClass};

/// The AnalysisRun label Argo Rollouts sets to the pod-template hash of the ReplicaSet under analysis.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// The target of `config`'s guardrail, from its keys, else from the AnalysisRun; a missing part is named.
/// It is read from the source `controller`'s matchers and the template's select (see [`source`]).
pub fn resolve(
    config: &Config,
    ctx: &AnalysisContext,
    controller: &Matchers,
) -> Result<Target, Failure> {
    let source = source(config, controller)?;
    match config.guardrail.scope() {
        Scope::Global => Ok(Target::Global(source)),
        Scope::Namespace => {
            resolve_namespace(&config.target, ctx).map(|n| Target::Namespace(n, source))
        }
        Scope::ReplicaSet | Scope::ReplicaSetObject => resolve_replica_set(&config.target, ctx)
            .map(|t| Target::ReplicaSet(t.with_matchers(source))),
    }
}

/// The source's matchers: the controller's `--matcher`s plus the template's `matchers`. A template may add
/// matchers but never silently change or drop a controller-wide one: the same label with another value is
/// refused unless the label is listed in `overrideControllerMatchers`, and an override must give a value.
pub fn source(config: &Config, controller: &Matchers) -> Result<Matchers, Failure> {
    let template = &config.common.matchers;
    let refused = |message: String| Err(Failure::new(FailureClass::Config, message));
    for label in &config.common.override_matchers {
        if template.get(label).is_none() {
            return refused(format!(
                "overrideControllerMatchers names `{label}`, but `matchers` gives it no value: a controller-wide matcher can be replaced, never dropped"
            ));
        }
    }
    for (label, value) in template.iter() {
        match controller.get(label) {
            Some(pinned) if pinned != value && !config.common.override_matchers.contains(label) => {
                return refused(format!(
                    "matcher {label}={value} conflicts with the controller's --matcher {label}={pinned}: a template may add matchers, not change the controller's; to replace it on purpose, also set overrideControllerMatchers: [{label}]"
                ));
            }
            _ => {}
        }
    }
    Ok(controller.merged(template))
}

/// The target with placeholders for the parts the AnalysisRun would give (for `GetMetadata`).
pub fn placeholder(config: &Config, controller: &Matchers) -> Result<Target, Failure> {
    let source = source(config, controller)?;
    let keys = &config.target;
    let or = |part: &Option<String>, placeholder: &str| {
        part.clone().unwrap_or_else(|| placeholder.to_string())
    };
    let namespace = or(&keys.namespace, PLACEHOLDER_NAMESPACE);
    Ok(match config.guardrail.scope() {
        Scope::Global => Target::Global(source),
        Scope::Namespace => Target::Namespace(namespace, source),
        Scope::ReplicaSet | Scope::ReplicaSetObject => Target::ReplicaSet(
            TargetSelector::new(
                &namespace,
                &or(&keys.rollout, PLACEHOLDER_ROLLOUT),
                &or(&keys.pod_template_hash, PLACEHOLDER_HASH),
            )
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?
            .with_matchers(source),
        ),
    })
}

fn namespace(keys: &TargetKeys, ctx: &AnalysisContext) -> Option<String> {
    keys.namespace
        .clone()
        .or_else(|| Some(ctx.namespace.clone()).filter(|n| !n.is_empty()))
}

/// The namespace from the configuration, else the AnalysisRun's (for guardrails that judge a namespace).
fn resolve_namespace(keys: &TargetKeys, ctx: &AnalysisContext) -> Result<String, Failure> {
    let namespace = namespace(keys, ctx).ok_or_else(|| {
        Failure::new(
            FailureClass::Config,
            "cannot determine the namespace: set `namespace`; the AnalysisRun has no namespace",
        )
    })?;
    validate_namespace(&namespace)
        .map_err(|e| Failure::new(FailureClass::Config, e.to_string()))?;
    Ok(namespace)
}

fn resolve_replica_set(
    keys: &TargetKeys,
    ctx: &AnalysisContext,
) -> Result<TargetSelector, Failure> {
    let namespace = namespace(keys, ctx);
    let rollout = keys.rollout.clone().or_else(|| {
        ctx.owner_references
            .iter()
            .find(|o| o.kind == "Rollout" && !o.name.is_empty())
            .map(|o| o.name.clone())
    });
    let hash = keys.pod_template_hash.clone().or_else(|| {
        ctx.labels
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .filter(|h| !h.is_empty())
    });
    let mut missing = Vec::new();
    if namespace.is_none() {
        missing.push("namespace (set `namespace`; the AnalysisRun has no namespace)");
    }
    if rollout.is_none() {
        missing.push(
            "rollout (set `rollout`; the AnalysisRun has no owner reference of kind Rollout)",
        );
    }
    if hash.is_none() {
        missing.push("podTemplateHash (set `podTemplateHash`; the AnalysisRun has no label rollouts-pod-template-hash)");
    }
    match (namespace, rollout, hash) {
        (Some(n), Some(r), Some(h)) => TargetSelector::new(&n, &r, &h)
            .map_err(|e| Failure::new(FailureClass::Config, e.to_string())),
        _ => Err(Failure::new(
            FailureClass::Config,
            format!(
                "cannot determine the target: missing {}",
                missing.join("; ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::OwnerReference;

    fn ctx() -> AnalysisContext {
        AnalysisContext {
            namespace: "shop".into(),
            name: "web-6c8d7f9a1-2".into(),
            labels: [(POD_TEMPLATE_HASH_LABEL.to_string(), "6c8d7f9a1".to_string())].into(),
            owner_references: vec![OwnerReference {
                kind: "Rollout".into(),
                name: "web".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes()).unwrap()
    }

    fn resolve_target(config: &Config, ctx: &AnalysisContext) -> Result<TargetSelector, Failure> {
        match resolve(config, ctx, &Matchers::default())? {
            Target::ReplicaSet(t) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_target_defaults_from_the_analysis_run() {
        let t = resolve_target(&config(r#"{"guardrail":"restarts"}"#), &ctx()).unwrap();
        assert_eq!(t.describe(), "shop/web-6c8d7f9a1");
        let t = resolve_target(&config(r#"{"guardrail":"restarts","namespace":"pay","rollout":"api","podTemplateHash":"7f6e5d4c3"}"#), &ctx()).unwrap();
        assert_eq!(t.describe(), "pay/api-7f6e5d4c3");
    }

    #[test]
    fn a_missing_target_part_is_named() {
        let err = resolve_target(
            &config(r#"{"guardrail":"restarts"}"#),
            &AnalysisContext::default(),
        )
        .unwrap_err();
        assert_eq!(err.class, FailureClass::Config);
        assert!(err.message.contains("missing namespace"), "{}", err.message);
        assert!(
            err.message.contains("no owner reference of kind Rollout"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("no label rollouts-pod-template-hash"),
            "{}",
            err.message
        );
        let mut c = ctx();
        c.labels.clear();
        let err = resolve_target(&config(r#"{"guardrail":"restarts"}"#), &c).unwrap_err();
        assert!(
            err.message
                .starts_with("cannot determine the target: missing podTemplateHash"),
            "{}",
            err.message
        );
    }

    #[test]
    fn hostile_args_are_refused_before_any_query() {
        // From the configuration: the parser refuses it.
        let err =
            Config::from_json(br#"{"guardrail":"restarts","namespace":"shop\"} or vector(1) #"}"#)
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("namespace `shop\"} or vector(1) #` is not a valid Kubernetes name"),
            "{err}"
        );
        // From the AnalysisRun: refused when the target is resolved.
        let mut hostile = ctx();
        hostile.namespace = "shop\"} or vector(1) #".into();
        let err = resolve_target(&config(r#"{"guardrail":"restarts"}"#), &hostile).unwrap_err();
        assert_eq!(err.class, FailureClass::Config);
        assert!(
            err.message
                .contains("namespace `shop\"} or vector(1) #` is not a valid Kubernetes name"),
            "{}",
            err.message
        );
    }

    fn pinned(pairs: &[(&str, &str)]) -> Matchers {
        Matchers::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_template_adds_matchers_but_changes_the_controllers_only_explicitly() {
        let controller = pinned(&[("cluster", "prod-eu")]);
        let t = resolve_target(
            &config(r#"{"guardrail":"restarts","matchers":{"team":"pay"}}"#),
            &ctx(),
        );
        assert_eq!(t.unwrap().matchers().describe(), "team=pay");
        let added = source(
            &config(r#"{"guardrail":"restarts","matchers":{"team":"pay"}}"#),
            &controller,
        )
        .unwrap();
        assert_eq!(added.describe(), "cluster=prod-eu, team=pay");
        let same = source(
            &config(r#"{"guardrail":"restarts","matchers":{"cluster":"prod-eu"}}"#),
            &controller,
        )
        .unwrap();
        assert_eq!(same.describe(), "cluster=prod-eu");
        let err = source(
            &config(r#"{"guardrail":"restarts","matchers":{"cluster":"staging-eu"}}"#),
            &controller,
        )
        .unwrap_err();
        assert_eq!(err.class, FailureClass::Config);
        assert!(
            err.message.starts_with("matcher cluster=staging-eu conflicts with the controller's --matcher cluster=prod-eu")
                && err.message.contains("overrideControllerMatchers: [cluster]"),
            "{}",
            err.message
        );
        let overridden = source(
            &config(r#"{"guardrail":"restarts","matchers":{"cluster":"staging-eu"},"overrideControllerMatchers":["cluster"]}"#),
            &controller,
        )
        .unwrap();
        assert_eq!(overridden.describe(), "cluster=staging-eu");
        let dropped = source(
            &config(r#"{"guardrail":"restarts","overrideControllerMatchers":["cluster"]}"#),
            &controller,
        )
        .unwrap_err();
        assert!(
            dropped.message.contains("never dropped"),
            "{}",
            dropped.message
        );
        // The source reaches every selector of the target, escaped.
        let target = resolve(
            &config(r#"{"guardrail":"restarts","matchers":{"cluster":"a\"b"}}"#),
            &ctx(),
            &controller,
        );
        assert!(target.is_err(), "a conflicting template matcher is refused");
        let Target::ReplicaSet(t) = resolve(
            &config(r#"{"guardrail":"restarts","matchers":{"team":"a\"b"}}"#),
            &ctx(),
            &controller,
        )
        .unwrap() else {
            panic!()
        };
        for query in [
            t.coverage(),
            t.ready(),
            t.restarts_max(std::time::Duration::from_secs(60)),
            t.created(),
            t.waiting(),
            t.container_images(),
            t.cpu_per_pod(std::time::Duration::from_secs(60)),
        ] {
            assert!(
                query.matches(r#"cluster="prod-eu",team="a\"b""#).count()
                    == query.matches("{namespace=").count(),
                "every selector, pods' info included: {query}"
            );
        }
    }
}
