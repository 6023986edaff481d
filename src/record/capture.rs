//! Capture: a `tracing` event's fields copied into a [`Record`] on the caller's thread,
//! reserved fields (`step`, `hparams`, `message`, `dict`) lifted out.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};

use super::{Record, Value};

/// Strips the `r#` that raw identifiers may leave in a field name.
fn field_name(field: &Field) -> &'static str {
    let name = field.name();
    name.strip_prefix("r#").unwrap_or(name)
}

pub(super) struct Capture<'a>(pub(super) &'a mut Record);

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
