//! Type descriptors for the encoder (TEMPORARY minimal implementation, see `codec::gob`).
use std::sync::Arc;

/// A gob type the encoder can define and encode.
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
    /// A GobEncoderT named e.g. "Time"; its value is `Value::Encoded`.
    GobEncoder(String),
}

/// A struct type: its name (may be empty) and fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructType {
    pub name: String,
    pub fields: Vec<(String, Type)>,
}
