//! Failures never reach training code: bad directories, full disks, slow or panicking
//! sinks, panics in the training thread, async runtimes.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;
use trainlog::sink::{MemorySink, RunOutcome, Sink};
use trainlog::{Error, MetricLogger, Overflow, Record};

use crate::support::{dispatch, read_jsonl, with_logger};

#[test]
fn unwritable_output_dir_fails_build_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("run");
    let err = MetricLogger::builder()
        .output_dir(&target)
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(msg.contains("create output directory"), "{msg}");
}

#[test]
fn unknown_and_unavailable_backends_are_named() {
    let err = MetricLogger::builder()
        .backends("async,tensorbord")
        .unwrap_err();
    assert!(err.to_string().contains("`tensorbord`"), "{err}");
    assert!(err.to_string().contains("known backends"), "{err}");
    let trainlog::Error::UnknownBackend { known, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        known.contains("async") && known.contains("tensorboard"),
        "{known}"
    );
    // A backend whose feature is off says which feature to turn on.
    for (name, built) in [
        ("WandB", cfg!(feature = "wandb")),
        ("mlflow", cfg!(feature = "mlflow")),
        ("http", cfg!(feature = "http")),
    ] {
        match MetricLogger::builder().backends(&format!("async, {name}")) {
            Ok(_) => assert!(built, "{name}"),
            Err(err) => {
                assert!(!built, "{name}: {err}");
                assert!(matches!(err, Error::BackendUnavailable { .. }), "{err:?}");
                let feature = format!("`{}` feature", name.to_lowercase());
                assert!(err.to_string().contains(&feature), "{err}");
            }
        }
    }
    // Spacing, case and duplicates are forgiven.
    assert!(MetricLogger::builder().backends(" ASYNC , jsonl,").is_ok());
}

#[test]
fn nothing_configured_is_an_error_not_a_silent_no_op() {
    let err = MetricLogger::builder()
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(err.to_string().contains("output_dir"), "{err}");
}

#[test]
fn full_disk_is_reported_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("metrics_rank0.jsonl")).unwrap();
    let memory = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .sink(memory.clone()),
        || {
            for step in 0..100u64 {
                info!(target: "metrics", step, loss = 1.0);
            }
        },
    );
    let err = guard.flush().unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    let stats = guard.sink_stats();
    let jsonl = &stats.iter().find(|(n, _)| n == "jsonl").unwrap().1;
    assert!(jsonl.write_errors >= 1, "{jsonl:?}");
    // The other sink is unaffected.
    assert_eq!(memory.len(), 100);
    // Shutdown still completes, and says that the records never reached the disk.
    let err = guard.shutdown(RunOutcome::Completed).unwrap_err();
    let Error::Lost { stats, .. } = &err else {
        panic!("expected Error::Lost, got {err:?}")
    };
    assert!(stats.write_errors >= 2, "{stats:?}");
    assert_eq!(stats.lost, 100, "{stats:?}");
    assert_eq!(stats.queued, stats.written + stats.lost, "{stats:?}");
    assert!(err.to_string().contains("jsonl: 100"), "{err}");
}

/// A sink that blocks in `write_batch` until released, to fill queues on purpose.
/// `seen` holds the size of every batch it was given.
struct Gate {
    open: Arc<Mutex<mpsc::Receiver<()>>>,
    seen: Arc<Mutex<Vec<usize>>>,
}

impl Sink for Gate {
    fn name(&self) -> &str {
        "gate"
    }
    fn write_batch(&mut self, batch: &[Arc<Record>]) -> trainlog::Result<()> {
        self.seen.lock().unwrap().push(batch.len());
        let _ = self.open.lock().unwrap().recv();
        Ok(())
    }
}

fn gate() -> (Gate, mpsc::Sender<()>, Arc<Mutex<Vec<usize>>>) {
    let (tx, rx) = mpsc::channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    (
        Gate {
            open: Arc::new(Mutex::new(rx)),
            seen: seen.clone(),
        },
        tx,
        seen,
    )
}

#[test]
fn drop_policy_never_blocks_and_counts_exactly() {
    let (sink, release, seen) = gate();
    let guard = with_logger(
        MetricLogger::builder()
            .sink(sink)
            .queue_capacity(8)
            .overflow(Overflow::Drop),
        || {
            for step in 0..1000u64 {
                info!(target: "metrics", step, loss = 1.0);
            }
        },
    );
    // Once the sink is blocked on its first batch nothing moves; besides that batch, only
    // what fits in the queue (8) was accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = guard.stats();
    assert_eq!(stats.queued + stats.dropped, 1000, "{stats:?}");
    let first_batch = seen.lock().unwrap()[0] as u64;
    assert!(
        stats.queued - first_batch <= 8,
        "{stats:?}, first batch {first_batch}"
    );
    assert!(stats.dropped > 0, "{stats:?}");
    for _ in 0..2000 {
        let _ = release.send(());
    }
    let final_stats = guard.shutdown(RunOutcome::Completed).unwrap();
    let written: usize = seen.lock().unwrap().iter().sum();
    assert_eq!(written as u64, final_stats.queued);
    assert_eq!(final_stats.written, final_stats.queued);
    assert_eq!(final_stats.dropped, stats.dropped);
}

