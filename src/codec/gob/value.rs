//! The dynamic gob value (TEMPORARY minimal implementation, see the module doc of `codec::gob`).

/// A decoded gob value, self-described by the wire types the peer sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Bytes(Vec<u8>),
    /// Go strings are bytes; invalid UTF-8 is replaced (lossy).
    String(String),
    Slice(Vec<Value>),
    Array(Vec<Value>),
    /// Entries in wire order.
    Map(Vec<(Value, Value)>),
    /// Only the fields present on the wire.
    Struct(Struct),
    /// `None` is the nil interface.
    Interface(Option<Box<Interface>>),
    /// GobEncoder / BinaryMarshaler / TextMarshaler payloads.
    Encoded {
        type_name: String,
        bytes: Vec<u8>,
    },
}

/// A struct value: the wire type's name and the fields that were sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub type_name: String,
    pub fields: Vec<(String, Value)>,
}

/// A non-nil interface value: the registered name and the concrete value.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub value: Value,
}

impl Value {
    /// A struct field by name, looking through interface values.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            Value::Interface(Some(i)) => i.value.field(name),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An `Int`, or a `Uint` that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// `Bytes` or `String` contents.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
}
