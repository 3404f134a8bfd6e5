//! Argo's (Cluster)AnalysisTemplates and AnalysisRuns read once ([`Template`]), and `{{args.NAME}}` substituted
//! as Argo does ([`substitute`]) — for `check --template`, which evaluates a template with given args, and for
//! `validate`, which checks it offline.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::{documents, read_file, ObjectRef, ReadError};
use crate::engine::PLUGIN_NAME;

/// The kinds that declare `spec.args` and `spec.metrics`.
pub const KINDS: [&str; 3] = ["AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"];

/// One declared arg of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    /// Its `value` (a scalar written as text), the default a referring object may override.
    pub value: Option<String>,
    /// Whether it is read from the cluster (`valueFrom`) when no value is passed.
    pub value_from: bool,
}

impl Arg {
    /// Whether a referring object must pass this arg (Argo fails the AnalysisRun otherwise).
    pub fn is_required(&self) -> bool {
        self.value.is_none() && !self.value_from
    }
}

/// A (Cluster)AnalysisTemplate or AnalysisRun, as far as its args and metrics go.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub object: ObjectRef,
    pub args: Vec<Arg>,
    /// `spec.metrics`, as written.
    pub metrics: Vec<Value>,
}

impl Template {
    /// The template a document holds, `None` for other kinds.
    pub fn from_document(document: &Value) -> Option<Template> {
        let object = ObjectRef::of(document)?;
        if !KINDS.contains(&object.kind.as_str()) {
            return None;
        }
        let spec = document.get("spec").unwrap_or(&Value::Null);
        Some(Template {
            object,
            args: args_of(spec.get("args")),
            metrics: spec
                .get("metrics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// The declared arg `name`.
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name == name)
    }
}

/// The args of an `args:` list (a template's declarations or a reference's values).
pub fn args_of(list: Option<&Value>) -> Vec<Arg> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|arg| {
            let name = arg.get("name")?.as_str()?.to_string();
            let value = match arg.get("value") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            Some(Arg {
                name,
                value,
                value_from: arg.get("valueFrom").is_some_and(|v| !v.is_null()),
            })
        })
        .collect()
}

/// Every arg name `text` refers to with `{{args.NAME}}`, in order of appearance.
pub fn arg_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = substitute::<()>(text, false, |name| {
        names.push(name.to_string());
        Ok(String::new())
    });
    names
}

/// Replaces every `{{args.NAME}}` (spaces inside the braces allowed) with what `value_of(NAME)` returns; other
/// tags (`{{workflow.*}}` of other providers) are left as written, as Argo leaves them. With `json`, the value is
/// JSON-string-escaped, so an arg holding `"` or `\` cannot break out of its string in JSON text.
pub fn substitute<E>(
    text: &str,
    json: bool,
    mut value_of: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        match after[..end].trim().strip_prefix("args.") {
            Some(name) => {
                let value = value_of(name)?;
                if json {
                    let quoted = Value::String(value).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                } else {
                    out.push_str(&value);
                }
            }
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Why a template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("template {path} is not valid YAML: {reason}")]
    Yaml { path: String, reason: String },
    #[error("template {path} holds no AnalysisTemplate or ClusterAnalysisTemplate")]
    NoTemplate { path: String },
    #[error("template {path} has no metric using provider.plugin.{PLUGIN_NAME}")]
    NoMetric { path: String },
    #[error("--arg {0}: expected NAME=VALUE")]
    ArgSyntax(String),
    #[error("--arg {name}: the template declares no such arg (it declares: {declared})")]
    UnknownArg { name: String, declared: String },
    #[error("arg `{0}` has no value: pass it with --arg {0}=VALUE")]
    MissingArg(String),
    #[error("arg `{0}` is read from the cluster (valueFrom): pass it with --arg {0}=VALUE")]
    ValueFrom(String),
    #[error("metric `{metric}` refers to {{{{args.{arg}}}}}, which the template does not declare")]
    UndeclaredArg { metric: String, arg: String },
    #[error("metric `{metric}`: {reason}")]
    Metric { metric: String, reason: String },
}

