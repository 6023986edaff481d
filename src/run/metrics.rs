//! Metrics handles: namespaced logging and windowed aggregation, all as metrics events.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value as Json};

/// How [`Metrics::flush`] turns a window of values into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agg {
    /// Arithmetic mean.
    Mean,
    /// Sum.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Most recent value.
    Last,
    /// Number of values.
    Count,
}

impl Agg {
    /// Aggregates `values` (not empty).
    pub fn apply(self, values: &[f64]) -> f64 {
        match self {
            Agg::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Agg::Sum => values.iter().sum(),
            Agg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Agg::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Agg::Last => values.last().copied().unwrap_or(f64::NAN),
            Agg::Count => values.len() as f64,
        }
    }
}

/// Logs metrics under a name prefix (`run.metrics("train")` logs `train.loss`) and
/// aggregates collected values over a window. Everything goes out as ordinary metrics
/// events ([`log_dict`](crate::log_dict)), so every backend sees it.
#[derive(Debug)]
pub struct Metrics {
    prefix: String,
    window: Mutex<BTreeMap<String, Vec<f64>>>,
}

/// Numeric leaves of a JSON value, nested keys joined with `.`.
fn numeric_leaves(prefix: &str, value: &Json, out: &mut Vec<(String, f64)>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                numeric_leaves(&key, v, out);
            }
        }
        Json::Number(n) => out.push((prefix.to_owned(), n.as_f64().unwrap_or(f64::NAN))),
        Json::Bool(b) => out.push((prefix.to_owned(), if *b { 1.0 } else { 0.0 })),
        _ => {}
    }
}

impl Metrics {
    pub(crate) fn new(prefix: &str) -> Self {
        Metrics {
            prefix: prefix.to_owned(),
            window: Mutex::new(BTreeMap::new()),
        }
    }

    fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// Logs `values` (a map or struct; nesting allowed) at `step`, names prefixed.
    pub fn log(&self, step: u64, values: &impl Serialize) {
        let value = serde_json::to_value(values).unwrap_or(Json::Null);
        let wrapped = if self.prefix.is_empty() {
            value
        } else {
            let mut m = Map::new();
            m.insert(self.prefix.clone(), value);
            Json::Object(m)
        };
        crate::log_dict(Some(step), &wrapped);
    }

    /// Adds the numeric leaves of `values` to the window (text is ignored).
    pub fn collect(&self, values: &impl Serialize) {
        let value = serde_json::to_value(values).unwrap_or(Json::Null);
        let mut leaves = Vec::new();
        numeric_leaves("", &value, &mut leaves);
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in leaves {
            window.entry(k).or_default().push(v);
        }
    }

    /// Logs one aggregated value per collected name (at `step`, if given), empties the
    /// window, and returns what was logged. An empty window logs nothing.
    pub fn flush(&self, step: Option<u64>, agg: Agg) -> BTreeMap<String, f64> {
        let window = std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()));
        let summary: BTreeMap<String, f64> = window
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (self.name(&k), agg.apply(&v)))
            .collect();
        if !summary.is_empty() {
            crate::log_dict(step, &summary);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_maths() {
        let v = [2.0, 4.0, 9.0];
        assert_eq!(Agg::Mean.apply(&v), 5.0);
        assert_eq!(Agg::Sum.apply(&v), 15.0);
        assert_eq!(Agg::Min.apply(&v), 2.0);
        assert_eq!(Agg::Max.apply(&v), 9.0);
        assert_eq!(Agg::Last.apply(&v), 9.0);
        assert_eq!(Agg::Count.apply(&v), 3.0);
        assert_eq!(Agg::Mean.apply(&[-1.5]), -1.5);
    }

    #[test]
    fn flush_prefixes_and_empties_the_window() {
        let m = Metrics::new("train");
        m.collect(&serde_json::json!({"loss": 1.0, "acc": {"top1": 0.5}, "note": "x"}));
        m.collect(&serde_json::json!({"loss": 3.0, "acc": {"top1": 1.0}}));
        let out = m.flush(Some(1), Agg::Mean);
        assert_eq!(out["train.loss"], 2.0);
        assert_eq!(out["train.acc.top1"], 0.75);
        assert_eq!(out.len(), 2);
        assert!(m.flush(None, Agg::Sum).is_empty());
    }
}
