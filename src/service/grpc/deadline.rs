//! The caller's deadline, from the `grpc-timeout` request header (gRPC over HTTP/2, "Timeout": at most 8
//! ASCII digits and a unit, `H` `M` `S` `m` `u` `n`).
//!
//! Spec: <https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md#requests>
use std::time::Duration;

/// The request header carrying the deadline.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";
/// The most digits a `grpc-timeout` value may have.
pub const MAX_TIMEOUT_DIGITS: usize = 8;

/// Parses a `grpc-timeout` value; `None` when it breaks the grammar (the call then has no deadline here, and
/// tonic's own timeout layer ignores it the same way).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty()
        || digits.len() > MAX_TIMEOUT_DIGITS
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The deadline of a request, from its metadata.
pub fn request_deadline(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    metadata
        .get(GRPC_TIMEOUT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn values_breaking_the_grammar_are_no_deadline() {
        for bad in [
            "",
            "S",
            "100",
            "100x",
            "123456789S",
            "-5S",
            "+5S",
            "1.5S",
            "5 S",
            "５S",
            "S５",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_deadline_is_read_from_the_metadata() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(request_deadline(&metadata), None);
        metadata.insert(GRPC_TIMEOUT_HEADER, "1500m".parse().unwrap());
        assert_eq!(
            request_deadline(&metadata),
            Some(Duration::from_millis(1500))
        );
    }
}
