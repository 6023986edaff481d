"""The wandb-like run API, read back from the files it wrote."""

import json
import math
import subprocess
import sys
import textwrap


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def run_script(tmp_path, body):
    """Runs `body` in a fresh interpreter (one logger per process)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out


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
