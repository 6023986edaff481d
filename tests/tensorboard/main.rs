//! TensorBoard event files, read back by the real `tensorboard` package (pinned in
//! `tests/python/requirements-tensorboard.txt`, installed under `target/tmp/`).

#[path = "../support/python.rs"]
mod python;
#[path = "../support/run_api.rs"]
mod run_api;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::TensorBoardOptions;
use trainlog::{MetricGuard, MetricLogger, MetricLoggerBuilder};

/// Everything TensorBoard's own loader sees under `logdir`.
fn read(logdir: &Path) -> Json {
    python::run_json("tensorboard", "read_tensorboard.py", &[logdir])
}

/// The only run under `logdir`.
fn only_run(logdir: &Path) -> Json {
    let out = read(logdir);
    assert_eq!(out["warnings"], serde_json::json!([]), "reader warnings");
    let runs = out["runs"].as_object().unwrap();
    assert_eq!(runs.len(), 1, "runs: {:?}", runs.keys().collect::<Vec<_>>());
    runs.values().next().unwrap().clone()
}

fn logger(dir: &Path) -> MetricLoggerBuilder {
    MetricLogger::builder()
        .output_dir(dir)
        .backends("tensorboard")
        .unwrap()
        .rank(0)
}

fn with_logger(builder: MetricLoggerBuilder, f: impl FnOnce()) -> MetricGuard {
    let (layer, guard) = builder.build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    guard
}

fn points(run: &Json, kind: &str, tag: &str) -> Vec<(u64, Json)> {
    run[kind][tag]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "no {kind} tag {tag} in {:?}",
                run[kind].as_object().map(|o| o.keys().collect::<Vec<_>>())
            )
        })
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].clone()))
        .collect()
}

#[test]
fn three_tags_times_ten_thousand_steps_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(logger(dir.path()), || {
        for step in 0..10_000u64 {
            // Values exact in 32-bit floats, so equality is the right check.
            info!(
                target: "metrics",
                step,
                loss = step as f64 * 0.5,
                "train.acc" = step as f64 / 16384.0,
                "eval.f1" = (step % 7) as f64 - 3.0
            );
        }
    });
    drop(guard);
    let run = only_run(&dir.path().join("tensorboard"));
    let tags: Vec<&String> = run["scalars"].as_object().unwrap().keys().collect();
    assert_eq!(tags.len(), 3, "{tags:?}");
    let loss = points(&run, "scalars", "loss");
    let acc = points(&run, "scalars", "train/acc");
    let f1 = points(&run, "scalars", "eval/f1");
    for series in [&loss, &acc, &f1] {
        assert_eq!(series.len(), 10_000);
        assert!(series
            .iter()
            .enumerate()
            .all(|(i, (step, _))| *step == i as u64));
    }
    for step in 0..10_000usize {
        assert_eq!(loss[step].1.as_f64(), Some(step as f64 * 0.5));
        assert_eq!(acc[step].1.as_f64(), Some(step as f64 / 16384.0));
        assert_eq!(f1[step].1.as_f64(), Some((step % 7) as f64 - 3.0));
    }
}

#[test]
fn text_booleans_messages_and_stepless_counters() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(logger(dir.path()), || {
        info!(target: "metrics", step = 5, sample = "the **cat** sat", nan = f64::NAN, done = true, "epoch {}", 2);
        info!(target: "metrics", lr = 0.25);
        info!(target: "metrics", lr = 0.125);
        trainlog::log_dict(Some(6), &serde_json::json!({"tokens": [1, 2, 3]}));
    });
    drop(guard);
    let run = only_run(&dir.path().join("tensorboard"));
    assert_eq!(
        points(&run, "text", "sample"),
        vec![(5, Json::from("the **cat** sat"))]
    );
    assert_eq!(
        points(&run, "text", "message"),
        vec![(5, Json::from("epoch 2"))]
    );
    assert_eq!(
        points(&run, "text", "tokens"),
        vec![(6, Json::from("[1,2,3]"))]
    );
    assert_eq!(points(&run, "scalars", "done"), vec![(5, Json::from(1.0))]);
    assert_eq!(points(&run, "scalars", "nan"), vec![(5, Json::from("NaN"))]);
    // Without a step, each tag counts its own values from 0.
    assert_eq!(
        points(&run, "scalars", "lr"),
        vec![(0, Json::from(0.25)), (1, Json::from(0.125))]
    );
}

