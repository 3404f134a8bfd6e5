//! The plugin configuration parser (`metric.provider.plugin["rollouts-guardrails/prometheus"]`, JSON the
//! AnalysisTemplate author controls) on arbitrary bytes, then the queries its guardrail plans for a
//! placeholder target (every configured name reaches PromQL there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::engine::config::Config;
use rollouts_guardrails::engine::promql::Matchers;
use rollouts_guardrails::engine::target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_json(data) {
        if let Ok(placeholder) = target::placeholder(&config, &Matchers::default()) {
            let _ = config.settings.plan(&placeholder);
        }
    }
});
