//! Unit tests of `encode`.
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
        0x1B, 0xFF, 0x81, 0x03, 0x01, 0x01, 0x01, 0x54, 0x01, 0xFF, 0x82, 0x00, 0x01, 0x02, 0x01,
        0x01, 0x41, 0x01, 0x04, 0x00, 0x01, 0x01, 0x42, 0x01, 0x0C, 0x00, 0x00, 0x00, 0x09, 0xFF,
        0x82, 0x01, 0x0E, 0x01, 0x02, 0x68, 0x69, 0x00,
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
            Type::Int => Value::Int((self.next() as i64 >> self.below(64)) | i64::from(non_zero)),
            Type::Uint => Value::Uint((self.next() >> self.below(64)) | u64::from(non_zero)),
            Type::Float => {
                Value::Float([1.5, -0.25, 1e300, f64::MIN_POSITIVE, 17.0][self.below(5) as usize])
            }
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
            Type::Slice(e) => Value::Slice((0..n(self)).map(|_| self.value(e, false)).collect()),
            Type::Array(e, len) => Value::Array((0..*len).map(|_| self.value(e, false)).collect()),
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
