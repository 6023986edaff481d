//! The experiment run API: status in run.json, params, metrics through the pipeline,
//! lifecycle events, logs, artifacts, crash tolerance.

use serde_json::json;
use tracing_subscriber::prelude::*;
use trainlog::run::{read_jsonl, Agg, Run, Status};
use trainlog::sink::MemorySink;
use trainlog::{MetricLogger, Value};

fn new_run(root: &std::path::Path, prefix: &str) -> Run {
    Run::builder()
        .root(root)
        .namespace("alice")
        .workspace("mnist")
        .prefix(prefix)
        .create()
        .unwrap()
}

/// Runs `f` with a memory sink behind the metrics target and returns its records.
fn captured(f: impl FnOnce()) -> Vec<trainlog::Record> {
    let memory = MemorySink::new();
    let (layer, guard) = MetricLogger::builder()
        .sink(memory.clone())
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    drop(guard);
    memory.records()
}

#[test]
fn layout_and_status_lifecycle() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "exp-1");
    assert_eq!(run.dir(), root.path().join("alice/mnist/exp-1"));
    assert_eq!(run.name(), "alice/mnist/exp-1");
    let info = run.info().unwrap();
    assert_eq!(info.status, Status::Created);
    assert_eq!(info.pid, std::process::id());
    assert!(!info.host.is_empty());
    run.start().unwrap();
    assert_eq!(run.info().unwrap().status, Status::Running);
    run.complete().unwrap();
    let info = run.info().unwrap();
    assert_eq!(info.status, Status::Completed);
    assert!(info.end_time.unwrap() >= info.start_time.unwrap());
    // Written atomically: no temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(run.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["run.json"]);
    assert!(Run::builder()
        .root(root.path())
        .prefix("../escape")
        .create()
        .is_err());
}

#[test]
fn scope_completes_on_ok_and_fails_on_error_or_panic() {
    let root = tempfile::tempdir().unwrap();
    let ok = new_run(root.path(), "ok");
    assert_eq!(ok.scope(|_| Ok::<_, trainlog::Error>(7)).unwrap(), 7);
    assert_eq!(ok.info().unwrap().status, Status::Completed);

    let err = new_run(root.path(), "err");
    let result =
        err.scope(|_| -> trainlog::Result<()> { Err(trainlog::Error::Config("bad data".into())) });
    assert!(result.is_err());
    let info = err.info().unwrap();
    assert_eq!(info.status, Status::Failed);
    assert!(info.error.unwrap().contains("bad data"));

    let panics = new_run(root.path(), "panic");
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = panics.scope(|_| -> trainlog::Result<()> { panic!("CUDA out of memory") });
    }));
    assert!(
        caught.is_err(),
        "the panic continues after the run is marked"
    );
    let info = panics.info().unwrap();
    assert_eq!(info.status, Status::Failed);
    assert!(info.error.unwrap().contains("CUDA out of memory"));
}

#[test]
fn params_set_extend_update_and_the_hparams_records() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "params");
    let records = captured(|| {
        let p = run.params();
        p.set(&json!({"lr": 0.1, "model": {"layers": 4, "act": "relu"}}))
            .unwrap();
        p.extend(&json!({"model": {"layers": 6, "norm": "ln"}, "seed": 1}))
            .unwrap();
        p.update("model.head.dim", 64).unwrap();
        p.set(&json!({"lr": 0.2})).unwrap();
        assert!(p.update("a..b", 1).is_err());
        assert!(p.set(&json!([1, 2])).is_err());
    });
    assert_eq!(
        run.params().read().unwrap(),
        json!({"lr": 0.2, "model": {"layers": 6, "act": "relu", "norm": "ln", "head": {"dim": 64}}, "seed": 1})
    );
    assert_eq!(
        read_jsonl(&run.dir().join("parameters.jsonl"))
            .unwrap()
            .len(),
        4
    );
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.hparams));
    assert_eq!(records[2].get("model.head.dim"), Some(&Value::U64(64)));
}

