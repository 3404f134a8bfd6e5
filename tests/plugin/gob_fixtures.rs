//! The committed gob streams (tests/fixtures/gob, written by Go's encoding/gob: tests/go/gobgen) and their decoding.
use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::BytesMut;
use rollouts_guardrails::codec::gob::{Decoder, Value};

/// A committed stream's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gob")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Decodes every value of a complete stream.
pub fn decode_all(bytes: &[u8]) -> Result<(Vec<Value>, Decoder)> {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(bytes);
    let mut values = Vec::new();
    while !buf.is_empty() {
        let value = decoder
            .decode(&mut buf)?
            .with_context(|| format!("incomplete value after {} values", values.len()))?;
        values.push(value);
    }
    Ok((values, decoder))
}
