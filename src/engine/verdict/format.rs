//! Numbers, instants and lists as messages show them.
use std::time::{SystemTime, UNIX_EPOCH};

/// `3` for whole numbers, `0.25` otherwise, `NaN`/`+Inf`/`-Inf` as Prometheus spells them.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Seconds since the Unix epoch as a float (Prometheus' timestamps).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `a, b, c and 4 more`.
pub fn join_limited<'a>(items: impl Iterator<Item = &'a str>, limit: usize) -> String {
    let items: Vec<&str> = items.collect();
    if items.len() <= limit {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..limit].join(", "),
        items.len() - limit
    )
}
