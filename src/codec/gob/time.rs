//! Go's `time.Time` binary form (`MarshalBinary`, which `GobEncode` returns, and so what `metav1.Time` sends
//! as a GobEncoderT payload) to and from [`SystemTime`]. Spec: docs/wire/gob.md, checked against
//! Go's `src/time/time.go` (`appendBinary`, `UnmarshalBinary`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Seconds from Go's internal epoch (0001-01-01T00:00:00Z) to the Unix epoch.
pub const UNIX_TO_GO_EPOCH_SECONDS: i64 = 62_135_596_800;
/// Version 1: whole-minute zone offset, 15 bytes.
const VERSION_1: u8 = 1;
/// Version 2: adds the offset's seconds, 16 bytes.
const VERSION_2: u8 = 2;
/// `offsetMin` meaning "location is UTC".
const UTC_OFFSET_MARKER: i16 = -1;

/// Why a time payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("time payload is empty")]
    Empty,
    #[error("time payload has unsupported version {0}")]
    UnsupportedVersion(u8),
    #[error("time payload of version {version} has {len} bytes")]
    InvalidLength { version: u8, len: usize },
    #[error("time payload has nanoseconds {0} outside 0..1e9")]
    BadNanoseconds(i32),
    #[error("time payload of {0} seconds since year 1 is outside the representable range")]
    OutOfRange(i64),
}

/// `t` as Go's `time.Time.MarshalBinary` writes a UTC time: version 1, offset -1.
pub fn encode(t: SystemTime) -> Vec<u8> {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(before) => {
            let d = before.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    };
    let mut out = Vec::with_capacity(15);
    out.push(VERSION_1);
    out.extend_from_slice(&secs.saturating_add(UNIX_TO_GO_EPOCH_SECONDS).to_be_bytes());
    out.extend_from_slice(&(nanos as i32).to_be_bytes());
    out.extend_from_slice(&UTC_OFFSET_MARKER.to_be_bytes());
    out
}

/// The instant in a `MarshalBinary` payload, versions 1 and 2, any zone offset (the offset only selects how
/// Go would display the time; seconds and nanoseconds are absolute).
pub fn decode(bytes: &[u8]) -> Result<SystemTime, TimeError> {
    let version = *bytes.first().ok_or(TimeError::Empty)?;
    let expected = match version {
        VERSION_1 => 15,
        VERSION_2 => 16,
        other => return Err(TimeError::UnsupportedVersion(other)),
    };
    if bytes.len() != expected {
        return Err(TimeError::InvalidLength {
            version,
            len: bytes.len(),
        });
    }
    let mut sec = [0u8; 8];
    sec.copy_from_slice(&bytes[1..9]);
    let sec = i64::from_be_bytes(sec);
    let mut nsec = [0u8; 4];
    nsec.copy_from_slice(&bytes[9..13]);
    let nsec = i32::from_be_bytes(nsec);
    if !(0..1_000_000_000).contains(&nsec) {
        return Err(TimeError::BadNanoseconds(nsec));
    }
    let unix = sec
        .checked_sub(UNIX_TO_GO_EPOCH_SECONDS)
        .ok_or(TimeError::OutOfRange(sec))?;
    let nanos = Duration::from_nanos(nsec as u64);
    let instant = if unix >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(unix as u64) + nanos)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(unix.unsigned_abs()))
            .and_then(|t| t.checked_add(nanos))
    };
    instant.ok_or(TimeError::OutOfRange(sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_year_2024_matches_go() {
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let bytes = encode(t);
        assert_eq!(
            bytes,
            [0x01, 0, 0, 0, 0x0E, 0xDD, 0x23, 0xF7, 0x80, 0, 0, 0, 0, 0xFF, 0xFF]
        );
        assert_eq!(decode(&bytes), Ok(t));
    }

    #[test]
    fn round_trips_before_and_after_the_unix_epoch() {
        for (secs, nanos, before) in [
            (0, 0, false),
            (1, 5, true),
            (86_400 * 365, 999_999_999, true),
            (3, 1, false),
        ] {
            let d = Duration::new(secs, nanos);
            let t = if before {
                UNIX_EPOCH - d
            } else {
                UNIX_EPOCH + d
            };
            assert_eq!(decode(&encode(t)), Ok(t));
        }
    }

    #[test]
    fn version_2_and_local_offsets_decode_to_the_same_instant() {
        let mut v2 = encode(UNIX_EPOCH + Duration::from_secs(10));
        v2[0] = 2;
        v2[13..15].copy_from_slice(&330i16.to_be_bytes());
        v2.push(30);
        assert_eq!(decode(&v2), Ok(UNIX_EPOCH + Duration::from_secs(10)));
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert_eq!(decode(&[]), Err(TimeError::Empty));
        assert_eq!(decode(&[3; 15]), Err(TimeError::UnsupportedVersion(3)));
        assert_eq!(
            decode(&[1; 16]),
            Err(TimeError::InvalidLength {
                version: 1,
                len: 16
            })
        );
        let mut bad_nanos = encode(UNIX_EPOCH);
        bad_nanos[9..13].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(decode(&bad_nanos), Err(TimeError::BadNanoseconds(-1)));
        let mut far = encode(UNIX_EPOCH);
        far[1..9].copy_from_slice(&i64::MIN.to_be_bytes());
        assert!(matches!(decode(&far), Err(TimeError::OutOfRange(_))));
    }
}
