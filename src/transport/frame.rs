//! The yamux frame header: a pure 12-byte codec, no I/O.
//!
//! Spec: hashicorp/yamux `spec.md` (summarised in `docs/wire/go-plugin-netrpc.md`). All fields are
//! big-endian: version (u8), type (u8), flags (u16), stream id (u32), length (u32).

/// Bytes in every frame header.
pub const HEADER_LEN: usize = 12;
/// The only protocol version hashicorp/yamux speaks.
pub const PROTOCOL_VERSION: u8 = 0;
/// The stream id of session-level frames (Ping, GoAway).
pub const SESSION_STREAM_ID: u32 = 0;

/// GoAway codes.
pub const GO_AWAY_NORMAL: u32 = 0;
pub const GO_AWAY_PROTOCOL_ERROR: u32 = 1;
pub const GO_AWAY_INTERNAL_ERROR: u32 = 2;

/// What a frame carries; the meaning of `length` depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// `length` payload bytes follow the header.
    Data,
    /// `length` is a receive-window delta.
    WindowUpdate,
    /// `length` is an opaque value echoed in the ACK.
    Ping,
    /// `length` is a GoAway code.
    GoAway,
}

impl FrameType {
    fn to_wire(self) -> u8 {
        match self {
            FrameType::Data => 0,
            FrameType::WindowUpdate => 1,
            FrameType::Ping => 2,
            FrameType::GoAway => 3,
        }
    }
}

/// The flags field (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u16);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Opens a stream (or starts a ping).
    pub const SYN: Flags = Flags(0x1);
    /// Acknowledges a stream open (or answers a ping).
    pub const ACK: Flags = Flags(0x2);
    /// Half-closes the sender's direction of a stream.
    pub const FIN: Flags = Flags(0x4);
    /// Resets a stream.
    pub const RST: Flags = Flags(0x8);

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub frame_type: FrameType,
    pub flags: Flags,
    pub stream_id: u32,
    pub length: u32,
}

/// A header this implementation cannot accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("yamux: unsupported protocol version {0}")]
    Version(u8),
    #[error("yamux: unknown frame type {0}")]
    Type(u8),
}

/// Encodes a header.
pub fn encode(header: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = PROTOCOL_VERSION;
    out[1] = header.frame_type.to_wire();
    out[2..4].copy_from_slice(&header.flags.0.to_be_bytes());
    out[4..8].copy_from_slice(&header.stream_id.to_be_bytes());
    out[8..12].copy_from_slice(&header.length.to_be_bytes());
    out
}

/// Decodes a header.
pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
    if bytes[0] != PROTOCOL_VERSION {
        return Err(FrameError::Version(bytes[0]));
    }
    let frame_type = match bytes[1] {
        0 => FrameType::Data,
        1 => FrameType::WindowUpdate,
        2 => FrameType::Ping,
        3 => FrameType::GoAway,
        other => return Err(FrameError::Type(other)),
    };
    Ok(Header {
        frame_type,
        flags: Flags(u16::from_be_bytes([bytes[2], bytes[3]])),
        stream_id: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        length: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashicorp_window_update_syn_decodes() {
        // What hashicorp/yamux's OpenStream writes for stream 1 under DefaultConfig.
        let bytes = [0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let header = decode(&bytes).expect("valid header");
        assert_eq!(header.frame_type, FrameType::WindowUpdate);
        assert!(header.flags.contains(Flags::SYN));
        assert_eq!((header.stream_id, header.length), (1, 0));
    }

    #[test]
    fn encode_decode_identity() {
        let types = [
            FrameType::Data,
            FrameType::WindowUpdate,
            FrameType::Ping,
            FrameType::GoAway,
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..5000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let header = Header {
                frame_type: types[(i % 4) as usize],
                flags: Flags((seed & 0xFFFF) as u16),
                stream_id: (seed >> 16) as u32,
                length: (seed >> 32) as u32,
            };
            assert_eq!(decode(&encode(&header)), Ok(header));
        }
    }

    #[test]
    fn rejects_unknown_version_and_type() {
        assert_eq!(decode(&[1; HEADER_LEN]), Err(FrameError::Version(1)));
        let mut bytes = [0u8; HEADER_LEN];
        bytes[1] = 4;
        assert_eq!(decode(&bytes), Err(FrameError::Type(4)));
    }
}
