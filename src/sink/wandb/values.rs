//! Values as W&B writes them into history, config and summary items: JSON text as
//! Python's `json` module gives it (W&B reads them with it).

use crate::Value;

/// A finite float as JSON (`null` for what JSON cannot hold).
pub(super) fn json_number(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| "null".into(), |n| n.to_string())
}

/// A value as W&B's JSON: Python's `json`, so non-finite floats are `NaN`, `Infinity`.
pub(super) fn value_json(v: &Value) -> String {
    match v {
        Value::F64(f) if f.is_nan() => "NaN".into(),
        Value::F64(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.into(),
        Value::F64(f) => json_number(*f),
        Value::Str(s) => serde_json::Value::String(s.clone()).to_string(),
        Value::Json(j) => j.to_string(),
        // What `wandb.Histogram(...).to_json()` gives: counts and bin edges.
        Value::Histogram(h) => {
            let s = h.summary();
            let edges: Vec<String> = s.edges.iter().map(|e| json_number(*e)).collect();
            format!(
                "{{\"_type\":\"histogram\",\"values\":{},\"bins\":[{}]}}",
                serde_json::Value::from(s.counts.clone()),
                edges.join(",")
            )
        }
        other => other.to_string(),
    }
}
