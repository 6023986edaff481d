"""Threads, fork and histograms."""

import json
import subprocess
import sys
import textwrap


def run(tmp_path, body):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out


def lines(tmp_path):
    with open(tmp_path / "metrics_rank0.jsonl") as f:
        return [json.loads(line) for line in f]


def test_many_threads_logging_at_once_lose_nothing(tmp_path):
    run(tmp_path, f"""
        import threading, trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        def work(t):
            for i in range(5000):
                run.log({{"thread": t, "i": i}}, step=i)
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        stats = run.finish()
        assert stats["written"] == stats["queued"] == 40000 and stats["lost"] == 0, stats
    """)
    got = lines(tmp_path)
    assert len(got) == 40000
    assert sorted((l["thread"], l["i"]) for l in got) == [(t, i) for t in range(8) for i in range(5000)]


def test_a_forked_child_gets_a_clear_error_and_the_parent_keeps_logging(tmp_path):
    out = run(tmp_path, f"""
        import os, trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        run.log({{"loss": 1.0}}, step=0)
        pid = os.fork()
        if pid == 0:
            try:
                run.log({{"loss": 2.0}}, step=1)
                print("child logged")
            except RuntimeError as e:
                print("child error:", e)
            os._exit(0)
        os.waitpid(pid, 0)
        run.log({{"loss": 3.0}}, step=2)
        run.finish()
    """)
    assert "child error: trainlog: this process was forked" in out.stdout, out.stdout
    assert [l["loss"] for l in lines(tmp_path)] == [1.0, 3.0]


def test_a_forked_child_that_exits_normally_does_not_hang(tmp_path):
    run(tmp_path, f"""
        import os, sys, trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        run.log({{"loss": 1.0}}, step=0)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # runs atexit handlers in the child
        _, status = os.waitpid(pid, 0)
        assert status == 0
        run.finish()
    """)


def test_histograms_and_numpy_like_scalars(tmp_path):
    run(tmp_path, f"""
        import trainlog
        class Scalar:  # what numpy and torch scalars offer
            def __init__(self, x): self.x = x
            def item(self): return self.x
        run = trainlog.init(output_dir={str(tmp_path)!r})
        run.log({{"weights": trainlog.Histogram([0.1 * i for i in range(100)]),
                  "loss": Scalar(0.5), "inf": float("inf"), "ok": True, "phase": "train"}}, step=0)
        run.finish()
    """)
    (line,) = lines(tmp_path)
    assert line["weights"]["count"] == 100
    assert line["loss"] == 0.5 and line["inf"] == "Infinity"
    assert line["ok"] is True and line["phase"] == "train"
