//! The Rust side of the Python package `trainlog`: a logger that Python code feeds with
//! dicts, on trainlog's own pipeline (the same sinks, files and counters as the Rust API).
//! The Python layer (`python/trainlog/__init__.py`) gives it its three shapes.
//!
//! One pipeline runs at a time, and a new one can start after `finish()` (a notebook runs
//! one training after another): the process's global `tracing` subscriber is installed
//! once and forwards events to the current pipeline's own subscriber ([`Forward`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, RwLock};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use trainlog::{Key, MetricGuard, Value};

/// The running pipeline's guard (to finish it) and subscriber (what [`Forward`] feeds).
static ACTIVE: Mutex<Option<MetricGuard>> = Mutex::new(None);
/// The run (`run.json`: status, times, host; `parameters.jsonl`) of a pipeline started by
/// `trainlog.init`, in its output directory.
static RUN: Mutex<Option<trainlog::run::Run>> = Mutex::new(None);
static CURRENT: RwLock<Option<Dispatch>> = RwLock::new(None);
static INSTALL: Once = Once::new();
/// Set in a `fork()`ed child of a process that logs: the child has a copy of the
/// parent's logger but none of its threads, so it must not log into it (nothing would
/// write it) nor wait for it to close. Starting a pipeline of its own clears it.
static FORKED: AtomicBool = AtomicBool::new(false);

/// The global subscriber's one layer: hands each event to the current pipeline.
struct Forward;

impl<S: Subscriber> tracing_subscriber::Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        // Cloned, not held: a layer of the pipeline may log from inside (re-entering
        // here), and `finish` must be able to take it meanwhile.
        let current = CURRENT.read().ok().and_then(|d| d.clone());
        if let Some(dispatch) = current {
            if dispatch.enabled(event.metadata()) {
                dispatch.event(event);
            }
        }
    }
}

/// Runs in the child right after `fork()` (any fork: `os.fork`, multiprocessing, or C
/// code). Only stores an atomic, which is all a fork handler may safely do.
extern "C" fn in_forked_child() {
    FORKED.store(true, Ordering::Relaxed);
}

const FORKED_MESSAGE: &str = "trainlog: this process was forked from one that logs, and the \
    logger's threads did not come along; log from the parent, call trainlog.init() in this \
    process for a logger of its own, or start processes with the `spawn` method \
    (multiprocessing.set_start_method(\"spawn\"))";

/// Refuses to log into a pipeline that is not running here: a forked child's copy of its
/// parent's (see [`FORKED`]), or none. Atomic loads: asking the kernel for the process id
/// on every call, as this first did, cost a tenth of `run.log`.
#[inline]
fn check_logging() -> PyResult<()> {
    if FORKED.load(Ordering::Relaxed) {
        return Err(PyRuntimeError::new_err(FORKED_MESSAGE));
    }
    if !LOGGING.load(Ordering::Relaxed) {
        return Err(PyRuntimeError::new_err(
            "trainlog is not logging: call trainlog.init() (or setup_metric_logger) first",
        ));
    }
    Ok(())
}

/// Whether a pipeline runs (what [`check_logging`] reads without a lock).
static LOGGING: AtomicBool = AtomicBool::new(false);

