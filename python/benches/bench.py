"""What a call costs the training loop, beside the baselines, in one run:

    python bench.py OUT_DIR [--wandb]

- `run.log` of three metrics, per call (the median of 7 rounds of 50,000 calls), and wandb
  offline's `run.log` of the same (with --wandb; wandb installed in this interpreter; the
  median of 5 rounds of 4,000 calls: it is 50 times slower);
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
CALLS = 50_000
ROUNDS = 7

# Each case prints one figure per round; the median is kept (this machine is noisy: a
# single short round moved by 50 %).
ROUNDS_OF = f"""
import statistics, time
def per_call(log, calls={CALLS}, rounds={ROUNDS}):
    times = []
    for r in range(rounds):
        t = time.perf_counter()
        for i in range(calls):
            log(r * calls + i)
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times)
"""

CASES = {
    "trainlog run.log": ROUNDS_OF + f"""
        import trainlog
        run = trainlog.init(output_dir={out_dir!r} + "/runlog")
        cost = per_call(lambda i: run.log({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, step=i))
        stats = run.finish()
        assert stats["written"] == {CALLS * ROUNDS}, stats
        print(cost)
    """,
    "logging + MetricHandler": ROUNDS_OF + f"""
        import logging, trainlog
        trainlog.setup_metric_logger("async", None, {out_dir!r} + "/logging")
        log = logging.getLogger("instructlab.training.metrics")
        print(per_call(lambda i: log.info({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}},
                                          extra={{"step": i}})))
    """,
    "logging + a handler that does nothing": ROUNDS_OF + f"""
        import logging
        class Nothing(logging.Handler):
            def emit(self, record):
                pass
        log = logging.getLogger("instructlab.training.metrics")
        log.setLevel(logging.INFO)
        log.addHandler(Nothing())
        log.propagate = False
        print(per_call(lambda i: log.info({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}},
                                          extra={{"step": i}})))
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
    CASES["wandb offline run.log"] = ROUNDS_OF + f"""
        import os, wandb
        os.environ["WANDB_SILENT"] = "true"
        run = wandb.init(mode="offline", dir={out_dir!r}, project="bench")
        cost = per_call(lambda i: run.log({{"loss": 0.5, "lr": 3e-4, "acc": 0.9}}, step=i),
                        calls=4_000, rounds=5)
        run.finish()
        print(cost)
    """

def dedent(body):
    """A case's code: the shared prelude as it is, the case's own part dedented."""
    if body.startswith(ROUNDS_OF):
        return ROUNDS_OF + textwrap.dedent(body[len(ROUNDS_OF):])
    return textwrap.dedent(body)


results = {}
for name, body in CASES.items():
    out = subprocess.run([sys.executable, "-c", dedent(body)], capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr}")
    results[name] = out.stdout.split()
for name, values in results.items():
    if name.startswith("burst"):
        print(f"{name:40s} {float(values[0]):8.2f} s   peak RSS {float(values[1]):6.1f} MiB")
    else:
        print(f"{name:40s} {float(values[0]) * 1e6:8.2f} µs per call")
per_call = {name: float(values[0]) for name, values in results.items()}
floor = per_call["logging + a handler that does nothing"]
print(f"{'logging path / its floor':40s} {per_call['logging + MetricHandler'] / floor:8.2f}×")
if "wandb offline run.log" in per_call:
    ratio = per_call["wandb offline run.log"] / per_call["trainlog run.log"]
    print(f"{'wandb run.log / trainlog run.log':40s} {ratio:8.1f}×")
