//! Rendering `check` results: a PASS/FAIL table for people, or one JSON object per metric and line.
use serde_json::json;

use super::Row;
use crate::engine::measure::metadata_key;
use crate::engine::Phase;

/// One JSON object per row: `metric`, `phase`, `value`, `message`, `metadata`.
pub fn json_lines(rows: &[Row]) -> String {
    rows.iter()
        .map(|row| {
            let m = &row.measurement;
            json!({
                "metric": row.metric,
                "phase": m.phase.as_str(),
                "value": m.value,
                "message": m.message,
                "metadata": m.metadata,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// The table: METRIC, TARGET, RESULT, VALUE, REASON; offenders listed under the row they belong to.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            let m = &row.measurement;
            let target = m
                .metadata
                .get(metadata_key::TARGET)
                .cloned()
                .unwrap_or_else(|| "-".into());
            let result = match m.phase {
                Phase::Successful => "PASS",
                Phase::Failed => "FAIL",
                // An `unprovenPhase` answer: not a pass, and not the same as a violation.
                Phase::Inconclusive => "INCONCLUSIVE",
                Phase::Error => "ERROR",
                Phase::Running | Phase::Pending => "UNFINISHED",
            };
            let value = if m.value.is_empty() {
                "-".to_string()
            } else {
                m.value.clone()
            };
            [
                row.metric.clone(),
                target,
                result.to_string(),
                value,
                m.message.clone(),
            ]
        })
        .collect();
    let header = ["METRIC", "TARGET", "RESULT", "VALUE", "REASON"];
    let mut widths = header.map(str::len);
    for row in &cells {
        for (i, cell) in row.iter().enumerate().take(4) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 5]| -> String {
        let mut s = String::new();
        for (i, col) in cols.iter().enumerate().take(4) {
            s.push_str(&format!("{col:<width$}  ", width = widths[i]));
        }
        s.push_str(cols[4]);
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for (row, cell) in rows.iter().zip(&cells) {
        out.push_str(&line([&cell[0], &cell[1], &cell[2], &cell[3], &cell[4]]));
        if let Some(offenders) = row.measurement.metadata.get(metadata_key::OFFENDERS) {
            // The message names the first few; list the ones it could not.
            for offender in offenders
                .lines()
                .filter(|o| !row.measurement.message.contains(o))
            {
                out.push_str(&format!(
                    "{:indent$}- {offender}\n",
                    "",
                    indent = widths[0] + 2
                ));
            }
        }
    }
    let failed = rows
        .iter()
        .filter(|r| r.measurement.phase != Phase::Successful)
        .count();
    // Not "N passed, N failed": CI reads that shape as a test runner's closing line.
    out.push_str(&format!(
        "\n{} metric{}: {} PASS, {} FAIL\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rows.len() - failed,
        failed
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Measurement;
    use std::collections::BTreeMap;

    fn row(metric: &str, phase: Phase, value: &str, message: &str, offenders: Option<&str>) -> Row {
        let mut metadata = BTreeMap::from([(
            metadata_key::TARGET.to_string(),
            "shop/web-6c8d7f9a1".to_string(),
        )]);
        if let Some(o) = offenders {
            metadata.insert(metadata_key::OFFENDERS.to_string(), o.to_string());
        }
        Row {
            metric: metric.to_string(),
            measurement: Measurement {
                phase,
                message: message.into(),
                value: value.into(),
                metadata,
                started_at: None,
                finished_at: None,
                resume_at: None,
            },
        }
    }

    #[test]
    fn the_table_says_pass_or_fail_with_reasons_and_offenders() {
        let out = table(&[
            row("restarts", Phase::Successful, "0", "0 restarts", None),
            row(
                "not-ready",
                Phase::Failed,
                "1",
                "1 of 2 pods not ready",
                Some("pod-a\npod-b"),
            ),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "METRIC     TARGET              RESULT  VALUE  REASON"
        );
        assert_eq!(
            lines[1],
            "restarts   shop/web-6c8d7f9a1  PASS    0      0 restarts"
        );
        assert_eq!(
            lines[2],
            "not-ready  shop/web-6c8d7f9a1  FAIL    1      1 of 2 pods not ready"
        );
        assert_eq!(lines[3], "           - pod-a");
        assert!(out.ends_with("\n2 metrics: 1 PASS, 1 FAIL\n"), "{out}");
    }

    #[test]
    fn json_has_one_object_per_metric_and_line() {
        let out = json_lines(&[
            row("a", Phase::Successful, "0", "ok", None),
            row("b", Phase::Failed, "", "no data", None),
        ]);
        let objects: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["phase"], "Failed");
        assert_eq!(objects[1]["metadata"]["target"], "shop/web-6c8d7f9a1");
    }
}