fn runtime(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// In a forked child: lets go of the parent's pipeline without closing it (its threads
/// are the parent's; closing would wait for them forever). Only tries the locks: one held
/// at the fork by a thread that did not come along (a sampler thread reading `CURRENT`)
/// is never released here, and waiting for it would hang the child. False then.
fn forget_parents() -> bool {
    use std::sync::TryLockError;
    let mut clean = true;
    match ACTIVE.try_lock() {
        Ok(mut active) => std::mem::forget(active.take()),
        Err(TryLockError::Poisoned(e)) => std::mem::forget(e.into_inner().take()),
        Err(TryLockError::WouldBlock) => clean = false,
    }
    match CURRENT.try_write() {
        Ok(mut current) => std::mem::forget(current.take()),
        Err(TryLockError::Poisoned(e)) => std::mem::forget(e.into_inner().take()),
        Err(TryLockError::WouldBlock) => clean = false,
    }
    match RUN.try_lock() {
        // The parent's run: the child must not mark it finished.
        Ok(mut run) => std::mem::forget(run.take()),
        Err(TryLockError::Poisoned(e)) => std::mem::forget(e.into_inner().take()),
        Err(TryLockError::WouldBlock) => clean = false,
    }
    LOGGING.store(false, Ordering::Relaxed);
    clean
}

/// Starts the pipeline: `backends` like `"async,tensorboard"`, files under `output_dir`,
/// `options` a dict of backend settings (`{"wandb": {"project": ...}}`, see
/// [`configure`]).
#[pyfunction]
#[pyo3(signature = (backends, output_dir, rank=None, run_name=None, options=None, run=false))]
fn start(
    backends: &str,
    output_dir: &str,
    rank: Option<u32>,
    run_name: Option<&str>,
    options: Option<&Bound<'_, PyDict>>,
    run: bool,
) -> PyResult<()> {
    if FORKED.swap(false, Ordering::Relaxed) && !forget_parents() {
        // A child starting a pipeline of its own, whose parent was in the middle of
        // trainlog's bookkeeping on another thread when it forked.
        FORKED.store(true, Ordering::Relaxed);
        return Err(PyRuntimeError::new_err(
            "trainlog: this process was forked while another thread of its parent held \
             trainlog's state, which cannot be taken over here; start processes with the \
             `spawn` method (multiprocessing.set_start_method(\"spawn\"))",
        ));
    }
    let mut builder = trainlog::MetricLogger::builder()
        .backends(backends)
        .map_err(runtime)?
        .output_dir(output_dir)
        .console(false);
    if let Some(rank) = rank {
        builder = builder.rank(rank);
    }
    if let Some(name) = run_name {
        builder = builder.run_name(name.to_owned());
    }
    if let Some(options) = options {
        builder = configure(builder, options)?;
    }
    // Taken once no Python code runs any more (a `__str__` could let another thread in,
    // which would wait here holding the GIL this thread needs).
    let mut active = ACTIVE.lock().map_err(runtime)?;
    if active.is_some() {
        return Err(PyRuntimeError::new_err(
            "trainlog is already logging in this process: finish() it first",
        ));
    }
    let (layer, guard) = builder.build().map_err(runtime)?;
    let mut installed = Ok(());
    INSTALL.call_once(|| {
        installed = tracing_subscriber::registry().with(Forward).try_init();
        // SAFETY: registers a handler that only stores an atomic (async-signal-safe), with
        // no prepare or parent handler.
        let failed = unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
        if failed != 0 {
            eprintln!("trainlog: pthread_atfork failed ({failed}); a forked child is not detected");
        }
    });
    if let Err(e) = installed {
        let _ = guard.shutdown(trainlog::sink::RunOutcome::Failed);
        return Err(PyRuntimeError::new_err(format!(
            "cannot install trainlog's subscriber (another global `tracing` subscriber is \
             set in this process): {e}"
        )));
    }
    *CURRENT.write().map_err(runtime)? =
        Some(Dispatch::new(tracing_subscriber::registry().with(layer)));
    *active = Some(guard);
    LOGGING.store(true, Ordering::Relaxed);
    if run {
        // After the pipeline: starting the run logs through it.
        let made = trainlog::run::Run::builder()
            .dir(output_dir)
            .create()
            .and_then(|r| r.start().map(|()| r));
        match made {
            Ok(r) => *RUN.lock().map_err(runtime)? = Some(r),
            Err(e) => {
                drop(active);
                let _ = finish_pipeline(trainlog::sink::RunOutcome::Failed);
                return Err(runtime(e));
            }
        }
    }
    Ok(())
}

/// The run's parameters (`config`): `parameters.jsonl` and a hyperparameters record for
/// every backend. Without a run (a handler's pipeline), only the record.
#[pyfunction]
fn set_params(values: &Bound<'_, PyDict>) -> PyResult<()> {
    check_logging()?;
    // Read before the lock: reading may run Python code (see `start`).
    let json = to_json(values)?;
    let run = RUN.lock().map_err(runtime)?;
    match run.as_ref() {
        Some(run) => run.params().set(&json).map_err(runtime),
        None => {
            drop(run);
            log(values, None, true, '.')
        }
    }
}

/// A Python value as JSON, for parameters: dicts (keys as text), lists and tuples, bools,
/// numbers (NaN and ±∞ as their JSONL spellings), strings, None, `.item()` scalars, and
/// anything else as its `str()`.
fn to_json(v: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    use serde_json::Value as Json;
    if v.is_none() {
        return Ok(Json::Null);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, x) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) => k.str()?.to_cow()?.into_owned(),
            };
            map.insert(key, to_json(&x)?);
        }
        return Ok(Json::Object(map));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Json::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(i.into());
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(u.into());
        }
    }
    if v.is_instance_of::<PyFloat>() || v.is_instance_of::<PyInt>() {
        let f: f64 = v.extract()?;
        return Ok(serde_json::Number::from_f64(f).map_or_else(
            || {
                let text = match f {
                    f if f.is_nan() => "NaN",
                    f if f > 0.0 => "Infinity",
                    _ => "-Infinity",
                };
                Json::String(text.into())
            },
            Json::Number,
        ));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Json::String(s.to_cow()?.into_owned()));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        return v
            .try_iter()?
            .map(|x| to_json(&x?))
            .collect::<PyResult<Vec<_>>>()
            .map(Json::Array);
    }
    if v.hasattr("item")? {
        return to_json(&v.call_method0("item")?);
    }
    Ok(Json::String(v.str()?.to_cow()?.into_owned()))
}

