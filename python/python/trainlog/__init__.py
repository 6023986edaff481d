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
import sys
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

    def __init__(self, output_dir=".", backends="async", config=None, rank=None,
                 run_name=None, *, tensorboard=None, wandb=None, mlflow=None):
        options = {name: settings for name, settings in
                   (("tensorboard", tensorboard), ("wandb", wandb), ("mlflow", mlflow))
                   if settings is not None}
        _start(backends, output_dir, rank, run_name, options, run=True)
        self._finished = False
        self.stats = None
        if config:
            _trainlog.set_params(dict(config))

    def finish(self, failed=False, error=None):
        """Flushes every backend and closes the run (``run.json``: completed, or failed
        with ``error``); returns the counters (``queued``, ``written``, ``dropped``,
        ``lost``, ``write_errors``). A second call returns them again. Raises
        RuntimeError when records were lost (a full disk, a server that never answered),
        with how many and where."""
        global _started
        if not self._finished and _started is not None:
            self._finished = True
            _started = None
            self.stats = _trainlog.finish(failed, error)
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.finish()
        else:
            self.finish(failed=True, error=f"{kind.__name__}: {value}")
        return False


def init(output_dir=".", backends="async", config=None, rank=None, run_name=None, *,
         tensorboard=None, wandb=None, mlflow=None):
    """Starts a run: files under ``output_dir``, ``backends`` like ``"async,tensorboard"``
    (any of trainlog's: ``async``, ``tensorboard``, ``wandb``, ``mlflow``, ``http``,
    ``otel``, ``prometheus``, ``webhook``), ``config`` logged first as hyperparameters.

    ``tensorboard={"dir", "run_name"}``, ``wandb={"project", "entity", "run_name", "dir"}``
    and ``mlflow={"url", "experiment", "run_name"}`` set those backends (and turn them on);
    what is not set comes from the environment variables trainlog reads (``WANDB_PROJECT``,
    ``MLFLOW_TRACKING_URI``, ...). After ``finish()``, a new run can start.
    """
    return Run(output_dir, backends=backends, config=config, rank=rank, run_name=run_name,
               tensorboard=tensorboard, wandb=wandb, mlflow=mlflow)


_started = None


def _start(backends, output_dir, rank=None, run_name=None, options=None, run=False):
    """Starts the process's pipeline once; later calls with the same settings reuse it.
    ``run``: keep a run in ``output_dir`` (``run.json``, ``parameters.jsonl``)."""
    global _started
    if not isinstance(backends, str):
        backends = ",".join(backends)
    settings = (backends, str(output_dir), rank, run_name, repr(options or {}))
    if _started is None:
        _trainlog.start(backends, str(output_dir), rank, run_name, options or None, run)
        _started = settings
    elif _started != settings:
        raise RuntimeError(
            f"trainlog already logs with {_started[:4]}; one pipeline at a time per process "
            "(finish() it to start another)")


def _after_fork_in_child():
    """A forked child has the parent's logger but not its threads: forget it (logging
    into it raises a clear error; ``init()`` in the child starts one of its own)."""
    global _started
    if _started is not None:
        _trainlog.forget_after_fork()
        _started = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_uncaught = None


def _note_uncaught(kind, value, traceback):
    """sys.excepthook: an exception that ends the script fails the run at exit."""
    global _uncaught
    _uncaught = f"{kind.__name__}: {value}"
    _previous_excepthook(kind, value, traceback)


_previous_excepthook = sys.excepthook
sys.excepthook = _note_uncaught


def _finish_at_exit():
    global _started
    if _started is not None:
        _started = None
        try:
            _trainlog.finish(_uncaught is not None, _uncaught)
        except RuntimeError as e:
            # Nobody to raise to at exit: said once, plainly (the reasons came on stderr).
            print(e, file=sys.stderr)


atexit.register(_finish_at_exit)


