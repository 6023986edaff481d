"""An InstructLab-style training script, unchanged but for the import."""

import json
import subprocess
import sys
import textwrap


def test_an_instructlab_style_script_logs_steps_hparams_and_nan(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import logging
        from trainlog import setup_metric_logger

        setup_metric_logger("async", None, {str(tmp_path)!r})
        metric_logger = logging.getLogger("instructlab.training.metrics")
        metric_logger.info({{"lr": 1e-5, "num_epochs": 3}}, extra={{"hparams": True}})
        for step in range(0, 50):
            metric_logger.info({{"loss": 1.0 / (step + 1), "samples": {{"seen": step * 8}}}},
                               extra={{"step": step}})
        metric_logger.info({{"loss": float("nan")}}, extra={{"step": 50}})
        metric_logger.info("a plain message: not a metric")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "metrics_rank0.jsonl") as f:
        lines = [json.loads(line) for line in f]
    assert lines[0]["hparams"] is True and lines[0]["num_epochs"] == 3
    assert [l["step"] for l in lines[1:]] == list(range(51)), "step 0 kept, every record"
    assert lines[1]["samples.seen"] == 0
    assert lines[-1]["loss"] == "NaN"
    assert all(l["timestamp"].endswith("Z") for l in lines), "UTC"
