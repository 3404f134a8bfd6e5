//! `query`: any PromQL the template author writes, judged by `threshold` (every value at or below it), by
//! Argo's expr-lang `successCondition`/`failureCondition`, or both; the answer must be finite and fresh.
use std::time::SystemTime;

use super::{answer, Answers, Query as PlannedQuery};
use crate::engine::condition::{self, ConditionInput, Outcome};
use crate::engine::config::read::Keys;
use crate::engine::config::{self, Common, Conditions, ConfigError};
use crate::engine::verdict::{
    self, format_number, Failure, FailureClass, FreshResult, Proof, Verdict,
};

pub const SUMMARY: &str = "your own PromQL, judged by `threshold` or the metric's conditions";
pub const KEYS: &[&str] = &["threshold", "query"];

pub mod query_name {
    pub const QUERY: &str = "query";
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub query: String,
    /// Every value above it fails; `None` when the conditions alone judge.
    pub threshold: Option<f64>,
    pub conditions: Conditions,
}

impl Query {
    pub fn parse(keys: &Keys, conditions: &Conditions) -> Result<Query, ConfigError> {
        let query = keys.string("query")?;
        let threshold = config::optional_threshold(keys)?;
        let query = query
            .filter(|q| !q.trim().is_empty())
            .ok_or(ConfigError::Missing("query"))?;
        Ok(Query {
            query,
            threshold,
            conditions: conditions.clone(),
        })
    }

    /// Something must judge the result, and the conditions must compile.
    pub fn check_conditions(&self, conditions: &Conditions) -> Result<(), ConfigError> {
        config::validate_conditions(conditions)?;
        if self.threshold.is_none() && conditions.is_empty() {
            return Err(ConfigError::NothingToJudge);
        }
        Ok(())
    }

    pub fn plan(&self) -> Vec<PlannedQuery> {
        vec![(query_name::QUERY, self.query.clone())]
    }

    pub fn judge(
        &self,
        answers: &Answers,
        common: &Common,
        at: SystemTime,
    ) -> Result<Verdict, Failure> {
        let data = answer(answers, query_name::QUERY)?;
        verdict::answered_at(data, at, common.staleness)?;
        let fresh = FreshResult::prove(data)?;
        let value = fresh.display();
        let fail = |message: String| {
            Ok(Verdict::Fail(Failure {
                class: FailureClass::Threshold,
                message,
                value: value.clone(),
                offenders: Vec::new(),
                awaiting: None,
            }))
        };
        let mut reasons = Vec::new();
        if let Some(limit) = self.threshold {
            let above: Vec<String> = fresh
                .values
                .iter()
                .filter(|v| **v > limit)
                .map(|v| format_number(*v))
                .collect();
            if !above.is_empty() {
                return fail(format!(
                    "{} above threshold {}",
                    above.join(", "),
                    format_number(limit)
                ));
            }
            reasons.push(format!("every value ≤ threshold {}", format_number(limit)));
        }
        let (success, failure) = (&self.conditions.success, &self.conditions.failure);
        if !self.conditions.is_empty() {
            let input = if fresh.scalar {
                ConditionInput::Scalar(fresh.values[0])
            } else {
                ConditionInput::Vector(fresh.values.clone())
            };
            match condition::evaluate(&input, success, failure) {
                Ok(Outcome::Successful) => reasons.push(condition_text(success, failure)),
                Ok(Outcome::Failed) => {
                    return fail(format!("result {value} fails {}", condition_text(success, failure)))
                }
                Ok(Outcome::Inconclusive) => {
                    return fail(format!(
                        "result {value} is inconclusive: neither successCondition `{success}` nor failureCondition `{failure}` holds"
                    ))
                }
                Err(e) => {
                    return Ok(Verdict::Fail(Failure {
                        value,
                        ..Failure::new(FailureClass::Config, e.to_string())
                    }))
                }
            }
        }
        if reasons.is_empty() {
            return Err(Failure::new(
                FailureClass::Config,
                ConfigError::NothingToJudge.to_string(),
            ));
        }
        let message = format!("result {value}: {}", reasons.join("; "));
        Ok(fresh.pass(value, message, Vec::new()))
    }
}

fn condition_text(success: &str, failure: &str) -> String {
    match (success.trim().is_empty(), failure.trim().is_empty()) {
        (false, true) => format!("successCondition `{success}`"),
        (true, false) => format!("failureCondition `{failure}`"),
        _ => format!("successCondition `{success}` / failureCondition `{failure}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::guardrails::testing::{at, config, s};
    use crate::prometheus::QueryData;

    fn judge(threshold: Option<f64>, success: &str, failure: &str, data: QueryData) -> Verdict {
        let query = Query {
            query: "up".into(),
            threshold,
            conditions: Conditions {
                success: success.into(),
                failure: failure.into(),
            },
        };
        let common = config(r#"{"guardrail":"query","query":"up"}"#).common;
        let answers: Answers = [(query_name::QUERY, data)].into();
        query
            .judge(&answers, &common, at())
            .unwrap_or_else(Verdict::Fail)
    }

    #[test]
    fn query_guardrail_threshold_and_conditions() {
        let vector = || QueryData::Vector(vec![s(&[], 0.97), s(&[], 0.99)]);
        assert!(matches!(
            judge(None, "all(result, # >= 0.95)", "", vector()),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            judge(Some(0.98), "", "", vector()),
            Verdict::Fail(_)
        ));
        assert!(matches!(
            judge(Some(1.0), "", "result[0] < 0.98", vector()),
            Verdict::Fail(_)
        ));
        let Verdict::Fail(f) = judge(None, "result[0] > 2", "result[0] > 5", vector()) else {
            panic!()
        };
        assert!(f.message.contains("inconclusive"), "{}", f.message);
        let Verdict::Fail(f) = judge(None, "", "", vector()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
        let Verdict::Fail(f) = judge(None, "true", "", QueryData::Vector(vec![])) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::NoData);
        let Verdict::Fail(f) = judge(None, "result +", "", vector()) else {
            panic!()
        };
        assert_eq!(f.class, FailureClass::Config);
    }
}
