//! References between argo-rollouts objects, resolved among the given paths (and `--templates`):
//! - every `templateName` of a Rollout's canary steps, background analysis, blue-green pre- and post-promotion
//!   analysis and experiment steps, of an Experiment's analyses, and of a template's `spec.templates`, names a
//!   template of the kind its `clusterScope` says (ClusterAnalysisTemplate when true, else an AnalysisTemplate
//!   in the referring object's namespace);
//! - every arg the template declares without `value` or `valueFrom` is passed by the reference (an AnalysisRun
//!   has no one to pass it: each of its args needs a value);
//! - every `{{args.NAME}}` a metric uses is declared by its template.
use std::collections::BTreeSet;

use serde_json::Value;

use super::{nearest, Check, Document, Problem};
use crate::manifest::field_path;
use crate::manifest::template::{arg_names, args_of, Template};

/// One `templateName` and where it was found.
struct Reference<'a> {
    /// JSON pointer of the object holding `templateName` and `clusterScope`.
    pointer: String,
    entry: &'a Value,
    /// The args the referring analysis passes; `None` when args are not checked (a template's `templates`).
    args: Option<BTreeSet<String>>,
}

/// Checks every reference in `documents` against the templates in `documents` and `extra`.
pub fn check(documents: &[Document], extra: &[Document], problems: &mut Vec<Problem>) {
    let templates: Vec<Template> = documents
        .iter()
        .chain(extra)
        .filter_map(|d| Template::from_document(&d.value))
        .filter(|t| t.object.kind != "AnalysisRun")
        .collect();
    for document in documents {
        for reference in references(&document.value) {
            resolve(document, &reference, &templates, problems);
        }
        if let Some(template) = Template::from_document(&document.value) {
            undeclared_args(document, &template, problems);
            if template.object.kind == "AnalysisRun" {
                for (index, arg) in template.args.iter().enumerate() {
                    if arg.is_required() {
                        problems.push(Problem::at(
                            Check::Reference,
                            document,
                            format!("spec.args[{index}]"),
                            format!("arg `{}` has neither value nor valueFrom: the AnalysisRun cannot resolve it", arg.name),
                        ));
                    }
                }
            }
        }
    }
}

fn references<'a>(document: &'a Value) -> Vec<Reference<'a>> {
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group_is_argo = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("argoproj.io/"));
    let mut out = Vec::new();
    if !group_is_argo {
        return out;
    }
    let analysis = |out: &mut Vec<Reference<'a>>, pointer: String| {
        let Some(analysis) = document.pointer(&pointer) else {
            return;
        };
        let args = passed(analysis.get("args"));
        for (j, entry) in list(analysis.get("templates")).iter().enumerate() {
            out.push(Reference {
                pointer: format!("{pointer}/templates/{j}"),
                entry,
                args: Some(args.clone()),
            });
        }
    };
    let analyses = |out: &mut Vec<Reference<'a>>, pointer: String| {
        for (j, entry) in list(document.pointer(&pointer)).iter().enumerate() {
            out.push(Reference {
                pointer: format!("{pointer}/{j}"),
                entry,
                args: Some(passed(entry.get("args"))),
            });
        }
    };
    match kind {
        "Rollout" => {
            for (i, step) in list(document.pointer("/spec/strategy/canary/steps"))
                .iter()
                .enumerate()
            {
                if step.get("analysis").is_some() {
                    analysis(
                        &mut out,
                        format!("/spec/strategy/canary/steps/{i}/analysis"),
                    );
                }
                if step.get("experiment").is_some() {
                    analyses(
                        &mut out,
                        format!("/spec/strategy/canary/steps/{i}/experiment/analyses"),
                    );
                }
            }
            analysis(&mut out, "/spec/strategy/canary/analysis".into());
            analysis(
                &mut out,
                "/spec/strategy/blueGreen/prePromotionAnalysis".into(),
            );
            analysis(
                &mut out,
                "/spec/strategy/blueGreen/postPromotionAnalysis".into(),
            );
        }
        "Experiment" => analyses(&mut out, "/spec/analyses".into()),
        "AnalysisTemplate" | "ClusterAnalysisTemplate" => {
            for (j, entry) in list(document.pointer("/spec/templates")).iter().enumerate() {
                out.push(Reference {
                    pointer: format!("/spec/templates/{j}"),
                    entry,
                    args: None,
                });
            }
        }
        _ => {}
    }
    out
}

