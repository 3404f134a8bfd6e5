//! The GitOps pre-merge gate behind `rollouts-guardrails validate`: every object under the given paths checked
//! offline, as the API server and the Argo Rollouts controller would judge it, before it is merged.
//!
//! # Layout
//! In the order a run goes:
//! - [`input`]: files and directories into documents; directories holding a `kustomization.yaml` are built
//!   with kustomize first; `--against REV` reads the same paths at a git revision.
//! - [`schema`]: argo-rollouts objects against the `openAPIV3Schema` of argo-rollouts' own (pinned) CRDs,
//!   as structural-schema validation and pruning treat them.
//! - [`references`]: every `templateName` resolves, with matching `clusterScope`, and every required arg is
//!   passed; every `{{args.NAME}}` is declared.
//! - [`plugin`]: every `rollouts-guardrails/prometheus` block through the engine's own configuration parser.
//! - [`policies`]: the opt-in admission policies (also shipped as ValidatingAdmissionPolicies).
//! - [`immutable`]: changes between revisions that the API server refuses.
//! - [`output`]: problems as a table, JSON lines or SARIF.
pub mod immutable;
pub mod input;
pub mod output;
pub mod plugin;
pub mod policies;
pub mod references;
pub mod schema;

use std::fmt;
use std::path::PathBuf;

use crate::manifest::ObjectRef;
pub use input::Document;
pub use policies::Policy;

/// What to check beyond the always-on checks (schema, references, plugin blocks).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The admission policies to enforce.
    pub policies: Vec<Policy>,
    /// The label `require-owner-label` asks for on every Namespace.
    pub owner_label: String,
    /// A git revision to compare against for immutable-field changes.
    pub against: Option<String>,
    /// Extra paths holding templates that references may resolve to (cluster-wide ones); not otherwise checked.
    pub templates: Vec<PathBuf>,
}

/// Which check found a problem (the rule id of JSON and SARIF output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// A file or directory could not be read or parsed.
    Read,
    /// A kustomize build failed.
    Kustomize,
    /// The CRD schema refuses the object.
    Schema,
    /// A template reference or argument does not resolve.
    Reference,
    /// A plugin block the engine's parser refuses.
    PluginConfig,
    /// An admission policy.
    Policy(Policy),
    /// An immutable field changed since `--against`.
    Immutable,
}

impl Check {
    /// The rule id: `schema`, `reference`, `plugin-config`, `no-mutable-image`, `immutable-field`, …
    pub fn id(self) -> &'static str {
        match self {
            Check::Read => "read",
            Check::Kustomize => "kustomize",
            Check::Schema => "schema",
            Check::Reference => "reference",
            Check::PluginConfig => "plugin-config",
            Check::Policy(policy) => policy.name(),
            Check::Immutable => "immutable-field",
        }
    }
}

/// One problem: the file, the object, the field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub check: Check,
    pub file: String,
    /// The object, when the problem is in one.
    pub object: Option<ObjectRef>,
    /// The metric's name, when the problem is in one metric of a template.
    pub metric: Option<String>,
    /// The field path (`spec.strategy.canary.steps[1]`); empty for the whole file or object.
    pub path: String,
    pub message: String,
    /// The nearest valid spelling, when the problem is a misspelling.
    pub suggestion: Option<String>,
}

impl Problem {
    /// A problem with a file only (unreadable, unbuildable).
    pub fn in_file(check: Check, file: &str, message: impl Into<String>) -> Problem {
        Problem {
            check,
            file: file.to_string(),
            object: None,
            metric: None,
            path: String::new(),
            message: message.into(),
            suggestion: None,
        }
    }

    /// A problem at `path` of the object in `document`.
    pub fn at(
        check: Check,
        document: &Document,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            check,
            file: document.file.clone(),
            object: document.object.clone(),
            metric: None,
            path: path.into(),
            message: message.into(),
            suggestion: None,
        }
    }
}

impl fmt::Display for Problem {
    /// `FILE:METRIC: MESSAGE (OBJECT PATH)` for a metric (the historical `validate` line), otherwise
    /// `FILE: OBJECT: PATH: MESSAGE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(metric) = &self.metric {
            write!(f, "{}:{}: {}", self.file, metric, self.message)?;
            if let Some(object) = &self.object {
                write!(f, " ({object} {})", self.path)?;
            }
            return Ok(());
        }
        write!(f, "{}: ", self.file)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

/// What a run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Objects checked.
    pub objects: usize,
    /// Metrics using this plugin that were parsed.
    pub metrics: usize,
}

impl Report {
    /// 0 when there is no problem, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.problems.is_empty() {
            0
        } else {
            1
        }
    }
}

/// Why a run could not start (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--against {rev}: {reason}")]
    Against { rev: String, reason: String },
}

/// Runs every check on `paths`.
pub fn run(paths: &[PathBuf], options: &Options) -> Result<Report, UsageError> {
    let mut report = Report::default();
    let current = input::collect(paths, &mut report.problems);
    let mut extra = Vec::new();
    let templates = input::collect(&options.templates, &mut report.problems);
    extra.extend(templates);
    report.objects = current.iter().filter(|d| d.object.is_some()).count();
    for document in &current {
        schema::check(document, &mut report.problems);
    }
    references::check(&current, &extra, &mut report.problems);
    report.metrics = plugin::check(&current, &mut report.problems);
    for policy in &options.policies {
        policies::check(*policy, &current, options, &mut report.problems);
    }
    if let Some(rev) = &options.against {
        let before = input::collect_at(rev, paths, &mut report.problems).map_err(|reason| {
            UsageError::Against {
                rev: rev.clone(),
                reason,
            }
        })?;
        immutable::check(&before, &current, &mut report.problems);
    }
    Ok(report)
}

/// The candidate nearest to `word` by edit distance, when it is near enough to be a misspelling.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}
