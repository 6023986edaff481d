"""Threads, fork and histograms."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import read_jsonl, run_script


def run(tmp_path, body):
    return run_script(tmp_path, body)


def lines(tmp_path):
    return read_jsonl(tmp_path / "metrics_rank0.jsonl")


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


def test_a_forked_child_can_start_a_logger_of_its_own(tmp_path):
    run(tmp_path, f"""
        import os, trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        run.log({{"loss": 1.0}}, step=0)
        pid = os.fork()
        if pid == 0:
            with trainlog.init(output_dir={str(tmp_path / "child")!r}) as child:
                child.log({{"loss": 2.0}}, step=0)
            os._exit(0 if child.stats["written"] == 1 else 1)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        run.log({{"loss": 3.0}}, step=1)
        run.finish()
    """)
    assert [l["loss"] for l in lines(tmp_path)] == [1.0, 3.0]
    assert [l["loss"] for l in read_jsonl(tmp_path / "child" / "metrics_rank0.jsonl")] == [2.0]


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


def test_histograms_from_buffers_and_arrays(tmp_path):
    run(tmp_path, f"""
        import array, trainlog
        class Array2D:  # what numpy arrays and torch tensors offer: tolist()
            def tolist(self): return [[1.0, 2.0], [3.0, float("nan")]]
        values = array.array("d", [0.25 * i for i in range(1000)])
        with trainlog.init(output_dir={str(tmp_path)!r}) as run:
            run.log({{"from_array": trainlog.Histogram(values),
                      "from_memoryview": trainlog.Histogram(memoryview(values)),
                      "from_floats32": trainlog.Histogram(array.array("f", [1.5, 2.5])),
                      "from_tolist": trainlog.Histogram(Array2D()),
                      "from_ints": trainlog.Histogram(range(10))}}, step=0)
        try:
            trainlog.Histogram(["a"])
        except TypeError as e:
            assert "numbers" in str(e), e
        else:
            raise AssertionError("a histogram of strings")
    """)
    (line,) = lines(tmp_path)
    for name in ("from_array", "from_memoryview"):
        assert line[name]["count"] == 1000 and line[name]["max"] == 249.75
    assert line["from_floats32"]["count"] == 2 and line["from_floats32"]["mean"] == 2.0
    assert line["from_tolist"]["count"] == 4 and line["from_tolist"]["nan"] == 1
    assert line["from_ints"]["count"] == 10 and line["from_ints"]["max"] == 9.0


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


def test_forking_while_another_thread_logs_never_hangs_the_child(tmp_path):
    """Forks while the system-metrics thread logs (holding trainlog's locks now and then):
    each child gets a logger of its own or the clear error, and never waits forever for a
    lock whose holder stayed in the parent."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import os, trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        outcomes = []
        for n in range(30):
            run.log({{"loss": 1.0}}, step=n)
            pid = os.fork()
            if pid == 0:
                try:
                    with trainlog.init(output_dir={str(tmp_path)!r} + f"/child{{n}}") as child:
                        child.log({{"loss": 2.0}}, step=0)
                    os._exit(0)
                except RuntimeError as e:
                    os._exit(3 if "forked" in str(e) else 1)
            _, status = os.waitpid(pid, 0)
            outcomes.append(os.waitstatus_to_exitcode(status))
        run.finish()
        assert set(outcomes) <= {{0, 3}}, outcomes
        print(outcomes.count(0), "children logged")
    """))
    env = dict(os.environ, TRAINLOG_SYSTEM_METRICS="1ms")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "children logged" in out.stdout


def test_records_lost_to_a_full_disk_are_an_exception_at_finish_and_a_message_at_exit(tmp_path):
    """A 64 KiB tmpfs (root mounts it; CI runs as root): finish() raises with the count,
    and a script that never calls finish() says it on stderr at exit."""
    if os.geteuid() != 0:
        message = "mounting a tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for finish in (True, False):
        disk = tmp_path / f"disk{int(finish)}"
        disk.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                       check=True)
        try:
            out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
                import trainlog
                run = trainlog.init(output_dir={str(disk)!r} + "/run")
                for step in range(5000):
                    run.log({{"loss": 1.0, "note": "x" * 100}}, step=step)
                if {finish}:
                    try:
                        run.finish()
                    except RuntimeError as e:
                        print("raised:", e)
            """)], capture_output=True, text=True, timeout=120)
        finally:
            subprocess.run(["umount", str(disk)], check=True)
        assert out.returncode == 0, out.stderr
        said = out.stdout if finish else out.stderr
        assert "records were not written" in said and "jsonl" in said, (said, out.stderr)
        assert "No space left on device" in out.stderr, out.stderr
