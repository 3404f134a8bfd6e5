//! Every metric that uses this plugin, in (Cluster)AnalysisTemplates and AnalysisRuns, through the engine's own
//! configuration parser ([`parse_config`], the one measurements use), without querying anything.
//!
//! Args are substituted as Argo substitutes them, as text: an arg's declared `value` when it has one (its
//! default), otherwise a placeholder valid for the key it appears in (a name for `namespace`, `1m` for a
//! duration, …), so a template is checked as written, whatever the Rollout will pass. Undeclared args are
//! reported by [`super::references`]. A `provider.plugin` key that looks like a misspelling of
//! `rollouts-guardrails/prometheus` is a problem too: the controller would find no such plugin.
use serde_json::{Map, Value};

use super::{nearest, Check, Document, Problem};
use crate::engine::config::{Config, ConfigError};
use crate::engine::{MetricSpec, PLUGIN_NAME};
use crate::manifest::template::{substitute, Template};

/// The engine's configuration parser, with the metric's conditions: the single place `validate` calls it,
/// and the one a measurement calls ([`Config::from_metric`]).
pub fn parse_config(
    name: &str,
    json: &[u8],
    success: String,
    failure: String,
) -> Result<Config, ConfigError> {
    let metric = MetricSpec {
        name: name.to_string(),
        plugin_config: Some(json.to_vec()),
        success_condition: success,
        failure_condition: failure,
    };
    Config::from_metric(&metric).map(|parsed| parsed.expect("the plugin entry was given"))
}

/// Checks every plugin metric of every template; returns how many were parsed.
pub fn check(documents: &[Document], problems: &mut Vec<Problem>) -> usize {
    let mut parsed = 0;
    for document in documents {
        let Some(template) = Template::from_document(&document.value) else {
            continue;
        };
        for (index, metric) in template.metrics.iter().enumerate() {
            let name = metric.get("name").and_then(Value::as_str).unwrap_or("");
            let problem = |path: String, message: String| {
                let mut p = Problem::at(Check::PluginConfig, document, path, message);
                p.metric = Some(name.to_string());
                p
            };
            let plugins = metric
                .pointer("/provider/plugin")
                .and_then(Value::as_object);
            for key in plugins.into_iter().flat_map(Map::keys) {
                if key != PLUGIN_NAME && looks_like_ours(key) {
                    let mut p = problem(
                        format!("spec.metrics[{index}].provider.plugin.{key}"),
                        format!("provider.plugin key `{key}` looks like a misspelling of `{PLUGIN_NAME}`: the controller would find no such plugin"),
                    );
                    p.suggestion = Some(PLUGIN_NAME.to_string());
                    problems.push(p);
                }
            }
            let Some(config) = plugins.and_then(|p| p.get(PLUGIN_NAME)) else {
                continue;
            };
            parsed += 1;
            let path = format!("spec.metrics[{index}].provider.plugin.{PLUGIN_NAME}");
            for message in check_metric(metric, config, &template) {
                problems.push(problem(path.clone(), message));
            }
        }
    }
    parsed
}

