//! `setup_root_logger` and `setup_metric_logger` install the global subscriber, so each
//! scenario runs in a child process (this test binary re-run with one ignored test).

#[path = "../support/child.rs"]
mod child;

use tracing::info;

fn child_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("TRAINLOG_SETUP_CHILD_DIR").map(Into::into)
}

#[test]
#[ignore = "run in a child process by root_logger_then_metric_logger"]
fn child_root_then_metrics() {
    let Some(dir) = child_dir() else { return };
    trainlog::setup_root_logger("info").unwrap();
    info!("hello from the root logger");
    tracing::debug!("debug is below the level");
    let guard = trainlog::setup_metric_logger("async", &dir).unwrap();
    info!(target: "metrics", step = 1, loss = 0.25, lr = 3e-4);
    info!(target: "metrics", hparams = true, batch_size = 32u64);
    let again = trainlog::setup_metric_logger("async", &dir).unwrap_err();
    println!("second call: {again}");
    drop(guard);
}

#[test]
#[ignore = "run in a child process by metric_logger_alone_includes_the_root_logger"]
fn child_metrics_only() {
    let Some(dir) = child_dir() else { return };
    let guard = trainlog::setup_metric_logger("async", &dir).unwrap();
    info!("ordinary log line");
    info!(target: "metrics", step = 0, acc = 0.5);
    let root = trainlog::setup_root_logger("info").unwrap_err();
    println!("root after metrics: {root}");
    drop(guard);
}

#[test]
#[ignore = "run in a child process by span_fields_work_through_init_after_the_root_logger"]
fn child_span_fields() {
    let Some(dir) = child_dir() else { return };
    trainlog::setup_root_logger("info").unwrap();
    // A span before the metric logger exists: it attaches later, the span stays without.
    let early = tracing::info_span!("early", stage = "warmup").entered();
    let guard = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .backends("async")
        .unwrap()
        .span_fields(true)
        .init()
        .unwrap();
    tracing::info_span!("epoch", epoch = 3u64).in_scope(|| {
        info!(target: "metrics", step = 1, loss = 0.25);
    });
    drop(early);
    drop(guard);
}

#[test]
fn span_fields_work_through_init_after_the_root_logger() {
    let (_, _, dir) = run_child("child_span_fields", &[]);
    let lines = jsonl(dir.path(), 0);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["epoch"], 3);
    assert_eq!(lines[0]["loss"], 0.25);
    assert!(lines[0].get("stage").is_none(), "{}", lines[0]);
}

#[cfg(feature = "progress")]
#[test]
#[ignore = "run in a child process by init_shows_progress_over_total_steps"]
fn child_total_steps() {
    let Some(dir) = child_dir() else { return };
    trainlog::setup_root_logger("info").unwrap();
    let guard = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .backends("async")
        .unwrap()
        .total_steps(5)
        .init()
        .unwrap();
    for step in 0..5u64 {
        info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64, lr = 3e-4);
    }
    info!("a log line between progress lines");
    drop(guard);
}

#[cfg(feature = "progress")]
#[test]
fn init_shows_progress_over_total_steps() {
    // stderr is a pipe: plain lines, here one per metrics event.
    let (_, stderr, dir) = run_child("child_total_steps", &[("TRAINLOG_PROGRESS_EVERY", "0s")]);
    let plain: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert_eq!(
        plain.len(),
        5,
        "one per step, the last not repeated at close: {stderr}"
    );
    assert!(
        plain[0].starts_with("progress: 1/5 steps (20%)"),
        "{stderr}"
    );
    assert!(
        plain[4].starts_with("progress: 5/5 steps (100%)"),
        "{stderr}"
    );
    assert!(plain[4].ends_with("loss=0.200 lr=3.00e-4"), "{stderr}");
    assert!(
        stderr.contains("a log line between progress lines"),
        "{stderr}"
    );
    assert_eq!(jsonl(dir.path(), 0).len(), 5);
    let (_, stderr, _) = run_child("child_total_steps", &[("TRAINLOG_PROGRESS", "off")]);
    assert!(
        !stderr.lines().any(|l| l.starts_with("progress: ")),
        "{stderr}"
    );
}

/// Runs the ignored test `test` in a child process with a fresh directory for it.
fn run_child(test: &str, envs: &[(&str, &str)]) -> (String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap();
    let mut all = vec![("TRAINLOG_SETUP_CHILD_DIR", dir_text)];
    all.extend_from_slice(envs);
    let out = child::run(test, &all);
    assert!(out.ok, "child failed:\n{}\n{}", out.stdout, out.stderr);
    (out.stdout, out.stderr, dir)
}

