//! Gob type identities: the predefined type ids, the peer's wire type definitions (decoder side) and the type
//! descriptors our encoder declares (encoder side). Spec: docs/wire/gob.md

use std::sync::Arc;

/// A gob type id as it travels (a signed int; negative on the wire announces a definition).
pub type TypeId = i64;

pub const BOOL_ID: TypeId = 1;
pub const INT_ID: TypeId = 2;
pub const UINT_ID: TypeId = 3;
pub const FLOAT_ID: TypeId = 4;
pub const BYTES_ID: TypeId = 5;
pub const STRING_ID: TypeId = 6;
pub const COMPLEX_ID: TypeId = 7;
pub const INTERFACE_ID: TypeId = 8;
/// Go's `firstUserId`: peers may define any id from here on, in any order and with gaps.
pub const FIRST_USER_ID: TypeId = 64;
/// The first id our encoder allocates (what a fresh Go process would use).
pub const FIRST_ENCODER_ID: TypeId = 65;

/// A type definition received from the peer (`wireType`): exactly one of its variants was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireType {
    Array {
        name: String,
        elem: TypeId,
        len: i64,
    },
    Slice {
        name: String,
        elem: TypeId,
    },
    Struct {
        name: String,
        fields: Vec<(String, TypeId)>,
    },
    Map {
        name: String,
        key: TypeId,
        elem: TypeId,
    },
    /// GobEncoderT, BinaryMarshalerT and TextMarshalerT: an opaque byte payload.
    Encoded {
        name: String,
    },
}

impl WireType {
    pub fn name(&self) -> &str {
        match self {
            WireType::Array { name, .. }
            | WireType::Slice { name, .. }
            | WireType::Struct { name, .. }
            | WireType::Map { name, .. }
            | WireType::Encoded { name } => name,
        }
    }
}

/// Type descriptors for the encoder (the plugin only encodes a handful of reply types).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Interface,
    Slice(Box<Type>),
    Map(Box<Type>, Box<Type>),
    Struct(Arc<StructType>),
    /// A GobEncoderT named e.g. "Time"; its value is [`crate::codec::gob::Value::Encoded`].
    GobEncoder(String),
    /// Gob complex (two floats).
    Complex,
    /// A fixed-length array `[len]elem`.
    Array(Box<Type>, usize),
}

/// A struct type: its name (informational on the wire) and its fields, in field-number order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructType {
    pub name: String,
    pub fields: Vec<(String, Type)>,
}

impl StructType {
    /// Convenience constructor: `StructType::new("Response", [("Seq", Type::Uint)])`.
    pub fn new<N: Into<String>>(
        name: impl Into<String>,
        fields: impl IntoIterator<Item = (N, Type)>,
    ) -> Arc<Self> {
        Arc::new(StructType {
            name: name.into(),
            fields: fields.into_iter().map(|(n, t)| (n.into(), t)).collect(),
        })
    }
}

impl Type {
    /// The predefined id of a basic type; `None` for types that need a definition.
    pub fn builtin_id(&self) -> Option<TypeId> {
        Some(match self {
            Type::Bool => BOOL_ID,
            Type::Int => INT_ID,
            Type::Uint => UINT_ID,
            Type::Float => FLOAT_ID,
            Type::Bytes => BYTES_ID,
            Type::String => STRING_ID,
            Type::Complex => COMPLEX_ID,
            Type::Interface => INTERFACE_ID,
            _ => return None,
        })
    }

    /// A Go-like name for the definition's `CommonType.Name` (informational only: Go's decoder uses it in
    /// error messages).
    pub fn go_name(&self) -> String {
        match self {
            Type::Bool => "bool".into(),
            Type::Int => "int64".into(),
            Type::Uint => "uint64".into(),
            Type::Float => "float64".into(),
            Type::Bytes => "[]uint8".into(),
            Type::String => "string".into(),
            Type::Interface => "interface {}".into(),
            Type::Complex => "complex128".into(),
            Type::Slice(e) => format!("[]{}", e.go_name()),
            Type::Array(e, n) => format!("[{n}]{}", e.go_name()),
            Type::Map(k, v) => format!("map[{}]{}", k.go_name(), v.go_name()),
            Type::Struct(s) => s.name.clone(),
            Type::GobEncoder(name) => name.clone(),
        }
    }
}
