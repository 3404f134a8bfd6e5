//! The plugin configuration parser (`metric.provider.plugin["rollouts-guardrails/prometheus"]`, JSON the
//! AnalysisTemplate author controls) on arbitrary bytes, then the settings it resolves to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::engine::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_json(data) {
        let _ = config.settings();
    }
});
