//! The gob stream decoder: reads the peer's type definitions (kept for the stream's lifetime) and decodes each
//! top-level value into a dynamic [`Value`] driven only by those wire types. Spec: `docs/wire/gob.md`
//! §1, §3, §4 (checked against Go's `encoding/gob/decoder.go` `decodeTypeSequence` and `decode.go`).
//!
//! The decoder asks "is a whole value here?" first: [`Decoder::decode`] returns `Ok(None)` without consuming
//! anything or changing state when the bytes end early, so callers can feed it partial reads. Every length and
//! count a peer declares is checked against the bytes present (and the [`Limits`]) before anything is
//! allocated.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use thiserror::Error;

use super::types::{
    TypeId, WireType, BOOL_ID, BYTES_ID, COMPLEX_ID, FIRST_USER_ID, FLOAT_ID, INTERFACE_ID, INT_ID,
    STRING_ID, UINT_ID,
};
use super::value::{Interface, Struct, Value};
use super::wire::{get_uint, uint_to_float, uint_to_int, PrimitiveError};

/// Default cap on one message: the most bytes a peer can make us buffer for a single message.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 << 20;
/// Default cap on value nesting (structs, collections, interfaces); Argo's deepest real values nest ~20.
pub const DEFAULT_MAX_DEPTH: usize = 100;
/// Default cap on the values one top-level value may contain, bounding memory to a small multiple of this.
pub const DEFAULT_MAX_VALUES: usize = 4 << 20;
/// Default cap on type definitions per stream (the controller sends a few hundred for `RunArgs`).
pub const DEFAULT_MAX_TYPES: usize = 10_000;
/// Longest registered interface name accepted (Go: "name too long").
pub const MAX_INTERFACE_NAME_LEN: u64 = 1024;
/// Most elements pre-allocated for a collection before its elements are actually read.
const MAX_PREALLOCATED_ELEMENTS: usize = 1024;

/// Input bounds for one decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest message accepted; a longer declared length is a fatal error.
    pub max_message_len: usize,
    /// Deepest nesting of values accepted.
    pub max_depth: usize,
    /// Most values (including every element and field) in one top-level value.
    pub max_values: usize,
    /// Most type definitions accepted over the stream's lifetime.
    pub max_types: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_values: DEFAULT_MAX_VALUES,
            max_types: DEFAULT_MAX_TYPES,
        }
    }
}

/// Why a value could not be decoded. See [`DecodeError::is_recoverable`] for what the stream can do next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A message length prefix was malformed.
    #[error("malformed gob message length: {0}")]
    BadLength(PrimitiveError),
    /// A message declared more bytes than [`Limits::max_message_len`].
    #[error("gob message of {len} bytes exceeds the limit of {limit} bytes")]
    MessageTooLong { len: u64, limit: usize },
    /// A definition used an id reserved for predefined types.
    #[error("gob type definition uses reserved id {0}")]
    ReservedTypeId(i64),
    /// A definition repeated an id already defined on this stream (Go: "duplicate type received").
    #[error("gob type id {0} defined twice")]
    DuplicateType(i64),
    /// More definitions than [`Limits::max_types`].
    #[error("more than {0} gob type definitions on one stream")]
    TooManyTypes(usize),
    /// A definition message could not be parsed.
    #[error("malformed gob type definition for id {id}: {reason}")]
    BadDefinition { id: i64, reason: String },
    /// A top-level definition message had bytes after the definition (Go: "extra data in buffer").
    #[error("extra data after gob type definition for id {0}")]
    ExtraData(i64),
    /// A value failed after it had already pulled in further messages, so the stream position is lost.
    #[error("{0} (inside a value spanning several messages: stream out of sync)")]
    Desync(Box<DecodeError>),
    /// A zero-length message.
    #[error("empty gob message")]
    EmptyMessage,
    /// A value referred to a type id that was never defined.
    #[error("unknown gob type id {0}")]
    UnknownType(i64),
    /// The message ended inside a value.
    #[error("gob message ends inside {0}")]
    Truncated(&'static str),
    /// Data that cannot be what it claims to be.
    #[error("malformed gob data: {0}")]
    Malformed(&'static str),
    /// An integer declared more than eight bytes.
    #[error("bad gob integer: {0}")]
    BadUint(PrimitiveError),
    /// A string, byte slice or name is longer than the rest of its message.
    #[error("gob length {len} exceeds the {remaining} bytes left in the message")]
    LengthOutOfRange { len: u64, remaining: usize },
    /// A struct field delta pointed past the last field of the wire type.
    #[error("gob field number {field} out of bounds for struct {type_name:?}")]
    FieldOutOfBounds { type_name: String, field: u64 },
    /// A top-level non-struct value did not start with the `0` delta.
    #[error("gob singleton value has non-zero delta {0}")]
    NonZeroSingletonDelta(u64),
    /// An array value's length differed from its type's.
    #[error("gob array of length {got} for a type of length {expected}")]
    ArrayLength { expected: i64, got: u64 },
    /// An interface name longer than [`MAX_INTERFACE_NAME_LEN`].
    #[error("gob interface name of {0} bytes is too long")]
    InterfaceNameTooLong(u64),
    /// A value nested deeper than [`Limits::max_depth`].
    #[error("gob value nests deeper than {0}")]
    TooDeep(usize),
    /// A value held more than [`Limits::max_values`] values.
    #[error("gob value holds more than {0} values")]
    TooManyValues(usize),
}

impl DecodeError {
    /// True when the offending message(s) were consumed and the stream is still in sync, so the caller may keep
    /// decoding (e.g. fail one call); false when the stream is unusable and must be closed.
    pub fn is_recoverable(&self) -> bool {
        !matches!(
            self,
            DecodeError::BadLength(_)
                | DecodeError::MessageTooLong { .. }
                | DecodeError::ReservedTypeId(_)
                | DecodeError::DuplicateType(_)
                | DecodeError::TooManyTypes(_)
                | DecodeError::BadDefinition { .. }
                | DecodeError::ExtraData(_)
                | DecodeError::Desync(_)
        )
    }
}

/// An attempt either lacks bytes (try again later, nothing consumed) or failed.
enum Fail {
    Incomplete,
    Error(DecodeError),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Self {
        Fail::Error(e)
    }
}

type Attempt<T> = Result<T, Fail>;

/// One per stream direction; keeps the peer's type definitions for the stream's lifetime.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Definitions received so far, by id (shared so values can hold them while more arrive).
    types: HashMap<TypeId, Arc<WireType>>,
    limits: Limits,
}

