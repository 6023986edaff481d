//! Ordinary logs to rotating files: rotation by size with a tiny limit, the file count cap,
//! nothing lost across a rotation, JSON lines, and the global setup in a child process.

use std::path::{Path, PathBuf};

use tracing_subscriber::prelude::*;
use trainlog::LogFiles;

/// The log files under `dir`, oldest first (`x.log.N` … `x.log.1`, then `x.log`).
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let base = format!("{prefix}.log");
    let mut rotated: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&format!("{base}."))?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if dir.join(&base).exists() {
        out.push(dir.join(&base));
    }
    out
}

/// Logs `n` numbered lines through a scoped `fmt` layer writing to `files`.
fn log_lines(files: &LogFiles, n: usize) {
    let (writer, guard) = files.writer().unwrap();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let subscriber = tracing_subscriber::registry().with(if files.is_json() {
        layer.json().boxed()
    } else {
        layer.boxed()
    });
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..n {
            tracing::info!(target: "app", line = i, "entry {i} of the run");
        }
    });
    drop(guard); // flushes
}

#[test]
fn rotation_by_size_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogFiles::new(dir.path())
        .prefix("train")
        .max_size(4096)
        .max_files(1000);
    log_lines(&options, 2000);
    let found = files(dir.path(), "train");
    assert!(found.len() > 10, "{} files", found.len());
    let mut numbers = Vec::new();
    for path in &found {
        let text = std::fs::read_to_string(path).unwrap();
        // A rotated file holds whole lines and passed the limit by less than one line.
        assert!(text.ends_with('\n'));
        if path != found.last().unwrap() {
            assert!(
                text.len() >= 4096 && text.len() < 4096 + 200,
                "{} bytes",
                text.len()
            );
        }
        for line in text.lines() {
            let n: usize = line
                .split("entry ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            numbers.push(n);
        }
    }
    assert_eq!(numbers, (0..2000).collect::<Vec<_>>());
}

#[test]
fn the_file_count_is_capped_and_json_lines_parse() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogFiles::new(dir.path())
        .max_size(2048)
        .max_files(3)
        .json(true);
    log_lines(&options, 2000);
    let found = files(dir.path(), "trainlog");
    assert_eq!(found.len(), 4, "{found:?}"); // the current file and 3 old ones
    let last = std::fs::read_to_string(found.last().unwrap()).unwrap();
    let line: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(line["fields"]["line"], 1999);
    assert_eq!(line["level"], "INFO");
}

/// Runs in a child process: the global subscriber with files.
#[test]
#[ignore = "run in a child process"]
fn child_sets_up_the_root_logger_with_files() {
    let Some(dir) = std::env::var_os("TRAINLOG_LOGFILES_CHILD_DIR") else {
        return;
    };
    let guard = trainlog::setup_root_logger_with_files("info", LogFiles::new(&dir)).unwrap();
    tracing::info!(target: "app", "to the file");
    tracing::debug!(target: "app", "below the level");
    tracing::info!(target: "metrics", step = 1, loss = 0.5);
    drop(guard);
}

#[test]
fn setup_root_logger_with_files_writes_ordinary_logs_not_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_sets_up_the_root_logger_with_files",
            "--ignored",
            "--quiet",
        ])
        .env("TRAINLOG_LOGFILES_CHILD_DIR", dir.path())
        .env_remove("RUST_LOG")
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.path().join("trainlog.log")).unwrap();
    assert!(text.contains("to the file"), "{text}");
    assert!(!text.contains("below the level"), "{text}");
    assert!(
        !text.contains("loss"),
        "metrics stay out of the log files: {text}"
    );
}

/// Runs in a child process: `init()` with log files from the builder.
#[test]
#[ignore = "run in a child process"]
fn child_inits_the_metric_logger_with_log_files() {
    let Some(dir) = std::env::var_os("TRAINLOG_LOGFILES_INIT_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let guard = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .rank(0)
        .log_files(LogFiles::new(dir.join("logs")).prefix("job"))
        .init()
        .unwrap();
    tracing::warn!(target: "app", "a warning for the file");
    tracing::info!(target: "metrics", step = 1, loss = 0.5);
    drop(guard);
}

#[test]
fn init_with_log_files_writes_them_beside_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_inits_the_metric_logger_with_log_files",
            "--ignored",
            "--quiet",
        ])
        .env("TRAINLOG_LOGFILES_INIT_DIR", dir.path())
        .env_remove("RUST_LOG")
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.path().join("logs/job.log")).unwrap();
    assert!(text.contains("a warning for the file"), "{text}");
    assert!(!text.contains("loss"), "{text}");
    let metrics = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl")).unwrap();
    assert!(metrics.contains("\"loss\":0.5"), "{metrics}");
}
