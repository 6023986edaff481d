//! `log_dict`: metrics whose keys are only known at run time.

use serde::Serialize;

/// Logs a serializable mapping as one metrics record on the `metrics` target.
///
/// Nested maps become dotted names (`{"eval": {"acc": 0.9}}` → `eval.acc`), arrays and
/// `null` are kept as JSON, and a value that is not a map is stored under `value`. `step`
/// sets the record's step. If `value` cannot be serialized (a map with non-string keys,
/// say), nothing is logged as a metric and an error event explains why.
///
/// ```
/// use std::collections::BTreeMap;
/// let mut metrics = BTreeMap::new();
/// metrics.insert("loss/layer0".to_string(), 0.25);
/// trainlog::log_dict(Some(10), &metrics);
/// trainlog::log_dict(None, &serde_json::json!({"eval": {"acc": 0.9}}));
/// ```
pub fn log_dict<T: Serialize + ?Sized>(step: Option<u64>, value: &T) {
    match serde_json::to_string(value) {
        Ok(json) => match step {
            Some(step) => tracing::info!(target: "metrics", step, dict = json.as_str()),
            None => tracing::info!(target: "metrics", dict = json.as_str()),
        },
        Err(error) => tracing::error!(
            target: "trainlog",
            %error,
            "log_dict: the value could not be serialized as JSON; nothing was logged"
        ),
    }
}

/// Logs a serializable mapping as one hyperparameter record (`hparams = true`) on the
/// `metrics` target; nesting becomes dotted names as in [`log_dict`].
///
/// ```
/// trainlog::log_hparams(&serde_json::json!({"lr": 3e-4, "model": {"layers": 12}}));
/// ```
pub fn log_hparams<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string(value) {
        Ok(json) => tracing::info!(target: "metrics", hparams = true, dict = json.as_str()),
        Err(error) => tracing::error!(
            target: "trainlog",
            %error,
            "log_hparams: the value could not be serialized as JSON; nothing was logged"
        ),
    }
}
