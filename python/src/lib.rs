//! The Rust side of the Python package `trainlog`: a logger that Python code feeds with
//! dicts, on trainlog's own pipeline (the same sinks, files and counters as the Rust API).
//! The Python layer (`python/trainlog/__init__.py`) gives it its three shapes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use tracing_subscriber::prelude::*;
use trainlog::{Key, MetricGuard, Value};

/// The one logger of this process (trainlog's layer is installed once, globally), and the
/// process that started it: a `fork()`ed child has a copy of the logger but none of its
/// threads, so it must not log into it (nothing would write it) nor wait for it to close.
static LOGGER: Mutex<Option<MetricGuard>> = Mutex::new(None);
static STARTED_BY: AtomicU32 = AtomicU32::new(0);

/// Refuses to log in a forked child (see [`STARTED_BY`]).
fn check_process() -> PyResult<()> {
    let by = STARTED_BY.load(Ordering::Relaxed);
    if by != 0 && by != std::process::id() {
        return Err(PyRuntimeError::new_err(
            "trainlog: this process was forked from one that logs, and the logger's threads \
             did not come along; log from the parent, or start processes with the `spawn` \
             method (multiprocessing.set_start_method(\"spawn\")) and call trainlog.init() in each",
        ));
    }
    Ok(())
}

fn runtime(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Starts the pipeline: `backends` like `"async,tensorboard"`, files under `output_dir`.
#[pyfunction]
#[pyo3(signature = (backends, output_dir, rank=None, run_name=None))]
fn start(
    backends: &str,
    output_dir: &str,
    rank: Option<u32>,
    run_name: Option<&str>,
) -> PyResult<()> {
    check_process()?;
    let mut slot = LOGGER.lock().map_err(runtime)?;
    if slot.is_some() {
        return Err(PyRuntimeError::new_err(
            "trainlog is already logging in this process: finish() it first",
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
    let (layer, guard) = builder.build().map_err(runtime)?;
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot install trainlog's layer: {e}")))?;
    *slot = Some(guard);
    STARTED_BY.store(std::process::id(), Ordering::Relaxed);
    Ok(())
}

/// A Python sequence or buffer of numbers, logged as a histogram (binned by trainlog's
/// threads, not on the caller).
#[pyclass(frozen, name = "Histogram", module = "trainlog")]
struct PyHistogram(trainlog::Histogram);

#[pymethods]
impl PyHistogram {
    #[new]
    fn new(values: &Bound<'_, PyAny>) -> PyResult<Self> {
        // A list, tuple or any iterable of numbers (a numpy array iterates as scalars).
        let mut out: Vec<f64> = Vec::new();
        for item in values.try_iter()? {
            let item = item?;
            let x = if item.hasattr("item")? {
                item.call_method0("item")?.extract::<f64>()?
            } else {
                item.extract::<f64>()?
            };
            out.push(x);
        }
        Ok(PyHistogram(trainlog::Histogram::new(&out)))
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }
}

/// One record: `fields` a dict (nested dicts flattened with `.`), at `step` if given.
#[pyfunction]
#[pyo3(signature = (fields, step=None, hparams=false))]
fn log(fields: &Bound<'_, PyDict>, step: Option<u64>, hparams: bool) -> PyResult<()> {
    check_process()?;
    let mut out = Vec::with_capacity(fields.len());
    flatten("", fields, &mut out)?;
    trainlog::log_fields(step, hparams, out);
    Ok(())
}

fn flatten(prefix: &str, dict: &Bound<'_, PyDict>, out: &mut Vec<(Key, Value)>) -> PyResult<()> {
    for (k, v) in dict.iter() {
        let key: String = k
            .extract::<String>()
            .map_err(|_| PyTypeError::new_err(format!("metric names are strings, not {k}")))?;
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        if let Ok(inner) = v.cast::<PyDict>() {
            flatten(&name, inner, out)?;
            continue;
        }
        out.push((name.into(), value(&v)?));
    }
    Ok(())
}

/// A Python value as a trainlog value: bool, int, float, str, or anything with
/// `__float__` or `.item()` (numpy and torch scalars).
fn value(v: &Bound<'_, PyAny>) -> PyResult<Value> {
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract()?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::I64(i));
        }
        return Ok(Value::F64(v.extract::<f64>()?));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(Value::F64(v.extract()?));
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

/// Flushes and closes every sink; returns the counters (`queued`, `written`, `lost`, ...).
#[pyfunction]
#[pyo3(signature = (failed=false))]
fn finish(py: Python<'_>, failed: bool) -> PyResult<Py<PyDict>> {
    check_process()?;
    let guard = LOGGER.lock().map_err(runtime)?.take();
    let Some(guard) = guard else {
        return Err(PyRuntimeError::new_err(
            "trainlog is not logging: nothing to finish",
        ));
    };
    let outcome = if failed {
        trainlog::sink::RunOutcome::Failed
    } else {
        trainlog::sink::RunOutcome::Completed
    };
    // The sinks' threads finish their I/O without the GIL.
    let stats = py.detach(|| guard.shutdown(outcome)).map_err(runtime)?;
    let out = PyDict::new(py);
    out.set_item("queued", stats.queued)?;
    out.set_item("written", stats.written)?;
    out.set_item("dropped", stats.dropped)?;
    out.set_item("lost", stats.lost)?;
    Ok(out.unbind())
}

/// In a forked child: lets go of the parent's logger without closing it (its threads are
/// the parent's; closing would wait for them forever).
#[pyfunction]
fn forget_after_fork() {
    if STARTED_BY.load(Ordering::Relaxed) != std::process::id() {
        if let Ok(mut slot) = LOGGER.lock() {
            std::mem::forget(slot.take());
        }
    }
}

#[pymodule]
fn _trainlog(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHistogram>()?;
    m.add_function(wrap_pyfunction!(forget_after_fork, m)?)?;
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(finish, m)?)?;
    Ok(())
}