fn list(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn passed(args: Option<&Value>) -> BTreeSet<String> {
    args_of(args).into_iter().map(|a| a.name).collect()
}

fn resolve(
    document: &Document,
    reference: &Reference<'_>,
    templates: &[Template],
    problems: &mut Vec<Problem>,
) {
    let Some(name) = reference.entry.get("templateName").and_then(Value::as_str) else {
        return; // a missing templateName is a schema problem
    };
    let cluster = reference
        .entry
        .get("clusterScope")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let namespace = document
        .object
        .as_ref()
        .map(|o| o.namespace.as_str())
        .unwrap_or_default();
    let lookup = Lookup {
        name,
        cluster,
        namespace,
        templates,
    };
    let Some(template) = lookup.find(lookup.kind()) else {
        let path = field_path(
            &document.value,
            &format!("{}/templateName", reference.pointer),
        );
        let mut problem = Problem::at(Check::Reference, document, path, String::new());
        (problem.message, problem.suggestion) = lookup.not_found();
        problems.push(problem);
        return;
    };
    let Some(passed) = &reference.args else {
        return;
    };
    for arg in &template.args {
        if arg.is_required() && !passed.contains(&arg.name) {
            problems.push(Problem::at(
                Check::Reference,
                document,
                field_path(&document.value, &reference.pointer),
                format!(
                    "{} `{name}` requires arg `{}` (declared without value or valueFrom), which this analysis does not pass",
                    lookup.kind(),
                    arg.name
                ),
            ));
        }
    }
}

/// One `templateName` looked up among the given templates, in the referring object's scope.
struct Lookup<'a> {
    name: &'a str,
    cluster: bool,
    namespace: &'a str,
    templates: &'a [Template],
}

impl<'a> Lookup<'a> {
    fn kind(&self) -> &'static str {
        if self.cluster {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        }
    }

    fn other_kind(&self) -> &'static str {
        if self.cluster {
            "AnalysisTemplate"
        } else {
            "ClusterAnalysisTemplate"
        }
    }

    /// Templates of `kind` the reference can see: cluster-scoped ones, or those in its namespace.
    fn visible(&self, kind: &'a str) -> impl Iterator<Item = &'a Template> + 'a {
        let namespace = self.namespace;
        self.templates.iter().filter(move |t| {
            t.object.kind == kind
                && (kind == "ClusterAnalysisTemplate"
                    || t.object.namespace.is_empty()
                    || namespace.is_empty()
                    || t.object.namespace == namespace)
        })
    }

    fn find(&self, kind: &'a str) -> Option<&'a Template> {
        let name = self.name;
        self.visible(kind).find(move |t| t.object.name == name)
    }

    /// Why nothing was found, and the nearest name when it looks like a misspelling.
    fn not_found(&self) -> (String, Option<String>) {
        let (name, kind, other_kind) = (self.name, self.kind(), self.other_kind());
        if self.find(other_kind).is_some() {
            let message = format!(
                "no {kind} `{name}`, but a {other_kind} `{name}` exists: set clusterScope: {}",
                !self.cluster
            );
            return (message, None);
        }
        let names: Vec<&str> = self.visible(kind).map(|t| t.object.name.as_str()).collect();
        let suggestion = nearest(name, names).map(str::to_string);
        let scope = if self.cluster || self.namespace.is_empty() {
            String::new()
        } else {
            format!(" in namespace `{}`", self.namespace)
        };
        let message = match &suggestion {
            Some(s) => format!("no {kind} `{name}`{scope} among the given paths; did you mean {s}?"),
            None => format!("no {kind} `{name}`{scope} among the given paths (add it, or its directory with --templates)"),
        };
        (message, suggestion)
    }
}

fn undeclared_args(document: &Document, template: &Template, problems: &mut Vec<Problem>) {
    let declared: Vec<&str> = template.args.iter().map(|a| a.name.as_str()).collect();
    for (index, metric) in template.metrics.iter().enumerate() {
        let name = metric
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for arg in arg_names(&metric.to_string()) {
            if declared.contains(&arg.as_str()) || !seen.insert(arg.clone()) {
                continue;
            }
            let mut problem = Problem::at(
                Check::Reference,
                document,
                format!("spec.metrics[{index}]"),
                format!("{{{{args.{arg}}}}} is not declared in the template's args: Argo cannot resolve it"),
            );
            problem.metric = Some(name.to_string());
            problem.suggestion = nearest(&arg, declared.iter().copied()).map(str::to_string);
            problems.push(problem);
        }
    }
}
