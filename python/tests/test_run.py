"""The wandb-like run API, read back from the files it wrote."""

import json
import os
import subprocess
import sys
import textwrap

from conftest import read_jsonl, run_script


def read(path):
    return read_jsonl(path)


def test_init_log_finish_writes_every_record(tmp_path):
    run_script(tmp_path, f"""
        import trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r}, config={{"lr": 0.1, "model": {{"layers": 2}}}})
        for step in range(100):
            run.log({{"loss": 1.0 / (step + 1), "eval": {{"acc": step / 100}}}}, step=step)
        run.log({{"loss": float("nan")}}, step=100)
        stats = run.finish()
        assert stats["written"] == stats["queued"] == 102, stats
    """)
    lines = read(tmp_path / "metrics_rank0.jsonl")
    assert lines[0]["hparams"] is True and lines[0]["model.layers"] == 2
    steps = [l["step"] for l in lines[1:]]
    assert steps == list(range(101))
    assert lines[1]["loss"] == 1.0 and lines[1]["eval.acc"] == 0.0
    assert lines[-1]["loss"] == "NaN"


def test_exit_without_finish_loses_nothing(tmp_path):
    run_script(tmp_path, f"""
        import trainlog
        run = trainlog.init(output_dir={str(tmp_path)!r})
        for step in range(10000):
            run.log({{"loss": step}}, step=step)
    """)
    assert len(read(tmp_path / "metrics_rank0.jsonl")) == 10000


def test_steps_that_go_back_or_repeat_are_kept(tmp_path):
    run_script(tmp_path, f"""
        import trainlog
        with trainlog.init(output_dir={str(tmp_path)!r}) as run:
            for step in (5, 3, 3, 0):
                run.log({{"loss": float(step)}}, step=step)
    """)
    assert [l["step"] for l in read(tmp_path / "metrics_rank0.jsonl")] == [5, 3, 3, 0]


