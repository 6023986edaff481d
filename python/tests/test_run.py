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
