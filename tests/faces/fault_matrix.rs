//! The fault matrix: every column (four guardrails and `regression` with the rank test) × every Prometheus
//! fault, through plugin mode (argo-rollouts' own plugin client driving the real binary,
//! `tests/go/hostile/cmd/pluginrun`) and through the gRPC service. Writes `docs/fault-matrix.md` and fails on any
//! cell that is not `Failed` with a reason and a failure class, or, where a fault does not apply, not the
//! healthy verdict. A healthy baseline runs first through both faces and must pass, so each failure below is
//! the fault's doing.
//!
//! Needs `go` on PATH (the plugin-mode face is built from `tests/go/hostile` with the module proxy or a warm cache).

use crate::support::faces;
use crate::support::faults;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use faces::{GrpcFace, Reply};
use faults::{Fault, GUARDRAILS, RANK_TEST};
use serde_json::Value;

/// The two remote faces, in column order.
const FACES: [&str; 2] = ["plugin", "gRPC"];
/// Where the generated report goes.
const REPORT: &str = "docs/fault-matrix.md";
/// The longest message excerpt the report shows per fault.
const EXCERPT_CHARS: usize = 140;
/// How many plugin processes share the plugin-mode cells. One process runs its measurements one after the
/// other, and each timeout fault holds a cell for the whole `timeout`; four processes (configurations dealt
/// round-robin) keep the matrix's run short as columns are added.
const PLUGIN_SESSIONS: usize = 4;

