//! The Prometheus HTTP API response parser on arbitrary bytes: the 2xx body decoder, the error-body summary
//! used for non-2xx answers, and the sample value parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::prometheus::response::{
    decode_query_response, http_error_detail, parse_value,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_query_response(data);
    let _ = http_error_detail(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_value(text);
    }
});
