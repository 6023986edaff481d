//! NaN and ±∞ keep their meaning on every path into the sinks: `tracing` fields,
//! `log_dict`, `log_hparams` and the run API's metrics, aggregation included.

use std::collections::BTreeMap;

use trainlog::run::{Agg, Run};
use trainlog::sink::MemorySink;
use trainlog::{log_dict, log_hparams, MetricLogger, Value};

use crate::support::{read_jsonl, with_logger};

fn is_nan(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::F64(x)) if x.is_nan())
}

#[test]
fn log_dict_and_log_hparams_keep_nan_and_infinities() {
    let dir = tempfile::tempdir().unwrap();
    let memory = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .sink(memory.clone()),
        || {
            let mut m = BTreeMap::new();
            m.insert("loss", f64::NAN);
            m.insert("grad.norm", f64::INFINITY);
            m.insert("min", f64::NEG_INFINITY);
            log_dict(Some(3), &m);
            log_dict(
                Some(4),
                &serde_json::json!({"eval": {"acc": 0.5}, "note": "NaN"}),
            );
            #[derive(serde::Serialize)]
            struct Hp {
                lr: f64,
                clip: f32,
            }
            log_hparams(&Hp {
                lr: 1e-3,
                clip: f32::NAN,
            });
        },
    );
    drop(guard);
    let records = memory.records();
    assert!(is_nan(records[0].get("loss")));
    assert_eq!(
        records[0].get("grad.norm"),
        Some(&Value::F64(f64::INFINITY))
    );
    assert_eq!(records[0].get("min"), Some(&Value::F64(f64::NEG_INFINITY)));
    // A string that reads "NaN" stays a string.
    assert_eq!(records[1].get("note"), Some(&Value::Str("NaN".into())));
    assert_eq!(records[1].get("eval.acc"), Some(&Value::F64(0.5)));
    assert!(records[2].hparams);
    assert!(is_nan(records[2].get("clip")));
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines[0]["step"], 3);
    assert_eq!(lines[0]["loss"], "NaN");
    assert_eq!(lines[0]["grad.norm"], "Infinity");
    assert_eq!(lines[0]["min"], "-Infinity");
    assert_eq!(lines[2]["clip"], "NaN");
    assert_eq!(lines[2]["lr"], 1e-3);
}

#[test]
fn deep_nesting_is_flattened_beyond_serde_jsons_parser_limit_or_refused() {
    let memory = MemorySink::new();
    let mut deep = serde_json::json!(1.5);
    for _ in 0..200 {
        deep = serde_json::json!({ "a": deep });
    }
    let mut too_deep = deep.clone();
    for _ in 0..400 {
        too_deep = serde_json::json!({ "b": too_deep });
    }
    let guard = with_logger(MetricLogger::builder().sink(memory.clone()), || {
        log_dict(Some(1), &deep);
        log_dict(Some(2), &too_deep);
    });
    drop(guard);
    let records = memory.records();
    assert_eq!(
        records.len(),
        1,
        "the too-deep value is refused, not logged"
    );
    let (key, value) = &records[0].fields[0];
    assert_eq!(key.split('.').count(), 200);
    assert_eq!(value, &Value::F64(1.5));
}

#[test]
fn run_metrics_log_collect_and_flush_keep_nan() {
    let root = tempfile::tempdir().unwrap();
    let run = Run::builder()
        .root(root.path())
        .prefix("nan")
        .create()
        .unwrap();
    let memory = MemorySink::new();
    let guard = with_logger(run.logger().rank(0).sink(memory.clone()), || {
        let train = run.metrics("train");
        train.log(0, &serde_json::json!({"loss": 1.0}));
        let mut diverged = BTreeMap::new();
        diverged.insert("loss", f64::NAN);
        train.log(1, &diverged);
        train.collect(&serde_json::json!({"loss": 2.0, "acc": 0.5}));
        train.collect(&diverged);
        train.collect(&serde_json::json!({"loss": 4.0, "acc": 1.0}));
        let mean = train.flush(Some(2), Agg::Mean);
        assert!(mean["train.loss"].is_nan(), "{mean:?}");
        assert_eq!(mean["train.acc"], 0.75);
        train.collect(&diverged);
        train.collect(&serde_json::json!({"loss": 1.0}));
        let counted = train.flush(Some(3), Agg::Count);
        assert_eq!(counted["train.loss"], 2.0);
    });
    drop(guard);
    let records = memory.records();
    assert!(is_nan(records[1].get("train.loss")));
    assert!(is_nan(records[2].get("train.loss")));
    assert_eq!(records[2].get("train.acc"), Some(&Value::F64(0.75)));
    let lines = read_jsonl(&run.dir().join("metrics_rank0.jsonl"));
    let nan_lines = lines.iter().filter(|l| l["train.loss"] == "NaN").count();
    assert_eq!(nan_lines, 2, "{lines:?}");
}