fn jsonl(dir: &std::path::Path, rank: u32) -> Vec<serde_json::Value> {
    std::fs::read_to_string(trainlog::jsonl_path(dir, rank))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn root_logger_then_metric_logger() {
    let (stdout, stderr, dir) = run_child("child_root_then_metrics", &[]);
    // Metrics on stdout as dict lines, without colour (stdout is a pipe here).
    assert!(
        stdout.contains("step=1, loss=0.250, lr=3.00e-4\n"),
        "{stdout}"
    );
    assert!(stdout.contains("hparams: batch_size=32\n"), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    assert!(
        stdout.contains("second call: the metric logger is already set up"),
        "{stdout}"
    );
    // Ordinary logs on stderr at the chosen level; metrics are not repeated there.
    assert!(stderr.contains("hello from the root logger"), "{stderr}");
    assert!(!stderr.contains("debug is below the level"), "{stderr}");
    assert!(!stderr.contains("loss"), "{stderr}");
    let lines = jsonl(dir.path(), 0);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["step"], 1);
    assert_eq!(lines[0]["loss"], 0.25);
    assert_eq!(lines[1]["hparams"], true);
}

#[test]
fn metric_logger_alone_includes_the_root_logger() {
    let (stdout, stderr, dir) = run_child("child_metrics_only", &[]);
    assert!(stdout.contains("step=0, acc=0.500\n"), "{stdout}");
    assert!(stderr.contains("ordinary log line"), "{stderr}");
    assert!(
        stdout.contains("root after metrics: trainlog already installed"),
        "{stdout}"
    );
    assert_eq!(jsonl(dir.path(), 0)[0]["acc"], 0.5);
}

#[test]
fn console_is_rank0_only_but_jsonl_is_written_on_every_rank() {
    let (stdout, _stderr, dir) = run_child("child_metrics_only", &[("RANK", "2")]);
    assert!(!stdout.contains("acc="), "{stdout}");
    assert_eq!(jsonl(dir.path(), 2)[0]["rank"], 2);
}

#[test]
#[ignore = "run in a child process by a_global_filter_that_mutes_metrics_is_reported_once_at_close"]
fn child_global_filter() {
    use tracing_subscriber::{prelude::*, EnvFilter};
    let Some(dir) = child_dir() else { return };
    let (metrics, guard) = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .rank(0)
        .build()
        .unwrap();
    let filter = match std::env::var("TRAINLOG_FILTER").unwrap().as_str() {
        "level" => EnvFilter::new("warn"),
        "target" => EnvFilter::new("info,metrics=off"),
        "kept" => trainlog::filter::keep_metrics(EnvFilter::new("warn")),
        other => panic!("{other}"),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(metrics)
        .init();
    for step in 0..3u64 {
        info!(target: "metrics", step, loss = 0.5);
    }
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    println!("queued {}", stats.queued);
}

#[test]
fn a_global_filter_that_mutes_metrics_is_reported_once_at_close() {
    for (kind, why) in [
        ("level", "the subscriber's maximum level is warn"),
        (
            "target",
            "events on target `metrics` were logged but a filter in front of the metrics layer refused them",
        ),
    ] {
        let (stdout, stderr, dir) = run_child("child_global_filter", &[("TRAINLOG_FILTER", kind)]);
        assert!(stdout.contains("queued 0"), "{kind}: {stdout}");
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("trainlog: no metrics event reached trainlog"))
            .collect();
        assert_eq!(warnings.len(), 1, "{kind}: {stderr}");
        assert!(warnings[0].contains(why), "{kind}: {stderr}");
        assert!(
            warnings[0].contains("trainlog::filter::keep_metrics(filter)"),
            "{kind}: {stderr}"
        );
        let written = std::fs::read_to_string(trainlog::jsonl_path(dir.path(), 0)).unwrap_or_default();
        assert_eq!(written, "", "{kind}");
    }
    // Through keep_metrics every record arrives, and nothing is said.
    let (stdout, stderr, dir) = run_child("child_global_filter", &[("TRAINLOG_FILTER", "kept")]);
    assert!(stdout.contains("queued 3"), "{stdout}");
    assert!(!stderr.contains("no metrics event"), "{stderr}");
    assert_eq!(jsonl(dir.path(), 0).len(), 3);
}

#[test]
#[ignore = "run in a child process by a_bad_step_is_said_once_per_call_site"]
fn child_bad_steps() {
    let Some(dir) = child_dir() else { return };
    let guard = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .rank(0)
        .init()
        .unwrap();
    for i in 0..5 {
        info!(target: "metrics", step = -1 - i, loss = 0.5);
    }
    for _ in 0..3 {
        info!(target: "metrics", step = "ten", loss = 0.5);
    }
    drop(guard);
}

#[test]
fn a_bad_step_is_said_once_per_call_site() {
    let (_, stderr, dir) = run_child("child_bad_steps", &[]);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("which is not a step"))
        .collect();
    assert_eq!(said.len(), 2, "{stderr}");
    assert!(
        said[0].starts_with("trainlog: a metrics event has `step = -1`"),
        "{stderr}"
    );
    assert!(said[1].contains("`step = \"ten\"`"), "{stderr}");
    assert!(
        said[0].contains("the record is kept without a step"),
        "{stderr}"
    );
    assert_eq!(jsonl(dir.path(), 0).len(), 8);
}

#[test]
fn rust_log_overrides_the_root_level() {
    let (_stdout, stderr, _dir) = run_child("child_root_then_metrics", &[("RUST_LOG", "warn")]);
    assert!(!stderr.contains("hello from the root logger"), "{stderr}");
}
