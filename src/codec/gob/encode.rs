//! The gob encoder (TEMPORARY minimal implementation, see the module doc of `codec::gob`).
//!
//! Sends each type definition once per stream, as standalone messages before the first value that needs
//! it (gob.md §4.2 allows this), allocating ids from 65.
use std::collections::HashMap;

use super::types::{StructType, Type};
use super::value::Value;

/// The first id this encoder hands out (any id >= 64 is accepted by Go).
const FIRST_ID: i64 = 65;

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("gob: value does not match type {0}")]
    Mismatch(String),
}

/// One per stream direction.
#[derive(Debug, Clone)]
pub struct Encoder {
    ids: HashMap<Type, i64>,
    next_id: i64,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            ids: HashMap::new(),
            next_id: FIRST_ID,
        }
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the definitions this value needs (first use only) and then the value message to `out`.
    pub fn encode(
        &mut self,
        ty: &Type,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let mut staged = self.clone();
        let mut definitions = Vec::new();
        let id = staged.define(ty, &mut definitions);
        let mut payload = Vec::new();
        put_int(&mut payload, id);
        if !matches!(ty, Type::Struct(_)) {
            payload.push(0);
        }
        encode_value(ty, value, &mut payload)?;
        *self = staged;
        for definition in definitions {
            put_uint(out, definition.len() as u64);
            out.extend_from_slice(&definition);
        }
        put_uint(out, payload.len() as u64);
        out.extend_from_slice(&payload);
        Ok(())
    }

    fn define(&mut self, ty: &Type, definitions: &mut Vec<Vec<u8>>) -> i64 {
        match ty {
            Type::Bool => return 1,
            Type::Int => return 2,
            Type::Uint => return 3,
            Type::Float => return 4,
            Type::Bytes => return 5,
            Type::String => return 6,
            Type::Interface => return 8,
            _ => {}
        }
        if let Some(id) = self.ids.get(ty) {
            return *id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(ty.clone(), id);
        let mut wire = Vec::new();
        put_int(&mut wire, -id);
        match ty {
            Type::Slice(elem) => {
                let elem = self.define(elem, definitions);
                wire.push(2);
                wire.push(1);
                common(&mut wire, &type_name(ty), id);
                wire.push(1);
                put_int(&mut wire, elem);
                wire.push(0);
            }
            Type::Map(key, elem) => {
                let key = self.define(key, definitions);
                let elem = self.define(elem, definitions);
                wire.push(4);
                wire.push(1);
                common(&mut wire, &type_name(ty), id);
                wire.push(1);
                put_int(&mut wire, key);
                wire.push(1);
                put_int(&mut wire, elem);
                wire.push(0);
            }
            Type::Struct(st) => {
                let field_ids: Vec<i64> = st
                    .fields
                    .iter()
                    .map(|(_, t)| self.define(t, definitions))
                    .collect();
                wire.push(3);
                wire.push(1);
                common(&mut wire, &st.name, id);
                if !st.fields.is_empty() {
                    wire.push(1);
                    put_uint(&mut wire, st.fields.len() as u64);
                    for ((name, _), fid) in st.fields.iter().zip(field_ids) {
                        wire.push(1);
                        put_bytes(&mut wire, name.as_bytes());
                        wire.push(1);
                        put_int(&mut wire, fid);
                        wire.push(0);
                    }
                }
                wire.push(0);
            }
            Type::GobEncoder(name) => {
                wire.push(5);
                wire.push(1);
                common(&mut wire, name, id);
                wire.push(0);
            }
            _ => {}
        }
        wire.push(0);
        definitions.push(wire);
        id
    }
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::Int => "int".into(),
        Type::Uint => "uint".into(),
        Type::Float => "float64".into(),
        Type::Bytes => "[]uint8".into(),
        Type::String => "string".into(),
        Type::Interface => "interface {}".into(),
        Type::Slice(e) => format!("[]{}", type_name(e)),
        Type::Map(k, v) => format!("map[{}]{}", type_name(k), type_name(v)),
        Type::Struct(st) => st.name.clone(),
        Type::GobEncoder(name) => name.clone(),
    }
}

