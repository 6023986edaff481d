//! JSON text for records: values and strings written straight into a byte buffer.
//!
//! Non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (the protobuf
//! JSON convention), so the output is always valid JSON.

use crate::{Record, Value};

/// Appends `v` as JSON.
/// How the JSONL format (and `run.json`) writes a float JSON cannot hold: `"NaN"`,
/// `"Infinity"`, `"-Infinity"`; None for a finite float.
pub(crate) fn non_finite_text(f: f64) -> Option<&'static str> {
    match f {
        f if f.is_finite() => None,
        f if f.is_nan() => Some("NaN"),
        f if f > 0.0 => Some("Infinity"),
        _ => Some("-Infinity"),
    }
}

pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::F64(f) => match non_finite_text(*f) {
            None => out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes()),
            Some(text) => write_str(out, text),
        },
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Str(s) => write_str(out, s),
        // serde_json::Value holds no non-finite floats, so this cannot fail.
        Value::Json(j) => {
            let _ = serde_json::to_writer(&mut *out, j);
        }
        Value::Histogram(h) => write_histogram(out, h.summary()),
    }
}

/// A histogram as one compact object: `count`, `min`, `max`, `mean`, the non-finite
/// counts, then `edges` and `counts`.
fn write_histogram(out: &mut Vec<u8>, s: &crate::HistogramSummary) {
    let float = |out: &mut Vec<u8>, f: f64| write_value(out, &Value::F64(f));
    out.extend_from_slice(b"{\"count\":");
    out.extend_from_slice(itoa::Buffer::new().format(s.count).as_bytes());
    for (name, f) in [("min", s.min), ("max", s.max), ("mean", s.mean())] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        float(out, f);
    }
    for (name, n) in [
        ("nan", s.nan),
        ("pos_inf", s.pos_inf),
        ("neg_inf", s.neg_inf),
    ] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
    out.extend_from_slice(b",\"edges\":[");
    for (i, e) in s.edges.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        float(out, *e);
    }
    out.extend_from_slice(b"],\"counts\":[");
    for (i, c) in s.counts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(itoa::Buffer::new().format(*c).as_bytes());
    }
    out.extend_from_slice(b"]}");
}

/// Appends `s` as a JSON string; plain ASCII-safe text is copied without the serializer.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec and serializing a str cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// A free output name for a field whose own name is taken on the line (by a metadata
/// key such as `rank`, or by another field): `field.<name>`, with more `field.` prefixes
/// until `taken` says it is free.
#[cfg_attr(
    not(any(feature = "jsonl", feature = "http", feature = "wandb")),
    allow(dead_code)
)]
pub(crate) fn free_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    free_name_after("field.", name, taken)
}

/// [`free_name`] with another prefix than `field.` (TensorBoard's `field/`, its tags
/// being nested with `/`).
#[cfg_attr(
    not(any(
        feature = "jsonl",
        feature = "http",
        feature = "wandb",
        feature = "tensorboard"
    )),
    allow(dead_code)
)]
pub(crate) fn free_name_after(prefix: &str, name: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut candidate = format!("{prefix}{name}");
    while taken(&candidate) {
        candidate.insert_str(0, prefix);
    }
    candidate
}

/// Appends the record's fields as `"key":value` pairs of a JSON object, each preceded
/// by a comma unless it is the object's first member (`first`). Keys are unique on the
/// line: duplicates keep the last value, and a field named like a metadata key the
/// caller already wrote (`reserved`) is written under a [`free_name`] that no other
/// field has.
#[cfg_attr(not(any(feature = "jsonl", feature = "http")), allow(dead_code))]
pub(crate) fn write_fields(
    out: &mut Vec<u8>,
    r: &Record,
    reserved: impl Fn(&str) -> bool,
    mut first: bool,
    skip: impl Fn(&str) -> bool,
) {
    let mut renamed: Vec<String> = Vec::new();
    for (k, v) in r.unique_fields() {
        if skip(k) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if reserved(k) {
            // Rare: only a field that collides pays for the search.
            let name = free_name(k, |c| {
                reserved(c)
                    || renamed.iter().any(|n| n == c)
                    || r.fields.iter().any(|(f, _)| f == c)
            });
            write_str(out, &name);
            renamed.push(name);
        } else {
            write_str(out, k);
        }
        out.push(b':');
        write_value(out, v);
    }
}
