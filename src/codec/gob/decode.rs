//! The gob decoder (TEMPORARY minimal implementation, see the module doc of `codec::gob`).
//!
//! Wire-type driven: every definition the peer sends is kept for the stream's lifetime and values are
//! decoded into [`Value`] by their wire type, including the multi-message interface case (gob.md §4.2).
use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::value::{Interface, Struct, Value};

/// Default cap on one message's declared length: the most a peer can make us buffer for one message.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 * 1024 * 1024;
/// Default cap on value nesting (structs in slices in maps …).
pub const DEFAULT_MAX_DEPTH: usize = 100;
/// Go's own cap on a registered interface name (`decodeInterface`: "name too long").
pub const MAX_INTERFACE_NAME_LEN: usize = 1024;

/// Builtin type ids (gob.md §2).
const ID_BOOL: i64 = 1;
const ID_INT: i64 = 2;
const ID_UINT: i64 = 3;
const ID_FLOAT: i64 = 4;
const ID_BYTES: i64 = 5;
const ID_STRING: i64 = 6;
const ID_COMPLEX: i64 = 7;
const ID_INTERFACE: i64 = 8;
/// Go refuses definitions below this id.
const FIRST_USER_ID: i64 = 64;

/// Peer-controlled sizes the decoder accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_len: usize,
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why a value could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("gob: {message}")]
pub struct DecodeError {
    message: String,
    recoverable: bool,
}

impl DecodeError {
    /// True when the offending message was consumed and the stream is still in sync.
    pub fn is_recoverable(&self) -> bool {
        self.recoverable
    }
}

#[derive(Debug)]
enum WireType {
    Array {
        elem: i64,
        len: u64,
    },
    Slice {
        elem: i64,
    },
    Struct {
        name: String,
        fields: Vec<(String, i64)>,
    },
    Map {
        key: i64,
        elem: i64,
    },
    Encoded {
        name: String,
    },
}

/// One per stream direction; keeps the peer's type definitions for the stream's lifetime.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    types: HashMap<i64, Arc<WireType>>,
}

enum Fail {
    Incomplete,
    /// A bad message length: the stream cannot be resynchronised.
    Fatal(String),
    /// Bad content inside a complete message.
    Corrupt(String),
}

fn corrupt<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Corrupt(message.into()))
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            limits,
            types: HashMap::new(),
        }
    }

    /// Decodes one complete top-level value from the front of `buf` (see the API contract).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Value>, DecodeError> {
        let mut pass = Pass {
            types: &self.types,
            staged: HashMap::new(),
            limits: self.limits,
            buf,
            pos: 0,
            end: 0,
        };
        let result = pass.top_level();
        let (consumed, staged) = (pass.end, pass.staged);
        match result {
            Ok(value) => {
                self.types.extend(staged);
                buf.advance(consumed);
                Ok(Some(value))
            }
            Err(Fail::Incomplete) => Ok(None),
            Err(Fail::Fatal(message)) => Err(DecodeError {
                message,
                recoverable: false,
            }),
            Err(Fail::Corrupt(message)) => {
                self.types.extend(staged);
                buf.advance(consumed);
                Err(DecodeError {
                    message,
                    recoverable: true,
                })
            }
        }
    }
}

/// One decoding attempt: definitions are staged and only committed when the attempt completes.
struct Pass<'a> {
    types: &'a HashMap<i64, Arc<WireType>>,
    staged: HashMap<i64, Arc<WireType>>,
    limits: Limits,
    buf: &'a [u8],
    pos: usize,
    /// End of the current message.
    end: usize,
}

