//! The gob stream encoder: declares each type once per stream (ids from 65 upward), then writes values the way
//! Go's `encoding/gob` does: zero struct fields omitted, top-level non-structs as singletons. Spec:
//! docs/wire/gob.md (sections 3, 4 and 9).
//!
//! Every definition a value needs is written as its own message before the value message, which Go's
//! top-level `decodeTypeSequence` accepts; interface values are therefore always written in the compact form.

use std::collections::HashMap;
use std::sync::Arc;

use thiserror::Error;

use super::types::{StructType, Type, TypeId, FIRST_ENCODER_ID};
use super::value::{Struct, Value};
use super::wire::{put_float, put_int, put_uint};

/// Why a value could not be encoded (a programming error on our side, never peer input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The value's shape does not match its declared type.
    #[error("gob value {value} does not fit type {ty}")]
    Mismatch { ty: String, value: String },
    /// A struct value has a field its type does not declare.
    #[error("struct {type_name:?} declares no field {field:?}")]
    UnknownField { type_name: String, field: String },
    /// Go rejects definitions with an empty field name.
    #[error("struct {0:?} declares a field with an empty name")]
    EmptyFieldName(String),
    /// An array value's length differs from its type's.
    #[error("array of {got} elements for type of length {expected}")]
    ArrayLength { expected: usize, got: usize },
    /// An interface holds a value whose gob type cannot be derived from the value alone.
    #[error("cannot derive the gob type of an interface value: {0}")]
    CannotInfer(String),
}

/// One per stream direction; sends each type definition once per stream, before first use.
#[derive(Debug)]
pub struct Encoder {
    /// Types already defined on this stream.
    sent: HashMap<Type, TypeId>,
    next_id: TypeId,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            sent: HashMap::new(),
            next_id: FIRST_ENCODER_ID,
        }
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder allocating ids from `first_id` (at least 64) upward, e.g. to reproduce a Go peer's ids
    /// byte for byte in tests.
    pub fn with_first_id(first_id: TypeId) -> Self {
        Encoder {
            sent: HashMap::new(),
            next_id: first_id.max(super::types::FIRST_USER_ID),
        }
    }

    /// Appends the definitions this value needs (first use only) and then the value message to `out`.
    /// Struct values are matched to the type's fields by name; missing or zero fields are omitted as Go does.
    /// On error nothing is appended and the encoder state is unchanged.
    pub fn encode(
        &mut self,
        ty: &Type,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let mut pass = Pass {
            sent: &self.sent,
            new: Vec::new(),
            new_ids: HashMap::new(),
            next_id: self.next_id,
        };
        let mut payload = Vec::new();
        let id = pass.id_of(ty)?;
        put_int(&mut payload, id);
        pass.top_level(ty, value, &mut payload)?;
        let mut definitions = Vec::new();
        for (i, new_ty) in pass.new.iter().enumerate() {
            let mut message = Vec::new();
            put_int(&mut message, -(self.next_id + i as TypeId));
            pass.definition(new_ty, &mut message)?;
            put_uint(&mut definitions, message.len() as u64);
            definitions.extend_from_slice(&message);
        }
        out.extend_from_slice(&definitions);
        put_uint(out, payload.len() as u64);
        out.extend_from_slice(&payload);
        self.next_id = pass.next_id;
        self.sent.extend(pass.new_ids);
        Ok(())
    }
}

/// One `encode` call: types first used by it are staged until the value encoded successfully.
struct Pass<'e> {
    sent: &'e HashMap<Type, TypeId>,
    /// Staged types in id order (`next_id` of the encoder upward).
    new: Vec<Type>,
    new_ids: HashMap<Type, TypeId>,
    next_id: TypeId,
}

/// Writes struct field deltas.
struct Fields {
    last: i64,
}

impl Fields {
    fn new() -> Self {
        Fields { last: -1 }
    }

    fn field(&mut self, out: &mut Vec<u8>, number: usize) {
        put_uint(out, (number as i64 - self.last) as u64);
        self.last = number as i64;
    }
}