#[test]
fn block_policy_loses_nothing_with_a_slow_sink() {
    let (sink, release, seen) = gate();
    let releaser = std::thread::spawn(move || {
        while release.send(()).is_ok() {
            std::thread::sleep(Duration::from_micros(50));
        }
    });
    let guard = with_logger(MetricLogger::builder().sink(sink).queue_capacity(4), || {
        for step in 0..300u64 {
            info!(target: "metrics", step, loss = 1.0);
        }
    });
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.written, 300);
    assert_eq!(seen.lock().unwrap().iter().sum::<usize>(), 300);
    drop(releaser); // ends once the gate's receiver is gone
}

#[test]
fn shutdown_is_bounded_by_the_deadline_when_a_sink_hangs() {
    let (sink, _release_never, _) = gate();
    let guard = with_logger(
        MetricLogger::builder()
            .sink(sink)
            .shutdown_timeout(Duration::from_millis(300)),
        || info!(target: "metrics", step = 1, loss = 1.0),
    );
    let started = Instant::now();
    let err = guard.shutdown(RunOutcome::Completed).unwrap_err();
    // Generous bound: the point is that it returns instead of hanging forever.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("gate"), "{err}");
}

struct Panicky;

impl Sink for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }
    fn write_batch(&mut self, _: &[Arc<Record>]) -> trainlog::Result<()> {
        panic!("sink bug");
    }
}

#[test]
fn a_panicking_sink_is_contained_and_counted() {
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(MetricLogger::builder().sink(Panicky).sink(memory.clone()));
    let log = |steps: std::ops::Range<u64>| {
        tracing::dispatcher::with_default(&dispatch, || {
            for step in steps {
                info!(target: "metrics", step, loss = 1.0);
            }
        })
    };
    log(0..10);
    assert!(
        guard.flush().is_err(),
        "the dead sink's flush reports an error"
    );
    log(10..20); // training goes on after the sink died
    let err = guard.shutdown(RunOutcome::Completed).unwrap_err();
    let Error::Lost { stats, .. } = err else {
        panic!("expected Error::Lost, got {err:?}")
    };
    assert_eq!(memory.len(), 20);
    assert_eq!(stats.queued, 40);
    assert_eq!(stats.written, 20);
    assert_eq!(
        stats.lost, 20,
        "every record the panicking sink got is counted lost"
    );
}

#[test]
fn guard_dropped_while_panicking_closes_sinks_as_failed() {
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(MetricLogger::builder().sink(memory.clone()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = guard;
        tracing::dispatcher::with_default(&dispatch, || {
            info!(target: "metrics", step = 1, loss = f64::NAN);
            panic!("training diverged");
        })
    }));
    assert!(result.is_err());
    assert_eq!(memory.outcome(), Some(RunOutcome::Failed));
    assert_eq!(memory.len(), 1);
}

