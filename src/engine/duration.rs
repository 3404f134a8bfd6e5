//! Durations as template authors write them (`30s`, `5m`, `1h30m`, `500ms`, `1d`): Go's and Prometheus' units.
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration `{0}`: expected a number followed by a unit (ms, s, m, h, d, w), e.g. `5m` or `1h30m`")]
    Invalid(String),
    #[error("duration `{0}` is too large")]
    TooLarge(String),
}

/// Parses `1h30m`, `90s`, `500ms`, `2d`, `1w`. Units are required: a bare `300` is ambiguous and refused.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.to_string());
    let bytes = s.as_bytes();
    let mut total_ms: u128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[start..i];
        if number.is_empty() {
            return Err(invalid());
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit_ms: f64 = match &s[unit_start..i] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "w" => 604_800_000.0,
            _ => return Err(invalid()),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let ms = value * unit_ms;
        if !ms.is_finite() || ms > 1e15 {
            return Err(DurationError::TooLarge(text.to_string()));
        }
        total_ms += ms.round() as u128;
    }
    let total_ms =
        u64::try_from(total_ms).map_err(|_| DurationError::TooLarge(text.to_string()))?;
    Ok(Duration::from_millis(total_ms))
}

/// Renders a duration for messages: `5m`, `1h30m`, `90s` → `1m30s`, `500ms`.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Renders a range for PromQL (`[300s]`): whole seconds, which every Prometheus version accepts.
pub fn promql_range(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn refuses_ambiguous_or_malformed_input() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        for bad in ["300", "5 m", "m", "5x", "-5m", "5m-", "1..5s", "h1", "5M"] {
            assert!(
                matches!(parse(bad), Err(DurationError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("99999999999999w"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_for_people_and_promql() {
        assert_eq!(format(Duration::from_secs(300)), "5m");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(promql_range(Duration::from_secs(600)), "600s");
        assert_eq!(promql_range(Duration::from_millis(10)), "1s");
    }
}
