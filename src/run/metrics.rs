//! Metrics handles: namespaced logging and windowed aggregation, all as metrics events.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::{Key, Value};

/// How [`Metrics::flush`] turns a window of values into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// Aggregates `values` (not empty). A NaN in the window makes every aggregate but
    /// `Last` and `Count` NaN: a diverged step must not vanish into a mean or a minimum.
    pub fn apply(self, values: &[f64]) -> f64 {
        fn nan_aware(pick: fn(f64, f64) -> f64) -> impl Fn(f64, f64) -> f64 {
            move |a, b| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    pick(a, b)
                }
            }
        }
        match self {
            Agg::Mean => values.iter().sum::<f64>() / values.len() as f64,
            Agg::Sum => values.iter().sum(),
            Agg::Min => values
                .iter()
                .copied()
                .fold(f64::INFINITY, nan_aware(f64::min)),
            Agg::Max => values
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, nan_aware(f64::max)),
            Agg::Last => values.last().copied().unwrap_or(f64::NAN),
            Agg::Count => values.len() as f64,
        }
    }
}

/// Logs metrics under a name prefix (`run.metrics("train")` logs `train.loss`) and
/// aggregates collected values over a window. Everything goes out as ordinary metrics
/// events (like [`log_dict`](crate::log_dict)), so every backend sees it; NaN and ±∞ are
/// kept as they are.
#[derive(Debug)]
pub struct Metrics {
    prefix: String,
    window: Mutex<BTreeMap<String, Vec<f64>>>,
}

impl Metrics {
    pub(crate) fn new(prefix: &str) -> Self {
        Metrics {
            prefix: prefix.to_owned(),
            window: Mutex::new(BTreeMap::new()),
        }
    }

    /// The leaves of `values` under the prefix, or `None` (with an error event) when it
    /// cannot be flattened.
    fn leaves(&self, what: &str, values: &(impl Serialize + ?Sized)) -> Option<Vec<(Key, Value)>> {
        match crate::flatten(&self.prefix, values) {
            Ok(fields) => Some(fields),
            Err(error) => {
                tracing::error!(
                    target: "trainlog",
                    %error,
                    "metrics.{what}: the values could not be turned into metric fields; nothing was logged"
                );
                None
            }
        }
    }

    /// Logs `values` (a map or struct; nesting allowed) at `step`, names prefixed.
    pub fn log(&self, step: u64, values: &impl Serialize) {
        if let Some(fields) = self.leaves("log", values) {
            crate::log_fields(Some(step), false, fields);
        }
    }

    /// Adds the numeric leaves of `values` to the window (booleans as 0 or 1, NaN and
    /// ±∞ kept; text is ignored).
    pub fn collect(&self, values: &impl Serialize) {
        let Some(fields) = self.leaves("collect", values) else {
            return;
        };
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in fields {
            if let Some(x) = v.as_f64() {
                window.entry(k.into_owned()).or_default().push(x);
            }
        }
    }

    /// Logs one aggregated value per collected name (at `step`, if given), empties the
    /// window, and returns what was logged. An empty window logs nothing.
    pub fn flush(&self, step: Option<u64>, agg: Agg) -> BTreeMap<String, f64> {
        let window = std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()));
        let summary: BTreeMap<String, f64> = window
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k, agg.apply(&v)))
            .collect();
        if !summary.is_empty() {
            let fields = summary
                .iter()
                .map(|(k, v)| (Key::Owned(k.clone()), Value::F64(*v)))
                .collect();
            crate::log_fields(step, false, fields);
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
        let with_nan = [2.0, f64::NAN, 9.0];
        for agg in [Agg::Mean, Agg::Sum, Agg::Min, Agg::Max] {
            assert!(agg.apply(&with_nan).is_nan(), "{agg:?}");
        }
        assert_eq!(Agg::Count.apply(&with_nan), 3.0);
        assert_eq!(Agg::Last.apply(&with_nan), 9.0);
        assert_eq!(Agg::Max.apply(&[1.0, f64::INFINITY]), f64::INFINITY);
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
