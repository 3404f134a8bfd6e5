//! The gob decoder on arbitrary bytes: a stream of messages decoded value after value with one type table, as
//! a plugin stream is. Any outcome but a panic, a hang or an unbounded allocation is fine.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::codec::gob::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            // A recoverable error consumed its messages; anything else ends the stream, as in the server.
            Err(e) if e.is_recoverable() && buf.len() < before => {}
            Err(_) => break,
        }
    }
});
