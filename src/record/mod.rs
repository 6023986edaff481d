//! One captured metrics event: [`Record`], its [`Value`]s, and how a `tracing` event becomes one.
//!
//! Capture happens on the caller's thread and does no I/O: the event's fields are read
//! into a compact encoding (field names stay `&'static str` from the callsite) that each
//! sink's worker turns into a `Record`, reusing records it has written, so typical events
//! allocate nothing. Reserved fields are lifted out:
//!
//! | field | becomes |
//! |---|---|
//! | `step` (non-negative integer) | [`Record::step`] |
//! | `hparams = true` | [`Record::hparams`] |
//! | `message` | [`Record::message`] |
//! | `dict` (a JSON object as text, see [`log_dict`](crate::log_dict)) | one field per leaf, nested keys joined with `.` |
//!
//! A `step` that is not a non-negative integer (say `-1` or `0.5`) is kept as an ordinary
//! field named `step` and the record has no step.

pub(crate) mod capture;
mod histogram;
mod json_text;
mod value;

use std::borrow::Cow;
use std::time::SystemTime;

pub use histogram::{Histogram, HistogramSummary, HistogramValue, HISTOGRAM_BINS};
#[cfg_attr(
    not(any(feature = "tensorboard", feature = "mlflow", feature = "wandb")),
    allow(unused_imports)
)]
pub use value::Value;

/// A field name. Names from a `tracing` callsite are borrowed; run-time names are owned.
pub type Key = Cow<'static, str>;

/// Iterator over a record's fields without duplicate names; see [`Record::unique_fields`].
#[derive(Debug)]
pub struct UniqueFields<'a>(Unique<'a>);

#[derive(Debug)]
enum Unique<'a> {
    Plain(std::slice::Iter<'a, (Key, Value)>),
    Deduped(std::vec::IntoIter<(&'a str, &'a Value)>),
}

impl<'a> Iterator for UniqueFields<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Unique::Plain(it) => it.next().map(|(k, v)| (k.as_ref(), v)),
            Unique::Deduped(it) => it.next(),
        }
    }
}

/// One metrics event as the sinks see it.
///
/// ```
/// use trainlog::{Record, Value};
/// let r = Record::new(0).with_step(3).with_field("loss", 0.5).with_field("eval.acc", 0.9);
/// assert_eq!(r.step, Some(3));
/// assert_eq!(r.get("loss"), Some(&Value::F64(0.5)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// When the event was captured.
    pub timestamp: SystemTime,
    /// Rank of the process that captured it.
    pub rank: u32,
    /// The training step, when the event carried one (step 0 included).
    pub step: Option<u64>,
    /// True for hyperparameter records (`hparams = true`).
    pub hparams: bool,
    /// The event's message, if it had one besides its fields.
    pub message: Option<String>,
    /// The fields in the order they were written. Dotted names are nesting. Duplicate
    /// names can occur (see [`Record::unique_fields`]).
    pub fields: Vec<(Key, Value)>,
    /// `Some(target)` when this is not a metrics record but an ERROR-level log event from
    /// `target`, given only to sinks that ask for them ([`Sink::wants_errors`](crate::sink::Sink::wants_errors)).
    pub error_target: Option<String>,
}

impl Record {
    /// An empty record stamped now.
    pub fn new(rank: u32) -> Self {
        Record {
            timestamp: SystemTime::now(),
            rank,
            step: None,
            hparams: false,
            message: None,
            fields: Vec::new(),
            error_target: None,
        }
    }

    /// Sets the step.
    pub fn with_step(mut self, step: u64) -> Self {
        self.step = Some(step);
        self
    }

    /// Marks the record as hyperparameters.
    pub fn with_hparams(mut self) -> Self {
        self.hparams = true;
        self
    }

    /// Appends a field.
    pub fn with_field(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// The last value written under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The fields with duplicate names removed: when a name occurs more than once the
    /// last value wins and takes the place of the first. Order is otherwise kept.
    /// Allocates only when there are duplicates.
    pub fn unique_fields(&self) -> UniqueFields<'_> {
        if !self.has_duplicate_fields() {
            return UniqueFields(Unique::Plain(self.fields.iter()));
        }
        let n = self.fields.len();
        let mut out: Vec<(&str, &Value)> = Vec::with_capacity(n);
        let mut index = std::collections::HashMap::with_capacity(n);
        for (k, v) in &self.fields {
            match index.get(k.as_ref()) {
                Some(&i) => out[i] = (k.as_ref(), v),
                None => {
                    index.insert(k.as_ref(), out.len());
                    out.push((k.as_ref(), v));
                }
            }
        }
        UniqueFields(Unique::Deduped(out.into_iter()))
    }

