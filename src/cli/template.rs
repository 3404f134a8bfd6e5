//! Reading an AnalysisTemplate or ClusterAnalysisTemplate and substituting `{{args.NAME}}` as Argo does, so a
//! template can be tried from a laptop or CI before it guards a rollout.
use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::engine::PLUGIN_NAME;

/// The largest template file read (a template is a few KiB; this guards against a wrong path).
pub const MAX_TEMPLATE_BYTES: u64 = 4 * 1024 * 1024;

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
    let read_error = |reason: String| TemplateError::Read {
        path: shown.clone(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(e.to_string()))?
        .len();
    if size > MAX_TEMPLATE_BYTES {
        return Err(read_error(format!(
            "larger than {MAX_TEMPLATE_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
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
    let mut templates = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| TemplateError::Yaml {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if matches!(kind, "AnalysisTemplate" | "ClusterAnalysisTemplate") {
            templates.push(value);
        }
    }
    if templates.is_empty() {
        return Err(TemplateError::NoTemplate {
            path: path.to_string(),
        });
    }
    let mut metrics = Vec::new();
    for template in &templates {
        let spec = template.get("spec").cloned().unwrap_or(Value::Null);
        let args = resolve_args(&spec, &given)?;
        for metric in spec
            .get("metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = metric
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let Some(config) = metric
                .pointer("/provider/plugin")
                .and_then(|p| p.get(PLUGIN_NAME))
            else {
                continue;
            };
            let config_text = substitute(&config.to_string(), &args, &name, true)?;
            let config = match serde_json::from_str::<Value>(&config_text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(TemplateError::Metric {
                        metric: name,
                        reason: format!("provider.plugin.{PLUGIN_NAME} must be an object"),
                    })
                }
                Err(e) => {
                    return Err(TemplateError::Metric {
                        metric: name,
                        reason: format!(
                            "after substitution the configuration is not valid JSON: {e}"
                        ),
                    })
                }
            };
            let condition = |key: &str| -> Result<String, TemplateError> {
                let raw = metric.get(key).and_then(Value::as_str).unwrap_or("");
                substitute(raw, &args, &name, false)
            };
            metrics.push(TemplateMetric {
                success_condition: condition("successCondition")?,
                failure_condition: condition("failureCondition")?,
                name,
                config,
            });
        }
    }
    if metrics.is_empty() {
        return Err(TemplateError::NoMetric {
            path: path.to_string(),
        });
    }
    Ok(metrics)
}

/// Each declared arg's value: `--arg` wins over the template's `value`; `valueFrom` needs `--arg`.
fn resolve_args(
    spec: &Value,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let declared: Vec<&Value> = spec
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = declared
        .iter()
        .filter_map(|a| a.get("name").and_then(Value::as_str))
        .collect();
    for name in given.keys() {
        if !names.contains(&name.as_str()) {
            return Err(TemplateError::UnknownArg {
                name: name.clone(),
                declared: names.join(", "),
            });
        }
    }
    let mut out = BTreeMap::new();
    for arg in declared {
        let Some(name) = arg.get("name").and_then(Value::as_str) else {
            continue;
        };
        let value = match (given.get(name), arg.get("value"), arg.get("valueFrom")) {
            (Some(v), _, _) => v.clone(),
            (None, Some(Value::String(v)), _) => v.clone(),
            (None, Some(v), _) if !v.is_null() => v.to_string(),
            (None, _, Some(_)) => return Err(TemplateError::ValueFrom(name.to_string())),
            _ => return Err(TemplateError::MissingArg(name.to_string())),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// Replaces `{{args.NAME}}` (spaces inside the braces allowed). In JSON text the value is JSON-string-escaped,
/// so an arg holding `"` or `\` cannot break out of its string.
fn substitute(
    text: &str,
    args: &BTreeMap<String, String>,
    metric: &str,
    json: bool,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let tag = after[..end].trim();
        match tag.strip_prefix("args.") {
            Some(name) => {
                let value = args.get(name).ok_or_else(|| TemplateError::UndeclaredArg {
                    metric: metric.to_string(),
                    arg: name.to_string(),
                })?;
                if json {
                    let quoted = Value::String(value.clone()).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                } else {
                    out.push_str(value);
                }
            }
            // Not ours (e.g. Argo's {{workflow.*}} in other providers): left as written.
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
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