fn common(out: &mut Vec<u8>, name: &str, id: i64) {
    if name.is_empty() {
        out.push(2);
    } else {
        out.push(1);
        put_bytes(out, name.as_bytes());
        out.push(1);
    }
    put_int(out, id);
    out.push(0);
}

fn mismatch(ty: &Type) -> EncodeError {
    EncodeError::Mismatch(type_name(ty))
}

fn encode_value(ty: &Type, value: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match (ty, value) {
        (Type::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
        (Type::Int, Value::Int(i)) => put_int(out, *i),
        (Type::Uint, Value::Uint(u)) => put_uint(out, *u),
        (Type::Float, Value::Float(f)) => put_uint(out, f.to_bits().swap_bytes()),
        (Type::Bytes | Type::String | Type::GobEncoder(_), Value::Bytes(b)) => put_bytes(out, b),
        (Type::Bytes | Type::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
        (Type::GobEncoder(_), Value::Encoded { bytes, .. }) => put_bytes(out, bytes),
        (Type::Interface, Value::Interface(None)) => put_uint(out, 0),
        (Type::Slice(elem), Value::Slice(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                encode_value(elem, item, out)?;
            }
        }
        (Type::Map(k, v), Value::Map(entries)) => {
            put_uint(out, entries.len() as u64);
            for (key, val) in entries {
                encode_value(k, key, out)?;
                encode_value(v, val, out)?;
            }
        }
        (Type::Struct(st), Value::Struct(s)) => encode_struct(st, &s.fields, out)?,
        _ => return Err(mismatch(ty)),
    }
    Ok(())
}

fn encode_struct(
    st: &StructType,
    values: &[(String, Value)],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut last: i64 = -1;
    for (index, (name, ty)) in st.fields.iter().enumerate() {
        let Some((_, value)) = values.iter().find(|(n, _)| n == name) else {
            continue;
        };
        if is_zero(value) {
            continue;
        }
        put_uint(out, (index as i64 - last) as u64);
        encode_value(ty, value, out)?;
        last = index as i64;
    }
    out.push(0);
    Ok(())
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Float(f) => *f == 0.0,
        Value::Bytes(b) => b.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Slice(items) => items.is_empty(),
        Value::Interface(i) => i.is_none(),
        Value::Encoded { bytes, .. } => bytes.is_empty(),
        _ => false,
    }
}

fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    out.push((-((8 - skip) as i8)) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 {
        ((!i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    };
    put_uint(out, u);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn encodes_spec_response_and_empty_struct_golden_bytes() {
        let response = Type::Struct(Arc::new(StructType {
            name: "Response".into(),
            fields: vec![
                ("ServiceMethod".into(), Type::String),
                ("Seq".into(), Type::Uint),
                ("Error".into(), Type::String),
            ],
        }));
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        let header = Value::Struct(super::super::value::Struct {
            type_name: "Response".into(),
            fields: vec![
                (
                    "ServiceMethod".into(),
                    Value::String("Dispenser.Dispense".into()),
                ),
                ("Seq".into(), Value::Uint(0)),
            ],
        });
        enc.encode(&response, &header, &mut out).expect("encode");
        let mut want = vec![0x3A, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x08];
        want.extend_from_slice(b"Response");
        want.extend_from_slice(&[0x01, 0xFF, 0x82, 0x00, 0x01, 0x03, 0x01, 0x0D]);
        want.extend_from_slice(b"ServiceMethod");
        want.extend_from_slice(&[0x01, 0x0C, 0x00, 0x01, 0x03]);
        want.extend_from_slice(b"Seq");
        want.extend_from_slice(&[0x01, 0x06, 0x00, 0x01, 0x05]);
        want.extend_from_slice(b"Error");
        want.extend_from_slice(&[0x01, 0x0C, 0x00, 0x00, 0x00, 0x17, 0xFF, 0x82, 0x01, 0x12]);
        want.extend_from_slice(b"Dispenser.Dispense");
        want.push(0);
        assert_eq!(out, want);
    }
}
