//! The accept side of go-plugin's MuxBroker: ids handed out by `Dispenser.Dispense`, matched against the
//! 4-byte id each new host stream starts with, echoed back as the ack.
//!
//! Spec: `docs/wire/go-plugin-netrpc.md`, verified against go-plugin v1.6.3 `mux_broker.go`
//! (`Dial` writes the id with `binary.LittleEndian`, reads 4 bytes back and fails with "bad ack" unless they
//! equal the id; `Accept` writes the id back little-endian).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::mux::{Stream, StreamReader, StreamWriter};

/// How long a reserved id waits for its stream, and how long a new stream may take to send its id
/// (go-plugin's MuxBroker uses 5 s for both).
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the id preamble.
const ID_LEN: usize = 4;

/// Why a broker stream was not connected.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker stream {stream} sent no id within {BROKER_TIMEOUT:?}")]
    IdTimeout { stream: u32 },
    #[error("broker stream {stream} ended before sending its id")]
    Truncated { stream: u32 },
    #[error("broker stream {stream} asked for id {id}, which is not reserved (or expired)")]
    UnknownId { stream: u32, id: u32 },
    #[error("cannot send the broker ack on stream {stream}: {source}")]
    Ack {
        stream: u32,
        source: super::mux::MuxError,
    },
}

/// Ids reserved by Dispense and not yet connected.
pub struct Broker {
    state: Mutex<BrokerState>,
}

struct BrokerState {
    next_id: u32,
    pending: HashMap<u32, Instant>,
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            state: Mutex::new(BrokerState {
                next_id: 1,
                pending: HashMap::new(),
            }),
        }
    }
}

/// A connected broker stream, ready for net/rpc; `buffered` holds bytes that followed the id.
pub struct Connected {
    pub reader: StreamReader,
    pub writer: StreamWriter,
    pub buffered: BytesMut,
}

impl Broker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves the next id (1, 2, …) for a stream the host will open within [`BROKER_TIMEOUT`].
    pub fn reserve(&self) -> u32 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        state.pending.retain(|_, deadline| *deadline > now);
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1).max(1);
        state.pending.insert(id, now + BROKER_TIMEOUT);
        id
    }

    fn claim(&self, id: u32) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        matches!(state.pending.remove(&id), Some(deadline) if deadline > Instant::now())
    }

    /// Reads the id preamble of a new host stream, claims the reserved id and acks it. A stream with an
    /// unknown id is reset.
    pub async fn connect(&self, stream: Stream) -> Result<Connected, BrokerError> {
        let (mut reader, writer) = stream.into_split();
        let stream_id = reader.id();
        let mut buffered = BytesMut::new();
        let read_id = async {
            while buffered.len() < ID_LEN {
                match reader.read().await {
                    Some(chunk) => buffered.extend_from_slice(&chunk),
                    None => return Err(BrokerError::Truncated { stream: stream_id }),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(BROKER_TIMEOUT, read_id).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                writer.reset();
                return Err(e);
            }
            Err(_) => {
                writer.reset();
                return Err(BrokerError::IdTimeout { stream: stream_id });
            }
        }
        let preamble = buffered.split_to(ID_LEN);
        let id = u32::from_le_bytes([preamble[0], preamble[1], preamble[2], preamble[3]]);
        if !self.claim(id) {
            writer.reset();
            return Err(BrokerError::UnknownId {
                stream: stream_id,
                id,
            });
        }
        writer
            .write_all(&id.to_le_bytes())
            .await
            .map_err(|source| BrokerError::Ack {
                stream: stream_id,
                source,
            })?;
        Ok(Connected {
            reader,
            writer,
            buffered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_and_are_claimed_once() {
        let broker = Broker::new();
        assert_eq!(broker.reserve(), 1);
        assert_eq!(broker.reserve(), 2);
        assert!(broker.claim(2));
        assert!(!broker.claim(2), "an id connects one stream only");
        assert!(!broker.claim(7), "never reserved");
        assert!(broker.claim(1));
    }
}