impl Decoder {
    /// A decoder with [`Limits::default`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            types: HashMap::new(),
            limits,
        }
    }

    /// How many type definitions the peer has sent on this stream.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// The definition the peer sent for `id`, if any.
    pub fn wire_type(&self, id: TypeId) -> Option<&WireType> {
        self.types.get(&id).map(|t| &**t)
    }

    /// Decodes one complete top-level value (including any type-definition messages before it and the
    /// multi-message interface case of gob.md §4.2) from the front of `buf`.
    ///
    /// `Ok(None)`: not enough bytes yet; nothing is consumed and no state changes. `Ok(Some(v))`: the value's
    /// bytes are consumed. `Err(e)`: see [`DecodeError::is_recoverable`]; when recoverable, the offending
    /// messages were consumed (and definitions that arrived before them are kept).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, DecodeError> {
        let mut attempt = Reader::new(&self.types, &buf[..], self.limits);
        let result = attempt.top_level();
        let (consumed, pending) = (attempt.cursor.msg_end, attempt.pending);
        match result {
            Ok(value) => {
                self.types.extend(pending);
                buf.advance(consumed);
                Ok(Some(value))
            }
            Err(Fail::Incomplete) => Ok(None),
            Err(Fail::Error(e)) => {
                if e.is_recoverable() {
                    self.types.extend(pending);
                    buf.advance(consumed);
                }
                Err(e)
            }
        }
    }
}

/// A position in the buffered stream, inside the current message `[pos, msg_end)`.
struct Cursor<'a> {
    stream: &'a [u8],
    pos: usize,
    msg_end: usize,
    max_message_len: usize,
    /// Messages entered so far in this attempt.
    messages: usize,
}

impl<'a> Cursor<'a> {
    /// Enters the next message; it must be wholly present. Only valid at the end of the current one.
    fn next_message(&mut self) -> Attempt<()> {
        let rest = self.stream.get(self.msg_end..).unwrap_or_default();
        let (len, used) = match get_uint(rest) {
            Ok(v) => v,
            Err(PrimitiveError::Truncated) => return Err(Fail::Incomplete),
            Err(e) => return Err(DecodeError::BadLength(e).into()),
        };
        if len > self.max_message_len as u64 {
            return Err(DecodeError::MessageTooLong {
                len,
                limit: self.max_message_len,
            }
            .into());
        }
        let start = self.msg_end + used;
        // len <= max_message_len, so this cannot overflow.
        let end = start + len as usize;
        if end > self.stream.len() {
            return Err(Fail::Incomplete);
        }
        self.pos = start;
        self.msg_end = end;
        self.messages += 1;
        Ok(())
    }

    fn at_end(&self) -> bool {
        self.pos >= self.msg_end
    }

