//! The key table of docs/guardrails.md says exactly what the parser accepts: every guardrail key is
//! documented, and each row's "used by" is the set of guardrails whose configuration may set it.
use std::collections::BTreeSet;

use rollouts_guardrails::engine::config::Config;
use rollouts_guardrails::engine::GuardrailKind;

const CONNECTION_KEYS: &[&str] = &[
    "address",
    "headers",
    "bearerToken",
    "bearerTokenFile",
    "basicAuth",
    "sigv4",
    "oauth2",
    "tls",
    "tenant",
];

/// `(keys, guardrails)` of every row of the table under "## Keys per guardrail".
fn table() -> Vec<(Vec<String>, BTreeSet<GuardrailKind>)> {
    let doc = include_str!("../../docs/guardrails.md");
    let section = doc
        .split("## Keys per guardrail")
        .nth(1)
        .expect("docs/guardrails.md has a key table");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    section
        .lines()
        .skip_while(|l| !l.starts_with("| key"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (keys, used_by) = (ticked(cells[1]), cells[2]);
            let named: BTreeSet<GuardrailKind> = ticked(used_by)
                .iter()
                .map(|n| GuardrailKind::parse(n).unwrap_or_else(|| panic!("{n} in {line}")))
                .collect();
            let guardrails = if used_by == "all" {
                GuardrailKind::ALL.into_iter().collect()
            } else if used_by.starts_with("all but") {
                GuardrailKind::ALL
                    .into_iter()
                    .filter(|g| !named.contains(g))
                    .collect()
            } else {
                named
            };
            (keys, guardrails)
        })
        .collect()
}

#[test]
fn the_documented_key_table_is_what_the_parser_accepts() {
    let rows = table();
    let documented: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(keys, _)| keys.iter().map(String::as_str))
        .collect();
    for key in GuardrailKind::all_keys() {
        if key != "guardrail" && !CONNECTION_KEYS.contains(&key) {
            assert!(
                documented.contains(key),
                "`{key}` is accepted but not documented"
            );
        }
    }
    for (keys, guardrails) in &rows {
        for key in keys {
            for kind in GuardrailKind::ALL {
                // A value of the wrong type is fine: only "not used by" is looked at.
                let json = format!(r#"{{"guardrail":"{}","{key}":[]}}"#, kind.name());
                let refused = Config::from_json(json.as_bytes())
                    .err()
                    .is_some_and(|e| e.to_string().contains("is not used by guardrail"));
                assert_eq!(
                    guardrails.contains(&kind),
                    !refused,
                    "docs say `{key}` {} used by `{}`; the parser disagrees",
                    if guardrails.contains(&kind) {
                        "is"
                    } else {
                        "is not"
                    },
                    kind.name()
                );
                assert_eq!(
                    guardrails.contains(&kind),
                    kind.uses(key),
                    "{key} / {}",
                    kind.name()
                );
            }
        }
    }
}

#[test]
fn every_connection_key_is_named_where_the_doc_lists_them() {
    let doc = include_str!("../../docs/guardrails.md");
    let sentence = doc
        .split("the connection keys")
        .nth(1)
        .and_then(|rest| rest.split("apply to every guardrail").next())
        .expect("docs/guardrails.md lists the connection keys");
    for key in CONNECTION_KEYS {
        assert!(
            sentence.contains(&format!("`{key}`")),
            "connection key `{key}` missing from: {sentence}"
        );
        let json = format!(r#"{{"guardrail":"restarts","{key}":1}}"#);
        let refused = Config::from_json(json.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            !refused.contains("not used by") && !refused.contains("unknown key"),
            "`{key}` is not a key the parser takes: {refused}"
        );
    }
}
