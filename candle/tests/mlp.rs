//! The candle example trains for real; its files read back with trainlog's reader and
//! with the real TensorBoard reader.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value as Json;

#[path = "../../tests/support/python.rs"]
mod python;

fn example() -> PathBuf {
    // Built by `cargo test` beside this test's binary: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/candle_mlp");
    assert!(
        path.exists(),
        "build the examples first: {}",
        path.display()
    );
    path
}

fn values(lines: &[Json], name: &str) -> Vec<(u64, f64)> {
    lines
        .iter()
        .filter_map(|l| Some((l["step"].as_u64()?, l[name].as_f64()?)))
        .collect()
}

fn mean(points: &[(u64, f64)]) -> f64 {
    points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64
}

#[test]
fn the_mlp_trains_and_its_run_reads_back_with_trainlog_and_tensorboard() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example())
        .args(["--output-dir", dir.path().to_str().unwrap()])
        .args(["--steps", "300", "--eval-every", "50"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "candle_mlp failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    // Hyperparameters first, from the run's params.
    assert_eq!(lines[0]["hparams"], true);
    assert_eq!(lines[0]["optimizer.name"], "adamw");

    // Every step's loss, learning rate and gradient norm; the loss goes down.
    let loss = values(&lines, "loss");
    assert_eq!(loss.len(), 300);
    assert_eq!(values(&lines, "lr").len(), 300);
    assert!(values(&lines, "grad_norm")
        .iter()
        .all(|g| g.1.is_finite() && g.1 > 0.0));
    let (early, late) = (mean(&loss[..30]), mean(&loss[270..]));
    assert!(late < early / 3.0, "loss {early} -> {late}");
    // Evaluation every 50 steps: the accuracy is high at the end.
    let acc = values(&lines, "eval.acc");
    assert_eq!(
        acc.iter().map(|a| a.0).collect::<Vec<_>>(),
        [49, 99, 149, 199, 249, 299]
    );
    let final_acc = acc.last().unwrap().1;
    assert!(final_acc > 0.9, "{acc:?}");
    // A histogram of the first layer's weights (2 × 64) at each evaluation.
    let histograms: Vec<&Json> = lines
        .iter()
        .filter_map(|l| l.get("weights.input"))
        .collect();
    assert_eq!(histograms.len(), 6);
    assert_eq!(histograms[0]["count"], 128);
    // System metrics, every second of the run.
    assert!(lines.iter().any(|l| l["system.cpu.percent"].is_number()));

    // The run: params, final accuracy, completed.
    let info: Json =
        serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(info["status"], "completed");
    assert_eq!(
        info["results"]["eval.acc"]["value"].as_f64(),
        Some(final_acc)
    );

    // TensorBoard's own loader: the same scalars, the histogram, the hyperparameters.
    let tb = python::run_json(
        "tensorboard",
        "read_tensorboard.py",
        &[&dir.path().join("tensorboard")],
    );
    let run = tb["runs"].as_object().unwrap().values().next().unwrap();
    let scalars = &run["scalars"];
    assert_eq!(scalars["loss"].as_array().unwrap().len(), 300);
    let tb_acc = scalars["eval/acc"]
        .as_array()
        .or(scalars["eval.acc"].as_array());
    let tb_acc = tb_acc.unwrap_or_else(|| panic!("no eval accuracy: {scalars}"));
    // The six evaluations at their steps (the run API's result record adds one more).
    let at_299 = tb_acc
        .iter()
        .find(|p| p[0] == 299)
        .unwrap_or_else(|| panic!("{tb_acc:?}"));
    assert!((at_299[1].as_f64().unwrap() - final_acc).abs() < 1e-6);
    let steps: Vec<u64> = tb_acc.iter().filter_map(|p| p[0].as_u64()).collect();
    assert_eq!(steps[..6], [49, 99, 149, 199, 249, 299], "{tb_acc:?}");
    // The result, a record without a step, lands at the last step (TensorBoard's rule).
    assert_eq!(steps[6..], [299], "{tb_acc:?}");
    let histograms = &run["histograms"];
    assert!(
        histograms["weights.input"].is_array() || histograms["weights/input"].is_array(),
        "{histograms}"
    );
    assert_eq!(
        run["hparams"]["start"]["optimizer.name"], "adamw",
        "{}",
        run["hparams"]
    );
}