/// A metric of the template that uses this plugin, with args substituted.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateMetric {
    pub name: String,
    pub config: Map<String, Value>,
    pub success_condition: String,
    pub failure_condition: String,
}

/// Loads every metric using this plugin from the templates in `path` (multi-document YAML is fine).
pub fn load(path: &Path, cli_args: &[String]) -> Result<Vec<TemplateMetric>, TemplateError> {
    let shown = path.display().to_string();
    let text = read_file(path).map_err(|e| TemplateError::Read {
        path: shown.clone(),
        reason: match e {
            ReadError::Io(reason) => reason,
            other => other.to_string(),
        },
    })?;
    parse(&text, &shown, cli_args)
}

/// [`load`] on text already read; `path` is for messages.
pub fn parse(
    text: &str,
    path: &str,
    cli_args: &[String],
) -> Result<Vec<TemplateMetric>, TemplateError> {
    let mut given = BTreeMap::new();
    for assignment in cli_args {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| TemplateError::ArgSyntax(assignment.clone()))?;
        given.insert(name.to_string(), value.to_string());
    }
    let (values, error) = documents(text);
    if let Some(e) = error {
        return Err(TemplateError::Yaml {
            path: path.to_string(),
            reason: match e {
                ReadError::Yaml(reason) => reason,
                other => other.to_string(),
            },
        });
    }
    let templates: Vec<Template> = values
        .iter()
        .filter_map(Template::from_document)
        .filter(|t| t.object.kind != "AnalysisRun")
        .collect();
    if templates.is_empty() {
        return Err(TemplateError::NoTemplate {
            path: path.to_string(),
        });
    }
    let mut metrics = Vec::new();
    for template in &templates {
        let args = resolve_args(template, &given)?;
        for metric in &template.metrics {
            metrics.extend(plugin_metric(metric, &args)?);
        }
    }
    if metrics.is_empty() {
        return Err(TemplateError::NoMetric {
            path: path.to_string(),
        });
    }
    Ok(metrics)
}

/// One template metric with its args substituted, when it uses this plugin (`None` otherwise).
fn plugin_metric(
    metric: &Value,
    args: &BTreeMap<String, String>,
) -> Result<Option<TemplateMetric>, TemplateError> {
    let name = metric
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(config) = metric
        .pointer("/provider/plugin")
        .and_then(|p| p.get(PLUGIN_NAME))
    else {
        return Ok(None);
    };
    let config_text = substitute_resolved(&config.to_string(), args, &name, true)?;
    let reason = match serde_json::from_str::<Value>(&config_text) {
        Ok(Value::Object(config)) => {
            let condition = |key: &str| -> Result<String, TemplateError> {
                let raw = metric.get(key).and_then(Value::as_str).unwrap_or("");
                substitute_resolved(raw, args, &name, false)
            };
            return Ok(Some(TemplateMetric {
                success_condition: condition("successCondition")?,
                failure_condition: condition("failureCondition")?,
                name,
                config,
            }));
        }
        Ok(_) => format!("provider.plugin.{PLUGIN_NAME} must be an object"),
        Err(e) => format!("after substitution the configuration is not valid JSON: {e}"),
    };
    Err(TemplateError::Metric {
        metric: name,
        reason,
    })
}

