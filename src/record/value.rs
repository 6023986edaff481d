//! [`Value`]: a field's value with its type kept, and conversions into it.

use std::fmt;

/// A metric or parameter value. Types are kept as the caller wrote them. More kinds
/// may come, so matches need a wildcard arm.
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
    /// A distribution of values from [`log_histogram`](crate::log_histogram), binned on
    /// the worker.
    Histogram(super::Histogram),
}

impl Value {
    /// The value as a float, for sinks that only take numbers (booleans are 0 or 1).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::I64(v) => Some(v as f64),
            Value::U64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::Bool(v) => Some(if v { 1.0 } else { 0.0 }),
            Value::Str(_) | Value::Json(_) | Value::Histogram(_) => None,
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
            Value::Histogram(h) => write!(f, "{h}"),
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

impl From<super::Histogram> for Value {
    fn from(v: super::Histogram) -> Self {
        Value::Histogram(v)
    }
}
