//! Which events reach which layer: target, is_mapping, rank 0, and the console format.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::info;
use tracing_subscriber::{filter::FilterExt, fmt::MakeWriter, prelude::*};
use trainlog::{filter, format::DictFormat, sink::MemorySink, MetricLogger};

use crate::support::{read_jsonl, with_logger};

/// A `MakeWriter` collecting everything written into one shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn bare_messages_and_other_targets_do_not_reach_sinks() {
    let memory = MemorySink::new();
    let guard = with_logger(MetricLogger::builder().sink(memory.clone()), || {
        info!(target: "metrics", "starting training"); // bare message: not a mapping
        info!(target: "app", step = 1, loss = 0.5); // not the metrics target
        tracing::info_span!(target: "metrics", "epoch", n = 1).in_scope(|| {
            info!(target: "metrics", step = 2, loss = 0.25);
        });
    });
    guard.flush().unwrap();
    let records = memory.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].step, Some(2));
}

#[test]
fn custom_target_is_honoured() {
    let memory = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .sink(memory.clone())
            .target("train_metrics"),
        || {
            info!(target: "train_metrics", step = 1, loss = 0.5);
            info!(target: "metrics", step = 2, loss = 0.5);
        },
    );
    guard.flush().unwrap();
    let steps: Vec<_> = memory.records().iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![Some(1)]);
}

#[test]
fn trainlogs_own_calls_follow_a_custom_target() {
    let memory = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder().sink(memory.clone()).target("train"),
        || {
            info!(target: "train", step = 1, loss = 0.5);
            trainlog::log_dict(Some(2), &serde_json::json!({"eval": {"acc": 0.9}}));
            trainlog::log_histogram(3, "weights", &[1.0f32, 2.0]);
            trainlog::log_hparams(&serde_json::json!({"lr": 0.1}));
            trainlog::log_fields(Some(4), false, vec![("x".into(), trainlog::Value::U64(7))]);
        },
    );
    guard.flush().unwrap();
    let records = memory.records();
    let steps: Vec<_> = records.iter().map(|r| r.step).collect();
    assert_eq!(steps, vec![Some(1), Some(2), Some(3), None, Some(4)]);
    assert!(records[1].get("eval.acc").is_some(), "{records:?}");
    assert!(records[2].get("weights").is_some(), "{records:?}");
    assert!(records[3].hparams, "{records:?}");
    // A sink that also takes other targets' ERROR events gets them as metrics records,
    // not as errors of target `metrics`.
    let memory = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .sink(ErrorsToo(memory.clone()))
            .target("train"),
        || trainlog::log_dict(Some(5), &serde_json::json!({"loss": 0.25})),
    );
    guard.flush().unwrap();
    let records = memory.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].step, Some(5));
    assert_eq!(
        records[0].error_target, None,
        "not taken for an error event"
    );
}

/// A memory sink that asks for ERROR events of every target too.
struct ErrorsToo(MemorySink);

impl trainlog::sink::Sink for ErrorsToo {
    fn name(&self) -> &str {
        "errors-too"
    }
    fn write_batch(&mut self, batch: &[std::sync::Arc<trainlog::Record>]) -> trainlog::Result<()> {
        self.0.write_batch(batch)
    }
    fn wants_errors(&self) -> bool {
        true
    }
}

#[test]
fn metrics_layer_does_not_hide_events_from_the_users_other_layers() {
    let out = Captured::default();
    let (metrics, guard) = MetricLogger::builder()
        .sink(MemorySink::new())
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(out.clone())
                .with_ansi(false)
                .without_time(),
        )
        .with(metrics);
    tracing::subscriber::with_default(subscriber, || {
        info!(target: "app", "ordinary log line");
        info!(target: "metrics", step = 1, loss = 0.5);
    });
    drop(guard);
    let text = out.text();
    assert!(text.contains("ordinary log line"), "{text}");
    assert!(text.contains("loss=0.5"), "{text}");
}

