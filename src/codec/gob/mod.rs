//! Go `encoding/gob`: a self-describing decoder into a dynamic value and an encoder for replies.
//!
//! Spec: `docs/wire/gob.md`, verified against Go's `src/encoding/gob` and golden vectors written by a
//! real Go peer (`tests/go/gobgen`, `tests/fixtures/gob`).
//!
//! - [`wire`]: uint/int/float primitives.
//! - [`types`]: predefined ids, the peer's wire type definitions, our encoder's type descriptors.
//! - [`value`]: the dynamic [`Value`] and its accessors.
//! - [`decode`]: the stream [`Decoder`] (definitions kept per stream, bounded by [`Limits`]).
//! - [`encode`]: the stream [`Encoder`] (definitions sent once per stream, ids from 65).
//! - [`time`]: Go's `time.Time` binary form, the payload of `metav1.Time` fields.

pub mod decode;
pub mod encode;
pub mod time;
pub mod types;
pub mod value;
pub mod wire;

pub use decode::{DecodeError, Decoder, Limits};
pub use encode::{EncodeError, Encoder};
pub use types::{StructType, Type};
pub use value::{Interface, Struct, Value};