#[test]
fn metrics_are_namespaced_aggregated_and_go_through_the_pipeline() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "metrics");
    let records = captured(|| {
        let train = run.metrics("train");
        train.log(0, &json!({"loss": 2.0, "acc": {"top1": 0.1}}));
        for v in [1.0, 2.0, 6.0] {
            train.collect(&json!({"loss": v}));
        }
        assert_eq!(train.flush(Some(1), Agg::Max)["train.loss"], 6.0);
        run.metrics("").log(2, &json!({"lr": 0.5}));
    });
    assert_eq!(records[0].step, Some(0));
    assert_eq!(records[0].get("train.loss"), Some(&Value::F64(2.0)));
    assert_eq!(records[0].get("train.acc.top1"), Some(&Value::F64(0.1)));
    assert_eq!(records[1].get("train.loss"), Some(&Value::F64(6.0)));
    assert_eq!(records[2].get("lr"), Some(&Value::F64(0.5)));
}

#[test]
fn lifecycle_events_and_logs() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "events");
    let records = captured(|| {
        run.epoch_begin(0);
        run.step_begin(5);
        run.step_end(5);
        run.epoch_end(0);
        run.error("NaN loss");
    });
    let events: Vec<(&str, Option<u64>)> = records
        .iter()
        .map(|r| (r.get("event").and_then(|v| v.as_str()).unwrap(), r.step))
        .collect();
    assert_eq!(
        events,
        [
            ("epoch_begin", None),
            ("step_begin", Some(5)),
            ("step_end", Some(5)),
            ("epoch_end", None),
            ("error", None)
        ]
    );
    assert_eq!(records[0].get("epoch"), Some(&Value::U64(0)));
    assert_eq!(
        records[4].get("error"),
        Some(&Value::Str("NaN loss".into()))
    );

    run.log(tracing::Level::WARN, "slow step", &json!({"seconds": 3.5}))
        .unwrap();
    let logs = read_jsonl(&run.dir().join("logs.jsonl")).unwrap();
    assert_eq!(logs[0]["level"], "WARN");
    assert_eq!(logs[0]["message"], "slow step");
    assert_eq!(logs[0]["seconds"], 3.5);
}

#[test]
fn artifacts_round_trip_and_traversal_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "files");
    let files = run.files();
    files.save_bytes("ckpt/model.bin", &[0, 1, 2, 255]).unwrap();
    files.save_text("notes.txt", "hello").unwrap();
    files
        .save_json("eval/result.json", &json!({"acc": 0.9}))
        .unwrap();
    assert_eq!(files.load_bytes("ckpt/model.bin").unwrap(), [0, 1, 2, 255]);
    assert_eq!(files.load_text("notes.txt").unwrap(), "hello");
    let v: serde_json::Value = files.load_json("eval/result.json").unwrap();
    assert_eq!(v["acc"], 0.9);
    assert!(run.dir().join("files/ckpt/model.bin").exists());
    for bad in [
        "../outside.txt",
        "/etc/passwd",
        "a/../../b",
        "",
        "./x/../../y",
    ] {
        let err = files.save_text(bad, "x").unwrap_err().to_string();
        assert!(err.contains("must stay inside"), "{bad}: {err}");
    }
    assert!(!root.path().join("alice/mnist/outside.txt").exists());
}

#[test]
fn a_torn_last_line_is_tolerated_after_a_crash() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "torn");
    run.params().set(&json!({"lr": 0.1})).unwrap();
    run.params().set(&json!({"bs": 8})).unwrap();
    // A crash in the middle of the third write.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run.dir().join("parameters.jsonl"))
        .unwrap();
    f.write_all(br#"{"timestamp":"2026-11-24T00:00:00Z","op":"set","value":{"lr""#)
        .unwrap();
    assert_eq!(run.params().read().unwrap(), json!({"lr": 0.1, "bs": 8}));
    // The next append cuts the torn bytes off first, so the file stays valid.
    run.params().set(&json!({"seed": 3})).unwrap();
    assert_eq!(
        run.params().read().unwrap(),
        json!({"lr": 0.1, "bs": 8, "seed": 3})
    );
    assert_eq!(
        read_jsonl(&run.dir().join("parameters.jsonl"))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn the_runs_logger_writes_metrics_into_the_run_directory() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "logged");
    let (layer, guard) = run.logger().rank(0).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run.metrics("train").log(0, &json!({"loss": 1.5}));
    });
    drop(guard);
    let lines = read_jsonl(&run.dir().join("metrics_rank0.jsonl")).unwrap();
    assert_eq!(lines[0]["train.loss"], 1.5);
}