/// Each declared arg's value: `--arg` wins over the template's `value`; `valueFrom` needs `--arg`.
fn resolve_args(
    template: &Template,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let names: Vec<&str> = template.args.iter().map(|a| a.name.as_str()).collect();
    for name in given.keys() {
        if !names.contains(&name.as_str()) {
            return Err(TemplateError::UnknownArg {
                name: name.clone(),
                declared: names.join(", "),
            });
        }
    }
    let mut out = BTreeMap::new();
    for arg in &template.args {
        let value = match (given.get(&arg.name), &arg.value) {
            (Some(v), _) => v.clone(),
            (None, Some(v)) => v.clone(),
            (None, None) if arg.value_from => {
                return Err(TemplateError::ValueFrom(arg.name.clone()))
            }
            (None, None) => return Err(TemplateError::MissingArg(arg.name.clone())),
        };
        out.insert(arg.name.clone(), value);
    }
    Ok(out)
}

/// `substitute` with the resolved args of `check --template`: an undeclared arg is an error.
fn substitute_resolved(
    text: &str,
    args: &BTreeMap<String, String>,
    metric: &str,
    json: bool,
) -> Result<String, TemplateError> {
    substitute(text, json, |name| {
        args.get(name)
            .cloned()
            .ok_or_else(|| TemplateError::UndeclaredArg {
                metric: metric.to_string(),
                arg: name.to_string(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: rollouts-guardrails
spec:
  args:
    - name: namespace
    - name: threshold
      value: "1"
    - name: token
      valueFrom:
        secretKeyRef: {name: prom, key: token}
  metrics:
    - name: restarts
      provider:
        plugin:
          rollouts-guardrails/prometheus:
            guardrail: restarts
            namespace: "{{args.namespace}}"
            threshold: "{{ args.threshold }}"
    - name: builtin
      successCondition: result[0] < 1
      provider:
        prometheus:
          query: up
"#;

    #[test]
    fn substitutes_args_and_skips_other_providers() {
        let metrics = parse(
            TEMPLATE,
            "t.yaml",
            &["namespace=shop".into(), "token=x".into()],
        )
        .unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].name, "restarts");
        assert_eq!(metrics[0].config["namespace"], Value::from("shop"));
        assert_eq!(metrics[0].config["threshold"], Value::from("1"));
    }

    #[test]
    fn arg_values_cannot_break_out_of_their_json_string() {
        let metrics = parse(
            TEMPLATE,
            "t.yaml",
            &[
                "namespace=shop\",\"guardrail\":\"query".into(),
                "token=x".into(),
            ],
        )
        .unwrap();
        assert_eq!(metrics[0].config["guardrail"], Value::from("restarts"));
        assert_eq!(
            metrics[0].config["namespace"],
            Value::from("shop\",\"guardrail\":\"query")
        );
    }

    #[test]
    fn args_must_be_declared_and_resolved() {
        let err = parse(TEMPLATE, "t.yaml", &["namespace=shop".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "arg `token` is read from the cluster (valueFrom): pass it with --arg token=VALUE"
        );
        let err = parse(TEMPLATE, "t.yaml", &["token=x".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "arg `namespace` has no value: pass it with --arg namespace=VALUE"
        );
        let err = parse(TEMPLATE, "t.yaml", &["namespce=shop".into()]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("--arg namespce: the template declares no such arg"));
        let undeclared = TEMPLATE.replace("{{args.namespace}}", "{{args.ns}}");
        let err = parse(
            &undeclared,
            "t.yaml",
            &["namespace=shop".into(), "token=x".into()],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "metric `restarts` refers to {{args.ns}}, which the template does not declare"
        );
    }

    #[test]
    fn documents_without_a_template_or_metric_are_errors() {
        assert!(matches!(
            parse("kind: Rollout\n", "r.yaml", &[]),
            Err(TemplateError::NoTemplate { .. })
        ));
        let only_builtin = "kind: AnalysisTemplate\nspec:\n  metrics:\n    - name: a\n      provider: {prometheus: {query: up}}\n";
        assert!(matches!(
            parse(only_builtin, "t.yaml", &[]),
            Err(TemplateError::NoMetric { .. })
        ));
        assert!(matches!(
            parse("kind: [", "t.yaml", &[]),
            Err(TemplateError::Yaml { .. })
        ));
    }
}