impl Pass<'_> {
    /// The id of `ty`, allocating ids for it and the types inside it on first use (outer first, like Go).
    fn id_of(&mut self, ty: &Type) -> Result<TypeId, EncodeError> {
        if let Some(id) = ty.builtin_id() {
            return Ok(id);
        }
        if let Some(id) = self.sent.get(ty).or_else(|| self.new_ids.get(ty)) {
            return Ok(*id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.new.push(ty.clone());
        self.new_ids.insert(ty.clone(), id);
        match ty {
            Type::Slice(elem) | Type::Array(elem, _) => {
                self.id_of(elem)?;
            }
            Type::Map(key, elem) => {
                self.id_of(key)?;
                self.id_of(elem)?;
            }
            Type::Struct(st) => {
                for (name, field_ty) in &st.fields {
                    if name.is_empty() {
                        return Err(EncodeError::EmptyFieldName(st.name.clone()));
                    }
                    self.id_of(field_ty)?;
                }
            }
            _ => {}
        }
        Ok(id)
    }

    /// The id of a type already allocated by [`Pass::id_of`].
    fn known_id(&self, ty: &Type) -> Result<TypeId, EncodeError> {
        ty.builtin_id()
            .or_else(|| self.sent.get(ty).or_else(|| self.new_ids.get(ty)).copied())
            .ok_or_else(|| EncodeError::Mismatch {
                ty: ty.go_name(),
                value: "a type never allocated".into(),
            })
    }

    /// The `wireType` value defining `ty` (gob.md §3.1), all inner ids already allocated.
    fn definition(&self, ty: &Type, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let id = self.known_id(ty)?;
        let common = |out: &mut Vec<u8>, name: &str| {
            let mut f = Fields::new();
            f.field(out, 0); // CommonType, always sent
            let mut c = Fields::new();
            if !name.is_empty() {
                c.field(out, 0);
                put_uint(out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
            }
            c.field(out, 1);
            put_int(out, id);
            out.push(0);
            f
        };
        let mut wire = Fields::new();
        match ty {
            Type::Array(elem, len) => {
                wire.field(out, 0);
                let mut f = common(out, &ty.go_name());
                f.field(out, 1);
                put_int(out, self.known_id(elem)?);
                if *len != 0 {
                    f.field(out, 2);
                    put_int(out, *len as i64);
                }
            }
            Type::Slice(elem) => {
                wire.field(out, 1);
                let mut f = common(out, &ty.go_name());
                f.field(out, 1);
                put_int(out, self.known_id(elem)?);
            }
            Type::Struct(st) => {
                wire.field(out, 2);
                let mut f = common(out, &st.name);
                if !st.fields.is_empty() {
                    f.field(out, 1);
                    put_uint(out, st.fields.len() as u64);
                    for (name, field_ty) in &st.fields {
                        out.extend_from_slice(&[1]);
                        put_uint(out, name.len() as u64);
                        out.extend_from_slice(name.as_bytes());
                        out.push(1);
                        put_int(out, self.known_id(field_ty)?);
                        out.push(0);
                    }
                }
            }
            Type::Map(key, elem) => {
                wire.field(out, 3);
                let mut f = common(out, &ty.go_name());
                f.field(out, 1);
                put_int(out, self.known_id(key)?);
                f.field(out, 2);
                put_int(out, self.known_id(elem)?);
            }
            Type::GobEncoder(name) => {
                wire.field(out, 4);
                common(out, name);
            }
            _ => {
                return Err(EncodeError::Mismatch {
                    ty: ty.go_name(),
                    value: "a type definition".into(),
                })
            }
        }
        out.push(0); // end of the kind's struct
        out.push(0); // end of wireType
        Ok(())
    }

    /// A value in top-level form: a struct directly, anything else behind the singleton `0` delta.
    fn top_level(
        &mut self,
        ty: &Type,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if let (Type::Struct(st), Value::Struct(s)) = (ty, value) {
            return self.struct_value(st, s, out);
        }
        out.push(0);
        self.value(ty, value, out)
    }

    fn struct_value(
        &mut self,
        st: &StructType,
        s: &Struct,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        if let Some((field, _)) = s
            .fields
            .iter()
            .find(|(name, _)| !st.fields.iter().any(|(n, _)| n == name))
        {
            return Err(EncodeError::UnknownField {
                type_name: st.name.clone(),
                field: field.clone(),
            });
        }
        let mut fields = Fields::new();
        for (number, (name, field_ty)) in st.fields.iter().enumerate() {
            let Some(v) = s.field(name) else { continue };
            if is_omitted(field_ty, v) {
                continue;
            }
            fields.field(out, number);
            self.value(field_ty, v, out)?;
        }
        out.push(0);
        Ok(())
    }

    fn value(&mut self, ty: &Type, value: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match (ty, value) {
            (Type::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
            (Type::Int, Value::Int(i)) => put_int(out, *i),
            (Type::Int, Value::Uint(u)) if i64::try_from(*u).is_ok() => put_int(out, *u as i64),
            (Type::Uint, Value::Uint(u)) => put_uint(out, *u),
            (Type::Uint, Value::Int(i)) if *i >= 0 => put_uint(out, *i as u64),
            (Type::Float, Value::Float(f)) => put_float(out, *f),
            (Type::Complex, Value::Complex(re, im)) => {
                put_float(out, *re);
                put_float(out, *im);
            }
            (Type::Bytes | Type::String, Value::Bytes(b)) => put_bytes(out, b),
            (Type::Bytes | Type::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
            (Type::GobEncoder(_), Value::Encoded { bytes, .. }) => put_bytes(out, bytes),
            (Type::Interface, Value::Interface(None)) => out.push(0),
            (Type::Interface, Value::Interface(Some(iface))) => {
                let concrete = infer(&iface.value)?;
                let id = self.id_of(&concrete)?;
                put_bytes(out, iface.name.as_bytes());
                put_int(out, id);
                let mut inner = Vec::new();
                self.top_level(&concrete, &iface.value, &mut inner)?;
                put_bytes(out, &inner);
            }
            (Type::Slice(elem), Value::Slice(items) | Value::Array(items)) => {
                put_uint(out, items.len() as u64);
                for item in items {
                    self.value(elem, item, out)?;
                }
            }
            (Type::Array(elem, len), Value::Slice(items) | Value::Array(items)) => {
                if items.len() != *len {
                    return Err(EncodeError::ArrayLength {
                        expected: *len,
                        got: items.len(),
                    });
                }
                put_uint(out, items.len() as u64);
                for item in items {
                    self.value(elem, item, out)?;
                }
            }
            (Type::Map(key_ty, elem_ty), Value::Map(entries)) => {
                put_uint(out, entries.len() as u64);
                for (k, v) in entries {
                    self.value(key_ty, k, out)?;
                    self.value(elem_ty, v, out)?;
                }
            }
            (Type::Struct(st), Value::Struct(s)) => self.struct_value(st, s, out)?,
            _ => {
                return Err(EncodeError::Mismatch {
                    ty: ty.go_name(),
                    value: kind(value).into(),
                })
            }
        }
        Ok(())
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Go's field omission rules (gob.md §3.3): zero scalars, empty strings and slices and nil interfaces are not
/// sent; structs, arrays, maps (non-nil) and encoded payloads always are.
fn is_omitted(ty: &Type, value: &Value) -> bool {
    match (ty, value) {
        (Type::Array(..), _) => false,
        (_, Value::Bool(b)) => !b,
        (_, Value::Int(i)) => *i == 0,
        (_, Value::Uint(u)) => *u == 0,
        (_, Value::Float(f)) => *f == 0.0,
        (_, Value::Complex(re, im)) => *re == 0.0 && *im == 0.0,
        (Type::GobEncoder(_), _) => false,
        (_, Value::Bytes(b)) => b.is_empty(),
        (_, Value::String(s)) => s.is_empty(),
        (_, Value::Slice(items) | Value::Array(items)) => items.is_empty(),
        (_, Value::Interface(i)) => i.is_none(),
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float",
        Value::Complex(..) => "complex",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Slice(_) => "slice",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Struct(_) => "struct",
        Value::Interface(_) => "interface",
        Value::Encoded { .. } => "encoded payload",
    }
}

/// The gob type of an interface's concrete value, derived from the value: struct types take the fields
/// present (an empty slice field is left out: it would be omitted anyway), collection element types are
/// merged across elements.
fn infer(value: &Value) -> Result<Type, EncodeError> {
    Ok(match value {
        Value::Bool(_) => Type::Bool,
        Value::Int(_) => Type::Int,
        Value::Uint(_) => Type::Uint,
        Value::Float(_) => Type::Float,
        Value::Complex(..) => Type::Complex,
        Value::Bytes(_) => Type::Bytes,
        Value::String(_) => Type::String,
        Value::Interface(_) => Type::Interface,
        Value::Encoded { type_name, .. } => Type::GobEncoder(type_name.clone()),
        Value::Slice(items) => Type::Slice(Box::new(infer_all(items.iter())?)),
        Value::Array(items) => Type::Array(Box::new(infer_all(items.iter())?), items.len()),
        Value::Map(entries) => Type::Map(
            Box::new(infer_all(entries.iter().map(|(k, _)| k))?),
            Box::new(infer_all(entries.iter().map(|(_, v)| v))?),
        ),
        Value::Struct(s) => {
            let mut fields = Vec::with_capacity(s.fields.len());
            for (name, v) in &s.fields {
                if matches!(v, Value::Slice(items) if items.is_empty()) {
                    continue;
                }
                fields.push((name.clone(), infer(v)?));
            }
            Type::Struct(Arc::new(StructType {
                name: s.type_name.clone(),
                fields,
            }))
        }
    })
}

fn infer_all<'v>(mut items: impl Iterator<Item = &'v Value>) -> Result<Type, EncodeError> {
    let first = items
        .next()
        .ok_or_else(|| EncodeError::CannotInfer("empty collection".into()))?;
    items.try_fold(infer(first)?, |acc, item| merge(acc, infer(item)?))
}

/// The type covering both `a` and `b`: struct types of the same name union their fields.
fn merge(a: Type, b: Type) -> Result<Type, EncodeError> {
    if a == b {
        return Ok(a);
    }
    Ok(match (a, b) {
        (Type::Struct(x), Type::Struct(y)) if x.name == y.name => {
            let mut fields = x.fields.clone();
            for (name, ty) in &y.fields {
                match fields.iter_mut().find(|(n, _)| n == name) {
                    Some((_, existing)) => *existing = merge(existing.clone(), ty.clone())?,
                    None => fields.push((name.clone(), ty.clone())),
                }
            }
            Type::Struct(Arc::new(StructType {
                name: x.name.clone(),
                fields,
            }))
        }
        (Type::Slice(x), Type::Slice(y)) => Type::Slice(Box::new(merge(*x, *y)?)),
        (Type::Array(x, n), Type::Array(y, m)) if n == m => {
            Type::Array(Box::new(merge(*x, *y)?), n)
        }
        (Type::Map(xk, xv), Type::Map(yk, yv)) => {
            Type::Map(Box::new(merge(*xk, *yk)?), Box::new(merge(*xv, *yv)?))
        }
        (a, b) => {
            return Err(EncodeError::CannotInfer(format!(
                "elements of types {} and {}",
                a.go_name(),
                b.go_name()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::gob::value::Interface;
    use crate::codec::gob::Decoder;
    use bytes::BytesMut;

    fn t_type() -> Type {
        Type::Struct(StructType::new(
            "T",
            [("A", Type::Int), ("B", Type::String)],
        ))
    }

    fn t(a: i64, b: &str) -> Value {
        Value::Struct(Struct {
            type_name: "T".into(),
            fields: vec![
                ("A".into(), Value::Int(a)),
                ("B".into(), Value::String(b.into())),
            ],
        })
    }

    #[test]
    fn spec_struct_example_is_byte_exact_and_defined_once() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode(&t_type(), &t(7, "hi"), &mut out).unwrap();
        let expected: &[u8] = &[
            0x1B, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x54, 0x01, 0xFF, 0x82, 0x00, 0x01, 0x02,
            0x01, 0x01, 0x41, 0x01, 0x04, 0x00, 0x01, 0x01, 0x42, 0x01, 0x0C, 0x00, 0x00, 0x00,
            0x09, 0xFF, 0x82, 0x01, 0x0E, 0x01, 0x02, 0x68, 0x69, 0x00,
        ];
        assert_eq!(out, expected);
        out.clear();
        enc.encode(&t_type(), &t(0, ""), &mut out).unwrap();
        assert_eq!(
            out,
            [0x03, 0xFF, 0x82, 0x00],
            "zero fields omitted, no second definition"
        );
    }

    #[test]
    fn singletons_and_nil_interface() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode(&Type::Int, &Value::Int(3), &mut out).unwrap();
        enc.encode(&Type::Interface, &Value::Interface(None), &mut out)
            .unwrap();
        enc.encode(&Type::String, &Value::String(String::new()), &mut out)
            .unwrap();
        assert_eq!(
            out,
            [0x03, 0x04, 0x00, 0x06, 0x03, 0x10, 0x00, 0x00, 0x03, 0x0C, 0x00, 0x00]
        );
    }

    #[test]
    fn errors_leave_nothing_written_and_no_state_behind() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        let stray = Value::Struct(Struct {
            type_name: "T".into(),
            fields: vec![("C".into(), Value::Int(1))],
        });
        assert_eq!(
            enc.encode(&t_type(), &stray, &mut out),
            Err(EncodeError::UnknownField {
                type_name: "T".into(),
                field: "C".into()
            })
        );
        let wrong = Value::Struct(Struct {
            type_name: "T".into(),
            fields: vec![("A".into(), Value::String("x".into()))],
        });
        assert!(matches!(
            enc.encode(&t_type(), &wrong, &mut out),
            Err(EncodeError::Mismatch { .. })
        ));
        assert!(out.is_empty());
        enc.encode(&t_type(), &t(7, "hi"), &mut out).unwrap();
        assert_eq!(
            out.len(),
            38,
            "the definition is still sent on first successful use"
        );
        let empty_map = Value::Interface(Some(Box::new(Interface {
            name: "m".into(),
            value: Value::Map(vec![]),
        })));
        assert!(matches!(
            enc.encode(&Type::Interface, &empty_map, &mut Vec::new()),
            Err(EncodeError::CannotInfer(_))
        ));
    }

    /// A small deterministic generator (xorshift) for the identity property test.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            let len = self.below(6) as usize;
            (0..len)
                .map(|_| ['a', 'Z', 'é', '0', '\u{1F600}'][self.below(5) as usize])
                .collect()
        }

        /// A random type, `depth` bounding nesting.
        fn ty(&mut self, depth: u32) -> Type {
            let leaf = depth == 0 || self.below(3) == 0;
            match if leaf {
                self.below(8)
            } else {
                8 + self.below(5)
            } {
                0 => Type::Bool,
                1 => Type::Int,
                2 => Type::Uint,
                3 => Type::Float,
                4 => Type::Bytes,
                5 => Type::String,
                6 => Type::Complex,
                7 => Type::GobEncoder("Time".into()),
                8 => Type::Slice(Box::new(self.ty(depth - 1))),
                9 => Type::Array(Box::new(self.ty(depth - 1)), self.below(3) as usize),
                10 => Type::Map(Box::new(self.ty(0)), Box::new(self.ty(depth - 1))),
                11 => Type::Interface,
                _ => {
                    let n = 1 + self.below(4);
                    let fields: Vec<_> = (0..n)
                        .map(|i| (format!("F{i}"), self.ty(depth - 1)))
                        .collect();
                    Type::Struct(StructType::new(format!("S{}", self.below(1000)), fields))
                }
            }
        }

        /// A random value of `ty`; struct fields are non-zero so decoding gives back the same value.
        fn value(&mut self, ty: &Type, non_zero: bool) -> Value {
            let n = |g: &mut Gen| if non_zero { 1 + g.below(3) } else { g.below(3) };
            match ty {
                Type::Bool => Value::Bool(non_zero || self.below(2) == 0),
                Type::Int => {
                    Value::Int((self.next() as i64 >> self.below(64)) | i64::from(non_zero))
                }
                Type::Uint => Value::Uint((self.next() >> self.below(64)) | u64::from(non_zero)),
                Type::Float => Value::Float(
                    [1.5, -0.25, 1e300, f64::MIN_POSITIVE, 17.0][self.below(5) as usize],
                ),
                Type::Complex => Value::Complex(1.0, -(self.below(4) as f64)),
                Type::Bytes => Value::Bytes((0..n(self)).map(|_| self.next() as u8).collect()),
                Type::String => {
                    let s = self.string();
                    Value::String(if non_zero && s.is_empty() {
                        "x".into()
                    } else {
                        s
                    })
                }
                Type::GobEncoder(name) => Value::Encoded {
                    type_name: name.clone(),
                    bytes: (0..self.below(16)).map(|_| self.next() as u8).collect(),
                },
                Type::Slice(e) => {
                    Value::Slice((0..n(self)).map(|_| self.value(e, false)).collect())
                }
                Type::Array(e, len) => {
                    Value::Array((0..*len).map(|_| self.value(e, false)).collect())
                }
                Type::Map(k, v) => {
                    let mut entries: Vec<(Value, Value)> = Vec::new();
                    for _ in 0..n(self) {
                        entries.push((self.value(k, false), self.value(v, false)));
                    }
                    Value::Map(entries)
                }
                Type::Interface => {
                    if !non_zero && self.below(3) == 0 {
                        return Value::Interface(None);
                    }
                    let concrete = Type::Struct(StructType::new(
                        "Boxed",
                        [
                            ("Name", Type::String),
                            ("Values", Type::Slice(Box::new(Type::Int))),
                        ],
                    ));
                    Value::Interface(Some(Box::new(Interface {
                        name: "example.com/Boxed".into(),
                        value: self.value(&concrete, true),
                    })))
                }
                Type::Struct(st) => {
                    let mut fields = Vec::new();
                    for (name, t) in &st.fields {
                        if self.below(4) != 0 {
                            fields.push((name.clone(), self.value(t, true)));
                        }
                    }
                    Value::Struct(Struct {
                        type_name: st.name.clone(),
                        fields,
                    })
                }
            }
        }
    }

    #[test]
    fn encode_decode_identity() {
        let mut gen = Gen(0x9E37_79B9_7F4A_7C15);
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new();
        let mut stream = BytesMut::new();
        for case in 0..3000 {
            let ty = gen.ty(4);
            let value = gen.value(&ty, false);
            let mut out = Vec::new();
            encoder
                .encode(&ty, &value, &mut out)
                .unwrap_or_else(|e| panic!("case {case}: {e}: {ty:?} {value:?}"));
            // Feed the bytes in two pieces: the first is never a whole value's worth of new input.
            let split = out.len() / 2;
            stream.extend_from_slice(&out[..split]);
            if split > 0 {
                assert_eq!(decoder.decode(&mut stream), Ok(None), "case {case}");
            }
            stream.extend_from_slice(&out[split..]);
            assert_eq!(
                decoder.decode(&mut stream),
                Ok(Some(value)),
                "case {case}: {ty:?}"
            );
            assert!(stream.is_empty());
        }
    }
}
