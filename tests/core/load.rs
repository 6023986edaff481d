//! Many threads at once: exact counts, per-thread order kept.

use std::collections::HashMap;

use tracing::info;
use trainlog::MetricLogger;

use crate::support::{dispatch, read_jsonl};

#[test]
fn eight_threads_times_100k_events_exact_count_and_order() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .queue_capacity(4096),
    );
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..PER_THREAD {
                        info!(target: "metrics", step = i, thread, loss = i as f64 * 0.5);
                    }
                })
            });
        }
    });
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    assert_eq!(stats.written, THREADS * PER_THREAD);
    assert_eq!(stats.dropped + stats.lost + stats.write_errors, 0);

    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len() as u64, THREADS * PER_THREAD);
    let mut next: HashMap<u64, u64> = HashMap::new();
    for line in &lines {
        let thread = line["thread"].as_u64().unwrap();
        let step = line["step"].as_u64().unwrap();
        let expected = next.entry(thread).or_insert(0);
        assert_eq!(step, *expected, "thread {thread} out of order");
        assert_eq!(line["loss"].as_f64().unwrap(), step as f64 * 0.5);
        *expected += 1;
    }
    assert_eq!(next.len() as u64, THREADS);
    assert!(next.values().all(|&n| n == PER_THREAD));
}
