"""An InstructLab-style training script, unchanged but for the import."""

import json
import os
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
    assert lines[1]["samples/seen"] == 0, "nested names joined with / as InstructLab joins them"
    assert lines[-1]["loss"] == "NaN"
    assert all(l["timestamp"].endswith("Z") for l in lines), "UTC"


def test_a_step_inside_the_dict_is_the_records_step(tmp_path):
    """InstructLab's own example logs {"train/loss": x, "step": n} without extra; its JSONL
    shows that as the step, and so does trainlog's (not as a metric called step)."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import logging
        from trainlog import setup_metric_logger
        setup_metric_logger(loggers=["async"], run_name=None, output_dir={str(tmp_path)!r})
        logger = logging.getLogger("instructlab.training.metrics")
        for step in range(5):
            logger.info({{"train/loss": 1.0, "epoch": 0, "step": step}})
        logger.info({{"val/loss": 0.5}}, extra={{"step": 9}})
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "metrics_rank0.jsonl") as f:
        lines = [json.loads(line) for line in f]
    assert [l["step"] for l in lines] == [0, 1, 2, 3, 4, 9]
    assert not any(k.startswith("field.") for l in lines for k in l), lines[0]


def test_rank0_only_keeps_rank_0_and_nothing_else(tmp_path):
    for rank in (0, 1):
        out_dir = tmp_path / f"rank{rank}"
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(f"""
            import logging, trainlog
            log = logging.getLogger("mine")
            log.setLevel(logging.INFO)
            log.addHandler(trainlog.MetricHandler(output_dir={str(out_dir)!r}, rank0_only=True))
            log.info({{"loss": 1.0}}, extra={{"step": 0}})
        """))
        env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "SLURM_PROCID")}
        env["RANK"] = str(rank)
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env=env)
        assert out.returncode == 0, out.stderr
        written = out_dir / f"metrics_rank{rank}.jsonl"
        lines = written.read_text().splitlines() if written.exists() else []
        assert len(lines) == (1 if rank == 0 else 0), (rank, lines)
