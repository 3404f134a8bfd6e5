//! `unprovenPhase`: which phase an *unproven* measurement reports instead of `Failed`, per failure class.
//!
//! Only classes that mean "could not prove" may be mapped (`no-traffic`, `no-data`, `stale`, `query-error`,
//! `timeout`), and only to `Inconclusive` (Argo pauses the Rollout) or `Error` (counts towards
//! `consecutiveErrorLimit`). A proven violation (`threshold`) and a configuration error are always `Failed`;
//! `Successful` is never a value: an unproven measurement is not a pass.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config::ConfigError;
use super::verdict::FailureClass;
use super::Phase;

/// The configuration key.
pub const KEY: &str = "unprovenPhase";

/// The classes an `unprovenPhase` may map, in the order messages list them.
pub const MAPPABLE: [FailureClass; 5] = [
    FailureClass::NoTraffic,
    FailureClass::NoData,
    FailureClass::Stale,
    FailureClass::QueryError,
    FailureClass::Timeout,
];

/// The phase an unproven class may report instead of `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnprovenPhase {
    Inconclusive,
    Error,
}

impl UnprovenPhase {
    pub fn phase(self) -> Phase {
        match self {
            UnprovenPhase::Inconclusive => Phase::Inconclusive,
            UnprovenPhase::Error => Phase::Error,
        }
    }
}

/// The parsed `unprovenPhase` map; empty means every failure is `Failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseMap {
    mapped: BTreeMap<&'static str, UnprovenPhase>,
}

impl PhaseMap {
    /// The phase a failure of `class` reports: the mapped one for unproven classes, otherwise `Failed`.
    pub fn phase_of(&self, class: FailureClass) -> Phase {
        self.mapped
            .get(class.name())
            .map_or(Phase::Failed, |p| p.phase())
    }

    /// Parses the value of `unprovenPhase` (a JSON object from class name to phase name).
    pub fn parse(value: &Value) -> Result<PhaseMap, ConfigError> {
        let object: &Map<String, Value> = match value {
            Value::Null => return Ok(PhaseMap::default()),
            Value::Object(object) => object,
            _ => {
                return Err(ConfigError::WrongType {
                    key: KEY.into(),
                    expected: "a map from failure class to `Inconclusive` or `Error`",
                })
            }
        };
        let mut mapped = BTreeMap::new();
        for (name, phase) in object {
            let key = format!("{KEY}.{name}");
            let class = match MAPPABLE.into_iter().find(|c| c.name() == name) {
                Some(class) => class,
                None if matches!(name.as_str(), "threshold" | "config") => {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: format!(
                            "`{name}` is always Failed ({}); only unproven classes may be mapped: {}",
                            if name == "threshold" {
                                "a proven violation"
                            } else {
                                "a configuration error"
                            },
                            mappable_list()
                        ),
                    })
                }
                None => {
                    return Err(ConfigError::UnknownKey {
                        key,
                        nearest: nearest_class(name),
                    })
                }
            };
            let phase = match phase.as_str() {
                Some("Inconclusive") => UnprovenPhase::Inconclusive,
                Some("Error") => UnprovenPhase::Error,
                Some("Successful") => {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: "`Successful` is never allowed: an unproven measurement is not a pass; expected `Inconclusive` or `Error`".into(),
                    })
                }
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key,
                        reason: format!("unknown phase `{other}`; expected `Inconclusive` or `Error`"),
                    })
                }
                None => {
                    return Err(ConfigError::WrongType {
                        key,
                        expected: "`Inconclusive` or `Error`",
                    })
                }
            };
            mapped.insert(class.name(), phase);
        }
        Ok(PhaseMap { mapped })
    }
}

fn mappable_list() -> String {
    MAPPABLE.map(|c| format!("`{}`", c.name())).join(", ")
}

/// The mappable class nearest to a misspelt one (`no-trafic` → `no-traffic`).
fn nearest_class(name: &str) -> Option<String> {
    let names = MAPPABLE.map(FailureClass::name);
    super::config::read::nearest(name, names.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unproven_classes_map_and_the_rest_stay_failed() {
        let map =
            PhaseMap::parse(&json!({"no-traffic": "Inconclusive", "timeout": "Error"})).unwrap();
        assert_eq!(map.phase_of(FailureClass::NoTraffic), Phase::Inconclusive);
        assert_eq!(map.phase_of(FailureClass::Timeout), Phase::Error);
        assert_eq!(map.phase_of(FailureClass::NoData), Phase::Failed);
        assert_eq!(map.phase_of(FailureClass::Threshold), Phase::Failed);
        assert_eq!(map.phase_of(FailureClass::Config), Phase::Failed);
    }

    #[test]
    fn refusals_name_the_key_and_say_why() {
        let cases = [
            (
                json!({"no-traffic": "Successful"}),
                "key `unprovenPhase.no-traffic`: `Successful` is never allowed",
            ),
            (
                json!({"no-trafic": "Inconclusive"}),
                "unknown key `unprovenPhase.no-trafic`; did you mean `no-traffic`?",
            ),
            (
                json!({"threshold": "Inconclusive"}),
                "key `unprovenPhase.threshold`: `threshold` is always Failed (a proven violation)",
            ),
            (
                json!({"config": "Error"}),
                "key `unprovenPhase.config`: `config` is always Failed (a configuration error)",
            ),
            (
                json!({"stale": "Paused"}),
                "key `unprovenPhase.stale`: unknown phase `Paused`",
            ),
            (
                json!({"stale": 1}),
                "key `unprovenPhase.stale` must be `Inconclusive` or `Error`",
            ),
            (json!(["no-traffic"]), "key `unprovenPhase` must be a map"),
        ];
        for (value, expected) in cases {
            let error = PhaseMap::parse(&value).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{value}: {error}");
        }
    }
}
