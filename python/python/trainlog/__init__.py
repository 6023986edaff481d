"""trainlog for Python: training metrics through trainlog's Rust pipeline.

Three ways in (see the README):

1. InstructLab's shape: ``setup_metric_logger(loggers, run_name, output_dir)``, then
   ``logging.getLogger("instructlab.training.metrics").info({...}, extra={"step": n})``.
2. A ``logging.Handler``: ``MetricHandler(...)`` on any logger.
3. A wandb-like run: ``run = trainlog.init(output_dir=..., backends="async,tensorboard",
   config={...})``, ``run.log({"loss": x}, step=n)``, ``run.finish()`` (or ``with``).

A call copies the values into trainlog's queue and returns; trainlog's threads write the
files. Everything is flushed at ``finish()`` and at interpreter exit.
"""

import atexit
import logging
import os
from collections.abc import Mapping

from . import _trainlog
from ._trainlog import Histogram

__all__ = ["init", "Run", "MetricHandler", "setup_metric_logger", "Histogram"]

METRICS_LOGGER = "instructlab.training.metrics"


class Run(_trainlog.Logger):
    """A training run logging through trainlog (see ``init``).

    ``run.log(data, step=None)`` (from the Rust base class, a direct call) logs ``data``: a
    dict of numbers, bools, strings, ``Histogram``s and nested dicts (nested names joined
    with ``.``), at ``step``. Steps that go back or repeat are kept.
    """

    def __init__(self, output_dir, backends="async", config=None, rank=None, run_name=None):
        _start(backends, output_dir, rank, run_name)
        self._finished = False
        self.stats = None
        if config:
            _trainlog.log(dict(config), None, True)

    def finish(self, failed=False):
        """Flushes every backend and closes the run; returns the counters."""
        global _started
        if not self._finished and _started is not None:
            self._finished = True
            _started = None
            self.stats = _trainlog.finish(failed)
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self.finish(failed=kind is not None)
        return False


def init(output_dir, backends="async", config=None, rank=None, run_name=None):
    """Starts a run: files under ``output_dir``, ``backends`` like ``"async,tensorboard"``,
    ``config`` logged first as hyperparameters."""
    return Run(output_dir, backends=backends, config=config, rank=rank, run_name=run_name)


_started = None


def _start(backends, output_dir, rank=None, run_name=None):
    """Starts the process's pipeline once; later calls with the same settings reuse it."""
    global _started
    settings = (backends, str(output_dir), rank, run_name)
    if _started is None:
        _trainlog.start(*settings)
        _started = settings
    elif _started != settings:
        raise RuntimeError(
            f"trainlog already logs with {_started}; one pipeline per process")


def _after_fork_in_child():
    """A forked child has the parent's logger but not its threads: forget it (logging
    there raises a clear error instead of waiting for threads that are not there)."""
    global _started
    if _started is not None:
        _trainlog.forget_after_fork()
        _started = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _finish_at_exit():
    global _started
    if _started is not None:
        _started = None
        _trainlog.finish(False)


atexit.register(_finish_at_exit)


class MetricHandler(logging.Handler):
    """A ``logging.Handler`` that sends records whose message is a mapping through trainlog.

    ``extra={"step": n}`` gives the step, ``extra={"hparams": True}`` marks
    hyperparameters. Records whose message is not a mapping are ignored (InstructLab's
    is-mapping filter). ``rank0_only=True`` keeps records of rank 0 only (``RANK`` /
    ``LOCAL_RANK`` from the environment, as trainlog reads them).
    """

    def __init__(self, output_dir=".", backends="async", rank=None, run_name=None,
                 rank0_only=False, level=logging.NOTSET):
        super().__init__(level)
        _start(backends, output_dir, rank, run_name)
        self.rank0_only = rank0_only
        self._rank = rank if rank is not None else _env_rank()

    def emit(self, record):
        if not isinstance(record.msg, Mapping):
            return
        if self.rank0_only and self._rank != 0:
            return
        try:
            step = getattr(record, "step", None)
            hparams = bool(getattr(record, "hparams", False))
            _trainlog.log(dict(record.msg), step, hparams)
        except Exception:
            self.handleError(record)


def _env_rank():
    import os
    for name in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "LOCAL_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def setup_metric_logger(loggers="async", run_name=None, output_dir="."):
    """InstructLab's ``setup_metric_logger``: ``loggers`` a comma string or a list
    (``"async,tensorboard"``); records logged to ``logging.getLogger(
    "instructlab.training.metrics")`` with a mapping as message go to those backends.
    Step 0 is kept, times are UTC, NaN stays NaN, nothing is lost at exit."""
    if not isinstance(loggers, str):
        loggers = ",".join(loggers)
    logger = logging.getLogger(METRICS_LOGGER)
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        if isinstance(handler, MetricHandler):
            logger.removeHandler(handler)
    logger.addHandler(MetricHandler(output_dir=output_dir, backends=loggers, run_name=run_name))
    logger.propagate = False
    return logger