#[test]
fn rank0_filter_passes_rank_zero_only() {
    for (rank, expect_lines) in [(0u32, 1usize), (1, 0), (7, 0)] {
        let out = Captured::default();
        let console = tracing_subscriber::fmt::layer()
            .event_format(DictFormat::plain())
            .with_writer(out.clone())
            .with_filter(
                filter::metrics()
                    .and(filter::is_mapping())
                    .and(filter::rank0_for(rank)),
            );
        tracing::subscriber::with_default(tracing_subscriber::registry().with(console), || {
            info!(target: "metrics", step = 10, loss = 0.25, lr = 3e-4, tokens = 4096u64);
            info!(target: "metrics", "bare message");
            info!(target: "other", step = 1, x = 1.0);
        });
        let text = out.text();
        assert_eq!(text.lines().count(), expect_lines, "rank {rank}: {text}");
        if expect_lines == 1 {
            assert_eq!(text, "step=10, loss=0.250, lr=3.00e-4, tokens=4096\n");
        }
    }
}

#[test]
fn rank0_sinks_are_skipped_on_other_ranks_and_jsonl_is_per_rank() {
    let dir = tempfile::tempdir().unwrap();
    let rank0_only = MemorySink::new();
    let every_rank = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(dir.path())
            .backends("async")
            .unwrap()
            .rank(2)
            .rank0_sink(rank0_only.clone())
            .sink(every_rank.clone()),
        || info!(target: "metrics", step = 1, loss = 0.5),
    );
    assert_eq!(guard.sinks(), vec!["jsonl", "memory"]);
    drop(guard);
    assert!(rank0_only.is_empty());
    assert_eq!(every_rank.len(), 1);
    let lines = read_jsonl(&dir.path().join("metrics_rank2.jsonl"));
    assert_eq!(lines[0]["rank"], 2);
}

/// Runs in a child process (see `rank_comes_from_the_environment_in_a_child_process`).
#[test]
#[ignore = "run by rank_comes_from_the_environment_in_a_child_process"]
fn child_logs_with_rank_from_env() {
    let Some(dir) = std::env::var_os("TRAINLOG_TEST_CHILD_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rank0_only = MemorySink::new();
    let guard = with_logger(
        MetricLogger::builder()
            .output_dir(&dir)
            .rank0_sink(rank0_only.clone()),
        || {
            for step in 0..5u64 {
                info!(target: "metrics", step, loss = 1.0);
            }
        },
    );
    drop(guard);
    std::fs::write(dir.join("rank0_sink_count"), rank0_only.len().to_string()).unwrap();
}

#[test]
fn rank_comes_from_the_environment_in_a_child_process() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "filters::child_logs_with_rank_from_env",
            "--ignored",
            "--quiet",
        ])
        .env("RANK", "1")
        .env("TRAINLOG_TEST_CHILD_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let lines = read_jsonl(&dir.path().join("metrics_rank1.jsonl"));
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l["rank"] == 1));
    assert!(!dir.path().join("metrics_rank0.jsonl").exists());
    let count = std::fs::read_to_string(dir.path().join("rank0_sink_count")).unwrap();
    assert_eq!(count, "0", "a rank-0-only sink received records on rank 1");
}

#[cfg(feature = "console")]
#[test]
fn a_global_env_filter_mutes_metrics_unless_it_keeps_them() {
    use tracing_subscriber::EnvFilter;
    for (keep, expected) in [(false, 0), (true, 2)] {
        let memory = MemorySink::new();
        let (metrics, guard) = MetricLogger::builder()
            .sink(memory.clone())
            .build()
            .unwrap();
        let filter = EnvFilter::new("warn");
        let filter = if keep {
            trainlog::filter::keep_metrics(filter)
        } else {
            filter
        };
        let subscriber = tracing_subscriber::registry().with(filter).with(metrics);
        tracing::subscriber::with_default(subscriber, || {
            info!(target: "metrics", step = 1, loss = 0.5);
            tracing::debug!(target: "metrics", step = 2, loss = 0.25);
            info!(target: "app", "muted by the filter either way");
        });
        drop(guard);
        assert_eq!(memory.len(), expected, "keep_metrics: {keep}");
    }
}

#[test]
fn an_empty_backend_list_says_so_instead_of_asking_for_an_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = MetricLogger::builder()
        .output_dir(dir.path())
        .backends("")
        .unwrap()
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, trainlog::Error::Config(_)), "{err:?}");
    assert!(
        text.contains("`.backends(..)` was given an empty list"),
        "{text}"
    );
    assert!(!text.contains("set `.output_dir(..)`"), "{text}");
    // Without anything set, the old advice stands.
    let err = MetricLogger::builder()
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(err.to_string().contains("set `.output_dir(..)`"), "{err}");
}