class MetricHandler(logging.Handler):
    """A ``logging.Handler`` that sends records whose message is a mapping through trainlog.

    ``extra={"step": n}`` gives the step (else an integer ``"step"`` key of the mapping
    does, as InstructLab's JSONL shows it), ``extra={"hparams": True}`` marks
    hyperparameters. Records whose message is not a mapping are ignored (InstructLab's
    is-mapping filter). ``rank0_only=True`` keeps the records of rank 0 only: the ``rank``
    given, else ``RANK`` (then ``SLURM_PROCID``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``, as
    trainlog's Rust side reads them) from the environment, else ``torch.distributed``'s rank
    once it is initialized. Nested names are joined with
    ``sep``.
    """

    def __init__(self, output_dir=".", backends="async", rank=None, run_name=None,
                 rank0_only=False, level=logging.NOTSET, sep=".", options=None):
        super().__init__(level)
        _start(backends, output_dir, rank, run_name, options)
        self.rank0_only = rank0_only
        self.sep = sep
        self._rank = rank if rank is not None else _trainlog.env_rank()

    def emit(self, record):
        msg = record.msg
        if type(msg) is not dict and not isinstance(msg, Mapping):
            return
        if self.rank0_only and self._current_rank() != 0:
            return
        try:
            step = getattr(record, "step", None)
            if step is None:
                step = msg.get("step")
                if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
                    msg = {k: v for k, v in msg.items() if k != "step"}
                else:
                    step = None
            _trainlog.log(msg, step, bool(getattr(record, "hparams", False)), self.sep)
        except Exception:
            self.handleError(record)

    def _current_rank(self):
        if self._rank is None:
            dist = sys.modules.get("torch.distributed")
            if dist is not None and dist.is_available() and dist.is_initialized():
                self._rank = dist.get_rank()
            else:
                return 0
        return self._rank


def setup_metric_logger(loggers="async", run_name=None, output_dir=".", *,
                        wandb_run_name=None, mlflow_run_name=None, mlflow_tracking_uri=None,
                        mlflow_experiment_name=None, wandb_project=None, wandb_entity=None,
                        tensorboard_log_dir=None, sep="/"):
    """InstructLab's ``setup_metric_logger``: ``loggers`` a comma string or a list
    (``"async,tensorboard,wandb,mlflow"``); records logged to ``logging.getLogger(
    "instructlab.training.metrics")`` with a mapping as message go to those backends.

    The keyword arguments are InstructLab's (newer versions name ``output_dir`` by keyword;
    give it so here too). Nested names are joined with ``/`` as InstructLab joins them
    (``{"eval": {"acc": 1}}`` is ``eval/acc``; ``sep="."`` gives ``log_dict``'s names).
    Step 0 is kept, times are UTC, NaN stays NaN, nothing is lost at exit.
    """
    logger = logging.getLogger(METRICS_LOGGER)
    if not loggers:
        return logger
    if isinstance(loggers, str):
        loggers = loggers.split(",")
    loggers = [name.strip() for name in loggers if name.strip()]
    settings = {
        "tensorboard": {"dir": tensorboard_log_dir},
        "wandb": {"project": wandb_project, "entity": wandb_entity, "run_name": wandb_run_name},
        "mlflow": {"url": mlflow_tracking_uri, "experiment": mlflow_experiment_name,
                   "run_name": mlflow_run_name},
    }
    # Only for the backends asked for (setting a backend turns it on), and only what is set.
    options = {}
    for name, values in settings.items():
        values = {k: v for k, v in values.items() if v is not None}
        if name in loggers and values:
            options[name] = values
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        if isinstance(handler, MetricHandler):
            logger.removeHandler(handler)
    logger.addHandler(MetricHandler(output_dir=output_dir, backends=",".join(loggers),
                                    run_name=run_name, sep=sep, options=options or None))
    # Metric dicts are not messages for the root logger's handlers to print.
    logger.propagate = False
    return logger
