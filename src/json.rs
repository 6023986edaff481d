//! JSON text for records: values and strings written straight into a byte buffer.
//!
//! Non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (the protobuf
//! JSON convention), so the output is always valid JSON.

use crate::Value;

/// Appends `v` as JSON.
pub(crate) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::F64(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes())
        }
        Value::F64(f) if f.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Value::F64(f) if *f > 0.0 => out.extend_from_slice(b"\"Infinity\""),
        Value::F64(_) => out.extend_from_slice(b"\"-Infinity\""),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Str(s) => write_str(out, s),
        // serde_json::Value holds no non-finite floats, so this cannot fail.
        Value::Json(j) => {
            let _ = serde_json::to_writer(&mut *out, j);
        }
    }
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
