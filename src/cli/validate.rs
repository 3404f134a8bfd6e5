//! The `validate` command: checks every metric that uses this plugin in AnalysisTemplates,
//! ClusterAnalysisTemplates and AnalysisRuns with the plugin's own configuration parser, without querying
//! anything — for CI and pre-commit hooks over a directory of manifests.
//!
//! Contract: `rollouts-guardrails validate FILE...` prints one line per problem, `FILE:METRIC: ERROR` (or
//! `FILE: ERROR` when no metric is involved), on stdout. Exit status: 0 no problem, 1 any problem, 2 usage error.
//!
//! Args are substituted as Argo substitutes them, as text: an arg's declared `value` when it has one (its
//! default), otherwise a placeholder valid for the key it appears in (a name for `namespace`, `1m` for a
//! duration, …), so a template is checked as written, whatever the Rollout will pass. A `provider.plugin` key
//! that looks like a misspelling of `rollouts-guardrails/prometheus` is a problem too: the controller would
//! find no such plugin and the metric would guard nothing.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value};

use super::template::MAX_TEMPLATE_BYTES;
use super::{EXIT_FAIL, EXIT_PASS};
use crate::engine::config::{Config, GuardrailKind};
use crate::engine::{condition, promql, PLUGIN_NAME};

/// Documents per file read (a manifest file holds a handful; this bounds a wrong path to a huge stream).
pub const MAX_DOCUMENTS: usize = 10_000;

/// The kinds whose `spec.metrics` are checked.
pub const KINDS: [&str; 3] = ["AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"];

/// The flags of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// YAML files (multi-document is fine). Documents of other kinds are skipped.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// One problem found: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// The metric's name, when the problem is in one metric.
    pub metric: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.metric {
            Some(metric) => write!(f, "{}:{}: {}", self.file, metric, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// What a validation run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Metrics using this plugin that were checked.
    pub metrics: usize,
}

impl Report {
    /// 0 when there is no problem, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.problems.is_empty() {
            EXIT_PASS
        } else {
            EXIT_FAIL
        }
    }
}

/// Validates every file; an unreadable file is a problem, not a reason to stop.
pub fn validate_files(files: &[PathBuf]) -> Report {
    let mut report = Report::default();
    for path in files {
        let shown = path.display().to_string();
        match read(path) {
            Ok(text) => validate_text(&text, &shown, &mut report),
            Err(reason) => report.problems.push(Problem {
                file: shown,
                metric: None,
                message: reason,
            }),
        }
    }
    report
}

fn read(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "cannot read: larger than {MAX_TEMPLATE_BYTES} bytes"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))
}

/// Validates the documents of one file's text; `file` is for messages.
pub fn validate_text(text: &str, file: &str, report: &mut Report) {
    let problem = |metric: Option<&str>, message: String| Problem {
        file: file.to_string(),
        metric: metric.map(str::to_string),
        message,
    };
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        if index >= MAX_DOCUMENTS {
            report.problems.push(problem(
                None,
                format!("more than {MAX_DOCUMENTS} YAML documents"),
            ));
            return;
        }
        let value: Value = match serde::Deserialize::deserialize(document) {
            Ok(value) => value,
            Err(e) => {
                report
                    .problems
                    .push(problem(None, format!("not valid YAML: {e}")));
                // The YAML stream cannot be resynchronised after a syntax error.
                return;
            }
        };
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        if !KINDS.contains(&kind) {
            continue;
        }
        let spec = value.get("spec").unwrap_or(&Value::Null);
        let args = declared_args(spec);
        for metric in spec
            .get("metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = metric.get("name").and_then(Value::as_str).unwrap_or("");
            let plugins = metric
                .pointer("/provider/plugin")
                .and_then(Value::as_object);
            for key in plugins.into_iter().flat_map(Map::keys) {
                if key != PLUGIN_NAME && looks_like_ours(key) {
                    report.problems.push(problem(
                        Some(name),
                        format!("provider.plugin key `{key}` looks like a misspelling of `{PLUGIN_NAME}`: the controller would find no such plugin"),
                    ));
                }
            }
            let Some(config) = plugins.and_then(|p| p.get(PLUGIN_NAME)) else {
                continue;
            };
            report.metrics += 1;
            for message in check_metric(metric, config, &args) {
                report.problems.push(problem(Some(name), message));
            }
        }
    }
}

/// Each declared arg's default: its `value` when it has one (a string, or a scalar written as text).
fn declared_args(spec: &Value) -> BTreeMap<String, Option<String>> {
    let mut args = BTreeMap::new();
    for arg in spec
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = arg.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = match arg.get("value") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        args.insert(name.to_string(), value);
    }
    args
}