/// Applies backend settings: `{"tensorboard": {"dir", "run_name"}, "wandb": {"project",
/// "entity", "run_name", "dir"}, "mlflow": {"url", "experiment", "run_name"}}`. Unset
/// values come from the environment variables the Rust API reads. An unknown backend or
/// setting is an error (a typo must not pass silently).
fn configure(
    mut builder: trainlog::MetricLoggerBuilder,
    options: &Bound<'_, PyDict>,
) -> PyResult<trainlog::MetricLoggerBuilder> {
    use trainlog::sink::{MlflowOptions, TensorBoardOptions, WandbOptions};
    for (backend, settings) in options.iter() {
        let backend: String = backend.extract()?;
        let settings = settings
            .cast::<PyDict>()
            .map_err(|_| PyTypeError::new_err(format!("the settings of {backend} are a dict")))?;
        builder = match backend.as_str() {
            "tensorboard" => builder.configure(settings_of(
                &backend,
                settings,
                TensorBoardOptions::new(),
                &[("dir", |o, v| o.dir(v)), ("run_name", |o, v| o.run_name(v))],
            )?),
            "wandb" => builder.configure(settings_of(
                &backend,
                settings,
                WandbOptions::new(),
                &[
                    ("project", |o, v| o.project(v)),
                    ("entity", |o, v| o.entity(v)),
                    ("run_name", |o, v| o.run_name(v)),
                    ("dir", |o, v| o.dir(v)),
                ],
            )?),
            "mlflow" => builder.configure(settings_of(
                &backend,
                settings,
                MlflowOptions::new(),
                &[
                    ("url", |o, v| o.url(v)),
                    ("experiment", |o, v| o.experiment(v)),
                    ("run_name", |o, v| o.run_name(v)),
                ],
            )?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "no settings for backend {other:?} here (tensorboard, wandb, mlflow); \
                     the others read their environment variables"
                )))
            }
        };
    }
    Ok(builder)
}

