//! The Rust side of the Python package `trainlog`: a logger that Python code feeds with
//! dicts, on trainlog's own pipeline (the same sinks, files and counters as the Rust API).
//! The Python layer (`python/trainlog/__init__.py`) gives it its three shapes.

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use tracing_subscriber::prelude::*;
use trainlog::{Key, MetricGuard, Value};

/// The one logger of this process (trainlog's layer is installed once, globally).
static LOGGER: Mutex<Option<MetricGuard>> = Mutex::new(None);

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
    Ok(())
}

/// One record: `fields` a dict (nested dicts flattened with `.`), at `step` if given.
#[pyfunction]
#[pyo3(signature = (fields, step=None, hparams=false))]
fn log(fields: &Bound<'_, PyDict>, step: Option<u64>, hparams: bool) -> PyResult<()> {
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

#[pymodule]
fn _trainlog(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(finish, m)?)?;
    Ok(())
}
