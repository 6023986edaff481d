//! `log_histogram`: what the sinks get, what JSONL writes, what other layers see.

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;
use trainlog::sink::MemorySink;
use trainlog::{MetricLogger, Value, HISTOGRAM_BINS};

use crate::support::read_jsonl;

#[test]
fn jsonl_writes_one_compact_object_and_sinks_share_one_summary() {
    let dir = tempfile::tempdir().unwrap();
    let memory = MemorySink::new();
    let (layer, guard) = MetricLogger::builder()
        .output_dir(dir.path())
        .rank(0)
        .sink(memory.clone())
        .build()
        .unwrap();
    // Another layer beside trainlog's sees the `dict` field: the count, not the values.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let other = crate::support::FieldsLayer(seen.clone());
    let subscriber = tracing_subscriber::registry().with(layer).with(other);
    tracing::subscriber::with_default(subscriber, || {
        let values: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, f32::NAN, f32::NEG_INFINITY];
        trainlog::log_histogram(7, "grads", &values);
        trainlog::log_histogram::<f64>(8, "empty", &[]);
    });
    drop(guard);
    let records = memory.records();
    let Some(Value::Histogram(h)) = records[0].get("grads") else {
        panic!("{:?}", records[0]);
    };
    assert_eq!(records[0].step, Some(7));
    let s = h.summary();
    assert_eq!(
        (s.count, s.finite, s.nan, s.neg_inf, s.pos_inf),
        (6, 4, 1, 1, 0)
    );
    assert_eq!((s.min, s.max, s.mean()), (1.0, 4.0, 2.5));
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    let g = &lines[0]["grads"];
    assert_eq!(lines[0]["step"], 7);
    assert_eq!(g["count"], 6);
    assert_eq!(
        (g["min"].as_f64(), g["max"].as_f64(), g["mean"].as_f64()),
        (Some(1.0), Some(4.0), Some(2.5))
    );
    assert_eq!(
        (
            g["nan"].as_u64(),
            g["pos_inf"].as_u64(),
            g["neg_inf"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(g["edges"].as_array().unwrap().len(), HISTOGRAM_BINS + 1);
    let counts: Vec<u64> = serde_json::from_value(g["counts"].clone()).unwrap();
    assert_eq!(counts.len(), HISTOGRAM_BINS);
    assert_eq!(counts.iter().sum::<u64>(), 4);
    assert_eq!((counts[0], counts[HISTOGRAM_BINS - 1]), (1, 1));
    // No values: a count of 0, statistics "NaN" (the JSONL spelling), empty bins.
    let e = &lines[1]["empty"];
    assert_eq!(
        (e["count"].as_u64(), e["min"].as_str(), e["mean"].as_str()),
        (Some(0), Some("NaN"), Some("NaN"))
    );
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].get("dict").map(String::as_str),
        Some(r#"{"grads":{"count":6}}"#)
    );
}
