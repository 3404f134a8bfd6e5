//! The CLI face: `check` and `validate`, as a person or CI runs them.
//!
//! One test target per face (`cargo test --test cli`); the support code is shared by every face.
use guardrails_test_support as support;

mod cli;
mod manifests_validate;
mod validate;