    /// Whether [`unique_fields`](Self::unique_fields) would drop anything.
    pub fn has_duplicate_fields(&self) -> bool {
        let n = self.fields.len();
        if n <= 16 {
            (1..n).any(|i| self.fields[..i].iter().any(|(k, _)| *k == self.fields[i].0))
        } else {
            let mut seen = std::collections::HashSet::with_capacity(n);
            !self.fields.iter().all(|(k, _)| seen.insert(k.as_ref()))
        }
    }

    /// Captures a `tracing` event (fields, message, step, hparams flag) stamped now.
    pub fn from_event(event: &tracing::Event<'_>, rank: u32) -> Self {
        let mut record = Record {
            fields: Vec::with_capacity(event.metadata().fields().len()),
            ..Record::new(rank)
        };
        record.capture_event(event);
        record
    }

    /// Captures `event` into this record (after the fields it already has).
    #[inline]
    pub(crate) fn capture_event(&mut self, event: &tracing::Event<'_>) {
        event.record(&mut capture::Capture(self));
    }

    /// Empties this record for reuse (its field vector's memory kept); false when the
    /// vector grew beyond what is worth keeping, so one huge `log_dict` does not pin
    /// its memory.
    pub(crate) fn clear_for_reuse(&mut self) -> bool {
        if self.fields.capacity() > 64 {
            return false;
        }
        self.fields.clear();
        self.step = None;
        self.hparams = false;
        self.message = None;
        self.error_target = None;
        true
    }

    /// Captures a span's fields as an event's are (the step lifted out), for
    /// `span_fields`; its rank and timestamp are not used.
    pub(crate) fn from_span(attrs: &tracing::span::Attributes<'_>) -> Self {
        let mut record = Record::new(0);
        attrs.record(&mut capture::Capture(&mut record));
        record
    }

    /// Adds the values recorded on a span later (`span.record(..)`).
    pub(crate) fn record_span(&mut self, values: &tracing::span::Record<'_>) {
        values.record(&mut capture::Capture(self));
    }

    /// Adds the leaves of a JSON value as fields, nested keys joined with `.`, in the
    /// value's own key order. A value that is not an object is stored under `value`.
    pub fn extend_json(&mut self, value: &serde_json::Value) {
        use serde::de::DeserializeSeed;
        // Deserializing from a Value cannot fail: every JSON shape has a field form.
        let _ = json_text::Flatten::new(self).deserialize(value);
    }

    /// Parses `json` and adds its leaves as [`extend_json`](Self::extend_json) does,
    /// streaming (no intermediate tree). On a parse error nothing is added.
    pub fn extend_json_str(&mut self, json: &str) -> Result<(), serde_json::Error> {
        use serde::de::DeserializeSeed;
        let len = self.fields.len();
        let mut de = serde_json::Deserializer::from_str(json);
        let result = json_text::Flatten::new(self)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if result.is_err() {
            self.fields.truncate(len);
        }
        result
    }

    /// The timestamp as RFC 3339 UTC with microseconds, e.g. `2026-11-24T07:40:31.123456Z`
    /// (see [`time::rfc3339`](crate::time::rfc3339)).
    pub fn timestamp_rfc3339(&self) -> String {
        crate::time::rfc3339(self.timestamp)
    }

    /// Seconds since the Unix epoch as a float (what TensorBoard calls wall time).
    pub fn unix_seconds(&self) -> f64 {
        crate::time::unix_seconds(self.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_fields_last_wins_in_first_place() {
        let r = Record::new(0)
            .with_field("a", 1i64)
            .with_field("b", 2i64)
            .with_field("a", 3i64);
        assert!(r.has_duplicate_fields());
        assert_eq!(
            r.unique_fields().collect::<Vec<_>>(),
            vec![("a", &Value::I64(3)), ("b", &Value::I64(2))]
        );
        let mut big = Record::new(0);
        for i in 0..40 {
            big.fields
                .push((format!("k{}", i % 20).into(), Value::I64(i)));
        }
        let u: Vec<_> = big.unique_fields().collect();
        assert_eq!(u.len(), 20);
        assert_eq!(u[0], ("k0", &Value::I64(20)));
        assert!(big.has_duplicate_fields());
    }
}
