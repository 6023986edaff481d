//! Run tags and final results: [`Tags`] and [`RunResult`], kept in `run.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Run;
use crate::{Error, Result};

/// One final result of a run: a value and what it was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The value, e.g. a final accuracy. NaN and ±∞ are kept (in `run.json` as the
    /// strings `"NaN"`, `"Infinity"`, `"-Infinity"`, as in the JSONL files).
    #[serde(with = "json_f64")]
    pub value: f64,
    /// Free-form context, e.g. `{"dataset": "test"}`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

/// A float in JSON with the JSONL convention for NaN and ±∞.
mod json_f64 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match crate::json::non_finite_text(*v) {
            None => s.serialize_f64(*v),
            Some(text) => s.serialize_str(text),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        crate::jsonl::number(&v).ok_or_else(|| {
            D::Error::custom("expected a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
        })
    }
}

/// A run's tags; see [`Run::tags`].
#[derive(Debug)]
pub struct Tags<'a> {
    pub(super) run: &'a Run,
}

impl Tags<'_> {
    /// Sets a tag (replacing its value) and sends the run's tags to the backends.
    pub fn set(&self, key: &str, value: impl Into<String>) -> Result<()> {
        if key.is_empty() {
            return Err(Error::Config("a tag needs a name".into()));
        }
        let value = value.into();
        self.run.update_info(|info| {
            info.tags.insert(key.to_owned(), value);
        })?;
        self.send();
        Ok(())
    }

    /// Removes a tag (and sends the remaining tags to the backends); true if it was there.
    pub fn remove(&self, key: &str) -> Result<bool> {
        let mut was = false;
        self.run
            .update_info(|info| was = info.tags.remove(key).is_some())?;
        if was {
            self.send();
        }
        Ok(was)
    }

    /// A tag's value.
    pub fn get(&self, key: &str) -> Option<String> {
        self.all().remove(key)
    }

    /// Every tag.
    pub fn all(&self) -> BTreeMap<String, String> {
        self.run
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tags
            .clone()
    }

    /// One `tags` event with every tag as a text field.
    fn send(&self) {
        let mut fields: Vec<(crate::Key, crate::Value)> = vec![("event".into(), "tags".into())];
        for (k, v) in self.all() {
            fields.push((k.into(), crate::Value::Str(v)));
        }
        crate::log_fields(None, false, fields);
    }
}