/// A setting's name and the options setter it goes through.
type Setter<O> = (&'static str, fn(O, String) -> O);

/// One backend's `options` with `settings` applied, each through its setter in `setters`
/// (a `None` value is left unset; an unknown name is an error listing the known ones).
fn settings_of<O>(
    backend: &str,
    settings: &Bound<'_, PyDict>,
    mut options: O,
    setters: &[Setter<O>],
) -> PyResult<O> {
    for (key, value) in settings.iter() {
        if value.is_none() {
            continue;
        }
        let key: String = key.extract()?;
        let Some((_, set)) = setters.iter().find(|(name, _)| *name == key) else {
            let known: Vec<&str> = setters.iter().map(|(name, _)| *name).collect();
            return Err(PyValueError::new_err(format!(
                "unknown {backend} setting {key:?} (known: {})",
                known.join(", ")
            )));
        };
        options = set(options, value.str()?.extract()?);
    }
    Ok(options)
}

/// A Python sequence or buffer of numbers, logged as a histogram (binned by trainlog's
/// threads, not on the caller).
#[pyclass(frozen, name = "Histogram", module = "trainlog")]
struct PyHistogram(trainlog::Histogram);

#[pymethods]
impl PyHistogram {
    #[new]
    fn new(values: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut out: Vec<f64> = Vec::new();
        // numpy arrays, torch tensors, memoryviews and array.array turn into a list of
        // Python numbers in one C loop (`tolist`); iterating them would make a scalar
        // object per element and call its `.item()`.
        let list = if values.hasattr("tolist")? && !values.is_instance_of::<PyList>() {
            values.call_method0("tolist")?
        } else {
            values.clone()
        };
        if let Ok(list) = list.cast::<PyList>() {
            out.reserve(list.len());
        }
        collect_numbers(&list, &mut out)?;
        Ok(PyHistogram(trainlog::Histogram::new(&out)))
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }
}

/// Appends the numbers of `values` (an iterable of numbers; nested lists, as `tolist()`
/// gives for arrays of more than one dimension, are taken in order) to `out`.
fn collect_numbers(values: &Bound<'_, PyAny>, out: &mut Vec<f64>) -> PyResult<()> {
    for item in values.try_iter()? {
        let item = item?;
        if let Ok(x) = item.cast::<PyFloat>() {
            out.push(x.value());
        } else if item.is_instance_of::<PyList>() {
            collect_numbers(&item, out)?;
        } else if item.hasattr("item")? {
            out.push(item.call_method0("item")?.extract::<f64>()?);
        } else {
            out.push(item.extract::<f64>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "a histogram takes numbers, not {}",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?);
        }
    }
    Ok(())
}

/// One record: `fields` a dict (nested names joined with `sep`), at `step` if given.
#[pyfunction]
#[pyo3(signature = (fields, step=None, hparams=false, sep='.'))]
fn log(fields: &Bound<'_, PyAny>, step: Option<u64>, hparams: bool, sep: char) -> PyResult<()> {
    check_logging()?;
    let dict;
    let fields = match fields.cast::<PyDict>() {
        Ok(d) => d,
        Err(_) => {
            // Any other mapping, as `dict(fields)` reads it.
            dict = fields
                .call_method0("items")
                .and_then(|items| PyDict::from_sequence(&items))
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "trainlog logs a dict of metrics, not {}",
                        fields
                            .get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))
                })?;
            &dict
        }
    };
    let mut out = Vec::with_capacity(fields.len());
    flatten(&Cow::Borrowed(""), sep, fields, &mut out)?;
    trainlog::log_fields(step, hparams, out);
    Ok(())
}

/// What `trainlog.Run` is built on: `Run.log` is this class's method, a call from Python
/// straight into Rust (no Python frame between).
#[pyclass(subclass, module = "trainlog._trainlog")]
struct Logger;

#[pymethods]
impl Logger {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Logger
    }

    /// Logs ``data`` (a dict of numbers, bools, strings, histograms and nested dicts,
    /// nested names joined with ``.``) at ``step``. Steps that go back or repeat are kept.
    #[pyo3(signature = (data, step=None))]
    fn log(&self, data: &Bound<'_, PyAny>, step: Option<u64>) -> PyResult<()> {
        log(data, step, false, '.')
    }
}