#[test]
fn hparams_are_what_the_hparams_plugin_parses() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        logger(dir.path())
            .run_name("exp_{rank}")
            .tensorboard(TensorBoardOptions::new().experiment(true)),
        || {
            info!(target: "metrics", hparams = true, lr = 3e-4, batch_size = 32u64, optimizer = "adamw", amp = true);
            info!(target: "metrics", step = 0, loss = 2.5, "eval.acc" = 0.5);
            info!(target: "metrics", step = 1, loss = 2.0, "eval.acc" = 0.75);
        },
    );
    drop(guard);
    let out = read(&dir.path().join("tensorboard"));
    let run = &out["runs"]["exp_0"];
    let hp = &run["hparams"];
    assert_eq!(hp["start"]["lr"], 3e-4);
    assert_eq!(hp["start"]["batch_size"], 32.0);
    assert_eq!(hp["start"]["optimizer"], "adamw");
    assert_eq!(hp["start"]["amp"], true);
    assert_eq!(hp["start"].as_object().unwrap().len(), 4);
    assert_eq!(hp["end"]["status"], "STATUS_SUCCESS");
    assert_eq!(
        hp["experiment"]["hparams"],
        serde_json::json!([
            ["amp", "DATA_TYPE_BOOL"],
            ["batch_size", "DATA_TYPE_FLOAT64"],
            ["lr", "DATA_TYPE_FLOAT64"],
            ["optimizer", "DATA_TYPE_STRING"]
        ])
    );
    assert_eq!(
        hp["experiment"]["metrics"],
        serde_json::json!(["eval/acc", "loss"])
    );
    // The hyperparameter record itself is not a scalar series.
    assert!(run["scalars"].get("lr").is_none());
    assert_eq!(points(run, "scalars", "loss").len(), 2);
}

#[test]
fn a_run_that_panics_ends_its_hparams_session_as_failed_without_an_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let (layer, guard) = logger(dir.path()).build().unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = guard;
        tracing::dispatcher::with_default(&dispatch, || {
            info!(target: "metrics", hparams = true, seed = 7u64);
            info!(target: "metrics", step = 0, loss = f64::INFINITY);
            panic!("loss diverged");
        })
    }));
    assert!(result.is_err());
    let run = only_run(&dir.path().join("tensorboard"));
    assert_eq!(run["hparams"]["start"]["seed"], 7.0);
    assert_eq!(run["hparams"]["end"]["status"], "STATUS_FAILURE");
    assert_eq!(run["hparams"]["experiment"], Json::Null);
    assert_eq!(
        points(&run, "scalars", "loss"),
        vec![(0, Json::from("Infinity"))]
    );
}

#[test]
fn two_writers_in_the_same_second_and_directory_keep_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let builder = || logger(dir.path()).run_name("shared");
    let (layer_a, guard_a) = builder().build().unwrap();
    let (layer_b, guard_b) = builder().build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer_a), || {
        for step in 0..100u64 {
            info!(target: "metrics", step, a = step as f64);
        }
    });
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer_b), || {
        for step in 0..100u64 {
            info!(target: "metrics", step, b = step as f64);
        }
    });
    drop((guard_a, guard_b));
    let files: Vec<_> = std::fs::read_dir(dir.path().join("tensorboard/shared"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let run = only_run(&dir.path().join("tensorboard"));
    assert_eq!(points(&run, "scalars", "a").len(), 100);
    assert_eq!(points(&run, "scalars", "b").len(), 100);
}

#[test]
fn rank0_only_by_default_and_every_rank_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        MetricLogger::builder()
            .output_dir(dir.path())
            .backends("async,tensorboard")
            .unwrap()
            .rank(1)
    };
    let guard = with_logger(base(), || info!(target: "metrics", step = 0, x = 1.0));
    assert_eq!(guard.sinks(), vec!["jsonl"]);
    drop(guard);
    assert!(!dir.path().join("tensorboard").exists());
    let guard = with_logger(
        base().tensorboard(TensorBoardOptions::new().all_ranks(true)),
        || info!(target: "metrics", step = 0, x = 1.0),
    );
    assert_eq!(guard.sinks(), vec!["jsonl", "tensorboard"]);
    drop(guard);
    let out = read(&dir.path().join("tensorboard"));
    let runs: Vec<&String> = out["runs"].as_object().unwrap().keys().collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].ends_with("_rank1"), "{runs:?}");
}

