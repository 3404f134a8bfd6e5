//! The guardrail engine: configuration, PromQL, verdicts.