fn flatten(
    prefix: &Key,
    sep: char,
    dict: &Bound<'_, PyDict>,
    out: &mut Vec<(Key, Value)>,
) -> PyResult<()> {
    for (k, v) in dict.iter() {
        let name = names::name(prefix, sep, &k)?;
        if let Ok(inner) = v.cast::<PyDict>() {
            flatten(&name, sep, inner, out)?;
            continue;
        }
        out.push((name, value(&v)?));
    }
    Ok(())
}

/// Metric names as `&'static str`, found by the Python string objects that spell them.
///
/// The same few names come back every step, usually as the same (interned) `str`
/// objects. Turning each into a Rust `String` cost an allocation and a UTF-8 copy per
/// name per call (and another at each copy of the record); here a name is made once and
/// leaked, and found again by the object's address. Both maps are bounded: past
/// [`KEPT`] names, names are made per call as before, so names that change every step
/// cannot grow memory.
mod names {
    use super::*;

    /// How many names (and how many name objects) are kept.
    pub(super) const KEPT: usize = 4096;

    /// Hashes the three addresses of a `by_object` key with one multiply each (FxHash's
    /// step). SipHash, the default, was a tenth of `run.log`; the keys are addresses
    /// chosen by no one who could aim collisions at them.
    #[derive(Default)]
    struct AddressHasher(u64);

    impl std::hash::Hasher for AddressHasher {
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.write_u64(u64::from(*b));
            }
        }
        fn write_usize(&mut self, n: usize) {
            self.write_u64(n as u64);
        }
        fn write_u32(&mut self, n: u32) {
            self.write_u64(u64::from(n));
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }

    type ByAddress = std::hash::BuildHasherDefault<AddressHasher>;

    /// (prefix address, prefix length, separator, name object's address).
    type ObjectKey = (usize, usize, char, usize);

    #[derive(Default)]
    struct Names {
        /// (prefix address, prefix length, separator, name object's address) → name. The
        /// object is held, so its address cannot be reused by another string while it is
        /// here.
        by_object: HashMap<ObjectKey, (Py<PyAny>, &'static str), ByAddress>,
        by_text: HashMap<String, &'static str>,
    }

    static NAMES: Mutex<Option<Names>> = Mutex::new(None);

    /// `prefix<sep>key` (or `key` at the top level). The lock is never held while Python
    /// runs (another thread could be waiting for it with the GIL).
    pub(super) fn name(prefix: &Key, sep: char, key: &Bound<'_, PyAny>) -> PyResult<Key> {
        let id = (
            prefix.as_ptr() as usize,
            prefix.len(),
            sep,
            key.as_ptr() as usize,
        );
        let cacheable = matches!(prefix, Cow::Borrowed(_));
        if cacheable {
            if let Some(names) = NAMES.lock().ok().as_deref().and_then(Option::as_ref) {
                if let Some((_, name)) = names.by_object.get(&id) {
                    return Ok(Cow::Borrowed(name));
                }
            }
        }
        let Ok(key_str) = key.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "metric names are strings, not {}",
                key.repr().map(|r| r.to_string()).unwrap_or_default()
            )));
        };
        let text = key_str.to_cow()?;
        let full = if prefix.is_empty() {
            text.into_owned()
        } else {
            format!("{prefix}{sep}{text}")
        };
        if !cacheable {
            return Ok(Cow::Owned(full));
        }
        let mut guard = NAMES.lock().map_err(runtime)?;
        let names = guard.get_or_insert_with(Names::default);
        let name = match names.by_text.get(full.as_str()) {
            Some(name) => *name,
            None if names.by_text.len() < KEPT => {
                let name: &'static str = Box::leak(full.clone().into_boxed_str());
                names.by_text.insert(full, name);
                name
            }
            None => return Ok(Cow::Owned(full)),
        };
        if names.by_object.len() < KEPT {
            names.by_object.insert(id, (key.clone().unbind(), name));
        }
        Ok(Cow::Borrowed(name))
    }
}

