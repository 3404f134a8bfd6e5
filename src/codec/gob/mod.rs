//! Go `encoding/gob`: a self-describing decoder into a dynamic value and an encoder for replies.
//!
//! TEMPORARY (helper/transport branch only): a minimal private implementation of the API fixed in
//! `/work/briefs/gob-api.md`, written so the transport can be built and tested against real Go peers before
//! the gob helper's codec lands. It is replaced wholesale by that codec at merge time; nothing outside this
//! module relies on more than the contract's API. Wire format: `/work/shared/spec/gob.md`.
pub mod decode;
pub mod encode;
pub mod time;
pub mod types;
pub mod value;

pub use decode::{DecodeError, Decoder, Limits};
pub use encode::{EncodeError, Encoder};
pub use types::{StructType, Type};
pub use value::{Interface, Struct, Value};