def test_an_exception_inside_the_with_block_propagates_and_the_records_are_written(tmp_path):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import trainlog
        with trainlog.init(output_dir={str(tmp_path)!r}) as run:
            run.log({{"loss": 1.0}}, step=0)
            raise ValueError("diverged")
    """)], capture_output=True, text=True)
    assert out.returncode != 0 and "ValueError: diverged" in out.stderr
    assert read(tmp_path / "metrics_rank0.jsonl")[0]["loss"] == 1.0


def test_a_new_run_after_finish_writes_its_own_files(tmp_path):
    """As in a notebook: one training after another in the same process."""
    run_script(tmp_path, f"""
        import trainlog
        for n in range(3):
            with trainlog.init(output_dir={str(tmp_path)!r} + f"/run{{n}}") as run:
                for step in range(100):
                    run.log({{"loss": float(n), "eval": {{"acc": step / 100}}}}, step=step)
            assert run.stats["written"] == 100, run.stats
    """)
    for n in range(3):
        lines = read(tmp_path / f"run{n}" / "metrics_rank0.jsonl")
        assert [l["step"] for l in lines] == list(range(100))
        assert {l["loss"] for l in lines} == {float(n)}


def test_mistakes_are_exceptions_with_the_reason(tmp_path):
    run_script(tmp_path, f"""
        import collections, trainlog
        finished = trainlog.init(output_dir={str(tmp_path)!r} + "/finished")
        finished.finish()
        try:
            finished.log({{"loss": 1.0}})
        except RuntimeError as e:
            assert "not logging" in str(e), e
        else:
            raise AssertionError("logging after finish")
        for bad, kind, text in [
            (dict(backends="async,nonsense"), RuntimeError, "nonsense"),
            (dict(wandb={{"projekt": "x"}}), ValueError, "projekt"),
        ]:
            try:
                trainlog.init(output_dir={str(tmp_path)!r}, **bad)
            except kind as e:
                assert text in str(e), e
            else:
                raise AssertionError(bad)
        run = trainlog.init(output_dir={str(tmp_path)!r})
        for data, kind, text in [
            ({{1: 2.0}}, TypeError, "metric names are strings"),
            ({{"x": object()}}, ValueError, "cannot log"),
            ({{"x": [1, 2]}}, ValueError, "cannot log"),
            (3.0, TypeError, "dict of metrics"),
        ]:
            try:
                run.log(data, step=0)
            except kind as e:
                assert text in str(e), e
            else:
                raise AssertionError(data)
        # Any mapping is a dict of metrics.
        run.log(collections.OrderedDict(loss=0.5), step=1)
        assert run.finish()["written"] == 1
    """)
    assert [l["loss"] for l in read(tmp_path / "metrics_rank0.jsonl")] == [0.5]


def test_names_that_change_every_step_are_all_written(tmp_path):
    """More names than are interned (names and the library's run-time callsites): past
    the bounds, names are made per call, and still right."""
    run_script(tmp_path, f"""
        import trainlog
        from trainlog import _trainlog
        n = _trainlog.NAMES_KEPT + 1000
        with trainlog.init(output_dir={str(tmp_path)!r}) as run:
            for step in range(n):
                run.log({{f"layer{{step}}": {{"norm": float(step)}}, "loss": 1.0}}, step=step)
    """)
    lines = read(tmp_path / "metrics_rank0.jsonl")
    assert len(lines) == 4096 + 1000
    for step, line in enumerate(lines):
        assert line[f"layer{step}.norm"] == float(step) and line["loss"] == 1.0


def test_separators_do_not_mix_names(tmp_path):
    """The same nested dict through a handler joining with "." and InstructLab's "/"."""
    run_script(tmp_path, f"""
        import logging, trainlog
        dotted = logging.getLogger("dotted")
        dotted.setLevel(logging.INFO)
        dotted.addHandler(trainlog.MetricHandler(output_dir={str(tmp_path)!r}))
        slashed = trainlog.setup_metric_logger("async", None, {str(tmp_path)!r})
        for step in range(3):
            dotted.info({{"eval": {{"acc": 1.0}}}}, extra={{"step": step}})
            slashed.info({{"eval": {{"acc": 2.0}}}}, extra={{"step": step}})
    """)
    lines = read(tmp_path / "metrics_rank0.jsonl")
    assert [l.get("eval.acc") for l in lines] == [1.0, None] * 3
    assert [l.get("eval/acc") for l in lines] == [None, 2.0] * 3


def test_the_run_directory_says_how_the_run_ended(tmp_path):
    """run.json as the Rust run API writes it: completed; failed with the exception, from
    a with block or from an exception that ends the script; parameters.jsonl has config."""
    run_script(tmp_path, f"""
        import trainlog
        with trainlog.init(output_dir={str(tmp_path / "ok")!r}, config={{"lr": 0.1}}) as run:
            run.log({{"loss": 1.0}}, step=0)
        try:
            with trainlog.init(output_dir={str(tmp_path / "raised")!r}) as run:
                raise ValueError("diverged")
        except ValueError:
            pass
    """)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import trainlog
        run = trainlog.init(output_dir={str(tmp_path / "uncaught")!r})
        run.log({{"loss": 1.0}}, step=0)
        raise KeyError("batch")
    """)], capture_output=True, text=True)
    assert out.returncode != 0 and "KeyError" in out.stderr
    info = {name: json.loads((tmp_path / name / "run.json").read_text())
            for name in ("ok", "raised", "uncaught")}
    assert info["ok"]["status"] == "completed" and info["ok"]["start_time"]
    assert info["raised"]["status"] == "failed"
    assert info["raised"]["error"] == "ValueError: diverged"
    assert info["uncaught"]["status"] == "failed"
    assert info["uncaught"]["error"] == "KeyError: 'batch'"
    assert read(tmp_path / "uncaught" / "metrics_rank0.jsonl")[0]["loss"] == 1.0
    params = read(tmp_path / "ok" / "parameters.jsonl")
    assert params[-1]["op"] == "set" and params[-1]["value"] == {"lr": 0.1}, params


def test_environment_variables_work_as_in_rust_system_metrics_from_their_thread(tmp_path):
    """TRAINLOG_SYSTEM_METRICS starts the sampler, whose records come from a thread of its
    own (through the global subscriber, to the current pipeline)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import time, trainlog
        with trainlog.init(output_dir={str(tmp_path)!r}) as run:
            for step in range(6):
                run.log({{"loss": 1.0}}, step=step)
                time.sleep(0.1)
    """))
    env = dict(os.environ, TRAINLOG_SYSTEM_METRICS="100ms")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = read(tmp_path / "metrics_rank0.jsonl")
    assert len([l for l in lines if "loss" in l]) == 6
    assert any(l.get("system.memory.rss_bytes", 0) > 0 for l in lines), lines
