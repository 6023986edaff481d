"""What a call costs the training loop, beside the baselines, in one run:

    python bench.py OUT_DIR [--wandb]

- `run.log` of three metrics, per call (20,000 calls), and wandb offline's `run.log` of the
  same (with --wandb; wandb installed in this interpreter);
- the `logging` path (`logger.info(dict, extra={"step": n})`) through `MetricHandler`,
  beside the same call with a handler that does nothing (Python's `logging` floor);
- a burst of 1,000,000 records: all written, and the process's peak RSS.
Each case runs in a fresh interpreter (one trainlog pipeline per process).
"""

import json
import subprocess
import sys
import textwrap

out_dir = sys.argv[1]
CALLS = 20_000

CASES = {
    "trainlog run.log": f"""
        import time, trainlog
        run = trainlog.init(output_dir={out_dir!r} + "/runlog")
        t = time.perf_counter()
        for i in range({CALLS}):
            run.log({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, step=i)
        per_call = (time.perf_counter() - t) / {CALLS}
        stats = run.finish()
        assert stats["written"] == {CALLS}, stats
        print(per_call)
    """,
    "logging + MetricHandler": f"""
        import logging, time, trainlog
        trainlog.setup_metric_logger("async", None, {out_dir!r} + "/logging")
        log = logging.getLogger("instructlab.training.metrics")
        t = time.perf_counter()
        for i in range({CALLS}):
            log.info({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, extra={{"step": i}})
        print((time.perf_counter() - t) / {CALLS})
    """,
    "logging + a handler that does nothing": f"""
        import logging, time
        class Nothing(logging.Handler):
            def emit(self, record):
                pass
        log = logging.getLogger("instructlab.training.metrics")
        log.setLevel(logging.INFO)
        log.addHandler(Nothing())
        log.propagate = False
        t = time.perf_counter()
        for i in range({CALLS}):
            log.info({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, extra={{"step": i}})
        print((time.perf_counter() - t) / {CALLS})
    """,
    "burst of 1,000,000": f"""
        import resource, time, trainlog
        run = trainlog.init(output_dir={out_dir!r} + "/burst")
        t = time.perf_counter()
        for i in range(1_000_000):
            run.log({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, step=i)
        stats = run.finish()
        seconds = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert stats["written"] == 1_000_000 and stats["lost"] == 0, stats
        print(seconds, peak)
    """,
}
if "--wandb" in sys.argv:
    CASES["wandb offline run.log"] = f"""
        import os, time, wandb
        os.environ["WANDB_SILENT"] = "true"
        run = wandb.init(mode="offline", dir={out_dir!r}, project="bench")
        t = time.perf_counter()
        for i in range({CALLS}):
            run.log({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, step=i)
        per_call = (time.perf_counter() - t) / {CALLS}
        run.finish()
        print(per_call)
    """

results = {}
for name, body in CASES.items():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr}")
    results[name] = out.stdout.split()
for name, values in results.items():
    if name.startswith("burst"):
        print(f"{name:40s} {float(values[0]):8.2f} s   peak RSS {float(values[1]):6.1f} MiB")
    else:
        print(f"{name:40s} {float(values[0]) * 1e6:8.2f} µs per call")
