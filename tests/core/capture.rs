//! What a metrics event becomes on disk: field types, names, steps, hparams, log_dict,
//! and bad input (NaN, huge strings, thousands of fields, key collisions).

use std::fmt;

use tracing::info;
use trainlog::{log_dict, sink::MemorySink, MetricLogger, Value};

use crate::support::{assert_no_duplicate_keys, read_jsonl, with_logger};

struct Shape(u32, u32);
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.0, self.1)
    }
}

#[test]
fn field_types_and_names_round_trip_through_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            info!(
                target: "metrics",
                step = 3u64,
                loss = 0.5,
                "train.acc" = 0.9,
                tokens = 1_000_000u64,
                delta = -7i64,
                done = false,
                r#type = "warmup",
                shape = %Shape(2, 3),
                opt = ?Some("adam"),
            );
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["rank"], 0);
    assert_eq!(l["step"], 3);
    assert_eq!(l["loss"], 0.5);
    assert_eq!(l["train.acc"], 0.9);
    assert_eq!(l["tokens"], 1_000_000);
    assert_eq!(l["delta"], -7);
    assert_eq!(l["done"], false);
    assert_eq!(l["type"], "warmup");
    assert_eq!(l["shape"], "2x3");
    assert_eq!(l["opt"], "Some(\"adam\")");
    // Fields keep the order they were written in, after the metadata keys.
    let raw = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl")).unwrap();
    let keys: Vec<&str> = l.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert!(raw.starts_with("{\"timestamp\":\""), "{raw}");
    assert_eq!(keys.len(), 11, "{keys:?}");
    let ts = l["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-24T07:40:31.123456Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
}

#[test]
fn step_zero_and_hparams_are_kept_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            info!(target: "metrics", hparams = true, lr = 3e-4, batch_size = 32u64, model = "tiny");
            info!(target: "metrics", step = 0, loss = 2.5);
            info!(target: "metrics", step = 1i32, loss = 2.0);
            info!(target: "metrics", epoch_end = true);
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["hparams"], true);
    assert_eq!(lines[0]["lr"], 3e-4);
    assert_eq!(lines[0]["batch_size"], 32);
    assert_eq!(lines[0]["model"], "tiny");
    assert!(lines[0].get("step").is_none());
    assert_eq!(lines[1]["step"], 0);
    assert!(lines[1].get("hparams").is_none());
    assert_eq!(lines[2]["step"], 1);
    assert!(lines[3].get("step").is_none());
    assert_eq!(lines[3]["epoch_end"], true);
}

#[test]
fn a_step_that_is_not_a_step_keeps_the_record_without_one() {
    let memory = MemorySink::new();
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder()
            .sink(memory.clone())
            .output_dir(dir.path())
            .rank(0),
        || {
            info!(target: "metrics", step = -1i64, loss = 1.0);
            info!(target: "metrics", step = 2.5, loss = 2.0);
            info!(target: "metrics", step = "ten", loss = 3.0);
            info!(target: "metrics", step = true, loss = 4.0);
            info!(target: "metrics", step = -1i128 << 70, loss = 5.0);
            // Steps, however given.
            info!(target: "metrics", step = 4.0, loss = 6.0);
            info!(target: "metrics", step = "7", loss = 7.0);
            info!(target: "metrics", step = ?8u64, loss = 8.0);
            let step = 9u64;
            info!(target: "metrics", %step, loss = 9.0);
        },
    );
    guard.flush().unwrap();
    let r = memory.records();
    let steps: Vec<Option<u64>> = r.iter().map(|r| r.step).collect();
    assert_eq!(
        steps,
        [
            None,
            None,
            None,
            None,
            None,
            Some(4),
            Some(7),
            Some(8),
            Some(9)
        ]
    );
    for (i, record) in r.iter().enumerate() {
        // The record is kept whole but for the bad value: no field named `step`.
        assert_eq!(record.get("step"), None, "{record:?}");
        assert_eq!(record.get("loss"), Some(&Value::F64((i + 1) as f64)));
    }
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 9);
    for line in &lines[..5] {
        assert!(line.get("step").is_none(), "{line}");
    }
    assert_eq!(lines[6]["step"], 7);
}

