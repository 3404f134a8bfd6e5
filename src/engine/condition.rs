//! Argo's `successCondition` / `failureCondition`: expr-lang expressions over `result`, evaluated the way
//! Argo Rollouts' Prometheus provider evaluates them (`utils/evaluate` in argo-rollouts), with one
//! difference that is the point of this project: an outcome that is neither success nor failure
//! (Argo's `Inconclusive`) is reported as such, and the engine turns it into `Failed`.
//!
//! `result` is bound as Argo binds it: a list of floats for an instant vector, a float for a scalar. The
//! helpers `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil` and `default` are available, as in Argo.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use expr::{Context, Environment, Program, Value};

/// The query result a condition sees.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionInput {
    Vector(Vec<f64>),
    Scalar(f64),
}

/// What the conditions concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Successful,
    Failed,
    /// Neither condition held (both set, neither true): Argo's `Inconclusive`.
    Inconclusive,
}

/// A condition that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("{which} `{condition}` could not be evaluated: {reason}")]
    Evaluation {
        which: &'static str,
        condition: String,
        reason: String,
    },
    #[error("{which} `{condition}` returned {got}, expected true or false")]
    NotBoolean {
        which: &'static str,
        condition: String,
        got: String,
    },
}

/// Evaluates the metric's conditions against `input`. Both empty is the caller's business (a configuration
/// error for this plugin); here it yields `Successful`, as Argo does.
pub fn evaluate(
    input: &ConditionInput,
    success: &str,
    failure: &str,
) -> Result<Outcome, ConditionError> {
    let mut context = Context::default();
    context.insert("result", result_value(input));
    let check = |which: &'static str, condition: &str| -> Result<Option<bool>, ConditionError> {
        if condition.trim().is_empty() {
            return Ok(None);
        }
        let evaluation = |reason: String| ConditionError::Evaluation {
            which,
            condition: condition.to_string(),
            reason,
        };
        let program = compiled(condition).map_err(|e| evaluation(e.to_string()))?;
        let value = environment()
            .run(&program, &context)
            .map_err(|e| evaluation(e.to_string()))?;
        match value {
            Value::Bool(b) => Ok(Some(b)),
            other => Err(ConditionError::NotBoolean {
                which,
                condition: condition.to_string(),
                got: format!("{other:?}"),
            }),
        }
    };
    let success = check("successCondition", success)?;
    let failure = check("failureCondition", failure)?;
    Ok(match (success, failure) {
        (None, None) => Outcome::Successful,
        (Some(s), None) => {
            if s {
                Outcome::Successful
            } else {
                Outcome::Failed
            }
        }
        (None, Some(f)) => {
            if f {
                Outcome::Failed
            } else {
                Outcome::Successful
            }
        }
        (Some(_), Some(true)) => Outcome::Failed,
        (Some(true), Some(false)) => Outcome::Successful,
        (Some(false), Some(false)) => Outcome::Inconclusive,
    })
}

/// How many distinct compiled conditions are kept; past it the cache starts over (templates hold a handful).
pub const MAX_CACHED_CONDITIONS: usize = 1024;

/// A condition compiled once per distinct text: a metric is measured every interval with the same condition,
/// and parsing dominated a measurement's CPU time (BENCHMARKS.md).
fn compiled(condition: &str) -> Result<Arc<Program>, expr::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Program>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(program) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(condition)
    {
        return Ok(program.clone());
    }
    let program = Arc::new(expr::compile(condition)?);
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_CACHED_CONDITIONS {
        cache.clear();
    }
    cache.insert(condition.to_string(), program.clone());
    Ok(program)
}

/// Checks that a condition parses, so a template error is reported before any query runs.
pub fn validate(which: &'static str, condition: &str) -> Result<(), ConditionError> {
    if condition.trim().is_empty() {
        return Ok(());
    }
    compiled(condition)
        .map(|_| ())
        .map_err(|e| ConditionError::Evaluation {
            which,
            condition: condition.to_string(),
            reason: e.to_string(),
        })
}

