//! Unit tests of `decode`.
use super::*;
use crate::codec::gob::wire::{put_int, put_uint};

/// gob.md §8.1: `T{7, "hi"}` twice on one stream.
const T_STREAM: &[u8] = &[
    0x1B, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x54, 0x01, 0xFF, 0x82, 0x00, 0x01, 0x02, 0x01, 0x01,
    0x41, 0x01, 0x04, 0x00, 0x01, 0x01, 0x42, 0x01, 0x0C, 0x00, 0x00, 0x00, 0x09, 0xFF, 0x82, 0x01,
    0x0E, 0x01, 0x02, 0x68, 0x69, 0x00,
];
const T_AGAIN: &[u8] = &[0x09, 0xFF, 0x82, 0x01, 0x0E, 0x01, 0x02, 0x68, 0x69, 0x00];

fn t_value() -> Value {
    Value::Struct(Struct {
        type_name: "T".into(),
        fields: vec![
            ("A".into(), Value::Int(7)),
            ("B".into(), Value::String("hi".into())),
        ],
    })
}

fn message(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_uint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A definition of struct `id` named "R" with one field `Next` of type `field_id`.
fn recursive_definition(id: i64, field_id: i64) -> Vec<u8> {
    let mut p = Vec::new();
    put_int(&mut p, -id);
    p.extend_from_slice(&[0x03, 0x01, 0x01, 0x01, b'R', 0x01]);
    put_int(&mut p, id);
    p.extend_from_slice(&[0x00, 0x01, 0x01, 0x01, 0x04, b'N', b'e', b'x', b't', 0x01]);
    put_int(&mut p, field_id);
    p.extend_from_slice(&[0x00, 0x00, 0x00]);
    message(&p)
}

fn decode_one(d: &mut Decoder, bytes: &[u8]) -> (Result<Option<Value>, DecodeError>, usize) {
    let mut buf = BytesMut::from(bytes);
    let r = d.decode(&mut buf);
    (r, bytes.len() - buf.len())
}

#[test]
fn spec_struct_example_decodes_and_definitions_persist() {
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(T_STREAM);
    buf.extend_from_slice(T_AGAIN);
    assert_eq!(d.decode(&mut buf), Ok(Some(t_value())));
    assert_eq!(d.decode(&mut buf), Ok(Some(t_value())));
    assert!(buf.is_empty());
    assert_eq!(d.type_count(), 1);
}

#[test]
fn every_prefix_is_incomplete_without_consuming_or_defining() {
    for cut in 0..T_STREAM.len() {
        let mut d = Decoder::new();
        assert_eq!(
            decode_one(&mut d, &T_STREAM[..cut]),
            (Ok(None), 0),
            "cut at {cut}"
        );
        assert_eq!(d.type_count(), 0);
    }
}

#[test]
fn spec_interface_example_spans_two_messages() {
    let first: &[u8] = &[
        0x19, 0x10, 0x00, 0x01, 0x50, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x50, 0x01, 0xFF, 0x82,
        0x00, 0x01, 0x01, 0x01, 0x01, 0x58, 0x01, 0x04, 0x00, 0x00, 0x00, 0x06, 0xFF, 0x82, 0x03,
        0x01, 0x02, 0x00,
    ];
    let expected = Value::Interface(Some(Box::new(Interface {
        name: "P".into(),
        value: Value::Struct(Struct {
            type_name: "P".into(),
            fields: vec![("X".into(), Value::Int(1))],
        }),
    })));
    let mut d = Decoder::new();
    // The first message alone is not a value yet.
    assert_eq!(decode_one(&mut d, &first[..26]), (Ok(None), 0));
    assert_eq!(
        decode_one(&mut d, first),
        (Ok(Some(expected.clone())), first.len())
    );
    let again = [
        0x0A, 0x10, 0x00, 0x01, 0x50, 0xFF, 0x82, 0x03, 0x01, 0x02, 0x00,
    ];
    assert_eq!(
        decode_one(&mut d, &again),
        (Ok(Some(expected)), again.len())
    );
    assert_eq!(
        decode_one(&mut d, &[0x03, 0x10, 0x00, 0x00]),
        (Ok(Some(Value::Interface(None))), 4)
    );
}

#[test]
fn huge_message_length_is_fatal_before_the_bytes_arrive() {
    let mut d = Decoder::with_limits(Limits {
        max_message_len: 1000,
        ..Limits::default()
    });
    let mut huge = Vec::new();
    put_uint(&mut huge, 1001);
    let (r, consumed) = decode_one(&mut d, &huge);
    assert_eq!(
        r,
        Err(DecodeError::MessageTooLong {
            len: 1001,
            limit: 1000
        })
    );
    assert!(!r.unwrap_err().is_recoverable());
    assert_eq!(consumed, 0);
    let (r, _) = decode_one(&mut Decoder::new(), &[0xF7, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(r, Err(DecodeError::BadLength(PrimitiveError::TooLong(9))));
}

#[test]
fn lying_lengths_inside_a_message_are_recoverable_and_consumed() {
    let mut d = Decoder::new();
    // A string singleton declaring 2^62 bytes, then a good value.
    let mut bad = vec![0x0C, 0x00];
    put_uint(&mut bad, 1 << 62);
    let mut stream = message(&bad);
    stream.extend_from_slice(&message(&[0x0C, 0x00, 0x01, b'x']));
    let mut buf = BytesMut::from(&stream[..]);
    let err = d.decode(&mut buf).unwrap_err();
    assert!(matches!(err, DecodeError::LengthOutOfRange { len, .. } if len == 1 << 62));
    assert!(err.is_recoverable());
    assert_eq!(d.decode(&mut buf), Ok(Some(Value::String("x".into()))));
}

#[test]
fn huge_collection_counts_fail_without_allocating() {
    // A slice-of-int type (id 64), then a value declaring 2^60 elements with three bytes present.
    let mut def = Vec::new();
    put_int(&mut def, -64);
    def.extend_from_slice(&[0x02, 0x01, 0x02]);
    put_int(&mut def, 64);
    def.extend_from_slice(&[0x00, 0x01, 0x04, 0x00, 0x00]);
    let mut value = Vec::new();
    put_int(&mut value, 64);
    value.push(0x00);
    put_uint(&mut value, 1 << 60);
    value.extend_from_slice(&[2, 4, 6]);
    let mut stream = message(&def);
    stream.extend_from_slice(&message(&value));
    let (r, _) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(r, Err(DecodeError::TooManyValues(DEFAULT_MAX_VALUES)));
    let mut value = Vec::new();
    put_int(&mut value, 64);
    value.extend_from_slice(&[0x00, 0x7F, 2, 4, 6]);
    let mut stream = message(&def);
    stream.extend_from_slice(&message(&value));
    let (r, _) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(r, Err(DecodeError::Truncated("a collection")));
}

#[test]
fn deep_nesting_of_a_recursive_type_is_refused() {
    let mut stream = recursive_definition(70, 70);
    let mut value = Vec::new();
    put_int(&mut value, 70);
    value.extend(std::iter::repeat_n(0x01, 10_000));
    stream.extend_from_slice(&message(&value));
    let (r, consumed) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(r, Err(DecodeError::TooDeep(DEFAULT_MAX_DEPTH)));
    assert_eq!(consumed, stream.len());
    // A shallow value of the same recursive type is fine and ends at the end of the message.
    let mut d = Decoder::new();
    let mut stream = recursive_definition(70, 70);
    stream.extend_from_slice(&message(&[0xFF, 0x8C, 0x01, 0x01]));
    let (r, _) = decode_one(&mut d, &stream);
    let inner = Value::Struct(Struct {
        type_name: "R".into(),
        fields: vec![],
    });
    let outer = |v| {
        Value::Struct(Struct {
            type_name: "R".into(),
            fields: vec![("Next".into(), v)],
        })
    };
    assert_eq!(r, Ok(Some(outer(outer(inner)))));
}

#[test]
fn unknown_type_ids_are_recoverable_and_definitions_before_them_kept() {
    let mut d = Decoder::new();
    let mut stream = recursive_definition(70, 71); // forward reference to 71, never defined
    stream.extend_from_slice(&message(&[0xFF, 0x8C, 0x01, 0x00, 0x00]));
    stream.extend_from_slice(&message(&[0xFF, 0x8C, 0x00]));
    let mut buf = BytesMut::from(&stream[..]);
    let err = d.decode(&mut buf).unwrap_err();
    assert_eq!(err, DecodeError::UnknownType(71));
    assert!(err.is_recoverable());
    assert_eq!(d.type_count(), 1);
    let empty = Value::Struct(Struct {
        type_name: "R".into(),
        fields: vec![],
    });
    assert_eq!(d.decode(&mut buf), Ok(Some(empty)));
    for id in [0, 9, 63, 1000] {
        let mut value = Vec::new();
        put_int(&mut value, id);
        value.extend_from_slice(&[0x00, 0x00]);
        let (r, _) = decode_one(&mut d, &message(&value));
        assert_eq!(r, Err(DecodeError::UnknownType(id)));
    }
}

#[test]
fn duplicate_and_reserved_definitions_are_fatal() {
    let mut stream = recursive_definition(70, 70);
    stream.extend_from_slice(&recursive_definition(70, 70));
    let (r, consumed) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(r, Err(DecodeError::DuplicateType(70)));
    assert!(!r.unwrap_err().is_recoverable());
    assert_eq!(consumed, 0);
    let (r, _) = decode_one(&mut Decoder::new(), &recursive_definition(20, 20));
    assert_eq!(r, Err(DecodeError::ReservedTypeId(20)));
}

#[test]
fn malformed_values_are_errors() {
    let cases: [(&[u8], DecodeError); 6] = [
        (&[0x02, 0x04, 0x01], DecodeError::NonZeroSingletonDelta(1)),
        (&[0x02, 0x04, 0x00], DecodeError::Truncated("an integer")),
        (
            &[0x04, 0x04, 0x00, 0xF0, 0x00],
            DecodeError::BadUint(PrimitiveError::TooLong(16)),
        ),
        (&[0x00], DecodeError::EmptyMessage),
        (
            &[0x05, 0x10, 0x00, 0xFE, 0x04, 0x01],
            DecodeError::InterfaceNameTooLong(1025),
        ),
        (
            &[0x04, 0xFF, 0x82, 0x05, 0x00],
            DecodeError::UnknownType(65),
        ),
    ];
    for (bytes, expected) in cases {
        let bytes = bytes.to_vec();
        let (r, consumed) = decode_one(&mut Decoder::new(), &bytes);
        assert_eq!(r, Err(expected), "{bytes:02X?}");
        assert_eq!(consumed, bytes.len());
    }
    // Field delta past the last field of T.
    let mut stream = T_STREAM[..28].to_vec();
    stream.extend_from_slice(&[0x04, 0xFF, 0x82, 0x03, 0x00]);
    let (r, _) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(
        r,
        Err(DecodeError::FieldOutOfBounds {
            type_name: "T".into(),
            field: 2
        })
    );
}

#[test]
fn extra_data_after_a_definition_is_fatal() {
    let mut stream = T_STREAM[..28].to_vec();
    stream[0] += 1;
    stream.insert(28, 0x00);
    let (r, _) = decode_one(&mut Decoder::new(), &stream);
    assert_eq!(r, Err(DecodeError::ExtraData(65)));
}