    fn remaining(&self) -> usize {
        self.msg_end - self.pos
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        match get_uint(&self.stream[self.pos..self.msg_end]) {
            Ok((v, used)) => {
                self.pos += used;
                Ok(v)
            }
            Err(PrimitiveError::Truncated) => Err(DecodeError::Truncated("an integer")),
            Err(e) => Err(DecodeError::BadUint(e)),
        }
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        self.uint().map(uint_to_int)
    }

    /// `len` bytes of the current message, checked before use.
    fn bytes(&mut self, len: u64) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(DecodeError::LengthOutOfRange { len, remaining });
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.stream[start..self.pos])
    }

    /// A length-prefixed byte string.
    fn byte_string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.uint()?;
        self.bytes(len)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        self.byte_string()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// One decode attempt: definitions read during it stay in `pending` until the caller commits them.
struct Reader<'d, 'a> {
    committed: &'d HashMap<TypeId, Arc<WireType>>,
    pending: HashMap<TypeId, Arc<WireType>>,
    cursor: Cursor<'a>,
    limits: Limits,
    values: usize,
}

impl<'d, 'a> Reader<'d, 'a> {
    fn new(
        committed: &'d HashMap<TypeId, Arc<WireType>>,
        stream: &'a [u8],
        limits: Limits,
    ) -> Self {
        Reader {
            committed,
            pending: HashMap::new(),
            cursor: Cursor {
                stream,
                pos: 0,
                msg_end: 0,
                max_message_len: limits.max_message_len,
                messages: 0,
            },
            limits,
            values: 0,
        }
    }

    /// Go's `decodeTypeSequence(false)` followed by `decodeValue`.
    fn top_level(&mut self) -> Attempt<Value> {
        loop {
            self.cursor.next_message()?;
            if self.cursor.at_end() {
                return Err(DecodeError::EmptyMessage.into());
            }
            let id = self.cursor.int()?;
            if id < 0 {
                let id = id.checked_neg().unwrap_or(i64::MAX);
                self.define(id)?;
                if !self.cursor.at_end() {
                    return Err(DecodeError::ExtraData(id).into());
                }
                continue;
            }
            let messages_before = self.cursor.messages;
            return match self.top_level_value(id, 0) {
                Err(Fail::Error(e)) if self.cursor.messages > messages_before => {
                    Err(DecodeError::Desync(Box::new(e)).into())
                }
                other => other,
            };
        }
    }

    fn lookup(&self, id: TypeId) -> Result<Arc<WireType>, DecodeError> {
        self.committed
            .get(&id)
            .or_else(|| self.pending.get(&id))
            .cloned()
            .ok_or(DecodeError::UnknownType(id))
    }

    /// Reads the wireType for `id` from the current message and records it as pending.
    fn define(&mut self, id: TypeId) -> Attempt<()> {
        if id < FIRST_USER_ID {
            return Err(DecodeError::ReservedTypeId(id).into());
        }
        if self.committed.contains_key(&id) || self.pending.contains_key(&id) {
            return Err(DecodeError::DuplicateType(id).into());
        }
        if self.committed.len() + self.pending.len() >= self.limits.max_types {
            return Err(DecodeError::TooManyTypes(self.limits.max_types).into());
        }
        let wire = read_wire_type(&mut self.cursor).map_err(|e| DecodeError::BadDefinition {
            id,
            reason: e.to_string(),
        })?;
        self.pending.insert(id, Arc::new(wire));
        Ok(())
    }

    /// A value in top-level form: a struct directly, anything else as a singleton behind a `0` delta.
    fn top_level_value(&mut self, id: TypeId, depth: usize) -> Attempt<Value> {
        if id >= FIRST_USER_ID {
            let wire = self.lookup(id)?;
            if let WireType::Struct { name, fields } = &*wire {
                return self.struct_value(name, fields, depth);
            }
        }
        let delta = self.cursor.uint()?;
        if delta != 0 {
            return Err(DecodeError::NonZeroSingletonDelta(delta).into());
        }
        self.value(id, depth)
    }

