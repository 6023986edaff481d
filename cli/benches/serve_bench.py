"""The measurements of serve.sh (see there): prints one line per figure."""

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

trainlog, tensorboard, one, many, ten, steps = sys.argv[1:7]
steps = int(steps)
METRICS = ["loss", "lr", "grad.norm"]


def get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.load(r)


def peak_rss_mib(pid):
    """Peak RSS of a process and its children (MiB), from /proc."""
    total = 0
    pids = [pid]
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def until(check, timeout=600):
    start = time.time()
    while time.time() - start < timeout:
        try:
            value = check()
            if value is not None:
                return value
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("timed out")


def trainlog_server(root, port):
    return subprocess.Popen([trainlog, "serve", root, "--addr", f"127.0.0.1:{port}"],
                            stderr=subprocess.DEVNULL)


# 1. Side by side on one run.
start = time.time()
server = trainlog_server(one, 6201)
url = "http://127.0.0.1:6201/api/scalars?run=.&points=1000&metric="


def full(metric):
    s = get(url + metric)
    return s if s["step"][-1] == steps - 1 else None


first = until(lambda: full("loss"))
t_trainlog = time.time() - start
totals = {m: until(lambda m=m: full(m))["total"] for m in METRICS}
t_trainlog_all = time.time() - start
time.sleep(1)
rss_trainlog = peak_rss_mib(server.pid)
server.kill()
server.wait()

start = time.time()
tb = subprocess.Popen([tensorboard, "--logdir", os.path.join(one, "tensorboard"), "--port", "6202",
                       "--host", "127.0.0.1", "--load_fast", "true"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
run = until(lambda: (get("http://127.0.0.1:6202/data/runs") or [None])[0])
tb_url = f"http://127.0.0.1:6202/data/plugin/scalars/scalars?run={run}&tag="


def tb_full(tag):
    s = get(tb_url + urllib.request.quote(tag))
    return s if s and s[-1][1] == steps - 1 else None


tb_first = until(lambda: tb_full("loss"))
t_tb = time.time() - start
tb_totals = {m: len(until(lambda m=m: tb_full(m.replace(".", "/")))) for m in METRICS}
t_tb_all = time.time() - start
time.sleep(1)
rss_tb = peak_rss_mib(tb.pid)
tb.kill()
tb.wait()

print(f"one run of {steps:,} steps x 3 metrics, first full series / all three served, peak RSS:")
print(f"  trainlog serve  {t_trainlog:6.2f} s / {t_trainlog_all:6.2f} s  {rss_trainlog:7.1f} MiB  points per series {totals}")
print(f"  tensorboard     {t_tb:6.2f} s / {t_tb_all:6.2f} s  {rss_tb:7.1f} MiB  points per series {tb_totals}")
print(f"  ratio           {t_trainlog / t_tb:6.2f}x time, {rss_trainlog / rss_tb:5.2f}x RSS")


def timed(url, n):
    """Median time until the whole answer is in (read, not parsed), over n requests."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            r.read()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# 2. 1,000 runs of 1,000 steps.
start = time.time()
server = trainlog_server(many, 6203)
runs = until(lambda: get("http://127.0.0.1:6203/api/runs"))
t_cold = time.time() - start
assert len(runs) == 1000 and all(r["steps"] == 1000 for r in runs), len(runs)
time.sleep(1)
warm = timed("http://127.0.0.1:6203/api/runs", 20)
server.kill()
server.wait()
print(f"1,000 runs x 1,000 steps: /api/runs {t_cold:.3f} s from start, {warm * 1000:.1f} ms warm (median of 20)")

# 3. Ten runs of STEPS steps: one chart (loss of each run at points=2000), warm.
server = trainlog_server(ten, 6204)
for i in range(10):
    until(lambda i=i: get(f"http://127.0.0.1:6204/api/scalars?run=run-{i}&metric=loss&points=2000"))


def chart():
    t = time.perf_counter()
    for i in range(10):
        s = get(f"http://127.0.0.1:6204/api/scalars?run=run-{i}&metric=loss&points=2000")
        assert s["total"] == steps and len(s["step"]) == 2000
    return time.perf_counter() - t


chart()
t_chart = statistics.median(chart() for _ in range(5))
rss_ten = peak_rss_mib(server.pid)
server.kill()
server.wait()
print(f"10 runs x {steps:,} steps, loss of each at points=2000: {t_chart * 1000:.0f} ms warm (median of 5), peak RSS {rss_ten:.0f} MiB")