/// A Python value as a trainlog value: bool, int, float, str, or anything with
/// `__float__` or `.item()` (numpy and torch scalars).
fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::I64(i));
        }
        return Ok(Value::F64(v.extract::<f64>()?));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::F64(f.value()));
    }
    if let Ok(h) = v.cast::<PyHistogram>() {
        return Ok(h.get().0.clone().into());
    }
    if v.is_instance_of::<PyString>() {
        return Ok(Value::Str(v.extract::<String>()?));
    }
    if v.hasattr("item")? {
        return value(&v.call_method0("item")?);
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(Value::F64(f));
    }
    Err(PyValueError::new_err(format!(
        "cannot log {} (a number, bool, str, dict, or something with __float__ or .item())",
        v.repr()?
    )))
}

/// The rank the launchers' variables give, read as the Rust side reads them
/// (`trainlog::rank::RANK_VARS`, in that order), or None when none is set.
#[pyfunction]
fn env_rank() -> Option<u32> {
    trainlog::rank::RANK_VARS
        .iter()
        .find_map(|name| std::env::var(name).ok()?.trim().parse().ok())
}

/// Flushes and closes every sink; returns the counters (`queued`, `written`, `lost`, ...).
/// A run started by `trainlog.init` is marked completed, or failed with `error`.
#[pyfunction]
#[pyo3(signature = (failed=false, error=None))]
fn finish(py: Python<'_>, failed: bool, error: Option<String>) -> PyResult<Py<PyDict>> {
    if FORKED.load(Ordering::Relaxed) {
        return Err(PyRuntimeError::new_err(FORKED_MESSAGE));
    }
    let run = RUN.lock().map_err(runtime)?.take();
    if let Some(run) = run {
        // Before the sinks close: failing logs an error event through them.
        let marked = if failed {
            run.fail(error.unwrap_or_else(|| "failed".into()))
        } else {
            run.complete()
        };
        if let Err(e) = marked {
            // The run's files are the user's; the metrics must still be flushed.
            eprintln!("trainlog: could not mark the run finished: {e}");
        }
    }
    let outcome = if failed {
        trainlog::sink::RunOutcome::Failed
    } else {
        trainlog::sink::RunOutcome::Completed
    };
    // The sinks' threads finish their I/O without the GIL.
    let stats = py.detach(|| finish_pipeline(outcome))?;
    let out = PyDict::new(py);
    out.set_item("queued", stats.queued)?;
    out.set_item("written", stats.written)?;
    out.set_item("dropped", stats.dropped)?;
    out.set_item("lost", stats.lost)?;
    out.set_item("write_errors", stats.write_errors)?;
    Ok(out.unbind())
}

/// Shuts the running pipeline down.
fn finish_pipeline(outcome: trainlog::sink::RunOutcome) -> PyResult<trainlog::Stats> {
    let guard = ACTIVE.lock().map_err(runtime)?.take();
    let Some(guard) = guard else {
        return Err(PyRuntimeError::new_err(
            "trainlog is not logging: nothing to finish",
        ));
    };
    LOGGING.store(false, Ordering::Relaxed);
    let stats = guard.shutdown(outcome).map_err(runtime);
    // After the shutdown: a record another thread logged meanwhile still had somewhere to go.
    let finished = CURRENT.write().map_err(runtime)?.take();
    drop(finished);
    stats
}

/// In a forked child (from Python's at-fork hook): lets go of the parent's pipeline, so
/// that the child neither logs into it nor waits for its threads at exit.
#[pyfunction]
fn forget_after_fork() {
    if FORKED.load(Ordering::Relaxed) {
        forget_parents();
    }
}

#[pymodule]
fn _trainlog(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHistogram>()?;
    m.add_class::<Logger>()?;
    m.add("NAMES_KEPT", names::KEPT)?;
    m.add_function(wrap_pyfunction!(forget_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(finish, m)?)?;
    m.add_function(wrap_pyfunction!(set_params, m)?)?;
    m.add_function(wrap_pyfunction!(env_rank, m)?)?;
    Ok(())
}
