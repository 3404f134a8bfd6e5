//! Reading the peer's `wireType` definitions: the struct value of gob's own type-definition types, by field
//! number, into a [`WireType`].
use super::{Cursor, DecodeError};
use crate::codec::gob::types::*;

/// Reads a `wireType` struct value (field numbers of gob.md §3.1).
pub(super) fn read_wire_type(c: &mut Cursor<'_>) -> Result<WireType, DecodeError> {
    let mut found = None;
    read_fields(c, 7, |c, field| {
        if found.is_some() {
            return Err(DecodeError::Malformed(
                "a wireType with more than one kind set",
            ));
        }
        let mut name = String::new();
        let (mut a, mut b) = (0i64, 0i64);
        let mut struct_fields = Vec::new();
        read_fields(c, if field == 2 { 2 } else { 3 }, |c, inner| {
            match (field, inner) {
                (_, 0) => read_fields(c, 2, |c, common| {
                    match common {
                        0 => name = c.string()?,
                        _ => {
                            c.int()?;
                        }
                    }
                    Ok(())
                })?,
                (2, 1) => {
                    let count = c.uint()?;
                    for _ in 0..count {
                        if c.at_end() {
                            return Err(DecodeError::Truncated("a struct field list"));
                        }
                        let (mut field_name, mut id) = (String::new(), 0);
                        read_fields(c, 2, |c, f| {
                            match f {
                                0 => field_name = c.string()?,
                                _ => id = c.int()?,
                            }
                            Ok(())
                        })?;
                        struct_fields.push((field_name, id));
                    }
                }
                (0 | 3, 1) | (1, 1) => a = c.int()?,
                (0 | 3, 2) => b = c.int()?,
                _ => {
                    return Err(DecodeError::FieldOutOfBounds {
                        type_name: "wireType".into(),
                        field: inner,
                    })
                }
            }
            Ok(())
        })?;
        found = Some(match field {
            0 => WireType::Array {
                name,
                elem: a,
                len: b,
            },
            1 => WireType::Slice { name, elem: a },
            2 => WireType::Struct {
                name,
                fields: struct_fields,
            },
            3 => WireType::Map {
                name,
                key: a,
                elem: b,
            },
            _ => WireType::Encoded { name },
        });
        Ok(())
    })?;
    found.ok_or(DecodeError::Malformed("a wireType with no kind set"))
}

/// Reads a struct value with `count` known fields, calling `field` for each one present.
fn read_fields<'a>(
    c: &mut Cursor<'a>,
    count: u64,
    mut field: impl FnMut(&mut Cursor<'a>, u64) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut number: Option<u64> = None;
    while !c.at_end() {
        let delta = c.uint()?;
        if delta == 0 {
            break;
        }
        let next = number.map_or(Some(delta - 1), |n| n.checked_add(delta));
        match next {
            Some(n) if n < count => {
                field(c, n)?;
                number = Some(n);
            }
            _ => {
                return Err(DecodeError::FieldOutOfBounds {
                    type_name: "wireType".into(),
                    field: next.unwrap_or(u64::MAX),
                })
            }
        }
    }
    Ok(())
}
