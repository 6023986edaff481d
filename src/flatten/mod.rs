//! Any `Serialize` value as record fields: nested maps and structs become dotted names,
//! and floats keep NaN and the infinities (which `serde_json::Value` cannot hold).
//!
//! [`log_dict`](fn@crate::log_dict), [`log_hparams`](fn@crate::log_hparams) and the run API's
//! metrics serialize through this straight into `(Key, Value)` pairs, so a NaN loss stays
//! a NaN float all the way to every sink.

use std::fmt;

use serde::ser::{self, Serialize};

use self::key::KeyText;

use crate::{Key, Value};

mod key;

/// Deepest nesting flattened; deeper values are refused with an error (the recursion
/// would otherwise be bounded only by the stack).
pub(crate) const MAX_DEPTH: usize = 512;

/// Why a value could not be flattened.
#[derive(Debug)]
pub(crate) struct FlattenError(String);

impl fmt::Display for FlattenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlattenError {}

impl ser::Error for FlattenError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FlattenError(msg.to_string())
    }
}

/// Appends the leaves of `value` to `out`, names prefixed with `prefix.` when `prefix` is
/// not empty. A value that is not a map (a number, say) is stored under `prefix`, or under
/// `value` without one. Arrays are kept whole as JSON. On error `out` is left as it was.
pub(crate) fn flatten_into<T: Serialize + ?Sized>(
    out: &mut Vec<(Key, Value)>,
    prefix: &str,
    value: &T,
) -> Result<(), FlattenError> {
    let len = out.len();
    let result = value.serialize(Leaf {
        out,
        prefix: prefix.to_owned(),
        depth: 0,
    });
    if result.is_err() {
        out.truncate(len);
    }
    result
}

/// Serializes one value found at `prefix`.
struct Leaf<'a> {
    out: &'a mut Vec<(Key, Value)>,
    prefix: String,
    depth: usize,
}

impl<'a> Leaf<'a> {
    fn push(self, value: Value) -> Result<(), FlattenError> {
        // Only a top-level scalar has no name; an empty map key is a name like any other.
        let key = if self.prefix.is_empty() && self.depth == 0 {
            Key::Borrowed("value")
        } else {
            Key::Owned(self.prefix)
        };
        self.out.push((key, value));
        Ok(())
    }

    fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<(), FlattenError> {
        let json = serde_json::to_value(value).map_err(|e| FlattenError(e.to_string()))?;
        self.push(Value::Json(json))
    }

    fn nested(self) -> Result<Nested<'a>, FlattenError> {
        if self.depth >= MAX_DEPTH {
            return Err(FlattenError(format!(
                "nesting deeper than {MAX_DEPTH} levels (at `{}`)",
                self.prefix.chars().take(200).collect::<String>()
            )));
        }
        Ok(Nested {
            out: self.out,
            prefix: self.prefix,
            depth: self.depth + 1,
            key: None,
        })
    }
}

/// A map, struct or variant being flattened: each entry becomes `prefix.key`.
struct Nested<'a> {
    out: &'a mut Vec<(Key, Value)>,
    prefix: String,
    depth: usize,
    key: Option<String>,
}

impl Nested<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), FlattenError> {
        let prefix = if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        };
        value.serialize(Leaf {
            out: &mut *self.out,
            prefix,
            depth: self.depth,
        })
    }
}

impl ser::SerializeMap for Nested<'_> {
    type Ok = ();
    type Error = FlattenError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FlattenError> {
        self.key = Some(key.serialize(KeyText)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        let key = self.key.take().unwrap_or_default();
        self.entry(&key, value)
    }

    fn end(self) -> Result<(), FlattenError> {
        Ok(())
    }
}

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Nested<'_> {
            type Ok = ();
            type Error = FlattenError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), FlattenError> {
                self.entry(key, value)
            }
            fn end(self) -> Result<(), FlattenError> {
                Ok(())
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

/// Sequences are kept whole as a JSON array: collected with serde_json's own serializer.
struct Seq<'a> {
    leaf: Leaf<'a>,
    items: Vec<serde_json::Value>,
}

