//! One captured metrics event: [`Record`], its [`Value`]s, and how a `tracing` event becomes one.
//!
//! Capture happens on the caller's thread and does no I/O: the event's fields are copied
//! into a `Record` (field names are `&'static str` from the callsite, so typical events
//! allocate only the field vector). Reserved fields are lifted out:
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

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};

/// A field name. Names from a `tracing` callsite are borrowed; run-time names are owned.
pub type Key = Cow<'static, str>;

/// A metric or parameter value. Types are kept as the caller wrote them. More kinds
/// may come (histograms), so matches need a wildcard arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A float, possibly NaN or infinite (sinks document how they encode those).
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// Text. Values recorded with `?x` (Debug) or `%x` (Display) arrive as text.
    Str(String),
    /// A JSON value with no scalar equivalent (an array or `null` from [`log_dict`](crate::log_dict)).
    Json(serde_json::Value),
}

impl Value {
    /// The value as a float, for sinks that only take numbers (booleans are 0 or 1).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::I64(v) => Some(v as f64),
            Value::U64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::Bool(v) => Some(if v { 1.0 } else { 0.0 }),
            Value::Str(_) | Value::Json(_) => None,
        }
    }

    /// The text, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(v) => f.write_str(v),
            Value::Json(v) => write!(f, "{v}"),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    Value::U64(u)
                } else if let Some(i) = n.as_i64() {
                    Value::I64(i)
                } else {
                    Value::F64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s),
            other => Value::Json(other),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v as $as)
            }
        })*
    };
}
value_from!(i64 => I64 as i64, i32 => I64 as i64, u64 => U64 as u64, u32 => U64 as u64,
    usize => U64 as u64, f64 => F64 as f64, f32 => F64 as f64);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

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
        event.record(&mut Capture(&mut record));
        record
    }

    /// Adds the leaves of a JSON value as fields, nested keys joined with `.`, in the
    /// value's own key order. A value that is not an object is stored under `value`.
    pub fn extend_json(&mut self, value: &serde_json::Value) {
        use serde::de::DeserializeSeed;
        // Deserializing from a Value cannot fail: every JSON shape has a field form.
        let _ = Flatten::new(self).deserialize(value);
    }

    /// Parses `json` and adds its leaves as [`extend_json`](Self::extend_json) does,
    /// streaming (no intermediate tree). On a parse error nothing is added.
    pub fn extend_json_str(&mut self, json: &str) -> Result<(), serde_json::Error> {
        use serde::de::DeserializeSeed;
        let len = self.fields.len();
        let mut de = serde_json::Deserializer::from_str(json);
        let result = Flatten::new(self)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if result.is_err() {
            self.fields.truncate(len);
        }
        result
    }

    /// The timestamp as RFC 3339 UTC with microseconds, e.g. `2026-11-24T07:40:31.123456Z`.
    pub fn timestamp_rfc3339(&self) -> String {
        TimestampFormatter::default()
            .format(self.timestamp)
            .to_owned()
    }

    /// Seconds since the Unix epoch as a float (what TensorBoard calls wall time).
    pub fn unix_seconds(&self) -> f64 {
        match self.timestamp.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }
}

/// Formats timestamps as RFC 3339 UTC with microseconds (`2026-11-24T07:40:31.123456Z`).
/// The date and time of day are reused while timestamps stay within the same second, so
/// a stream of records costs six digits each. Times before 1970 clamp to the epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimestampFormatter {
    secs: Option<u64>,
    buf: [u8; 27],
}

impl TimestampFormatter {
    pub(crate) fn format(&mut self, t: SystemTime) -> &str {
        fn put(buf: &mut [u8], mut value: u64) {
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        if self.secs != Some(secs) {
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (y, m, day) = civil_from_days(days as i64);
            self.buf = *b"0000-00-00T00:00:00.000000Z";
            put(&mut self.buf[0..4], y.clamp(0, 9999) as u64);
            put(&mut self.buf[5..7], m.into());
            put(&mut self.buf[8..10], day.into());
            put(&mut self.buf[11..13], rem / 3600);
            put(&mut self.buf[14..16], rem / 60 % 60);
            put(&mut self.buf[17..19], rem % 60);
            self.secs = Some(secs);
        }
        put(&mut self.buf[20..26], d.subsec_micros().into());
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.buf).unwrap_or_default()
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Streams a JSON document into a record's fields: nested keys joined with `.`.
struct Flatten<'r> {
    record: &'r mut Record,
    prefix: String,
}

impl<'r> Flatten<'r> {
    fn new(record: &'r mut Record) -> Self {
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

/// Strips the `r#` that raw identifiers may leave in a field name.
fn field_name(field: &Field) -> &'static str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

struct Capture<'a>(&'a mut Record);

impl Capture<'_> {
    fn push(&mut self, field: &Field, value: Value) {
        self.0
            .fields
            .push((Cow::Borrowed(field_name(field)), value));
    }
}

impl Visit for Capture<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "step" && value >= 0.0 && value.fract() == 0.0 && value < 2e19 {
            self.0.step = Some(value as u64);
        } else {
            self.push(field, Value::F64(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "step" && value >= 0 {
            self.0.step = Some(value as u64);
        } else {
            self.push(field, Value::I64(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "step" {
            self.0.step = Some(value);
        } else {
            self.push(field, Value::U64(value));
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if let Ok(v) = i64::try_from(value) {
            self.record_i64(field, v)
        } else if let Ok(v) = u64::try_from(value) {
            self.record_u64(field, v)
        } else {
            // Out of range for every numeric type a sink takes: keep all digits as text.
            self.push(field, Value::Str(value.to_string()));
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.push(field, Value::Str(value.to_string())),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "hparams" {
            self.0.hparams = value;
        } else {
            self.push(field, Value::Bool(value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.0.message = Some(value.to_owned()),
            "dict" => {
                if !crate::log_dict::take_pending(value, &mut self.0.fields)
                    && self.0.extend_json_str(value).is_err()
                {
                    self.push(field, Value::Str(value.to_owned()));
                }
            }
            _ => self.push(field, Value::Str(value.to_owned())),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        if field.name() == "message" {
            self.0.message = Some(text);
        } else if field.name() == "dict" {
            self.record_str(field, &text);
        } else {
            self.push(field, Value::Str(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        let mut f = TimestampFormatter::default();
        let mut at = |secs: u64, micros: u64| {
            f.format(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
                .to_owned()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(at(1_795_505_431, 123_456), "2026-11-24T07:30:31.123456Z");
        assert_eq!(at(1_795_505_431, 7), "2026-11-24T07:30:31.000007Z"); // same second, cached
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        assert_eq!(at(0, 1), "1970-01-01T00:00:00.000001Z");
    }

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