/// Every problem of one metric, as the configuration parser finds it (conditions and target names included).
fn check_metric(metric: &Value, config: &Value, template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let substituted = substitute_value(config, "", template, &mut problems);
    let [success, failure] = ["successCondition", "failureCondition"].map(|which| {
        let raw = metric.get(which).and_then(Value::as_str).unwrap_or("");
        substitute_text(raw, "condition", template, &mut problems)
    });
    if !problems.is_empty() {
        return problems;
    }
    let name = metric.get("name").and_then(Value::as_str).unwrap_or("");
    match parse_config(name, substituted.to_string().as_bytes(), success, failure) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

/// Substitutes every string in `value`; `key` is the configuration key the value belongs to.
fn substitute_value(
    value: &Value,
    key: &str,
    template: &Template,
    problems: &mut Vec<String>,
) -> Value {
    match value {
        Value::String(s) => Value::String(substitute_text(s, key, template, problems)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute_value(item, key, template, problems))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_value(v, k, template, problems)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `{{args.NAME}}` becomes the arg's default or a placeholder valid for `key`.
fn substitute_text(
    text: &str,
    key: &str,
    template: &Template,
    problems: &mut Vec<String>,
) -> String {
    let whole = text.trim().starts_with("{{")
        && text.trim().ends_with("}}")
        && text.matches("{{").count() == 1;
    let result = substitute(text, false, |name| {
        match template.arg(name) {
        Some(arg) => match &arg.value {
            Some(default) => Ok(default.clone()),
            None => placeholder(key, whole).map(str::to_string).ok_or_else(|| {
                format!("key `{key}` comes from {{{{args.{name}}}}}, which has no default value: give the arg a `value` so it can be checked")
            }),
        },
        // Reported once per metric by `references`; a placeholder lets the rest be checked.
        None => Ok(placeholder(key, whole).unwrap_or("placeholder").to_string()),
    }
    });
    result.unwrap_or_else(|message| {
        problems.push(message);
        String::new()
    })
}

/// A value the parser accepts for `key`, standing for an arg only the Rollout knows. `whole`: the arg is the
/// entire value (not part of a longer string). `None` for keys that decide what is checked.
fn placeholder(key: &str, whole: bool) -> Option<&'static str> {
    Some(match key {
        "guardrail" | "profile" => return None,
        "window" | "timeout" | "staleness" if whole => "1m",
        "window" | "timeout" | "staleness" | "minPods" => "1",
        "threshold" | "condition" => "0",
        "insecureSkipVerify" => "false",
        "address" if whole => "http://placeholder.invalid:9090",
        "images" if whole => "registry.invalid/placeholder:1",
        "query" if whole => "vector(0)",
        _ => "placeholder",
    })
}

/// Whether a plugin name is probably a typo of ours (`rollouts-guardrail/prometheus`, `Rollouts-Guardrails/…`).
fn looks_like_ours(key: &str) -> bool {
    let normalize = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let key = normalize(key);
    let ours = normalize(PLUGIN_NAME);
    key.contains("guardrail")
        || strsim::levenshtein(&key, &ours) <= 4
        || nearest(&key, [ours.as_str()]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{documents, ObjectRef};

    /// Plugin and reference problems of `text`, as table lines.
    fn problems(text: &str) -> Vec<String> {
        let (values, _) = documents(text);
        let docs: Vec<Document> = values
            .into_iter()
            .map(|value| Document {
                file: "t.yaml".into(),
                object: ObjectRef::of(&value),
                value,
            })
            .collect();
        let mut out = Vec::new();
        check(&docs, &mut out);
        super::super::references::check(&docs, &[], &mut out);
        out.iter()
            .map(|p| {
                format!(
                    "{}:{}: {}",
                    p.file,
                    p.metric.as_deref().unwrap_or(""),
                    p.message
                )
            })
            .collect()
    }

    const TEMPLATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: t}
spec:
  args:
    - name: namespace
      value: ""
    - name: hash
    - name: window
    - name: image
      valueFrom: {fieldRef: {fieldPath: "spec.template.spec.containers[0].image"}}
  metrics:
    - name: restarts
      provider:
        plugin:
          rollouts-guardrails/prometheus:
            guardrail: restarts
            namespace: "{{args.namespace}}"
            podTemplateHash: "{{ args.hash }}"
            window: "{{args.window}}"
    - name: images
      provider:
        plugin:
          rollouts-guardrails/prometheus:
            guardrail: latest-image
            images: "{{args.image}}"
    - name: builtin
      provider: {prometheus: {query: up}}
"#;

    #[test]
    fn a_valid_template_has_no_problem_whatever_its_args_will_be() {
        assert_eq!(problems(TEMPLATE), Vec::<String>::new());
    }

    #[test]
    fn configuration_errors_name_the_metric() {
        let typo = TEMPLATE.replace("window: \"{{args.window}}\"", "windw: 5m");
        assert_eq!(
            problems(&typo),
            ["t.yaml:restarts: unknown key `windw`; did you mean `window`?"]
        );
        let bad_default = TEMPLATE.replace("value: \"\"", "value: Shop_1");
        let found = problems(&bad_default);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("namespace `Shop_1` is not a valid Kubernetes name"),
            "{found:?}"
        );
    }

    #[test]
    fn undeclared_args_are_reported_once_and_unresolvable_guardrails_are_problems() {
        let undeclared = TEMPLATE.replace("{{ args.hash }}", "{{args.canary-hash}}");
        assert_eq!(
            problems(&undeclared),
            ["t.yaml:restarts: {{args.canary-hash}} is not declared in the template's args: Argo cannot resolve it"]
        );
        let from_arg = TEMPLATE.replace("guardrail: restarts", "guardrail: \"{{args.hash}}\"");
        assert_eq!(
            problems(&from_arg),
            ["t.yaml:restarts: key `guardrail` comes from {{args.hash}}, which has no default value: give the arg a `value` so it can be checked"]
        );
    }

    #[test]
    fn a_misspelt_plugin_key_is_a_problem_and_other_plugins_are_not() {
        for typo in [
            "rollouts-guardrail/prometheus",
            "Rollouts-Guardrails/Prometheus",
            "guardrails/prometheus",
        ] {
            let text = TEMPLATE.replace(
                "rollouts-guardrails/prometheus:\n            guardrail: latest-image",
                &format!("{typo}:\n            guardrail: latest-image"),
            );
            assert_eq!(
                problems(&text),
                [format!("t.yaml:images: provider.plugin key `{typo}` looks like a misspelling of `rollouts-guardrails/prometheus`: the controller would find no such plugin")],
            );
        }
        let other = TEMPLATE.replace(
            "provider: {prometheus: {query: up}}",
            "provider: {plugin: {acme/datadog: {query: up}}}",
        );
        assert_eq!(problems(&other), Vec::<String>::new());
    }

    #[test]
    fn conditions_are_checked_for_the_guardrail_that_uses_them() {
        let on_threshold = TEMPLATE.replace(
            "    - name: images\n",
            "    - name: images\n      successCondition: result[0] == 0\n",
        );
        assert_eq!(
            problems(&on_threshold),
            ["t.yaml:images: successCondition is not used by guardrail `latest-image`: it is judged by `threshold` (conditions apply to guardrail `query`)"]
        );
    }
}
