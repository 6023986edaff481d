//! The per-thread queues (lanes) records travel in: timestamps, threads that come and go,
//! several sinks sharing one event, the drop policy's counts across threads.

use std::time::{Duration, SystemTime};

use tracing::info;
use trainlog::sink::{MemorySink, RunOutcome};
use trainlog::{MetricLogger, Overflow, Value};

use crate::support::{dispatch, with_logger};

#[test]
fn timestamps_are_the_time_of_the_call() {
    let memory = MemorySink::new();
    let mut calls = Vec::new();
    let guard = with_logger(MetricLogger::builder().sink(memory.clone()), || {
        for step in 0..5u64 {
            let before = SystemTime::now();
            info!(target: "metrics", step, loss = 1.0);
            calls.push((before, SystemTime::now()));
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    guard.flush().unwrap();
    let records = memory.records();
    assert_eq!(records.len(), 5);
    for (r, (before, after)) in records.iter().zip(calls) {
        // The caller reads a tick counter; the worker turns it into wall time. Allow the
        // conversion a millisecond either side of the call.
        let slack = Duration::from_millis(1);
        assert!(
            r.timestamp + slack >= before && r.timestamp <= after + slack,
            "step {:?}: {:?} not within {before:?}..{after:?}",
            r.step,
            r.timestamp
        );
    }
}

#[test]
fn short_lived_threads_lose_nothing_and_their_lanes_are_retired() {
    const THREADS: u64 = 64;
    const EACH: u64 = 200;
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(MetricLogger::builder().sink(memory.clone()));
    for round in 0..4 {
        let handles: Vec<_> = (0..THREADS / 4)
            .map(|t| {
                let dispatch = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for i in 0..EACH {
                            info!(target: "metrics", step = i, thread = round * 100 + t, phase = "warm");
                        }
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    guard.flush().unwrap();
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!(stats.queued, THREADS * EACH, "{stats:?}");
    assert_eq!(stats.written, THREADS * EACH, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    let records = memory.records();
    assert_eq!(records.len() as u64, THREADS * EACH);
    assert!(records
        .iter()
        .all(|r| r.get("phase") == Some(&Value::Str("warm".into()))));
}

#[test]
fn every_sink_gets_its_own_copy_of_texts_messages_and_histograms() {
    let (a, b, c) = (MemorySink::new(), MemorySink::new(), MemorySink::new());
    let guard = with_logger(
        MetricLogger::builder()
            .sink(a.clone())
            .sink(b.clone())
            .sink(c.clone()),
        || {
            info!(target: "metrics", step = 1, phase = "train", note = ?("dbg", 2), "epoch {} done", 1);
            trainlog::log_histogram(2, "w", &[1.0f32, 2.0, 3.0]);
            info!(target: "metrics", step = 3, big = "x".repeat(5000).as_str());
        },
    );
    guard.flush().unwrap();
    let all = [a.records(), b.records(), c.records()];
    for records in &all {
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].get("phase"), Some(&Value::Str("train".into())));
        assert_eq!(
            records[0].get("note"),
            Some(&Value::Str("(\"dbg\", 2)".into()))
        );
        assert_eq!(records[0].message.as_deref(), Some("epoch 1 done"));
        assert!(matches!(records[1].get("w"), Some(Value::Histogram(h)) if h.summary().count == 3));
        assert_eq!(
            records[2].get("big").and_then(Value::as_str).map(str::len),
            Some(5000)
        );
    }
    assert_eq!(all[0], all[1]);
    assert_eq!(all[1], all[2]);
}

#[test]
fn drop_policy_counts_add_up_across_threads() {
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .sink(memory.clone())
            .queue_capacity(16)
            .overflow(Overflow::Drop),
    );
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..20_000u64 {
                        info!(target: "metrics", step = i, thread);
                    }
                })
            });
        }
    });
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!(stats.queued + stats.dropped, 80_000, "{stats:?}");
    assert_eq!(stats.written, stats.queued, "{stats:?}");
    assert_eq!(memory.len() as u64, stats.written);
}

#[test]
fn records_logged_after_shutdown_are_counted_as_dropped() {
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(MetricLogger::builder().sink(memory.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(target: "metrics", step = 1, loss = 1.0);
    });
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!((stats.queued, stats.written, stats.dropped), (1, 1, 0));
    // The layer outlives the guard: later events go nowhere, and never block.
    tracing::dispatcher::with_default(&dispatch, || {
        for step in 2..100_000u64 {
            info!(target: "metrics", step, loss = 1.0);
        }
    });
    assert_eq!(memory.len(), 1);
}

/// A thread remembers the lane it used last: switching between loggers, a logger that
/// closes while the thread still holds its lane, and a logger built after that each get
/// exactly their own records.
#[test]
fn one_thread_switching_between_loggers_feeds_each_its_own_records() {
    let (a, b) = (MemorySink::new(), MemorySink::new());
    let (dispatch_a, guard_a) = dispatch(MetricLogger::builder().sink(a.clone()));
    let (dispatch_b, guard_b) = dispatch(MetricLogger::builder().sink(b.clone()));
    for step in 0..1000u64 {
        let to = if step % 3 == 0 {
            &dispatch_a
        } else {
            &dispatch_b
        };
        tracing::dispatcher::with_default(to, || info!(target: "metrics", step, loss = 1.0));
    }
    let stats_a = guard_a.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!((stats_a.written, stats_a.dropped), (334, 0), "{stats_a:?}");
    // `a` is closed; this thread still holds its lane. Logging to it drops and counts
    // nothing it could not count; `b` and a new logger `c` go on as before.
    let c = MemorySink::new();
    let (dispatch_c, guard_c) = dispatch(MetricLogger::builder().sink(c.clone()));
    for step in 1000..1300u64 {
        let to = [&dispatch_a, &dispatch_b, &dispatch_c][step as usize % 3];
        tracing::dispatcher::with_default(to, || info!(target: "metrics", step, loss = 1.0));
    }
    let stats_b = guard_b.shutdown(RunOutcome::Completed).unwrap();
    let stats_c = guard_c.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!((stats_b.written, stats_b.dropped), (766, 0), "{stats_b:?}");
    assert_eq!((stats_c.written, stats_c.dropped), (100, 0), "{stats_c:?}");
    let steps = |m: &MemorySink| {
        m.records()
            .iter()
            .map(|r| r.step.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(a.len(), 334);
    assert!(steps(&a).iter().all(|s| s % 3 == 0 && *s < 1000));
    assert!(steps(&c).iter().all(|s| s % 3 == 2 && *s >= 1000));
    let want_b: Vec<u64> = (0..1000)
        .filter(|s| s % 3 != 0)
        .chain((1000..1300).filter(|s| s % 3 == 1))
        .collect();
    assert_eq!(steps(&b), want_b);
}
