//! The `validate` command's face: flags, output and exit status; the checks live in [`crate::validate`].
//!
//! Contract (other tools depend on it): `rollouts-guardrails validate [--policy NAME]... [--against REV]
//! [--templates DIR]... [--owner-label LABEL] [--output table|json|sarif] PATH...`. Problems go to stdout, a
//! summary to stderr. Exit status: 0 no problem, 1 any problem, 2 usage error.
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{EXIT_FAIL, EXIT_PASS, EXIT_USAGE};
use crate::validate::{output, policies::DEFAULT_OWNER_LABEL, Options, Policy, Report};

/// The flags of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Files (multi-document YAML) or directories (searched recursively; one holding a kustomization.yaml is
    /// built with kustomize first).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// An admission policy to enforce: no-mutable-image, require-limits, require-owner-label, or all. Repeatable.
    #[arg(long = "policy", value_name = "NAME", value_parser = parse_policy)]
    pub policies: Vec<Vec<Policy>>,
    /// The label require-owner-label asks for on every Namespace.
    #[arg(long, value_name = "LABEL", default_value = DEFAULT_OWNER_LABEL)]
    pub owner_label: String,
    /// Compare with the same paths at this git revision and report immutable-field changes.
    #[arg(long, value_name = "REV")]
    pub against: Option<String>,
    /// More files or directories holding (Cluster)AnalysisTemplates that references may resolve to (not
    /// otherwise checked). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub templates: Vec<PathBuf>,
    /// table (one line per problem), json (one object per problem and line) or sarif (SARIF 2.1.0).
    #[arg(long, value_enum, default_value_t = ValidateOutput::Table)]
    pub output: ValidateOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateOutput {
    Table,
    Json,
    Sarif,
}

fn parse_policy(name: &str) -> Result<Vec<Policy>, String> {
    if name == "all" {
        return Ok(Policy::ALL.to_vec());
    }
    Policy::parse(name).map(|p| vec![p]).ok_or_else(|| {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        format!("unknown policy `{name}` (known: {}, all)", names.join(", "))
    })
}

/// Runs `validate`, prints problems and the summary, and returns the exit status.
pub fn run(args: &ValidateArgs) -> u8 {
    let mut policies: Vec<Policy> = args.policies.iter().flatten().copied().collect();
    policies.sort();
    policies.dedup();
    let options = Options {
        policies,
        owner_label: args.owner_label.clone(),
        against: args.against.clone(),
        templates: args.templates.clone(),
    };
    let report = match crate::validate::run(&args.paths, &options) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("rollouts-guardrails validate: {e}");
            return EXIT_USAGE;
        }
    };
    print(&report, args.output);
    eprintln!("{}", output::summary(&report, args.paths.len()));
    if report.problems.is_empty() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

fn print(report: &Report, format: ValidateOutput) {
    let mut stdout = std::io::stdout().lock();
    let _ = match format {
        ValidateOutput::Table => report
            .problems
            .iter()
            .try_for_each(|p| writeln!(stdout, "{p}")),
        ValidateOutput::Json => report
            .problems
            .iter()
            .try_for_each(|p| writeln!(stdout, "{}", output::json(p))),
        ValidateOutput::Sarif => writeln!(stdout, "{:#}", output::sarif(report)),
    };
}
