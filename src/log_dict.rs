//! `log_dict`: metrics whose keys are only known at run time.
//!
//! The value is flattened on the caller's thread into record fields (see `flatten`), so
//! NaN and the infinities survive. The event carries those fields as JSON text in its
//! `dict` field, which every layer can read; trainlog's own capture takes the exact
//! values from a thread-local handoff instead, recognised by the text's address, so it
//! never has to parse the text back (and never meets a NaN that JSON cannot hold).

use std::cell::RefCell;

use serde::Serialize;

use crate::flatten::flatten_into;
use crate::{Key, Value};

/// Fields of the `log_dict` event being dispatched on this thread, and the address and
/// length of the `dict` text that stands for them.
struct Pending {
    text: (usize, usize),
    fields: Vec<(Key, Value)>,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// When `text` is the `dict` field of a `log_dict` event being dispatched on this thread,
/// appends its exact fields to `out` and returns true.
pub(crate) fn take_pending(text: &str, out: &mut Vec<(Key, Value)>) -> bool {
    let id = (text.as_ptr() as usize, text.len());
    PENDING
        .try_with(|slot| match &*slot.borrow() {
            Some(p) if p.text == id => {
                out.extend(p.fields.iter().cloned());
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

/// The fields [`log_dict`] would log for `value`, names prefixed with `prefix.` (when not
/// empty): nested maps and structs as dotted names, NaN and ±∞ kept as floats.
///
/// ```
/// use trainlog::{flatten, Value};
/// let fields = flatten("train", &serde_json::json!({"loss": 0.5, "acc": {"top1": 0.9}}))?;
/// // (serde_json's maps keep keys sorted)
/// assert_eq!(fields[0], ("train.acc.top1".into(), Value::F64(0.9)));
/// assert_eq!(fields[1], ("train.loss".into(), Value::F64(0.5)));
/// # Ok::<(), trainlog::Error>(())
/// ```
pub fn flatten<T: Serialize + ?Sized>(prefix: &str, value: &T) -> crate::Result<Vec<(Key, Value)>> {
    let mut fields = Vec::new();
    flatten_into(&mut fields, prefix, value).map_err(|e| crate::Error::Fields {
        message: e.to_string(),
    })?;
    Ok(fields)
}

/// Logs fields built beforehand (see [`flatten`]) as one metrics record on the `metrics`
/// target, at `step` if given, as hyperparameters if `hparams`. Values keep their type,
/// NaN and ±∞ included.
///
/// ```
/// use trainlog::Value;
/// trainlog::log_fields(Some(3), false, vec![("loss".into(), Value::F64(f64::NAN))]);
/// ```
pub fn log_fields(step: Option<u64>, hparams: bool, fields: Vec<(Key, Value)>) {
    emit(step, hparams, fields);
}

/// Whether `meta` is one of the events [`emit`] logs (`log_dict`, `log_hparams`,
/// `log_histogram`, `log_fields`, the run API's records). Their target is `metrics`, as
/// a `tracing` callsite's target is fixed when it is compiled; every trainlog logger
/// takes them whatever its own target (`MetricLoggerBuilder::target`), so they follow
/// the logger instead of being dropped by one configured for another target.
pub(crate) fn is_emitted(meta: &tracing::Metadata<'_>) -> bool {
    meta.module_path() == Some(module_path!()) && meta.target() == crate::filter::METRICS_TARGET
}

/// Emits one metrics event for `fields` (a `log_dict`, `log_hparams` or run-API record).
pub(crate) fn emit(step: Option<u64>, hparams: bool, fields: Vec<(Key, Value)>) {
    let mut text = Vec::with_capacity(16 * fields.len() + 2);
    text.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        crate::json::write_str(&mut text, k);
        text.push(b':');
        match v {
            // Other layers see how many values there were; binning is the worker's job.
            Value::Histogram(h) => {
                text.extend_from_slice(b"{\"count\":");
                text.extend_from_slice(itoa::Buffer::new().format(h.len()).as_bytes());
                text.push(b'}');
            }
            v => crate::json::write_value(&mut text, v),
        }
    }
    text.push(b'}');
    // Written from `str`s and JSON tokens only.
    let text = String::from_utf8(text).unwrap_or_default();
    let pending = Pending {
        text: (text.as_ptr() as usize, text.len()),
        fields,
    };
    let previous = PENDING.try_with(|slot| slot.replace(Some(pending))).ok();
    let dict = text.as_str();
    match (step, hparams) {
        (Some(step), false) => tracing::info!(target: "metrics", step, dict),
        (None, false) => tracing::info!(target: "metrics", dict),
        (Some(step), true) => tracing::info!(target: "metrics", step, hparams = true, dict),
        (None, true) => tracing::info!(target: "metrics", hparams = true, dict),
    }
    // Restores what an outer `log_dict` on this thread had (a layer may log from inside).
    let _ = PENDING.try_with(|slot| slot.replace(previous.flatten()));
}

/// Logs a histogram of `values` (a slice of `f32` or `f64`: weights, gradients,
/// activations) under `tag` at `step`, as one metrics record with a
/// [`Value::Histogram`] field.
///
/// The calling thread only copies the values; the statistics and the
/// [`HISTOGRAM_BINS`](crate::HISTOGRAM_BINS) bins are computed on the worker, once for all
/// sinks. TensorBoard shows it in its Histograms and Distributions dashboards, W&B as a
/// `wandb.Histogram`, OpenTelemetry as a histogram instrument; JSONL writes one object
/// (`count`, `min`, `max`, `mean`, `nan`, `pos_inf`, `neg_inf`, `edges`, `counts`); MLflow
/// and Prometheus, which have no histogram type, get `<tag>.count`, `.min`, `.max`, `.mean`
/// and `.nonfinite`. NaN and ±∞ are counted apart, never binned (see
/// [`HistogramSummary`](crate::HistogramSummary)). Other `tracing` layers see the event's
/// `dict` field as `{"<tag>":{"count":<n>}}`.
///
/// ```
/// let weights = vec![0.1f32, -0.2, 0.05, 0.3];
/// trainlog::log_histogram(100, "layer0/weights", &weights);
/// ```
pub fn log_histogram<T: crate::HistogramValue>(step: u64, tag: &str, values: &[T]) {
    let value = Value::Histogram(crate::Histogram::new(values));
    emit(Some(step), false, vec![(Key::Owned(tag.to_owned()), value)]);
}

fn flatten_and_emit<T: Serialize + ?Sized>(step: Option<u64>, hparams: bool, value: &T) {
    let mut fields = Vec::new();
    match flatten_into(&mut fields, "", value) {
        Ok(()) => emit(step, hparams, fields),
        Err(error) => tracing::error!(
            target: "trainlog",
            %error,
            "{}: the value could not be turned into metric fields; nothing was logged",
            if hparams { "log_hparams" } else { "log_dict" }
        ),
    }
}

/// Logs a serializable mapping as one metrics record on the `metrics` target.
///
/// Nested maps and structs become dotted names (`{"eval": {"acc": 0.9}}` → `eval.acc`)
/// down to 512 levels, arrays and `null` are kept as JSON, and a value that is not a map
/// is stored under `value`. Floats keep NaN and ±∞ (what `serde_json::Value` cannot).
/// `step` sets the record's step. If `value` cannot be flattened (a map with non-scalar
/// keys, deeper nesting), nothing is logged as a metric and an error event on target
/// `trainlog` explains why.
///
/// ```
/// use std::collections::BTreeMap;
/// let mut metrics = BTreeMap::new();
/// metrics.insert("loss/layer0".to_string(), 0.25);
/// metrics.insert("grad_norm".to_string(), f64::NAN); // stays NaN in every sink
/// trainlog::log_dict(Some(10), &metrics);
/// trainlog::log_dict(None, &serde_json::json!({"eval": {"acc": 0.9}}));
/// ```
pub fn log_dict<T: Serialize + ?Sized>(step: Option<u64>, value: &T) {
    flatten_and_emit(step, false, value);
}

/// Logs a serializable mapping as one hyperparameter record (`hparams = true`) on the
/// `metrics` target; nesting becomes dotted names as in [`log_dict`].
///
/// ```
/// trainlog::log_hparams(&serde_json::json!({"lr": 3e-4, "model": {"layers": 12}}));
/// ```
pub fn log_hparams<T: Serialize + ?Sized>(value: &T) {
    flatten_and_emit(None, true, value);
}