impl Seq<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        let v = serde_json::to_value(value).map_err(|e| FlattenError(e.to_string()))?;
        self.items.push(v);
        Ok(())
    }

    fn finish(self) -> Result<(), FlattenError> {
        self.leaf
            .push(Value::Json(serde_json::Value::Array(self.items)))
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = FlattenError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
                self.item(value)
            }
            fn end(self) -> Result<(), FlattenError> {
                self.finish()
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl<'a> ser::Serializer for Leaf<'a> {
    type Ok = ();
    type Error = FlattenError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Nested<'a>;
    type SerializeStruct = Nested<'a>;
    type SerializeStructVariant = Nested<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), FlattenError> {
        self.push(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<(), FlattenError> {
        self.push(Value::I64(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<(), FlattenError> {
        self.push(Value::I64(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<(), FlattenError> {
        self.push(Value::I64(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<(), FlattenError> {
        // Non-negative integers are unsigned, as serde_json reads them back.
        match u64::try_from(v) {
            Ok(u) => self.push(Value::U64(u)),
            Err(_) => self.push(Value::I64(v)),
        }
    }
    fn serialize_i128(self, v: i128) -> Result<(), FlattenError> {
        match (u64::try_from(v), i64::try_from(v)) {
            (Ok(u), _) => self.push(Value::U64(u)),
            (_, Ok(i)) => self.push(Value::I64(i)),
            // Out of range for every numeric type a sink takes: all digits as text.
            _ => self.push(Value::Str(v.to_string())),
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), FlattenError> {
        self.push(Value::U64(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<(), FlattenError> {
        self.push(Value::U64(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<(), FlattenError> {
        self.push(Value::U64(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<(), FlattenError> {
        self.push(Value::U64(v))
    }
    fn serialize_u128(self, v: u128) -> Result<(), FlattenError> {
        match u64::try_from(v) {
            Ok(u) => self.push(Value::U64(u)),
            Err(_) => self.push(Value::Str(v.to_string())),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), FlattenError> {
        self.push(Value::F64(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<(), FlattenError> {
        self.push(Value::F64(v))
    }
    fn serialize_char(self, v: char) -> Result<(), FlattenError> {
        self.push(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<(), FlattenError> {
        self.push(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), FlattenError> {
        self.json(v)
    }
    fn serialize_none(self) -> Result<(), FlattenError> {
        self.push(Value::Json(serde_json::Value::Null))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), FlattenError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), FlattenError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), FlattenError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        let mut nested = self.nested()?;
        nested.entry(variant, value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, FlattenError> {
        Ok(Seq {
            leaf: self,
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, FlattenError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Seq<'a>, FlattenError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>, FlattenError> {
        let mut leaf = self;
        leaf.prefix = if leaf.prefix.is_empty() {
            variant.to_owned()
        } else {
            format!("{}.{variant}", leaf.prefix)
        };
        leaf.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Nested<'a>, FlattenError> {
        self.nested()
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Nested<'a>, FlattenError> {
        self.nested()
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Nested<'a>, FlattenError> {
        let mut nested = self.nested()?;
        nested.prefix = if nested.prefix.is_empty() {
            variant.to_owned()
        } else {
            format!("{}.{variant}", nested.prefix)
        };
        Ok(nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn flat<T: Serialize + ?Sized>(v: &T) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        flatten_into(&mut out, "", v).unwrap();
        out.into_iter().map(|(k, v)| (k.into_owned(), v)).collect()
    }

    #[test]
    fn non_finite_floats_stay_floats() {
        let mut m = BTreeMap::new();
        m.insert("inf", f64::INFINITY);
        m.insert("nan", f64::NAN);
        m.insert("ninf", f64::NEG_INFINITY);
        let out = flat(&m);
        assert_eq!(out[0], ("inf".into(), Value::F64(f64::INFINITY)));
        assert!(matches!(out[1], (ref k, Value::F64(v)) if k == "nan" && v.is_nan()));
        assert_eq!(out[2], ("ninf".into(), Value::F64(f64::NEG_INFINITY)));
    }

    #[test]
    fn structs_enums_and_keys() {
        #[derive(serde::Serialize)]
        enum Opt {
            Adam { lr: f32 },
            Sgd(f64),
            Plain,
        }
        #[derive(serde::Serialize)]
        struct Cfg {
            opt: Opt,
            other: Opt,
            plain: Opt,
            layers: Vec<u8>,
            by_id: BTreeMap<u32, bool>,
            none: Option<u8>,
        }
        let out = flat(&Cfg {
            opt: Opt::Adam { lr: 0.5 },
            other: Opt::Sgd(0.1),
            plain: Opt::Plain,
            layers: vec![1, 2],
            by_id: [(7, true)].into(),
            none: None,
        });
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "opt.Adam.lr",
                "other.Sgd",
                "plain",
                "layers",
                "by_id.7",
                "none"
            ]
        );
        assert_eq!(out[0].1, Value::F64(0.5));
        assert_eq!(out[2].1, Value::Str("Plain".into()));
        assert_eq!(out[3].1, Value::Json(serde_json::json!([1, 2])));
        let empty_key = flat(&serde_json::json!({"": 1}));
        assert_eq!(empty_key, [(String::new(), Value::U64(1))]);
        let scalar = flat(&-3i32);
        assert_eq!(scalar, [("value".to_string(), Value::I64(-3))]);
    }

    #[test]
    fn depth_is_bounded_and_an_error_adds_nothing() {
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_DEPTH {
            deep = serde_json::json!({ "a": deep });
        }
        let out = flat(&deep);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.matches('a').count(), MAX_DEPTH);
        let too_deep = serde_json::json!({ "b": deep });
        let mut fields = vec![("x".into(), Value::U64(1))];
        let err = flatten_into(&mut fields, "", &too_deep).unwrap_err();
        assert!(err.to_string().contains("deeper than 512"), "{err}");
        assert_eq!(fields.len(), 1);
    }
}
