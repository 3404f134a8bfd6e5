//! Go's `time.Time` binary form (TEMPORARY minimal implementation, see `codec::gob`).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 0001-01-01T00:00:00Z (Go's internal epoch) to the Unix epoch.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

/// Why a time blob could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("time: no data")]
    Empty,
    #[error("time: unsupported version {0}")]
    Version(u8),
    #[error("time: invalid length {0}")]
    Length(usize),
    #[error("time: out of range")]
    Range,
}

/// Encodes `t` as version 1, UTC (offset -1).
pub fn encode(t: SystemTime) -> Vec<u8> {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos() as i32),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos() as i32;
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    };
    let mut out = Vec::with_capacity(15);
    out.push(1);
    out.extend_from_slice(&(secs + UNIX_TO_INTERNAL).to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Decodes versions 1 and 2, any offset (the instant does not depend on it).
pub fn decode(bytes: &[u8]) -> Result<SystemTime, TimeError> {
    let version = *bytes.first().ok_or(TimeError::Empty)?;
    let want = match version {
        1 => 15,
        2 => 16,
        v => return Err(TimeError::Version(v)),
    };
    if bytes.len() != want {
        return Err(TimeError::Length(bytes.len()));
    }
    let mut sec = [0u8; 8];
    sec.copy_from_slice(&bytes[1..9]);
    let mut nsec = [0u8; 4];
    nsec.copy_from_slice(&bytes[9..13]);
    let unix = i64::from_be_bytes(sec)
        .checked_sub(UNIX_TO_INTERNAL)
        .ok_or(TimeError::Range)?;
    let nanos = u32::try_from(i32::from_be_bytes(nsec)).map_err(|_| TimeError::Range)?;
    if unix >= 0 {
        UNIX_EPOCH
            .checked_add(Duration::new(unix as u64, nanos))
            .ok_or(TimeError::Range)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(unix.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
            .ok_or(TimeError::Range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_2024_round_trips() {
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let bytes = encode(t);
        assert_eq!(
            bytes,
            [1, 0, 0, 0, 0x0E, 0xDD, 0x23, 0xF7, 0x80, 0, 0, 0, 0, 0xFF, 0xFF]
        );
        assert_eq!(decode(&bytes), Ok(t));
    }
}
