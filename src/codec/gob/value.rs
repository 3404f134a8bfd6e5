//! The dynamic value a gob stream decodes into, shaped by the wire types the peer sent, with small accessors so
//! callers can pick fields out by name (Go's decoder matches struct fields by name too, spec gob.md §6).

/// A decoded gob value, self-described by the wire types the peer sent.
///
/// Go strings are bytes: [`Value::String`] holds them decoded as UTF-8 with invalid sequences replaced
/// (lossy); a caller that needs the raw bytes of a field should expect `[]byte` on the wire
/// ([`Value::Bytes`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Bytes(Vec<u8>),
    String(String),
    Slice(Vec<Value>),
    Array(Vec<Value>),
    /// Entries in wire order (Go's map iteration order, i.e. random).
    Map(Vec<(Value, Value)>),
    /// Only the fields present on the wire: Go omits zero fields.
    Struct(Struct),
    /// `None` is the nil interface.
    Interface(Option<Box<Interface>>),
    /// The opaque payload of a GobEncoder / BinaryMarshaler / TextMarshaler type (e.g. `time.Time`).
    Encoded {
        type_name: String,
        bytes: Vec<u8>,
    },
}

/// A struct value: its wire type name and the fields that were sent, in field order.
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
    /// The value's kind in Go's words, for messages (`[]byte`, `slice`, `GobEncoder`).
    pub fn go_kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Bytes(_) => "[]byte",
            Value::String(_) => "string",
            Value::Slice(_) | Value::Array(_) => "slice",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
            Value::Interface(_) => "interface",
            Value::Encoded { .. } => "GobEncoder",
        }
    }

    /// The struct field `name`, looking through interfaces; `None` when absent (Go's zero value).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(s) => s.field(name),
            Value::Interface(Some(i)) => i.value.field(name),
            _ => None,
        }
    }

    /// Follows a path of struct field names, e.g. `["AnalysisRun", "ObjectMeta", "Namespace"]`.
    pub fn path(&self, names: &[&str]) -> Option<&Value> {
        names.iter().try_fold(self, |v, name| v.field(name))
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

    /// A `Uint`, or a non-negative `Int`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// `Bytes`, `String` or an `Encoded` payload as bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) | Value::Encoded { bytes: b, .. } => Some(b),
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The elements of a `Slice` or `Array`.
    pub fn as_slice(&self) -> Option<&[Value]> {
        match self {
            Value::Slice(v) | Value::Array(v) => Some(v),
            _ => None,
        }
    }

    /// The entries of a `Map`, in wire order.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value of the map entry whose key is the string `key`.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            Value::Interface(Some(i)) => i.value.as_struct(),
            _ => None,
        }
    }

    /// The concrete value and registered name of a non-nil interface.
    pub fn as_interface(&self) -> Option<&Interface> {
        match self {
            Value::Interface(Some(i)) => Some(i),
            _ => None,
        }
    }
}

impl Struct {
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Value {
        Value::Struct(Struct {
            type_name: "ObjectMeta".into(),
            fields: vec![
                ("Namespace".into(), Value::String("prod".into())),
                ("Generation".into(), Value::Int(3)),
                (
                    "Labels".into(),
                    Value::Map(vec![(
                        Value::String("app".into()),
                        Value::String("web".into()),
                    )]),
                ),
            ],
        })
    }

    #[test]
    fn fields_are_found_through_interfaces_and_paths() {
        let args = Value::Interface(Some(Box::new(Interface {
            name: "RunArgs".into(),
            value: Value::Struct(Struct {
                type_name: "RunArgs".into(),
                fields: vec![("ObjectMeta".into(), meta())],
            }),
        })));
        assert_eq!(
            args.path(&["ObjectMeta", "Namespace"])
                .and_then(Value::as_str),
            Some("prod")
        );
        assert_eq!(
            args.path(&["ObjectMeta", "Generation"])
                .and_then(Value::as_u64),
            Some(3)
        );
        assert_eq!(
            args.path(&["ObjectMeta", "Labels"])
                .and_then(|l| l.map_get("app"))
                .and_then(Value::as_str),
            Some("web")
        );
        assert_eq!(args.path(&["ObjectMeta", "Name"]), None);
        assert_eq!(
            args.as_interface().map(|i| i.name.as_str()),
            Some("RunArgs")
        );
    }

    #[test]
    fn numeric_accessors_refuse_values_that_do_not_fit() {
        assert_eq!(Value::Uint(u64::MAX).as_i64(), None);
        assert_eq!(Value::Int(-1).as_u64(), None);
        assert_eq!(Value::String("1".into()).as_i64(), None);
    }
}
