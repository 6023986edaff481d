//! Span fields on metrics records (`MetricLoggerBuilder::span_fields`), read back from the
//! JSONL file.

use tracing::{info, info_span};
use trainlog::{sink::MemorySink, MetricLogger, Value};

use crate::support::{read_jsonl, with_logger};

#[test]
fn records_carry_the_fields_of_their_spans_outermost_first() {
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .span_fields(true),
        || {
            let run = info_span!("run", model = "tiny", seed = 7u64);
            let _run = run.enter();
            for epoch in 0..2u64 {
                let span = info_span!(target: "train", "epoch", epoch, lr = tracing::field::Empty);
                let _epoch = span.enter();
                span.record("lr", 0.1 / (epoch + 1) as f64);
                info!(target: "metrics", step = epoch * 10, loss = 0.5);
                // The event's own field wins over the span's of the same name.
                info!(target: "metrics", step = epoch * 10 + 1, epoch = 99u64);
            }
            // A span's step is the step of records that have none.
            info_span!("eval", step = 20u64).in_scope(|| {
                info!(target: "metrics", acc = 0.75);
            });
        },
    );
    drop(guard);
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 5);
    let first = &lines[0];
    // Key order in the file: outer spans first, then the event's fields.
    let text = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl")).unwrap();
    let raw = text.lines().next().unwrap();
    let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap();
    let order = ["step", "model", "seed", "epoch", "lr", "loss"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert_eq!(first["model"], "tiny");
    assert_eq!(first["seed"], 7);
    assert_eq!(first["epoch"], 0);
    assert_eq!(first["lr"], 0.1);
    assert_eq!(lines[1]["epoch"], 99, "the event's field wins");
    assert_eq!(lines[2]["epoch"], 1);
    assert_eq!(lines[2]["lr"], 0.05, "a value recorded later on the span");
    assert_eq!(lines[4]["step"], 20);
    assert_eq!(lines[4]["acc"], 0.75);
    assert!(lines[4].get("epoch").is_none(), "left the epoch span");
}

#[test]
fn without_the_option_spans_add_nothing() {
    let memory = MemorySink::new();
    let guard = with_logger(MetricLogger::builder().sink(memory.clone()), || {
        info_span!("epoch", epoch = 3u64, step = 5u64).in_scope(|| {
            info!(target: "metrics", loss = 0.5);
        });
    });
    guard.flush().unwrap();
    let r = memory.records();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].fields, [("loss".into(), Value::F64(0.5))]);
    assert_eq!(r[0].step, None);
}
