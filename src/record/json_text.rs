//! A JSON document streamed into a record's fields (the `dict` field of a `tracing` event
//! written by hand): nested keys joined with `.`, in document order, no intermediate tree.

use std::borrow::Cow;
use std::fmt;

use super::{Record, Value};

/// Streams a JSON document into a record's fields: nested keys joined with `.`.
pub(super) struct Flatten<'r> {
    record: &'r mut Record,
    prefix: String,
}

impl<'r> Flatten<'r> {
    pub(super) fn new(record: &'r mut Record) -> Self {
        Flatten {
            record,
            prefix: String::new(),
        }
    }

    fn leaf(self, value: Value) {
        let key = if self.prefix.is_empty() {
            Cow::Borrowed("value")
        } else {
            Cow::Owned(self.prefix)
        };
        self.record.fields.push((key, value));
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let prefix = if self.prefix.is_empty() {
                key.into_owned()
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(Flatten {
                record: &mut *self.record,
                prefix,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<serde_json::Value>()? {
            items.push(item);
        }
        self.leaf(Value::Json(serde_json::Value::Array(items)));
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.leaf(Value::Bool(v));
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.leaf(Value::I64(v));
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.leaf(Value::U64(v));
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.leaf(Value::F64(v));
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.leaf(Value::Str(v.to_owned()));
        Ok(())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.leaf(Value::Str(v));
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.leaf(Value::Json(serde_json::Value::Null));
        Ok(())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Record, Value};

    #[test]
    fn json_text_flattens_in_document_order() {
        let mut r = Record::new(0).with_field("before", 1i64);
        r.extend_json_str(r#"{"z": 1, "a": {"y": 2.5, "b": "t"}, "n": null}"#)
            .unwrap();
        let keys: Vec<&str> = r.fields.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["before", "z", "a.y", "a.b", "n"]);
        // A parse error adds nothing.
        assert!(r.extend_json_str(r#"{"x": 1, "y": "#).is_err());
        assert_eq!(r.fields.len(), 5);
    }

    #[test]
    fn json_flattening() {
        let mut r = Record::new(0);
        r.extend_json(
            &serde_json::json!({"eval": {"acc": 0.9, "f1": {"macro": 1}}, "tags": [1, 2], "n": null, "s": "x"}),
        );
        assert_eq!(r.get("eval.acc"), Some(&Value::F64(0.9)));
        assert_eq!(r.get("eval.f1.macro"), Some(&Value::U64(1)));
        assert_eq!(r.get("tags"), Some(&Value::Json(serde_json::json!([1, 2]))));
        assert_eq!(r.get("n"), Some(&Value::Json(serde_json::Value::Null)));
        assert_eq!(r.get("s"), Some(&Value::Str("x".into())));
        let mut scalar = Record::new(0);
        scalar.extend_json(&serde_json::json!(5));
        assert_eq!(scalar.get("value"), Some(&Value::U64(5)));
    }
}