#[test]
fn bad_directories_and_run_names_fail_at_build_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = MetricLogger::builder()
        .tensorboard(TensorBoardOptions::new().dir(file.join("tb")))
        .rank(0)
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("create TensorBoard run directory"), "{err}");
    assert!(
        err.contains(&file.join("tb").display().to_string()),
        "{err}"
    );
    let err = logger(dir.path())
        .run_name("run_{step}")
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown placeholder `{step}`"), "{err}");
}

/// The child of `sigkill_mid_run_leaves_a_file_readable_up_to_the_last_flush`.
#[test]
#[ignore = "run in a child process"]
fn child_logs_until_killed() {
    let Some(dir) = std::env::var_os("TRAINLOG_TB_CHILD_DIR") else {
        return;
    };
    let (layer, guard) = logger(Path::new(&dir)).run_name("killed").build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in 0.. {
            info!(target: "metrics", step, loss = step as f64);
            if step % 100 == 99 {
                guard.flush().unwrap();
                println!("flushed {step}");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
}

#[test]
fn sigkill_mid_run_leaves_a_file_readable_up_to_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_logs_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("TRAINLOG_TB_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut last_flushed = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("flushed ") {
            let n: u64 = n.parse().unwrap();
            last_flushed = Some(n);
            if n >= 499 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no final flush
    child.wait().unwrap();
    let last_flushed = last_flushed.expect("the child reported flushes");
    let out = read(&dir.path().join("tensorboard"));
    let warnings: Vec<&str> = out["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        warnings.iter().all(|w| !w.to_lowercase().contains("crc")),
        "checksum errors: {warnings:?}"
    );
    let loss = points(&out["runs"]["killed"], "scalars", "loss");
    assert!(
        loss.len() as u64 > last_flushed,
        "{} points, flushed {last_flushed}",
        loss.len()
    );
    for (i, (step, value)) in loss.iter().enumerate() {
        assert_eq!(*step, i as u64, "a gap before step {step}");
        assert_eq!(value.as_f64(), Some(i as f64));
    }
}

#[test]
fn run_tags_are_a_text_table_and_results_hparams_metrics_at_the_last_step() {
    let root = tempfile::tempdir().unwrap();
    let (run_api, builder) = run_api::tagged_run(root.path(), "tensorboard");
    let builder = builder.run_name("results");
    let guard = with_logger(builder, || {
        trainlog::log_hparams(&serde_json::json!({"lr": 0.1}));
        for step in 0..20u64 {
            info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64);
        }
        run_api.tags().set("stage", "sft").unwrap();
        run_api.tags().set("note", "a|b").unwrap();
        run_api
            .result(
                "final_accuracy",
                0.945,
                &serde_json::json!({"dataset": "test"}),
            )
            .unwrap();
    });
    drop(guard);
    let logdir = run_api.dir().join("tensorboard");
    let out = read(&logdir);
    let run = &out["runs"]["results"];
    let f32_of = |x: f64| Json::from(x as f32 as f64);
    assert_eq!(
        points(run, "scalars", "final_accuracy"),
        [(19, f32_of(0.945))]
    );
    // The HParams dashboard (its own backend) shows the result as a metric column.
    let group = &out["session_groups"]["results"];
    assert_eq!(group["hparams"]["lr"], 0.1);
    assert_eq!(
        group["metrics"]["final_accuracy"],
        serde_json::json!([19, f32_of(0.945)])
    );
    assert_eq!(
        group["metrics"]["loss"],
        serde_json::json!([19, f32_of(0.05)])
    );
    let tags = points(run, "text", "tags");
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[1].0, 19);
    assert_eq!(
        tags[1].1,
        "| tag | value |\n|---|---|\n| note | a\\|b |\n| stage | sft |\n"
    );
    let metadata = points(run, "text", "final_accuracy/metadata");
    assert_eq!(metadata.len(), 1);
    assert!(metadata[0]
        .1
        .as_str()
        .unwrap()
        .contains("| dataset | test |"));
}

