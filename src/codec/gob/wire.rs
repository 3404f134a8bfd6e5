//! Gob's primitive encodings: unsigned and signed integers, floats, and a bounds-checked reader over one
//! buffer. Spec: docs/wire/gob.md (checked against Go's `encoding/gob/encode.go` and
//! `decode.go`: `encodeUint`, `decodeUint`, `encodeInt`, `floatBits`).

use thiserror::Error;

/// Longest byte count a gob uint may declare (`FF`..`F8` = 1..8 bytes); Go: "encoded unsigned integer out of
/// range".
pub const MAX_UINT_BYTES: usize = 8;

/// Why a primitive could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PrimitiveError {
    /// The buffer ended inside the value.
    #[error("buffer ends inside a gob integer")]
    Truncated,
    /// The first byte declared more than [`MAX_UINT_BYTES`] bytes.
    #[error("gob unsigned integer declares {0} bytes, more than 8")]
    TooLong(usize),
}

/// Appends `x` as a gob uint: one byte below 128, else the negated byte count and the minimal big-endian value.
pub fn put_uint(out: &mut Vec<u8>, x: u64) {
    if x < 0x80 {
        out.push(x as u8);
        return;
    }
    let bytes = x.to_be_bytes();
    let skip = (x.leading_zeros() / 8) as usize;
    let n = MAX_UINT_BYTES - skip;
    out.push((-(n as i8)) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends `i` as a gob int (low bit set means "complement on receipt").
pub fn put_int(out: &mut Vec<u8>, i: i64) {
    put_uint(out, int_to_uint(i));
}

/// Appends `f` as a gob float: the IEEE bits byte-reversed, as a uint (so small exponents stay short).
pub fn put_float(out: &mut Vec<u8>, f: f64) {
    put_uint(out, float_to_uint(f));
}

/// Gob's signed-to-unsigned mapping.
pub fn int_to_uint(i: i64) -> u64 {
    if i < 0 {
        ((!i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    }
}

/// Inverse of [`int_to_uint`].
pub fn uint_to_int(u: u64) -> i64 {
    if u & 1 == 1 {
        !((u >> 1) as i64)
    } else {
        (u >> 1) as i64
    }
}

/// Gob's float-to-unsigned mapping.
pub fn float_to_uint(f: f64) -> u64 {
    f.to_bits().swap_bytes()
}

/// Inverse of [`float_to_uint`].
pub fn uint_to_float(u: u64) -> f64 {
    f64::from_bits(u.swap_bytes())
}

/// Reads a gob uint from the front of `buf`: `(value, bytes used)`. Non-minimal forms (`FF 05`) are accepted,
/// as Go accepts them.
pub fn get_uint(buf: &[u8]) -> Result<(u64, usize), PrimitiveError> {
    let first = *buf.first().ok_or(PrimitiveError::Truncated)?;
    if first < 0x80 {
        return Ok((u64::from(first), 1));
    }
    let n = usize::from((first as i8).unsigned_abs());
    if n > MAX_UINT_BYTES {
        return Err(PrimitiveError::TooLong(n));
    }
    let body = buf.get(1..1 + n).ok_or(PrimitiveError::Truncated)?;
    let value = body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok((value, 1 + n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uint_bytes(x: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uint(&mut out, x);
        out
    }

    fn int_bytes(i: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, i);
        out
    }

    #[test]
    fn uint_examples_match_the_spec() {
        assert_eq!(uint_bytes(0), [0x00]);
        assert_eq!(uint_bytes(7), [0x07]);
        assert_eq!(uint_bytes(127), [0x7F]);
        assert_eq!(uint_bytes(128), [0xFF, 0x80]);
        assert_eq!(uint_bytes(256), [0xFE, 0x01, 0x00]);
        assert_eq!(
            uint_bytes(u64::MAX),
            [0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(uint_bytes(1 << 56), [0xF8, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn int_examples_match_the_spec() {
        assert_eq!(int_bytes(0), [0x00]);
        assert_eq!(int_bytes(1), [0x02]);
        assert_eq!(int_bytes(-1), [0x01]);
        assert_eq!(int_bytes(22), [0x2C]);
        assert_eq!(int_bytes(65), [0xFF, 0x82]);
        assert_eq!(int_bytes(-65), [0xFF, 0x81]);
        assert_eq!(int_bytes(-129), [0xFE, 0x01, 0x01]);
        for i in [i64::MIN, i64::MIN + 1, -2, 2, i64::MAX - 1, i64::MAX] {
            assert_eq!(uint_to_int(int_to_uint(i)), i);
            let bytes = int_bytes(i);
            assert_eq!(
                get_uint(&bytes).map(|(u, n)| (uint_to_int(u), n)),
                Ok((i, bytes.len()))
            );
        }
    }

    #[test]
    fn float_examples_match_the_spec() {
        let f = |x: f64| {
            let mut out = Vec::new();
            put_float(&mut out, x);
            out
        };
        assert_eq!(f(17.0), [0xFE, 0x31, 0x40]);
        assert_eq!(f(1.0), [0xFE, 0xF0, 0x3F]);
        assert_eq!(f(0.5), [0xFE, 0xE0, 0x3F]);
        assert_eq!(f(0.0), [0x00]);
        for x in [
            f64::MIN_POSITIVE,
            -0.0,
            f64::MAX,
            f64::INFINITY,
            -1e-300,
            3.25,
        ] {
            assert_eq!(uint_to_float(float_to_uint(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn uint_round_trips_at_every_byte_boundary() {
        for shift in 0..64 {
            for x in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let bytes = uint_bytes(x);
                assert_eq!(get_uint(&bytes), Ok((x, bytes.len())), "x = {x}");
            }
        }
    }

    #[test]
    fn non_minimal_uint_is_accepted() {
        assert_eq!(get_uint(&[0xFF, 0x05]), Ok((5, 2)));
        assert_eq!(get_uint(&[0xF8, 0, 0, 0, 0, 0, 0, 0, 0x07]), Ok((7, 9)));
    }

    #[test]
    fn bad_uints_are_errors_not_panics() {
        assert_eq!(get_uint(&[]), Err(PrimitiveError::Truncated));
        assert_eq!(get_uint(&[0xFE, 0x01]), Err(PrimitiveError::Truncated));
        assert_eq!(
            get_uint(&[0xF7, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(PrimitiveError::TooLong(9))
        );
        assert_eq!(get_uint(&[0x80]), Err(PrimitiveError::TooLong(128)));
    }
}
