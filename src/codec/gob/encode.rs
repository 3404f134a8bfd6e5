//! The gob stream encoder: declares each type once per stream (ids from 65 upward), then writes values the way
//! Go's `encoding/gob` does: zero struct fields omitted, top-level non-structs as singletons. Spec:
//! `docs/wire/gob.md` (what our encoder writes and why).
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
                    value: value.go_kind().into(),
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
mod tests;
