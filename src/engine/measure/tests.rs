use super::*;

#[test]
fn settle_is_bounded_wherever_it_is_set() {
    assert_eq!(settle::parse("0s"), Ok(Duration::ZERO));
    assert_eq!(settle::parse("3m"), Ok(Duration::from_secs(180)));
    assert!(settle::parse("31m")
        .unwrap_err()
        .contains("longer than 30m"));
    assert!(settle::parse("soon").is_err());
    let err = Config::from_json(br#"{"guardrail":"restarts","settle":"2h"}"#).unwrap_err();
    assert_eq!(err.to_string(), "key `settle`: must be at most 30m");
    let config = Config::from_json(br#"{"guardrail":"restarts","settle":"45s"}"#).unwrap();
    assert_eq!(config.common.settle, Some(Duration::from_secs(45)));
}
