"""The package's files read back by the real readers: TensorBoard's and wandb's."""

import glob

from conftest import run_script


def test_tensorboard_reads_scalars_text_histograms_and_hparams(tmp_path, read_tensorboard):
    run_script(tmp_path, f"""
        import trainlog
        with trainlog.init(output_dir={str(tmp_path)!r}, backends="async,tensorboard",
                           run_name="tb", config={{"lr": 0.01, "model": {{"layers": 4}}}}) as run:
            for step in range(200):
                run.log({{"loss": 1.0 / (step + 1), "eval": {{"acc": step / 200}}}}, step=step)
            run.log({{"loss": float("nan"), "phase": "diverged",
                      "weights": trainlog.Histogram([0.5 * i for i in range(64)])}}, step=200)
    """)
    got = read_tensorboard(tmp_path / "tensorboard")
    (run,) = got["runs"].values()
    loss = run["scalars"]["loss"]
    assert [s for s, _ in loss] == list(range(201))
    assert loss[0][1] == 1.0 and loss[-1][1] == "NaN"
    # The TensorBoard backend writes dotted names as TensorBoard's groups: eval/acc.
    assert len(run["scalars"]["eval/acc"]) == 200
    assert run["text"]["phase"] == [[200, "diverged"]]
    (hist,) = run["histograms"]["weights"]
    assert hist[0] == 200 and hist[1]["num"] == 64 and hist[1]["max"] == 31.5
    assert run["hparams"]["start"] == {"lr": 0.01, "model.layers": 4.0}


def test_instructlab_kwargs_reach_tensorboard_and_wandb(tmp_path, read_tensorboard, read_wandb):
    tb_dir = tmp_path / "tb-elsewhere"
    run_script(tmp_path, f"""
        import logging
        from trainlog import setup_metric_logger
        setup_metric_logger(["async", "tensorboard", "wandb"], output_dir={str(tmp_path)!r},
                            tensorboard_log_dir={str(tb_dir)!r}, wandb_project="ilab",
                            wandb_run_name="sft-run", mlflow_tracking_uri="http://unused")
        log = logging.getLogger("instructlab.training.metrics")
        log.info({{"lr": 2e-5}}, extra={{"hparams": True}})
        for step in range(20):
            log.info({{"train": {{"loss": 2.0 - step / 10}}}}, extra={{"step": step}})
    """)
    (run,) = read_tensorboard(tb_dir)["runs"].values()
    assert [s for s, _ in run["scalars"]["train/loss"]] == list(range(20))
    (run_file,) = glob.glob(str(tmp_path / "wandb" / "*" / "*.wandb"))
    got = read_wandb(run_file)
    assert got["error"] is None, got["error"]
    assert got["run"]["project"] == "ilab" and got["run"]["display_name"] == "sft-run"
    assert got["config"]["lr"] == 2e-5
    steps = [h["step"] for h in got["history"] if "train/loss" in h["items"]]
    assert steps == list(range(20))