fn result_value(input: &ConditionInput) -> Value {
    match input {
        ConditionInput::Vector(values) => {
            Value::Array(values.iter().map(|v| Value::Float(*v)).collect())
        }
        ConditionInput::Scalar(v) => Value::Float(*v),
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn argument_error(function: &str) -> expr::Error {
    expr::Error::ExprError(format!("{function}() expects one number or numeric string"))
}

fn result_is_nil(result: Option<&Value>) -> bool {
    match result {
        None | Some(Value::Nil) => true,
        Some(Value::Array(values)) => values.is_empty(),
        Some(_) => false,
    }
}

/// Argo's helper functions, built once: they read `result` from the evaluation's context.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        env.add_function("asInt", |call| {
            let [value] = call.args.as_slice() else {
                return Err(argument_error("asInt"));
            };
            match value {
                Value::Integer(i) => Ok(Value::Integer(*i)),
                Value::Float(f) if f.fract() == 0.0 && f.is_finite() => {
                    Ok(Value::Integer(*f as i64))
                }
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::Integer)
                    .map_err(|_| argument_error("asInt")),
                _ => Err(argument_error("asInt")),
            }
        });
        env.add_function("asFloat", |call| {
            let [value] = call.args.as_slice() else {
                return Err(argument_error("asFloat"));
            };
            number(value)
                .map(Value::Float)
                .ok_or_else(|| argument_error("asFloat"))
        });
        env.add_function("isNaN", |call| {
            let [value] = call.args.as_slice() else {
                return Err(argument_error("isNaN"));
            };
            number(value)
                .map(|n| Value::Bool(n.is_nan()))
                .ok_or_else(|| argument_error("isNaN"))
        });
        env.add_function("isInf", |call| {
            let [value] = call.args.as_slice() else {
                return Err(argument_error("isInf"));
            };
            number(value)
                .map(|n| Value::Bool(n.is_infinite()))
                .ok_or_else(|| argument_error("isInf"))
        });
        env.add_function("isNil", |call| {
            Ok(Value::Bool(result_is_nil(call.ctx.get("result"))))
        });
        env.add_function("default", |call| {
            let result = call.ctx.get("result");
            if result_is_nil(result) {
                Ok(call.args.last().cloned().unwrap_or(Value::Nil))
            } else {
                Ok(result.cloned().unwrap_or(Value::Nil))
            }
        });
        env
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_results_are_lists_of_floats() {
        let input = ConditionInput::Vector(vec![0.97, 0.99]);
        assert_eq!(
            evaluate(&input, "result[0] >= 0.95", ""),
            Ok(Outcome::Successful)
        );
        assert_eq!(
            evaluate(&input, "all(result, # >= 0.98)", ""),
            Ok(Outcome::Failed)
        );
        assert_eq!(
            evaluate(&input, "len(result) == 2", ""),
            Ok(Outcome::Successful)
        );
    }

    #[test]
    fn scalar_results_are_floats() {
        let input = ConditionInput::Scalar(0.5);
        assert_eq!(evaluate(&input, "result < 1", ""), Ok(Outcome::Successful));
        assert_eq!(evaluate(&input, "", "result > 0.4"), Ok(Outcome::Failed));
        assert_eq!(
            evaluate(&input, "", "result > 0.6"),
            Ok(Outcome::Successful)
        );
    }

    #[test]
    fn both_conditions_follow_argo_and_expose_inconclusive() {
        let input = ConditionInput::Scalar(5.0);
        assert_eq!(
            evaluate(&input, "result < 10", "result > 20"),
            Ok(Outcome::Successful)
        );
        assert_eq!(
            evaluate(&input, "result < 10", "result > 1"),
            Ok(Outcome::Failed)
        );
        assert_eq!(
            evaluate(&input, "result < 1", "result > 20"),
            Ok(Outcome::Inconclusive)
        );
    }

    #[test]
    fn argo_helper_functions() {
        let input = ConditionInput::Vector(vec![3.0]);
        assert_eq!(
            evaluate(&input, r#"asInt("3") == 3 && asFloat("0.5") == 0.5"#, ""),
            Ok(Outcome::Successful)
        );
        assert_eq!(
            evaluate(
                &input,
                "!isNaN(result[0]) && !isInf(result[0]) && !isNil()",
                ""
            ),
            Ok(Outcome::Successful)
        );
        assert_eq!(
            evaluate(&ConditionInput::Vector(vec![]), "isNil()", ""),
            Ok(Outcome::Successful)
        );
    }

    #[test]
    fn a_cached_condition_sees_each_evaluation_s_own_result() {
        // Compiled once, evaluated against different results: nothing of an earlier evaluation leaks.
        for _ in 0..2 {
            assert_eq!(
                evaluate(&ConditionInput::Vector(vec![]), "isNil()", ""),
                Ok(Outcome::Successful)
            );
            assert_eq!(
                evaluate(&ConditionInput::Vector(vec![1.0]), "isNil()", ""),
                Ok(Outcome::Failed)
            );
            assert_eq!(
                evaluate(&ConditionInput::Scalar(2.0), "default(result, 0) == 2", ""),
                Ok(Outcome::Successful)
            );
            assert_eq!(
                evaluate(
                    &ConditionInput::Vector(vec![]),
                    "default(result, 7) == 7",
                    ""
                ),
                Ok(Outcome::Successful)
            );
        }
    }

    #[test]
    fn errors_are_reported_not_guessed() {
        let input = ConditionInput::Scalar(1.0);
        assert!(matches!(
            evaluate(&input, "result +", ""),
            Err(ConditionError::Evaluation { .. })
        ));
        assert!(matches!(
            evaluate(&input, "result + 1", ""),
            Err(ConditionError::NotBoolean { .. })
        ));
        assert!(matches!(
            evaluate(&ConditionInput::Vector(vec![]), "result[0] > 1", ""),
            Err(_) | Ok(Outcome::Failed)
        ));
        assert!(validate("successCondition", "result >").is_err());
        assert!(validate("successCondition", "result[0] > 1").is_ok());
    }
}
