//! Problems for people (`table`: one line each), for scripts (`json`: one object per problem and line) and for
//! code-scanning UIs (`sarif`: one SARIF 2.1.0 log, a result per problem, rule ids from [`super::Check::id`]).
use serde_json::{json, Value};

use super::{Problem, Report};
use crate::engine::PLUGIN_NAME;

/// One problem as a JSON object: `check`, `file`, `object` (`kind`, `namespace`, `name`), `metric`, `path`,
/// `message`, `suggestion` (absent fields are null).
pub fn json(problem: &Problem) -> Value {
    json!({
        "check": problem.check.id(),
        "file": problem.file,
        "object": problem.object.as_ref().map(|o| json!({
            "apiGroup": o.group, "kind": o.kind, "namespace": o.namespace, "name": o.name,
        })),
        "metric": problem.metric,
        "path": problem.path,
        "message": problem.message,
        "suggestion": problem.suggestion,
    })
}

/// The report as a SARIF 2.1.0 log.
pub fn sarif(report: &Report) -> Value {
    let mut rules: Vec<&str> = report.problems.iter().map(|p| p.check.id()).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = report
        .problems
        .iter()
        .map(|p| {
            let mut text = String::new();
            if let Some(object) = &p.object {
                text.push_str(&format!("{object}: "));
            }
            if !p.path.is_empty() {
                text.push_str(&format!("{}: ", p.path));
            }
            text.push_str(&p.message);
            json!({
                "ruleId": p.check.id(),
                "level": "error",
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {"artifactLocation": {"uri": p.file}},
                    "logicalLocations": p.object.as_ref().map(|o| vec![json!({
                        "fullyQualifiedName": if p.path.is_empty() { o.to_string() } else { format!("{o}/{}", p.path) },
                        "kind": "object",
                    })]).unwrap_or_default(),
                }],
            })
        })
        .collect();
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "rollouts-guardrails validate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    })
}

/// The summary line on stderr.
pub fn summary(report: &Report, paths: usize) -> String {
    format!(
        "rollouts-guardrails validate: {paths} path(s), {} object(s), {} metric(s) using {PLUGIN_NAME}, {} problem(s)",
        report.objects,
        report.metrics,
        report.problems.len()
    )
}
