//! Capture: a `tracing` event's fields read on the caller's thread, reserved fields
//! (`step`, `hparams`, `message`, `dict`) lifted out. One visitor, [`Capture`], decides
//! what each field is; what it is written into is a [`Fields`]: a [`Record`], or the
//! compact encoding the logging path queues (`worker::entry`).

use std::borrow::Cow;
use std::fmt;

use tracing::field::{Field, FieldSet, Visit};

use super::{Key, Record, Value};

/// A field's name (without a raw identifier's `r#`), and where it is in its callsite's
/// [`FieldSet`]: a record keeps the name, the compact entry the index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub(crate) name: &'static str,
    pub(crate) index: usize,
}

/// Strips the `r#` that raw identifiers may leave in a field name. Inlined: it runs for
/// every field of every event, and as a call it cost more than its two compares.
#[inline]
fn field_name(field: &Field) -> Name {
    Name {
        name: unraw(field.name()),
        index: field.index(),
    }
}

#[inline]
pub(crate) fn unraw(name: &'static str) -> &'static str {
    name.strip_prefix("r#").unwrap_or(name)
}

/// A field value that is a number or boolean: what most metrics are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl From<Number> for Value {
    #[inline]
    fn from(n: Number) -> Value {
        match n {
            Number::I64(v) => Value::I64(v),
            Number::U64(v) => Value::U64(v),
            Number::F64(v) => Value::F64(v),
            Number::Bool(v) => Value::Bool(v),
        }
    }
}

/// Where [`Capture`] puts what it reads.
pub(crate) trait Fields {
    /// The fields that follow are of the callsite with these fields (an event's, or a
    /// span's for [`captured`](Self::captured)).
    fn site(&mut self, _fields: &'static FieldSet) {}
    fn step(&mut self, step: u64);
    fn hparams(&mut self, on: bool);
    fn number(&mut self, name: Name, value: Number);
    /// A text field, or the message when `name` is `None`.
    fn text(&mut self, name: Option<Name>, text: &str);
    /// A value recorded with `?x`/`%x`, or the message when `name` is `None`.
    fn debug(&mut self, name: Option<Name>, value: &dyn fmt::Debug) {
        self.text(name, &format!("{value:?}"));
    }
    /// The text of a `dict` field (see [`log_dict`](crate::log_dict)).
    fn dict(&mut self, field: &Field, text: &str);
    /// A `dict` field recorded with `record_debug`: the fields of a `log_dict` event (see
    /// [`log_dict::take_pending`](crate::log_dict::take_pending)) or any value's text.
    fn dict_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.dict(field, &format!("{value:?}"));
    }
    /// A field captured earlier (an enclosing span's, whose callsite `site` announced),
    /// at `index` in that callsite's fields when it is one of them.
    fn captured(&mut self, name: &Key, index: Option<usize>, value: &Value);
}

impl Fields for Record {
    fn step(&mut self, step: u64) {
        self.step = Some(step);
    }

    fn hparams(&mut self, on: bool) {
        self.hparams = on;
    }

    fn number(&mut self, name: Name, value: Number) {
        self.fields.push((Cow::Borrowed(name.name), value.into()));
    }

    fn text(&mut self, name: Option<Name>, text: &str) {
        match name {
            Some(name) => self
                .fields
                .push((Cow::Borrowed(name.name), Value::Str(text.into()))),
            None => self.message = Some(text.into()),
        }
    }

    fn captured(&mut self, name: &Key, _index: Option<usize>, value: &Value) {
        self.fields.push((name.clone(), value.clone()));
    }

    fn dict(&mut self, field: &Field, text: &str) {
        if self.extend_json_str(text).is_err() {
            self.text(Some(field_name(field)), text);
        }
    }

    fn dict_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !crate::log_dict::take_pending(value, &mut self.fields) {
            self.dict(field, &format!("{value:?}"));
        }
    }
}

pub(crate) struct Capture<'a, F: ?Sized>(pub(crate) &'a mut F);

/// A `step` field whose value is not a step (a non-negative integer): `"ten"`, `-1`,
/// `4.5`, `true`. The record is kept without a step (sinks that need one use their own
/// counter, as for a record logged without a step) and the value is dropped, so no sink
/// gets a metric called `step`; the first time a call site does this, it is said on
/// stderr. Rare by nature, so the lock and the message cost nothing on the common path.
#[cold]
fn not_a_step(field: &Field, shown: &dyn fmt::Display) {
    static SAID: std::sync::Mutex<Vec<tracing::callsite::Identifier>> =
        std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    let site = field.callsite();
    if said.contains(&site) {
        return;
    }
    said.push(site);
    drop(said);
    eprintln!(
        "trainlog: a metrics event has `step = {shown}`, which is not a step (a non-negative \
         integer); the record is kept without a step and the value dropped (said once per \
         call site)"
    );
}

impl<F: Fields + ?Sized> Capture<'_, F> {
    /// A `step` given as text (`%step`, `?step`, a string): a step when it reads as a
    /// non-negative integer, else [`not_a_step`].
    #[cold]
    fn text_step(&mut self, field: &Field, text: &str) {
        match text.trim().parse::<u64>() {
            Ok(step) => self.0.step(step),
            Err(_) => not_a_step(field, &format_args!("{text:?}")),
        }
    }
}

impl<F: Fields + ?Sized> Visit for Capture<'_, F> {
    #[inline]
    fn record_f64(&mut self, field: &Field, value: f64) {
        let name = field.name();
        if name != "step" {
            self.0.number(field_name(field), Number::F64(value));
        } else if value >= 0.0 && value.fract() == 0.0 && value < 2e19 {
            self.0.step(value as u64);
        } else {
            not_a_step(field, &value);
        }
    }

    #[inline]
    fn record_i64(&mut self, field: &Field, value: i64) {
        let name = field.name();
        if name != "step" {
            self.0.number(field_name(field), Number::I64(value));
        } else if value >= 0 {
            self.0.step(value as u64);
        } else {
            not_a_step(field, &value);
        }
    }

    #[inline]
    fn record_u64(&mut self, field: &Field, value: u64) {
        let name = field.name();
        if name == "step" {
            self.0.step(value);
        } else {
            self.0.number(field_name(field), Number::U64(value));
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if let Ok(v) = i64::try_from(value) {
            self.record_i64(field, v)
        } else if let Ok(v) = u64::try_from(value) {
            self.record_u64(field, v)
        } else if field.name() == "step" {
            not_a_step(field, &value);
        } else {
            // Out of range for every numeric type a sink takes: keep all digits as text.
            self.0.text(Some(field_name(field)), &value.to_string());
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) if field.name() == "step" => not_a_step(field, &value),
            Err(_) => self.0.text(Some(field_name(field)), &value.to_string()),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "hparams" => self.0.hparams(value),
            "step" => not_a_step(field, &value),
            _ => self.0.number(field_name(field), Number::Bool(value)),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.0.text(None, value),
            "dict" => self.0.dict(field, value),
            "step" => self.text_step(field, value),
            _ => self.0.text(Some(field_name(field)), value),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if field.name() == "step" {
            return not_a_step(field, &format_args!("{value:?}"));
        }
        self.0.text(Some(field_name(field)), &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.0.debug(None, value),
            "dict" => self.0.dict_debug(field, value),
            "step" => self.text_step(field, &format!("{value:?}")),
            _ => self.0.debug(Some(field_name(field)), value),
        }
    }
}