impl Pass<'_> {
    fn top_level(&mut self) -> Result<Value, Fail> {
        loop {
            self.next_message()?;
            let id = self.int()?;
            if id < 0 {
                self.define(id)?;
                if self.pos != self.end {
                    return corrupt("extra data in buffer");
                }
                continue;
            }
            let value = self.top_value(id, 0)?;
            // Bytes after the value in its message are not part of any value Go writes; drop them.
            self.pos = self.end;
            return Ok(value);
        }
    }

    fn next_message(&mut self) -> Result<(), Fail> {
        let (len, header) = match read_uint(&self.buf[self.pos..]) {
            Ok(Some(x)) => x,
            Ok(None) => return Err(Fail::Incomplete),
            Err(e) => return Err(Fail::Fatal(e)),
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.limits.max_message_len {
            return Err(Fail::Fatal(format!(
                "message length {len} exceeds the limit {}",
                self.limits.max_message_len
            )));
        }
        let start = self.pos + header;
        if self.buf.len() - start < len {
            return Err(Fail::Incomplete);
        }
        self.pos = start;
        self.end = start + len;
        Ok(())
    }

    fn lookup(&self, id: i64) -> Option<Arc<WireType>> {
        self.staged
            .get(&id)
            .or_else(|| self.types.get(&id))
            .cloned()
    }

    fn define(&mut self, negative_id: i64) -> Result<(), Fail> {
        let id = negative_id.checked_neg().unwrap_or(0);
        if id < FIRST_USER_ID || self.lookup(id).is_some() {
            return Err(Fail::Fatal(format!("bad or duplicate type id {id}")));
        }
        let wire = self.wire_type().map_err(|f| match f {
            Fail::Corrupt(m) => Fail::Fatal(format!("bad type definition {id}: {m}")),
            other => other,
        })?;
        self.staged.insert(id, Arc::new(wire));
        Ok(())
    }

    fn uint(&mut self) -> Result<u64, Fail> {
        match read_uint(&self.buf[self.pos..self.end]) {
            Ok(Some((v, n))) => {
                self.pos += n;
                Ok(v)
            }
            Ok(None) => corrupt("unexpected end of message"),
            Err(e) => corrupt(e),
        }
    }

    fn int(&mut self) -> Result<i64, Fail> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    fn raw(&mut self) -> Result<&[u8], Fail> {
        let len = self.uint()?;
        let remaining = (self.end - self.pos) as u64;
        if len > remaining {
            return corrupt(format!("length {len} exceeds the {remaining} bytes left"));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn string(&mut self) -> Result<String, Fail> {
        Ok(String::from_utf8_lossy(self.raw()?).into_owned())
    }

    fn count(&mut self) -> Result<usize, Fail> {
        let n = self.uint()?;
        if n > (self.end - self.pos) as u64 {
            return corrupt(format!("count {n} exceeds the bytes left"));
        }
        Ok(n as usize)
    }

    /// Walks a struct-encoded value, calling `field` with each field number.
    fn walk_struct(
        &mut self,
        mut field: impl FnMut(&mut Self, u64) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        let mut number: u64 = 0;
        let mut first = true;
        while self.pos < self.end {
            let delta = self.uint()?;
            if delta == 0 {
                break;
            }
            number = if first {
                delta - 1
            } else {
                number.saturating_add(delta)
            };
            first = false;
            field(self, number)?;
        }
        Ok(())
    }

    fn common(&mut self) -> Result<String, Fail> {
        let mut name = String::new();
        self.walk_struct(|p, n| {
            match n {
                0 => name = p.string()?,
                1 => {
                    p.int()?;
                }
                _ => return corrupt("bad CommonType field"),
            }
            Ok(())
        })?;
        Ok(name)
    }

    fn wire_type(&mut self) -> Result<WireType, Fail> {
        let mut result = None;
        self.walk_struct(|p, n| {
            let mut name = String::new();
            let (mut a, mut b) = (0i64, 0i64);
            let mut fields = Vec::new();
            p.walk_struct(|p, f| {
                match (n, f) {
                    (_, 0) => name = p.common()?,
                    (2, 1) => {
                        let count = p.count()?;
                        for _ in 0..count {
                            let (mut fname, mut fid) = (String::new(), 0);
                            p.walk_struct(|p, k| {
                                match k {
                                    0 => fname = p.string()?,
                                    1 => fid = p.int()?,
                                    _ => return corrupt("bad fieldType field"),
                                }
                                Ok(())
                            })?;
                            fields.push((fname, fid));
                        }
                    }
                    (0 | 1 | 3, 1) => a = p.int()?,
                    (0 | 3, 2) => b = p.int()?,
                    _ => return corrupt("bad type definition field"),
                }
                Ok(())
            })?;
            result = Some(match n {
                0 => WireType::Array {
                    elem: a,
                    len: u64::try_from(b).unwrap_or(u64::MAX),
                },
                1 => WireType::Slice { elem: a },
                2 => WireType::Struct { name, fields },
                3 => WireType::Map { key: a, elem: b },
                4..=6 => WireType::Encoded { name },
                _ => return corrupt("unknown wireType field"),
            });
            Ok(())
        })?;
        result.ok_or_else(|| Fail::Corrupt("empty type definition".into()))
    }

    fn is_struct(&self, id: i64) -> bool {
        matches!(self.lookup(id).as_deref(), Some(WireType::Struct { .. }))
    }

    fn top_value(&mut self, id: i64, depth: usize) -> Result<Value, Fail> {
        if !self.is_struct(id) && self.uint()? != 0 {
            return corrupt("decode: corrupted data: non-zero delta for singleton");
        }
        self.value(id, depth)
    }

    fn value(&mut self, id: i64, depth: usize) -> Result<Value, Fail> {
        if depth > self.limits.max_depth {
            return corrupt("invalid nesting depth");
        }
        Ok(match id {
            ID_BOOL => Value::Bool(self.uint()? != 0),
            ID_INT => Value::Int(self.int()?),
            ID_UINT => Value::Uint(self.uint()?),
            ID_FLOAT => Value::Float(f64::from_bits(self.uint()?.swap_bytes())),
            ID_COMPLEX => {
                let re = f64::from_bits(self.uint()?.swap_bytes());
                Value::Complex(re, f64::from_bits(self.uint()?.swap_bytes()))
            }
            ID_BYTES => Value::Bytes(self.raw()?.to_vec()),
            ID_STRING => Value::String(self.string()?),
            ID_INTERFACE => self.interface(depth)?,
            _ => {
                let Some(wire) = self.lookup(id) else {
                    return corrupt(format!("unknown type id {id} or corrupted data"));
                };
                match &*wire {
                    WireType::Struct { name, fields } => {
                        let mut out = Vec::new();
                        self.walk_struct(|p, n| {
                            let Some((fname, fid)) =
                                usize::try_from(n).ok().and_then(|i| fields.get(i))
                            else {
                                return corrupt("bad data: field numbers out of bounds");
                            };
                            out.push((fname.clone(), p.value(*fid, depth + 1)?));
                            Ok(())
                        })?;
                        Value::Struct(Struct {
                            type_name: name.clone(),
                            fields: out,
                        })
                    }
                    WireType::Slice { elem } => Value::Slice(self.elements(*elem, depth)?),
                    WireType::Array { elem, len } => {
                        let items = self.elements(*elem, depth)?;
                        if items.len() as u64 != *len {
                            return corrupt("length mismatch in decodeArray");
                        }
                        Value::Array(items)
                    }
                    WireType::Map { key, elem } => {
                        let count = self.count()?;
                        let mut entries = Vec::with_capacity(count.min(1024));
                        for _ in 0..count {
                            let k = self.value(*key, depth + 1)?;
                            entries.push((k, self.value(*elem, depth + 1)?));
                        }
                        Value::Map(entries)
                    }
                    WireType::Encoded { name } => Value::Encoded {
                        type_name: name.clone(),
                        bytes: self.raw()?.to_vec(),
                    },
                }
            }
        })
    }

    fn elements(&mut self, elem: i64, depth: usize) -> Result<Vec<Value>, Fail> {
        let count = self.count()?;
        let mut items = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            items.push(self.value(elem, depth + 1)?);
        }
        Ok(items)
    }

    /// gob.md §4: name, definitions possibly spanning further messages, then the concrete value.
    fn interface(&mut self, depth: usize) -> Result<Value, Fail> {
        let name_len = self.uint()?;
        if name_len == 0 {
            return Ok(Value::Interface(None));
        }
        if name_len > MAX_INTERFACE_NAME_LEN as u64 || name_len > (self.end - self.pos) as u64 {
            return corrupt("name too long");
        }
        let start = self.pos;
        self.pos += name_len as usize;
        let name = String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned();
        let id = loop {
            if self.pos == self.end {
                self.next_message()?;
            }
            let id = self.int()?;
            if id >= 0 {
                break id;
            }
            self.define(id)?;
            if self.pos < self.end {
                self.uint()?;
            }
        };
        self.uint()?;
        let value = self.top_value(id, depth + 1)?;
        Ok(Value::Interface(Some(Box::new(Interface { name, value }))))
    }
}

/// Reads a gob uint from the front of `bytes`: `Ok(None)` when more bytes are needed.
fn read_uint(bytes: &[u8]) -> Result<Option<(u64, usize)>, String> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first <= 0x7F {
        return Ok(Some((u64::from(first), 1)));
    }
    let n = usize::from((first as i8).unsigned_abs());
    if n > 8 {
        return Err("encoded unsigned integer out of range".into());
    }
    let Some(body) = bytes.get(1..=n) else {
        return Ok(None);
    };
    let value = body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok(Some((value, n + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_spec_struct_example_and_waits_for_whole_messages() {
        let stream: &[u8] = &[
            0x1B, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x54, 0x01, 0xFF, 0x82, 0x00, 0x01, 0x02,
            0x01, 0x01, 0x41, 0x01, 0x04, 0x00, 0x01, 0x01, 0x42, 0x01, 0x0C, 0x00, 0x00, 0x00,
            0x09, 0xFF, 0x82, 0x01, 0x0E, 0x01, 0x02, 0x68, 0x69, 0x00,
        ];
        let mut dec = Decoder::new();
        let mut partial = BytesMut::from(&stream[..stream.len() - 1]);
        assert!(dec.decode(&mut partial).expect("partial").is_none());
        assert_eq!(partial.len(), stream.len() - 1);
        let mut buf = BytesMut::from(stream);
        let v = dec.decode(&mut buf).expect("decode").expect("complete");
        assert_eq!(v.field("A"), Some(&Value::Int(7)));
        assert_eq!(v.field("B").and_then(Value::as_str), Some("hi"));
        assert!(buf.is_empty());
    }

    #[test]
    fn decodes_interface_spanning_two_messages() {
        let stream: &[u8] = &[
            0x19, 0x10, 0x00, 0x01, 0x50, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x50, 0x01, 0xFF,
            0x82, 0x00, 0x01, 0x01, 0x01, 0x01, 0x58, 0x01, 0x04, 0x00, 0x00, 0x00, 0x06, 0xFF,
            0x82, 0x03, 0x01, 0x02, 0x00,
        ];
        let mut buf = BytesMut::from(stream);
        let v = Decoder::new()
            .decode(&mut buf)
            .expect("decode")
            .expect("complete");
        assert_eq!(v.field("X"), Some(&Value::Int(1)));
        assert!(buf.is_empty());
    }
}