#[test]
fn histograms_reach_the_histograms_and_distributions_dashboards() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(logger(dir.path()).run_name("hist"), || {
        for step in [0u64, 10, 20] {
            // 1,000 values spread over [step, step + 1), as f64; a second tag as f32.
            let mut values: Vec<f64> = (0..1000).map(|i| step as f64 + i as f64 / 1000.0).collect();
            if step == 20 {
                values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
            }
            trainlog::log_histogram(step, "layer0.weights", &values);
            let grads: Vec<f32> = (0..64).map(|i| -(i as f32)).collect();
            trainlog::log_histogram(step, "layer0.grads", &grads);
        }
    });
    drop(guard);
    let out = read(dir.path());
    assert_eq!(out["warnings"], serde_json::json!([]), "reader warnings");
    let run = &out["runs"]["tensorboard/hist"];
    assert!(run.is_object(), "runs: {}", out["runs"]);
    let weights = points(run, "histograms", "layer0/weights");
    assert_eq!(weights.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 10, 20]);
    for (step, h) in &weights {
        let lo = *step as f64;
        assert_eq!(h["num"], 1000.0, "only finite values are binned");
        assert_eq!(h["min"].as_f64().unwrap(), lo);
        assert!((h["max"].as_f64().unwrap() - (lo + 0.999)).abs() < 1e-9);
        let buckets: Vec<f64> = serde_json::from_value(h["bucket"].clone()).unwrap();
        assert_eq!(buckets.len(), trainlog::HISTOGRAM_BINS);
        assert_eq!(buckets.iter().sum::<f64>(), 1000.0);
        let expected_sum: f64 = (0..1000).map(|i| lo + i as f64 / 1000.0).sum();
        assert!((h["sum"].as_f64().unwrap() - expected_sum).abs() < 1e-6);
    }
    // The NaN and infinities are counted beside the histogram at their step.
    let nonfinite = points(run, "scalars", "layer0/weights/nonfinite");
    assert_eq!(nonfinite, vec![(20, serde_json::json!(3.0))]);
    let grads = points(run, "histograms", "layer0/grads");
    assert_eq!(grads.len(), 3);
    assert_eq!(
        (grads[0].1["min"].as_f64(), grads[0].1["max"].as_f64()),
        (Some(-63.0), Some(0.0))
    );

    // What the dashboards' own backends answer: buckets [left, right, count] from min to
    // max that hold every value, and the Distributions plugin's percentile bands.
    let dashboard = &out["histogram_dashboard"]["tensorboard/hist"]["layer0/weights"];
    let hist = dashboard["histograms"].as_array().unwrap();
    assert_eq!(hist.len(), 3);
    for (event, step) in hist.iter().zip([0.0, 10.0, 20.0]) {
        assert_eq!(event[0], step as u64);
        let buckets = event[1].as_array().unwrap();
        let total: f64 = buckets.iter().map(|b| b[2].as_f64().unwrap()).sum();
        assert_eq!(total, 1000.0);
        assert_eq!(buckets[0][0].as_f64().unwrap(), step);
        let last = buckets.last().unwrap();
        // The dashboard's tensors are 32-bit floats.
        assert!((last[1].as_f64().unwrap() - (step + 0.999)).abs() < 1e-5);
    }
    let dist = dashboard["distributions"].as_array().unwrap();
    assert_eq!(dist.len(), 3);
    let bands = dist[1][1].as_array().unwrap();
    assert_eq!(bands.len(), 9, "TensorBoard's nine basis-point bands");
    let median = bands[4][1].as_f64().unwrap();
    assert!((median - 10.5).abs() < 0.05, "median of 10..11: {median}");
}

#[test]
fn names_that_map_to_one_tag_get_distinct_tags_and_a_bad_step_makes_no_step_tag() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(logger(dir.path()), || {
        info!(target: "metrics", step = 5u64, "a.b" = 1.0, "a/b" = 2.0, loss = 0.5);
        // Not steps: each record is kept, on the tag's own counter, without a `step` tag.
        info!(target: "metrics", step = -1i64, loss = 0.25);
        info!(target: "metrics", step = 4.5, loss = 0.125);
        info!(target: "metrics", step = "ten", loss = 0.0625);
    });
    drop(guard);
    let run = only_run(&dir.path().join("tensorboard"));
    let tags: Vec<&String> = run["scalars"].as_object().unwrap().keys().collect();
    assert!(!tags.iter().any(|t| *t == "step"), "{tags:?}");
    assert_eq!(points(&run, "scalars", "a/b"), vec![(5, Json::from(1.0))]);
    assert_eq!(
        points(&run, "scalars", "field/a/b"),
        vec![(5, Json::from(2.0))]
    );
    let loss = points(&run, "scalars", "loss");
    let values: Vec<f64> = loss.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
    assert_eq!(values, [0.5, 0.25, 0.125, 0.0625], "{loss:?}");
}