    fn value(&mut self, id: TypeId, depth: usize) -> Attempt<Value> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::TooDeep(self.limits.max_depth).into());
        }
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(DecodeError::TooManyValues(self.limits.max_values).into());
        }
        let c = &mut self.cursor;
        Ok(match id {
            BOOL_ID => Value::Bool(c.uint()? != 0),
            INT_ID => Value::Int(c.int()?),
            UINT_ID => Value::Uint(c.uint()?),
            FLOAT_ID => Value::Float(uint_to_float(c.uint()?)),
            COMPLEX_ID => {
                let re = uint_to_float(c.uint()?);
                Value::Complex(re, uint_to_float(c.uint()?))
            }
            BYTES_ID => Value::Bytes(c.byte_string()?.to_vec()),
            STRING_ID => Value::String(c.string()?),
            INTERFACE_ID => self.interface(depth)?,
            _ if id < FIRST_USER_ID => return Err(DecodeError::UnknownType(id).into()),
            _ => {
                let wire = self.lookup(id)?;
                match &*wire {
                    WireType::Struct { name, fields } => self.struct_value(name, fields, depth)?,
                    WireType::Slice { elem, .. } => {
                        let len = self.cursor.uint()?;
                        Value::Slice(self.elements(len, &[*elem], depth)?)
                    }
                    WireType::Array { elem, len, .. } => {
                        let got = self.cursor.uint()?;
                        if i64::try_from(got).ok() != Some(*len) {
                            return Err(DecodeError::ArrayLength {
                                expected: *len,
                                got,
                            }
                            .into());
                        }
                        Value::Array(self.elements(got, &[*elem], depth)?)
                    }
                    WireType::Map { key, elem, .. } => {
                        let len = self.cursor.uint()?;
                        let mut flat = self.elements(len, &[*key, *elem], depth)?.into_iter();
                        let mut entries = Vec::with_capacity(flat.len() / 2);
                        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                            entries.push((k, v));
                        }
                        Value::Map(entries)
                    }
                    WireType::Encoded { name } => Value::Encoded {
                        type_name: name.clone(),
                        bytes: self.cursor.byte_string()?.to_vec(),
                    },
                }
            }
        })
    }

    /// `count` groups of values of the types in `group` (one type for slices/arrays, key and value for maps).
    fn elements(&mut self, count: u64, group: &[TypeId], depth: usize) -> Attempt<Vec<Value>> {
        let total = count.saturating_mul(group.len() as u64);
        if total > self.limits.max_values as u64 {
            return Err(DecodeError::TooManyValues(self.limits.max_values).into());
        }
        let mut out = Vec::with_capacity((total as usize).min(MAX_PREALLOCATED_ELEMENTS));
        for _ in 0..count {
            for &ty in group {
                // Every element starts with a byte of the current message (interface elements continue into
                // later messages only after their name), so an exhausted message means a lying count.
                if self.cursor.at_end() {
                    return Err(DecodeError::Truncated("a collection").into());
                }
                out.push(self.value(ty, depth + 1)?);
            }
        }
        Ok(out)
    }

    /// Fields by delta until a `0` delta or the end of the message (Go's `decodeStruct`).
    fn struct_value(
        &mut self,
        name: &str,
        fields: &[(String, TypeId)],
        depth: usize,
    ) -> Attempt<Value> {
        let mut out = Vec::new();
        let mut field: Option<u64> = None;
        while !self.cursor.at_end() {
            let delta = self.cursor.uint()?;
            if delta == 0 {
                break;
            }
            let number = field.map_or(Some(delta - 1), |f| f.checked_add(delta));
            let Some((number, (field_name, ty))) =
                number.and_then(|n| Some((n, fields.get(usize::try_from(n).ok()?)?)))
            else {
                return Err(DecodeError::FieldOutOfBounds {
                    type_name: name.to_owned(),
                    field: field.map_or(delta - 1, |f| f.saturating_add(delta)),
                }
                .into());
            };
            field = Some(number);
            let value = self.value(*ty, depth + 1)?;
            out.push((field_name.clone(), value));
        }
        Ok(Value::Struct(Struct {
            type_name: name.to_owned(),
            fields: out,
        }))
    }

    /// Go's `decodeInterface`, including `decodeTypeSequence(true)`: definitions of new concrete types may
    /// end the current message (the value continues in the next) or sit inline followed by a byte count.
    fn interface(&mut self, depth: usize) -> Attempt<Value> {
        let name_len = self.cursor.uint()?;
        if name_len == 0 {
            return Ok(Value::Interface(None));
        }
        if name_len > MAX_INTERFACE_NAME_LEN {
            return Err(DecodeError::InterfaceNameTooLong(name_len).into());
        }
        let name = String::from_utf8_lossy(self.cursor.bytes(name_len)?).into_owned();
        let concrete = loop {
            if self.cursor.at_end() {
                self.cursor.next_message()?;
            }
            let id = self.cursor.int()?;
            if id >= 0 {
                break id;
            }
            self.define(id.checked_neg().unwrap_or(i64::MAX))?;
            if !self.cursor.at_end() {
                self.cursor.uint()?;
            }
        };
        // The concrete value's byte count: only useful for skipping, which a dynamic decoder never does.
        self.cursor.uint()?;
        let value = self.top_level_value(concrete, depth + 1)?;
        Ok(Value::Interface(Some(Box::new(Interface { name, value }))))
    }
}

mod wire_type;
use wire_type::read_wire_type;

#[cfg(test)]
mod tests;