#[test]
fn symbolic_links_under_files_cannot_lead_outside_the_run() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    let run = new_run(root.path(), "links");
    let files = run.files();
    files.save_text("ok.txt", "fine").unwrap();
    std::os::unix::fs::symlink(outside.path(), files.dir().join("escape")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        files.dir().join("secret.txt"),
    )
    .unwrap();
    for (what, result) in [
        (
            "save through a linked dir",
            files.save_text("escape/planted.txt", "x").map(|_| ()),
        ),
        (
            "save into a new dir under it",
            files.save_text("escape/new/p.txt", "x").map(|_| ()),
        ),
        (
            "load through a linked dir",
            files.load_text("escape/secret.txt").map(|_| ()),
        ),
        (
            "load a linked file",
            files.load_text("secret.txt").map(|_| ()),
        ),
    ] {
        let err = result.expect_err(what).to_string();
        assert!(err.contains("points outside"), "{what}: {err}");
    }
    assert!(!outside.path().join("planted.txt").exists());
    assert!(!outside.path().join("new").exists());
    // A link that stays inside files/ is fine.
    std::os::unix::fs::symlink(files.dir().join("ok.txt"), files.dir().join("alias.txt")).unwrap();
    assert_eq!(files.load_text("alias.txt").unwrap(), "fine");
}

#[test]
fn concurrent_saves_of_different_artifacts_never_share_a_temporary_file() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "race");
    let files = run.files();
    std::thread::scope(|s| {
        for (name, text) in [("m.json", "{\"a\":1}"), ("m.txt", "plain text")] {
            let files = files.clone();
            s.spawn(move || {
                for _ in 0..1000 {
                    files.save_text(name, text).unwrap();
                    assert_eq!(files.load_text(name).unwrap(), text);
                }
            });
        }
        // Two handles of the same run updating run.json at the same time.
        for _ in 0..2 {
            let handle = new_run(root.path(), "race");
            s.spawn(move || {
                for _ in 0..200 {
                    handle.start().unwrap();
                    handle.complete().unwrap();
                }
            });
        }
    });
    assert_eq!(run.info().unwrap().status, Status::Completed);
    let leftovers: Vec<_> = std::fs::read_dir(files.dir())
        .unwrap()
        .flatten()
        .chain(std::fs::read_dir(run.dir()).unwrap().flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn tags_and_results_are_kept_in_run_json_and_sent_as_events() {
    let root = tempfile::tempdir().unwrap();
    let run = new_run(root.path(), "results");
    let records = captured(|| {
        run.tags().set("team", "nlp").unwrap();
        run.tags().set("stage", "sft").unwrap();
        assert!(run.tags().remove("team").unwrap());
        assert!(!run.tags().remove("team").unwrap());
        run.result("final_accuracy", 0.945, &json!({"dataset": "test"}))
            .unwrap();
        run.result("final_loss", f64::NAN, &()).unwrap();
    });
    let info = run.info().unwrap();
    assert_eq!(info.tags.len(), 1);
    assert_eq!(info.tags["stage"], "sft");
    assert_eq!(run.tags().get("stage").as_deref(), Some("sft"));
    assert_eq!(info.results["final_accuracy"].value, 0.945);
    assert_eq!(
        info.results["final_accuracy"].metadata,
        json!({"dataset": "test"})
    );
    // NaN survives run.json too.
    assert!(info.results["final_loss"].value.is_nan());
    let text = std::fs::read_to_string(run.dir().join("run.json")).unwrap();
    assert!(text.contains("\"value\": \"NaN\""), "{text}");
    let events: Vec<&str> = records
        .iter()
        .filter_map(|r| r.get("event").and_then(Value::as_str))
        .collect();
    assert_eq!(events, ["tags", "tags", "tags", "result", "result"]);
    // Removing a tag sends the tags that remain.
    assert_eq!(records[2].get("stage"), Some(&Value::Str("sft".into())));
    assert_eq!(records[2].get("team"), None);
    let acc = &records[3];
    assert_eq!(acc.get("final_accuracy"), Some(&Value::F64(0.945)));
    assert_eq!(
        acc.get("metadata.dataset"),
        Some(&Value::Str("test".into()))
    );
    assert!(matches!(records[4].get("final_loss"), Some(Value::F64(x)) if x.is_nan()));
    // Names the result event could not tell apart from its other fields are refused.
    for bad in ["", "event", "metadata.x"] {
        assert!(run.result(bad, 1.0, &()).is_err(), "{bad}");
    }
}
