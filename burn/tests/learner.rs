//! A real burn Learner (`examples/burn_regression.rs`) logging through trainlog: its files
//! read back with trainlog's reader and with the real TensorBoard reader.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

#[path = "../../tests/support/python.rs"]
mod python;

fn example() -> PathBuf {
    // Built by `cargo test` beside this test's binary: target/<profile>/examples/.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples/burn_regression");
    assert!(
        path.exists(),
        "build the examples first: {}",
        path.display()
    );
    path
}

/// Runs the example into `dir`; its stdout.
fn train(dir: &Path, extra: &[&str]) -> String {
    let out = Command::new(example())
        .args(["--output-dir", dir.to_str().unwrap(), "--epochs", "8"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "burn_regression failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The values of `name` in the JSONL, as (step, epoch, value).
fn series(lines: &[Json], name: &str) -> Vec<(u64, u64, f64)> {
    lines
        .iter()
        .filter_map(|l| {
            Some((
                l["step"].as_u64()?,
                l["epoch"].as_u64().unwrap_or(0),
                l[name].as_f64()?,
            ))
        })
        .collect()
}

#[test]
fn a_learner_trains_and_every_metric_reaches_jsonl_and_tensorboard() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = train(dir.path(), &[]);
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    assert_eq!(lines[0]["hparams"], true, "hyperparameters first");

    // Each split counts its own steps from 0, one per update, epochs as a field.
    let train_loss = series(&lines, "train/loss");
    let valid_loss = series(&lines, "valid/loss");
    assert_eq!(train_loss.len(), 8 * 4096 / 64, "every train iteration");
    assert_eq!(
        valid_loss.len(),
        8 * 1024 / 64,
        "every validation iteration"
    );
    for (i, (step, ..)) in train_loss.iter().enumerate() {
        assert_eq!(*step, i as u64);
    }
    assert_eq!(train_loss.first().unwrap().1, 1);
    assert_eq!(train_loss.last().unwrap().1, 8);
    assert_eq!(
        series(&lines, "train/learning_rate").len(),
        train_loss.len()
    );

    // It trains: the epoch summaries (what burn itself computes) go down.
    let epochs = series(&lines, "valid/epoch/loss");
    assert_eq!(
        epochs.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let (first, last) = (epochs[0].2, epochs.last().unwrap().2);
    assert!(last < first / 4.0, "valid loss by epoch {first} -> {last}");
    let start: f64 = train_loss[..10].iter().map(|t| t.2).sum::<f64>() / 10.0;
    assert!(
        last < start / 100.0,
        "train loss at first {start}, valid at last {last}"
    );
    // An epoch's summary is the mean of its iterations (burn's aggregate).
    let epoch2: Vec<f64> = valid_loss
        .iter()
        .filter(|v| v.1 == 2)
        .map(|v| v.2)
        .collect();
    let mean = epoch2.iter().sum::<f64>() / epoch2.len() as f64;
    assert!(
        (epochs[1].2 - mean).abs() <= 1e-9 * mean,
        "{} vs {mean}",
        epochs[1].2
    );

    // The same through TensorBoard's own loader.
    let tb = python::run_json(
        "tensorboard",
        "read_tensorboard.py",
        &[&dir.path().join("tensorboard")],
    );
    let runs = tb["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 1, "{tb}");
    let scalars = &runs.values().next().unwrap()["scalars"];
    for tag in [
        "train/loss",
        "valid/loss",
        "train/learning_rate",
        "valid/epoch/loss",
    ] {
        assert!(
            scalars[tag].is_array(),
            "{tag} missing: {:?}",
            scalars.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
    }
    let tb_epochs = scalars["valid/epoch/loss"].as_array().unwrap();
    assert_eq!(tb_epochs.len(), 8);
    let tb_last = tb_epochs.last().unwrap()[1].as_f64().unwrap();
    assert!(
        (tb_last - last).abs() <= 1e-6 * last.abs(),
        "{tb_last} vs {last}"
    );
    assert_eq!(
        scalars["train/loss"].as_array().unwrap().len(),
        train_loss.len()
    );

    // The console (stdout): each epoch summary once.
    assert_eq!(stdout.matches("valid/epoch/loss=").count(), 8, "{stdout}");
}

#[test]
fn with_burns_own_application_logger_on_nothing_is_muted_or_printed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = train(dir.path(), &["--burn-app-logger"]);
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    assert_eq!(series(&lines, "valid/epoch/loss").len(), 8);
    assert_eq!(series(&lines, "train/loss").len(), 8 * 4096 / 64);
    assert_eq!(stdout.matches("valid/epoch/loss=").count(), 8, "{stdout}");
}

#[test]
fn early_stopping_reads_the_validation_loss_back_from_the_logger() {
    // burn's early stopping asks the metric logger for each epoch's validation loss; with
    // 40 epochs to go and "no improvement for 3 epochs", it stops once the loss flattens.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example())
        .args([
            "--output-dir",
            dir.path().to_str().unwrap(),
            "--epochs",
            "40",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    let epochs = series(&lines, "valid/epoch/loss").len();
    assert!(
        epochs < 40 && stderr.contains("Stopping training loop, no improvement since epoch"),
        "ran {epochs} epochs:\n{stderr}"
    );
}