#[test]
fn normal_drop_closes_sinks_as_completed_and_late_events_are_counted_not_fatal() {
    let memory = MemorySink::new();
    let (dispatch, guard) = dispatch(MetricLogger::builder().sink(memory.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(target: "metrics", step = 1, loss = 1.0);
        drop(guard);
        // After shutdown: no panic, no hang.
        info!(target: "metrics", step = 2, loss = 1.0);
    });
    assert_eq!(memory.outcome(), Some(RunOutcome::Completed));
    assert_eq!(memory.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_inside_a_tokio_runtime_works_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = dispatch(MetricLogger::builder().output_dir(dir.path()).rank(0));
    use tracing::instrument::WithSubscriber;
    let tasks: Vec<_> = (0..4u64)
        .map(|task| {
            let dispatch = dispatch.clone();
            tokio::spawn(
                async move {
                    for i in 0..250u64 {
                        info!(target: "metrics", step = task * 1000 + i, task);
                        if i % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                }
                .with_subscriber(dispatch),
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    guard.flush().unwrap();
    drop(guard); // dropping inside the runtime must not panic or deadlock
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 1000);
}

/// Polls `path` until it holds `lines` lines, for at most 10 s.
fn wait_for_lines(path: &std::path::Path, lines: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if n >= lines || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn interval_flush_writes_without_an_explicit_flush() {
    let dir = tempfile::tempdir().unwrap();
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .flush_interval(Duration::from_millis(20)),
    );
    let path = dir.path().join("metrics_rank0.jsonl");
    tracing::dispatcher::with_default(&dispatch, || info!(target: "metrics", step = 0, loss = 1.0));
    // An idle logger flushes on its interval.
    assert_eq!(wait_for_lines(&path, 1), 1);
    // So does a busy one, whose queue never goes quiet for a whole interval.
    let stop = Instant::now() + Duration::from_millis(300);
    let mut step = 1u64;
    let mut seen_while_busy = 0;
    tracing::dispatcher::with_default(&dispatch, || {
        while Instant::now() < stop || seen_while_busy <= 1 {
            info!(target: "metrics", step, loss = 1.0);
            step += 1;
            if step % 1000 == 0 {
                seen_while_busy = std::fs::read_to_string(&path).map_or(0, |t| t.lines().count());
            }
            if Instant::now() > stop + Duration::from_secs(10) {
                break;
            }
        }
    });
    assert!(
        seen_while_busy > 1,
        "nothing flushed while logging continuously"
    );
    drop(guard);
    assert_eq!(wait_for_lines(&path, step as usize), step as usize);
}

/// A sink that logs a metrics event, into the logger that feeds it, for every record.
struct Echo(Arc<std::sync::OnceLock<tracing::Dispatch>>);

impl Sink for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn write_batch(&mut self, batch: &[Arc<Record>]) -> trainlog::Result<()> {
        if let Some(dispatch) = self.0.get() {
            tracing::dispatcher::with_default(dispatch, || {
                for _ in batch {
                    info!(target: "metrics", echoed = true);
                }
            });
        }
        Ok(())
    }
}

#[test]
fn a_sink_logging_metrics_from_its_worker_cannot_deadlock() {
    let slot = Arc::new(std::sync::OnceLock::new());
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .sink(Echo(slot.clone()))
            .queue_capacity(2),
    );
    let _ = slot.set(dispatch.clone());
    // With a queue of 2, the worker's own echoes would wait on a queue only it empties.
    tracing::dispatcher::with_default(&dispatch, || {
        for step in 0..100u64 {
            info!(target: "metrics", step);
        }
    });
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert!(stats.written >= 100, "{stats:?}");
    // Every queued record is written; echoes that found the queue full or came after
    // the shutdown are counted as dropped.
    assert_eq!(stats.written, stats.queued, "{stats:?}");
    assert!(stats.dropped > 0, "{stats:?}");
}

#[test]
fn backends_are_typed_too_and_print_as_their_list_names() {
    use trainlog::Backend;
    assert_eq!("ASYNC".parse::<Backend>().unwrap(), Backend::Jsonl);
    assert_eq!(Backend::Jsonl.to_string(), "async");
    assert_eq!(Backend::Http.feature(), "http");
    let dir = tempfile::tempdir().unwrap();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .backend(Backend::Jsonl),
        || info!(target: "metrics", step = 1, loss = 1.0),
    );
    assert_eq!(guard.sinks(), vec!["jsonl"]);
    drop(guard);
    assert_eq!(read_jsonl(&dir.path().join("metrics_rank0.jsonl")).len(), 1);
    // The error message lists every backend from the one registry.
    let err = Backend::parse("tensorbord").unwrap_err().to_string();
    assert!(
        err.contains("async (alias jsonl), tensorboard, http, otel, wandb, mlflow"),
        "{err}"
    );
}

/// A sink that asks for the panic's message, and keeps what `last_panic` says at close.
struct WantsPanic(Arc<Mutex<Option<String>>>);

impl Sink for WantsPanic {
    fn name(&self) -> &str {
        "wants-panic"
    }
    fn write_batch(&mut self, _: &[Arc<Record>]) -> trainlog::Result<()> {
        Ok(())
    }
    fn close(&mut self, outcome: RunOutcome) -> trainlog::Result<()> {
        if outcome == RunOutcome::Failed {
            *self.0.lock().unwrap() = trainlog::sink::last_panic();
        }
        Ok(())
    }
    fn wants_panic_message(&self) -> bool {
        true
    }
}

#[test]
fn a_sink_that_wants_the_panic_message_gets_it_at_a_failed_close() {
    let seen = Arc::new(Mutex::new(None));
    let (_layer, guard) = MetricLogger::builder()
        .sink(WantsPanic(seen.clone()))
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("the loss went to NaN at step 1234");
    }));
    assert!(result.is_err());
    let seen = seen.lock().unwrap().clone().unwrap_or_default();
    assert!(
        seen.starts_with("the loss went to NaN at step 1234 at tests/core/failure.rs:"),
        "{seen}"
    );
}