/// Every problem of one metric: substitution, the configuration parser, conditions, target names.
fn check_metric(
    metric: &Value,
    config: &Value,
    args: &BTreeMap<String, Option<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let substituted = substitute_value(config, "", args, &mut problems);
    if !problems.is_empty() {
        return problems;
    }
    let bytes = substituted.to_string();
    let parsed = match Config::from_json(bytes.as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => return vec![e.to_string()],
    };
    for which in ["successCondition", "failureCondition"] {
        let raw = metric.get(which).and_then(Value::as_str).unwrap_or("");
        let text = substitute_text(raw, "condition", args, &mut problems);
        if parsed.guardrail == GuardrailKind::Query {
            if let Err(e) = condition::validate(which, &text) {
                problems.push(e.to_string());
            }
        } else if !text.trim().is_empty() {
            problems.push(format!(
                "{which} is not used by guardrail `{}`: it is judged by `threshold` (conditions apply to guardrail `query`)",
                parsed.guardrail.name()
            ));
        }
    }
    let names = [
        (
            parsed.target.namespace.as_deref(),
            promql::validate_namespace as fn(&str) -> _,
        ),
        (parsed.target.rollout.as_deref(), promql::validate_rollout),
        (
            parsed.target.pod_template_hash.as_deref(),
            promql::validate_pod_template_hash,
        ),
    ];
    for (value, check) in names {
        if let Some(Err(e)) = value.map(check) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Substitutes every string in `value`; `key` is the configuration key the value belongs to.
fn substitute_value(
    value: &Value,
    key: &str,
    args: &BTreeMap<String, Option<String>>,
    problems: &mut Vec<String>,
) -> Value {
    match value {
        Value::String(s) => Value::String(substitute_text(s, key, args, problems)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute_value(item, key, args, problems))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_value(v, k, args, problems)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces `{{args.NAME}}` (spaces inside the braces allowed) with the arg's default or a placeholder valid
/// for `key`. Tags that are not `args.*` are left as written, as Argo leaves them.
fn substitute_text(
    text: &str,
    key: &str,
    args: &BTreeMap<String, Option<String>>,
    problems: &mut Vec<String>,
) -> String {
    let whole = text.trim().starts_with("{{")
        && text.trim().ends_with("}}")
        && text.matches("{{").count() == 1;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let tag = after[..end].trim();
        match tag.strip_prefix("args.") {
            Some(name) => match args.get(name) {
                Some(Some(default)) => out.push_str(default),
                Some(None) => match placeholder(key, whole) {
                    Some(p) => out.push_str(p),
                    None => problems.push(format!(
                        "key `{key}` comes from {{{{args.{name}}}}}, which has no default value: give the arg a `value` so it can be checked"
                    )),
                },
                None => problems.push(format!(
                    "{{{{args.{name}}}}} is not declared in the template's args: Argo cannot resolve it"
                )),
            },
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
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
    key.contains("guardrail") || edit_distance(&key, &normalize(PLUGIN_NAME)) <= 4
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            current[j + 1] = (previous[j] + usize::from(ca != *cb))
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let mut report = Report::default();
        validate_text(text, "t.yaml", &mut report);
        report.problems.iter().map(ToString::to_string).collect()
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
        let mut report = Report::default();
        validate_text(TEMPLATE, "t.yaml", &mut report);
        assert_eq!(report.problems, Vec::new());
        assert_eq!(report.metrics, 2);
        assert_eq!(report.exit_status(), EXIT_PASS);
    }

    #[test]
    fn configuration_errors_name_the_file_and_metric() {
        let typo = TEMPLATE.replace("window: \"{{args.window}}\"", "windw: 5m");
        assert_eq!(
            problems(&typo),
            ["t.yaml:restarts: unknown key `windw`; did you mean `window`?"]
        );
        let not_applicable = TEMPLATE.replace("images: \"{{args.image}}\"", "window: 5m");
        assert_eq!(
            problems(&not_applicable),
            ["t.yaml:images: key `window` is not used by guardrail `latest-image`"]
        );
    }

    #[test]
    fn a_default_value_is_checked_as_written() {
        let bad_default = TEMPLATE.replace(
            "- name: window\n",
            "- name: window\n      value: 5 minutes\n",
        );
        let found = problems(&bad_default);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("t.yaml:restarts: key `window`: "),
            "{found:?}"
        );
        let bad_namespace = TEMPLATE.replace("value: \"\"", "value: Shop_1");
        let found = problems(&bad_namespace);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("namespace `Shop_1` is not a valid Kubernetes name"));
    }

    #[test]
    fn undeclared_args_and_unresolvable_guardrails_are_problems() {
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
            "rollout-guardrails/prometheus",
            "Rollouts-Guardrails/Prometheus",
            "rollouts-guardrails/promethues",
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
        for other in ["argoproj-labs/metric-provider-example", "acme/datadog"] {
            let text = TEMPLATE.replace(
                "provider: {prometheus: {query: up}}",
                &format!("provider: {{plugin: {{{other}: {{query: up}}}}}}"),
            );
            assert_eq!(problems(&text), Vec::<String>::new(), "{other}");
        }
    }

    #[test]
    fn conditions_are_checked_for_the_guardrail_that_uses_them() {
        let query = r#"
kind: AnalysisTemplate
spec:
  args: [{name: max}]
  metrics:
    - name: errors
      successCondition: "result[0] < {{args.max}}"
      provider:
        plugin:
          rollouts-guardrails/prometheus: {guardrail: query, query: "vector(0)"}
"#;
        assert_eq!(problems(query), Vec::<String>::new());
        let broken = query.replace("result[0] < {{args.max}}", "result[0] <");
        let found = problems(&broken);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("t.yaml:errors: "), "{found:?}");
        let on_threshold = TEMPLATE.replace(
            "    - name: images\n",
            "    - name: images\n      successCondition: result[0] == 0\n",
        );
        assert_eq!(
            problems(&on_threshold),
            ["t.yaml:images: successCondition is not used by guardrail `latest-image`: it is judged by `threshold` (conditions apply to guardrail `query`)"]
        );
    }

    #[test]
    fn other_kinds_are_skipped_and_bad_yaml_is_a_problem() {
        assert_eq!(
            problems("kind: Rollout\nspec: {}\n---\n# only a comment\n"),
            Vec::<String>::new()
        );
        let found = problems("kind: [\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("t.yaml: not valid YAML: "),
            "{found:?}"
        );
    }
}