#[test]
fn log_dict_flattens_nesting_and_keeps_types() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            log_dict(
                Some(7),
                &serde_json::json!({
                    "eval": {"acc": 0.75, "loss": 1.25, "per_class": {"cat": 0.5}},
                    "lr": 1e-5,
                    "note": "ok",
                    "hist": [1, 2, 3],
                }),
            );
            log_dict(None, &serde_json::json!(42));
            let mut map = std::collections::HashMap::new();
            map.insert(vec![1u8], 1); // non-string keys: not representable as JSON
            log_dict(Some(8), &map);
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 2, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["step"], 7);
    assert_eq!(l["eval.acc"], 0.75);
    assert_eq!(l["eval.loss"], 1.25);
    assert_eq!(l["eval.per_class.cat"], 0.5);
    assert_eq!(l["lr"], 1e-5);
    assert_eq!(l["note"], "ok");
    assert_eq!(l["hist"], serde_json::json!([1, 2, 3]));
    assert!(l.get("dict").is_none());
    assert_eq!(lines[1]["value"], 42);
    assert!(lines[1].get("step").is_none());
}

#[test]
fn non_finite_floats_stay_valid_json() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            info!(target: "metrics", step = 1, nan = f64::NAN, inf = f64::INFINITY, ninf = f64::NEG_INFINITY, tiny = f64::MIN_POSITIVE, big = f64::MAX);
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines[0]["nan"], "NaN");
    assert_eq!(lines[0]["inf"], "Infinity");
    assert_eq!(lines[0]["ninf"], "-Infinity");
    assert_eq!(lines[0]["tiny"].as_f64(), Some(f64::MIN_POSITIVE));
    assert_eq!(lines[0]["big"].as_f64(), Some(f64::MAX));
}

#[test]
fn one_megabyte_string_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big: String = "ab\"c\\d\n€".repeat(1 << 17); // > 1 MB with characters to escape
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            info!(target: "metrics", step = 1, sample = big.as_str(), loss = 0.1);
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert!(big.len() > 1 << 20);
    assert_eq!(lines[0]["sample"].as_str(), Some(big.as_str()));
    assert_eq!(lines[0]["loss"], 0.1);
}

#[test]
fn five_thousand_fields_in_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let fields: serde_json::Map<String, serde_json::Value> = (0..5000)
        .map(|i| {
            (
                format!("layer{i}.grad_norm"),
                serde_json::json!(i as f64 / 8.0),
            )
        })
        .collect();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || {
            log_dict(Some(5), &fields);
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    let obj = lines[0].as_object().unwrap();
    assert_eq!(obj.len(), 5000 + 3); // timestamp, rank, step
    for i in [0, 1234, 4999] {
        assert_eq!(obj[&format!("layer{i}.grad_norm")], i as f64 / 8.0);
    }
}

#[test]
fn key_collisions_give_one_key_last_value_wins() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(4),
        || {
            // "a.b" written flat, then nested; "rank" and "timestamp" collide with metadata.
            #[derive(serde::Serialize)]
            struct Inner {
                b: u32,
            }
            #[derive(serde::Serialize)]
            struct Clash {
                #[serde(rename = "a.b")]
                flat: u32,
                a: Inner,
                rank: u32,
                timestamp: &'static str,
                message: &'static str,
            }
            let clash = Clash {
                flat: 1,
                a: Inner { b: 2 },
                rank: 99,
                timestamp: "mine",
                message: "m",
            };
            log_dict(Some(1), &clash);
            info!(target: "metrics", step = 2, x = 1, x = 2);
        },
    );
    drop(guard);
    let path = dir.path().join("metrics_rank4.jsonl");
    let raw = std::fs::read_to_string(&path).unwrap();
    let lines = read_jsonl(&path);
    for (line, raw) in lines.iter().zip(raw.lines()) {
        assert_no_duplicate_keys(line, raw);
    }
    let l = &lines[0];
    assert_eq!(l["rank"], 4);
    assert_eq!(l["a.b"], 2);
    assert_eq!(l["field.rank"], 99);
    assert_eq!(l["field.timestamp"], "mine");
    // No event message, so a `message` field keeps its name.
    assert_eq!(l["message"], "m");
    assert_eq!(lines[1]["x"], 2);
}

#[test]
fn message_with_fields_is_kept() {
    let memory = MemorySink::new();
    let guard = with_logger(MetricLogger::builder().sink(memory.clone()), || {
        info!(target: "metrics", step = 9, loss = 0.25, "epoch {} done", 3);
    });
    guard.flush().unwrap();
    let r = &memory.records()[0];
    assert_eq!(r.message.as_deref(), Some("epoch 3 done"));
    assert_eq!(r.step, Some(9));
    assert_eq!(r.get("loss"), Some(&Value::F64(0.25)));
}