/// Replaces `127.0.0.1:<port>` with `127.0.0.1:PORT` so the report does not change from run to run.
fn without_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        let (head, tail) = rest.split_at(i + "127.0.0.1:".len());
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("PORT");
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn excerpt(text: &str) -> String {
    let flat = without_ports(text).replace(['\n', '|'], " ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

/// Runs `configs` through both faces: `[plugin replies, gRPC replies]`, each in `configs` order.
async fn both_faces(configs: Vec<Value>) -> Result<[Vec<Reply>; 2]> {
    let total = configs.len();
    let sessions = PLUGIN_SESSIONS.min(total).max(1);
    let mut plugin = Vec::new();
    for session in 0..sessions {
        let dealt: Vec<Value> = configs
            .iter()
            .skip(session)
            .step_by(sessions)
            .cloned()
            .collect();
        plugin.push(tokio::task::spawn_blocking(move || {
            faces::plugin_mode(&dealt, &[])
        }));
    }
    let grpc = GrpcFace::start().await?;
    let mut calls = Vec::new();
    for config in configs {
        let mut client = grpc.client().await?;
        calls.push(tokio::spawn(async move {
            faces::grpc_run(&mut client, &config).await
        }));
    }
    let mut grpc_replies = Vec::new();
    for call in calls {
        grpc_replies.push(call.await??);
    }
    let mut dealt = Vec::new();
    for session in plugin {
        dealt.push(session.await??.replies.into_iter());
    }
    // Config `i` went to session `i % sessions`, as its `i / sessions`-th measurement.
    let plugin_replies: Vec<Reply> = (0..total)
        .filter_map(|i| dealt[i % sessions].next())
        .collect();
    ensure!(
        plugin_replies.len() == total,
        "{} plugin-mode replies for {total} configurations",
        plugin_replies.len()
    );
    Ok([plugin_replies, grpc_replies])
}

/// One cell's verdict: `Ok(class)` when Failed with a message and a class, else why not.
fn judge(reply: &Reply) -> Result<String, String> {
    let class = reply.metadata.get("failure").cloned().unwrap_or_default();
    if reply.phase != "Failed" {
        return Err(format!("**{}** {}", reply.phase, excerpt(&reply.message)));
    }
    if reply.message.trim().is_empty() || class.is_empty() {
        return Err(format!(
            "Failed without a reason (message {:?}, class {class:?})",
            reply.message
        ));
    }
    Ok(class)
}

/// Why a cell is not a fault's, or `None` when the fault applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotApplicable {
    /// A user `query` may legitimately return a scalar: Successful only with the proven value, or Failed.
    Scalar,
    /// A fault in an answer only the rank test reads: the column's own queries get the healthy answer, so it
    /// must pass as in the baseline.
    NotRead,
}

/// Whether `fault` (a range-answer fault when `range_fault`) applies to `column`.
fn not_applicable(fault: &str, range_fault: bool, column: &str) -> Option<NotApplicable> {
    if faults::scalar_is_legitimate(fault, column) {
        Some(NotApplicable::Scalar)
    } else if range_fault && !faults::reads_range_answers(column) {
        Some(NotApplicable::NotRead)
    } else {
        None
    }
}

/// Checks a baseline reply: Successful, and for the rank test its judgement on as many one-minute samples per
/// side as the subquery has steps (so the baseline proves the whole rank path, not a shortcut): 20, or 19 when
/// evaluated in the last second of a minute (the oldest step then falls out of `[1199s:60s]`, as on
/// Prometheus). `Err` says why not.
fn healthy_verdict(column: &str, reply: &Reply) -> Result<(), String> {
    if reply.phase != "Successful" {
        return Err(format!("**{}** {}", reply.phase, excerpt(&reply.message)));
    }
    if column != RANK_TEST {
        return Ok(());
    }
    let judged = ["20 vs 20", "19 vs 19"].iter().any(|counts| {
        reply.message.contains("Mann-Whitney p = ")
            && reply.message.contains(&format!(
                "≥ 0.05 on {counts} one-minute samples: no regression (not significant)"
            ))
            && reply
                .metadata
                .get("mann-whitney.samples")
                .map(String::as_str)
                == Some(counts)
    });
    if !judged {
        return Err(format!(
            "Successful without the rank test's judgement on both full sides: {}",
            excerpt(&reply.message)
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_guardrail_fails_closed_under_every_fault_through_both_faces() -> Result<()> {
    // The baseline: the same configurations against a healthy Prometheus pass through both faces.
    let healthy = faults::baseline().start().await;
    let baseline_configs: Vec<Value> = GUARDRAILS
        .iter()
        .map(|g| faults::config(g, &healthy.address))
        .collect();
    let [plugin, grpc] = both_faces(baseline_configs).await?;
    let mut baseline_row = format!("| {} |", healthy.name);
    for (face, replies) in FACES.iter().zip([&plugin, &grpc]) {
        for (g, reply) in GUARDRAILS.iter().zip(replies) {
            if let Err(why) = healthy_verdict(g, reply) {
                anyhow::bail!(
                    "baseline {g} through {face} did not pass, so the matrix would prove nothing: {why}\n{reply:?}"
                );
            }
            baseline_row.push_str(" Successful |");
        }
    }
    let baseline_message = excerpt(&plugin[GUARDRAILS.len() - 1].message);
    drop(healthy);

    // The faults of every answer, then those in answers only the rank test reads (`true`).
    let mut running = Vec::new();
    for (fault, range_fault) in faults::all()
        .into_iter()
        .map(|f| (f, false))
        .chain(faults::range_answers().into_iter().map(|f| (f, true)))
    {
        running.push((Fault::start(fault).await, range_fault));
    }
    let mut configs = Vec::new();
    for (fault, _) in &running {
        for g in GUARDRAILS {
            configs.push(faults::config(g, &fault.address));
        }
    }
    let [plugin, grpc] = both_faces(configs).await?;

    let mut table = format!("{baseline_row}\n");
    let mut messages = String::new();
    let mut bad = Vec::new();
    let mut cells = 0usize;
    let mut failed_cells = 0usize;
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let rank_column = GUARDRAILS.len() - 1;
    for (f, (fault, range_fault)) in running.iter().enumerate() {
        let mut row = format!("| {} |", fault.name);
        for (face, replies) in FACES.iter().zip([&plugin, &grpc]) {
            for (i, g) in GUARDRAILS.iter().enumerate() {
                let reply = &replies[f * GUARDRAILS.len() + i];
                cells += 1;
                match not_applicable(&fault.name, *range_fault, g) {
                    Some(NotApplicable::Scalar) => {
                        // Not a fault for a user query; still, it passes only on the proven value.
                        if !(reply.phase == "Successful" && reply.value == "1"
                            || reply.phase == "Failed")
                        {
                            bad.push(format!("{} × {g} × {face}: {reply:?}", fault.name));
                        }
                        row.push_str(&format!(" n/a ({}) |", reply.phase));
                        continue;
                    }
                    Some(NotApplicable::NotRead) => {
                        // The fault left this column's answers healthy: anything but the baseline's verdict
                        // means it reached a query it should not have, or the healthy answer is not.
                        if let Err(why) = healthy_verdict(g, reply) {
                            bad.push(format!("{} × {g} × {face}: {why}", fault.name));
                        }
                        row.push_str(&format!(" n/a ({}) |", reply.phase));
                        continue;
                    }
                    None => {}
                }
                match judge(reply) {
                    Ok(class) => {
                        failed_cells += 1;
                        *classes.entry(class.clone()).or_default() += 1;
                        row.push_str(&format!(" Failed · `{class}` |"));
                    }
                    Err(why) => {
                        bad.push(format!("{} × {g} × {face}: {why}", fault.name));
                        row.push_str(&format!(" ❌ {why} |"));
                    }
                }
            }
        }
        table.push_str(&row);
        table.push('\n');
        let said = |column: usize| {
            let reply = &plugin[f * GUARDRAILS.len() + column];
            match not_applicable(&fault.name, *range_fault, GUARDRAILS[column]) {
                Some(NotApplicable::NotRead) => "n/a".to_string(),
                _ => excerpt(&reply.message),
            }
        };
        writeln!(
            messages,
            "| {} | {} | {} |",
            fault.name,
            said(0),
            said(rank_column)
        )?;
    }

    let mut header = String::from("| fault |");
    let mut rule = String::from("|---|");
    for face in FACES {
        for g in GUARDRAILS {
            header.push_str(&format!(" {g} ({face}) |"));
            rule.push_str("---|");
        }
    }
    let class_summary: Vec<String> = classes.iter().map(|(c, n)| format!("`{c}` {n}")).collect();
    let range_faults = running.iter().filter(|(_, range)| *range).count();
    let report = format!(
        "# Fault matrix\n\n\
         Generated by `tests/faces/fault_matrix.rs` with `make docs`; `cargo test --test faces fault_matrix` (part of `make test`) writes its run to `target/tmp/fault-matrix.md` and checks this document's faults and verdicts against it; do not edit.\n\n\
         Every column × every fault, through **plugin mode** (argo-rollouts v1.9.1's own plugin client, \
         go-plugin net/rpc over yamux, driving the real binary) and through the **gRPC** service. The columns are \
         four guardrails and `{RANK_TEST}`: `regression` with `method: mann-whitney` on the canary's p99 latency \
         against the stable ReplicaSet's (`stablePodTemplateHash` as a template fills it in from the AnalysisRun \
         args), 20 one-minute samples per side over `window: 20m`, minSamples 10; it asks per side a coverage \
         query, the traffic proof (requests and latest request over the window) and one subquery \
         `(<per-step p99>)[1199s:60s]` answered by a matrix. A cell is `Failed · <metadata.failure>`; the run \
         fails on any cell that is not `Failed` with a message and a failure class. The first row is the healthy \
         baseline, run before any fault: the same configurations against a healthy Prometheus are `Successful` \
         through both faces (the rank test with its judgement on 20 vs 20 samples), so every failure below is \
         the fault's doing. Each measurement has `timeout: {timeout}`.\n\n\
         The first rows are faults of the road and of every answer; the last {range_faults} (from \"{first_range}\") \
         are faults in the answers only the rank test reads (its subquery's matrix, its traffic proof), every other \
         query answered healthy.\n\n\
         **{cells} fault cells**: {failed_cells} Failed, {na} not applicable, 0 Successful faults. Classes: \
         {class_summary}. **n/a** means one of two things: a user `query` may legitimately return a scalar (that \
         cell is Successful only with the proven value); or the fault is in an answer the column's guardrail \
         never asks for (restarts, not-ready, latest-image and query ask no subquery and prove no traffic), so \
         its queries get the healthy answer and the cell must be `Successful` as in the baseline — which shows \
         the fault reached only the queries it names.\n\n\
         {header}\n{rule}\n{table}\n\
         ## What the plugin said (plugin mode)\n\n\
         The healthy baseline's `{RANK_TEST}`: {baseline_message}\n\n\
         | fault | `restarts` | `{RANK_TEST}` |\n|---|---|---|\n{messages}",
        timeout = faults::TIMEOUT,
        na = cells - failed_cells - bad.len(),
        class_summary = class_summary.join(", "),
        first_range = running
            .iter()
            .find(|(_, range)| *range)
            .map(|(f, _)| f.name.as_str())
            .unwrap_or_default(),
    );
    // The run's report goes under target/; the committed document is rewritten only by `make docs`
    // (GUARDRAILS_WRITE_DOCS=1), so a test run never dirties the tree.
    let generated = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix.md");
    std::fs::write(&generated, &report)
        .with_context(|| format!("write {}", generated.display()))?;
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(REPORT);
    if std::env::var_os("GUARDRAILS_WRITE_DOCS").is_some() {
        std::fs::write(&committed, &report)
            .with_context(|| format!("write {}", committed.display()))?;
    }
    let committed_text =
        std::fs::read_to_string(&committed).with_context(|| format!("read {REPORT}"))?;
    ensure!(
        stable(&committed_text) == stable(&report),
        "{REPORT} is out of date (its faults, guardrails or verdicts differ from this run's {}): run `make docs`",
        generated.display()
    );
    ensure!(
        bad.is_empty(),
        "{} of {cells} cells did not fail closed (see {REPORT}):\n{}",
        bad.len(),
        bad.join("\n")
    );
    Ok(())
}

/// What a report says that does not depend on the machine's load: the header, and per fault its name and
/// whether each cell failed closed (the class of a 40 MiB answer may be `query-error` or `timeout`, a message
/// may say "9m59s ago").
fn stable(report: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("| fault |"))
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            line.split('|')
                .map(|cell| match cell.trim() {
                    c if c.starts_with("Failed") => "Failed",
                    c if c.starts_with("n/a") => "n/a",
                    c => c,
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

#[test]
fn the_stable_part_of_a_report_ignores_classes_and_messages() {
    let a = "x\n| fault | restarts (plugin) |\n|---|---|\n| http 500 | Failed · `query-error` |\n";
    let b = "y\n| fault | restarts (plugin) |\n|---|---|\n| http 500 | Failed · `timeout` |\n";
    assert_eq!(stable(a), stable(b));
    let c = "| fault | restarts (plugin) |\n|---|---|\n| http 500 | ❌ Successful |\n";
    assert_ne!(stable(a), stable(c));
}

#[test]
fn ports_are_normalized_in_the_report() {
    assert_eq!(
        without_ports("Prometheus at http://127.0.0.1:45123/ refused; 127.0.0.1:x"),
        "Prometheus at http://127.0.0.1:PORT/ refused; 127.0.0.1:x"
    );
}
