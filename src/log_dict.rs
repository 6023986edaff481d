//! `log_dict`: metrics whose keys are only known at run time.
//!
//! The value is flattened on the caller's thread into record fields (see `flatten`), so
//! NaN and the infinities survive. The event's `dict` field stands for those fields: a
//! layer that formats it (`{:?}`) gets them as JSON text, written only then; trainlog's
//! own capture takes the exact values from a thread-local handoff instead, recognised by
//! the address of the `dict` value, so it never writes or parses text (and never meets a
//! NaN that JSON cannot hold).

use std::cell::RefCell;
use std::fmt;

use serde::Serialize;
use tracing::field::FieldSet;

use crate::flatten::flatten_into;
use crate::{Key, Value};

/// Fields of a `log_dict` event being dispatched on this thread, and the address of the
/// [`DictText`] that is its `dict` field.
struct Pending {
    at: std::ops::Range<usize>,
    fields: Vec<(Key, Value)>,
    /// The fields' names as a run-time callsite's, when they have one (see [`sites`]).
    site: Option<&'static FieldSet>,
}

thread_local! {
    /// The events being dispatched on this thread, innermost last (a layer may log from
    /// inside another event's dispatch).
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

/// The `dict` field of an emitted event. Not zero-sized, so that its address names it.
struct DictText {
    _named: u8,
}

impl fmt::Debug for DictText {
    /// The fields as a JSON object, written for layers that ask (trainlog's do not).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self as *const DictText as usize;
        let text = PENDING
            .try_with(|stack| {
                let stack = stack.borrow();
                stack
                    .iter()
                    .rev()
                    .find(|p| p.at.contains(&at))
                    .map(|p| json_text(&p.fields))
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        f.write_str(&text)
    }
}

/// `fields` as one JSON object; a histogram shows as `{"count":n}` (binning is the
/// worker's job).
fn json_text(fields: &[(Key, Value)]) -> String {
    let mut text = Vec::with_capacity(16 * fields.len() + 2);
    text.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        crate::json::write_str(&mut text, k);
        text.push(b':');
        match v {
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
    String::from_utf8(text).unwrap_or_default()
}

/// When `value` (a `dict` field recorded with `record_debug`) is the [`DictText`] of a
/// `log_dict` event being dispatched on this thread, runs `f` on its exact fields and their
/// run-time callsite, if they have one (see [`sites`]).
pub(crate) fn with_pending<R>(
    value: &dyn fmt::Debug,
    f: impl FnOnce(&[(Key, Value)], Option<&'static FieldSet>) -> R,
) -> Option<R> {
    let at = value as *const dyn fmt::Debug as *const () as usize;
    PENDING
        .try_with(|stack| {
            let stack = stack.borrow();
            let p = stack.iter().rev().find(|p| p.at.contains(&at))?;
            Some(f(&p.fields, p.site))
        })
        .ok()
        .flatten()
}

/// Appends the fields of the `log_dict` event whose `dict` value is `value` to `out` (see
/// [`with_pending`]); false when `value` is not one.
pub(crate) fn take_pending(value: &dyn fmt::Debug, out: &mut Vec<(Key, Value)>) -> bool {
    with_pending(value, |fields, _| out.extend(fields.iter().cloned())).is_some()
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
    // `dict` is this local, borrowed by the event: its place in memory is what
    // `take_pending` looks for. `tracing` hands layers `&dict.0`, which lies inside it.
    let dict = tracing::field::debug(DictText { _named: 0 });
    let start = &dict as *const _ as usize;
    let at = start..start + std::mem::size_of_val(&dict);
    let site = sites::site(&fields);
    let pushed = PENDING
        .try_with(|stack| stack.borrow_mut().push(Pending { at, fields, site }))
        .is_ok();
    match (step, hparams) {
        (Some(step), false) => tracing::info!(target: "metrics", step, dict),
        (None, false) => tracing::info!(target: "metrics", dict),
        (Some(step), true) => tracing::info!(target: "metrics", step, hparams = true, dict),
        (None, true) => tracing::info!(target: "metrics", hparams = true, dict),
    }
    if pushed {
        let _ = PENDING.try_with(|stack| stack.borrow_mut().pop());
    }
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

/// Run-time callsites for `log_dict` names that are `&'static str` (the Python package's,
/// which it interns): a leaked [`FieldSet`] per set of names, so that an event of such
/// fields takes the compact, allocation-free encoding of ordinary events
/// (`worker::entry`, where a field is named by its index in its callsite's `FieldSet`)
/// instead of a boxed `Record`. That halved the cost of the Python package's `run.log`
/// (measured with `perf`: the boxed record's allocations were freed on the worker's
/// thread, which made the caller wait on the allocator's lock).
///
/// Each thread keeps the sets it made; at most [`MAX_SITES`] are made in all (names that
/// change every step would otherwise grow memory): past that, records are boxed as before.
pub(crate) mod sites {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing::field::FieldSet;
    use tracing::Metadata;
    use tracing_core::callsite::Callsite;
    use tracing_core::subscriber::Interest;

    use crate::{Key, Value};

    /// Most run-time callsites made in a process.
    pub(crate) const MAX_SITES: usize = 1024;
    static MADE: AtomicUsize = AtomicUsize::new(0);

    /// What a run-time field set's `Identifier` points at: one per set (not zero-sized, so
    /// each has an address of its own). Its metadata is never asked for by `tracing` (no
    /// event is dispatched from it); a placeholder answers.
    struct RuntimeCallsite {
        _own_address: u8,
    }

    static PLACEHOLDER: RuntimeCallsite = RuntimeCallsite { _own_address: 0 };
    static PLACEHOLDER_META: Metadata<'static> = tracing::metadata! {
        name: "log_dict",
        target: "metrics",
        level: tracing::Level::INFO,
        fields: &[],
        callsite: &PLACEHOLDER,
        kind: tracing::metadata::Kind::EVENT,
    };

    impl Callsite for RuntimeCallsite {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            &PLACEHOLDER_META
        }
    }

    /// A set of names made into a field set (`None`: names that cannot be one, as the
    /// same name twice, which only a `Record` resolves).
    struct Made {
        names: &'static [&'static str],
        site: Option<&'static FieldSet>,
    }

    thread_local! {
        /// By a hash of the names' addresses and lengths.
        static MINE: RefCell<HashMap<u64, Vec<Made>, std::hash::BuildHasherDefault<AddressHasher>>> =
            RefCell::new(HashMap::default());
    }

    /// FxHash's step: the keys are addresses (of names already interned), chosen by no
    /// one who could aim collisions at them, and SipHash cost more than the lookup.
    #[derive(Default)]
    pub(crate) struct AddressHasher(u64);

    impl std::hash::Hasher for AddressHasher {
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.write_u64(u64::from(*b));
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        fn write_usize(&mut self, n: usize) {
            self.write_u64(n as u64);
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }

    /// The run-time callsite naming `fields`, when every name is `&'static str`.
    pub(crate) fn site(fields: &[(Key, Value)]) -> Option<&'static FieldSet> {
        use std::hash::Hasher;
        let mut hash = AddressHasher::default();
        for (key, _) in fields {
            let std::borrow::Cow::Borrowed(name) = key else {
                return None;
            };
            hash.write_usize(name.as_ptr() as usize);
            hash.write_usize(name.len());
        }
        let hash = hash.finish();
        let same =
            |made: &Made| {
                made.names.len() == fields.len()
                    && made.names.iter().zip(fields).all(|(a, (b, _))| {
                        std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
                    })
            };
        MINE.try_with(|mine| {
            let mut mine = mine.try_borrow_mut().ok()?;
            if let Some(made) = mine.get(&hash).and_then(|c| c.iter().find(|m| same(m))) {
                return made.site;
            }
            // Nothing is kept past the bound, not even an empty entry.
            if MADE.fetch_add(1, Ordering::Relaxed) >= MAX_SITES {
                MADE.fetch_sub(1, Ordering::Relaxed);
                return None;
            }
            let names: Vec<&'static str> = fields
                .iter()
                .map(|(k, _)| match k {
                    std::borrow::Cow::Borrowed(name) => *name,
                    std::borrow::Cow::Owned(_) => "",
                })
                .collect();
            let names: &'static [&'static str] = Box::leak(names.into_boxed_slice());
            let mut seen = std::collections::HashSet::with_capacity(names.len());
            // The compact form names a field by a 16-bit index among at most 128 slots,
            // and the worker reads a callsite's names as identifiers (`r#` taken off).
            let site = (names.len() < crate::worker::entry::MAX_SLOTS
                && names
                    .iter()
                    .all(|n| seen.insert(*n) && !n.starts_with("r#")))
            .then(|| {
                let callsite: &'static RuntimeCallsite =
                    Box::leak(Box::new(RuntimeCallsite { _own_address: 0 }));
                &*Box::leak(Box::new(FieldSet::new(
                    names,
                    tracing_core::identify_callsite!(callsite),
                )))
            });
            mine.entry(hash).or_default().push(Made { names, site });
            site
        })
        .ok()
        .flatten()
    }
}
