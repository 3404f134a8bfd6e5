//! The Prometheus HTTP API response parser on arbitrary bytes: the 2xx body decoder, the error-body summary
//! used for non-2xx answers, how a body that is not Prometheus' is described (its first bytes taken as a
//! status and a content type), and the sample value parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::prometheus::response::{
    decode_query_response, parse_value, prometheus_error_detail, BodyShape,
};

fuzz_target!(|data: &[u8]| {
    let _ = decode_query_response(data);
    let _ = prometheus_error_detail(data);
    if let [hi, lo, rest @ ..] = data {
        let split = rest.len().min(80);
        let content_type = String::from_utf8_lossy(&rest[..split]).into_owned();
        let shape = BodyShape::of(u16::from_be_bytes([*hi, *lo]), Some(content_type));
        let _ = shape.not_prometheus("http://prometheus:9090/", &rest[split..], false).to_string();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_value(text);
    }
});
