//! Files stay valid after a crash or a full disk, and the counters add up.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tracing::info;
use trainlog::sink::RunOutcome;
use trainlog::{Error, MetricLogger};

use crate::skip::skip;
use crate::support::{dispatch, read_jsonl, with_logger};

#[test]
fn a_torn_last_line_is_cut_before_the_next_logger_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics_rank0.jsonl");
    // What a crash in the middle of a write leaves behind.
    std::fs::write(
        &path,
        "{\"timestamp\":\"2026-11-24T07:40:31.123456Z\",\"rank\":0,\"step\":1,\"loss\":0.5}\n\
         {\"timestamp\":\"2026-11-24T07:40:31.1235",
    )
    .unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || info!(target: "metrics", step = 2, loss = 0.25),
    );
    guard.shutdown(RunOutcome::Completed).unwrap();
    let lines = read_jsonl(&path); // panics on any invalid line
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["step"], 1);
    assert_eq!(lines[1]["step"], 2);
    assert_eq!(lines[1]["loss"], 0.25);
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"2m"`), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    /// Mounts one, or reports the test `test` as skipped (mounting needs root); under
    /// `CI=true` that is a failure.
    fn mount_or_skip(test: &str, size: &str) -> Option<Tmpfs> {
        Tmpfs::mount(size)
            .map_err(|why| skip(test, &format!("a tmpfs is needed (run as root): {why}")))
            .ok()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system at `dir` until writing fails, leaving about `leave` bytes free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join("filler");
    let free = fs_free(dir);
    let size = free.saturating_sub(leave);
    std::fs::write(&filler, vec![b'x'; size as usize]).unwrap();
    filler
}

fn fs_free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

const RECORDS: u64 = 7_000;

fn log_records(dispatch: &tracing::Dispatch) {
    tracing::dispatcher::with_default(dispatch, || {
        for step in 0..RECORDS {
            info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64, lr = 3e-4, note = "padding to make lines longer");
        }
    });
}

#[test]
fn disk_still_full_at_exit_counts_reports_and_fails_shutdown() {
    let Some(fs) = Tmpfs::mount_or_skip(
        "disk_still_full_at_exit_counts_reports_and_fails_shutdown",
        "2m",
    ) else {
        return;
    };
    fill(fs.path(), 200 * 1024);
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .output_dir(fs.path())
            .rank(0)
            .flush_interval(Duration::from_millis(10)),
    );
    log_records(&dispatch);
    let err = guard.shutdown(RunOutcome::Completed).unwrap_err();
    let Error::Lost { stats, .. } = &err else {
        panic!("expected Error::Lost, got {err:?}")
    };
    assert_eq!(stats.queued, RECORDS, "{stats:?}");
    assert_eq!(stats.queued, stats.written + stats.lost, "{stats:?}");
    assert!(stats.lost > 0 && stats.write_errors > 0, "{stats:?}");
    // What is on disk is exactly what was counted written, every line whole.
    let lines = read_jsonl(&fs.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len() as u64, stats.written, "{stats:?}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i as u64);
    }
}

#[test]
fn after_a_recovered_full_disk_every_record_is_written_and_counted() {
    let Some(fs) = Tmpfs::mount_or_skip(
        "after_a_recovered_full_disk_every_record_is_written_and_counted",
        "2m",
    ) else {
        return;
    };
    let filler = fill(fs.path(), 200 * 1024);
    let (dispatch, guard) = dispatch(
        MetricLogger::builder()
            .output_dir(fs.path())
            .rank(0)
            .flush_interval(Duration::from_millis(10)),
    );
    log_records(&dispatch);
    // The disk is full now, and the sink keeps what it could not write.
    assert!(guard.flush().is_err());
    assert!(guard.stats().write_errors > 0);
    std::fs::remove_file(filler).unwrap();
    guard.flush().unwrap();
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!(stats.queued, RECORDS, "{stats:?}");
    assert_eq!(stats.written, RECORDS, "{stats:?}");
    assert_eq!(stats.lost, 0, "{stats:?}");
    let lines = read_jsonl(&fs.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len() as u64, RECORDS);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i as u64);
    }
}

/// Holds a JSONL logger on `TRAINLOG_LOCK_CHILD_DIR`, rank 0, until its stdin closes.
#[test]
#[ignore = "run in a child process by a_second_process_on_the_same_directory_and_rank_is_refused"]
fn child_holds_a_logger() {
    let Some(dir) = std::env::var_os("TRAINLOG_LOCK_CHILD_DIR") else {
        return;
    };
    let (_layer, guard) = MetricLogger::builder()
        .output_dir(dir)
        .rank(0)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    println!("holding");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    drop(guard);
}

#[test]
fn a_second_process_on_the_same_directory_and_rank_is_refused() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "edges::child_holds_a_logger",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TRAINLOG_LOCK_CHILD_DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended");
    }
    let builder = || MetricLogger::builder().output_dir(dir.path()).rank(0);
    let err = builder()
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InUse { .. }), "{err:?}");
    assert!(text.contains("metrics_rank0.jsonl"), "{text}");
    assert!(text.contains(&format!("pid {}", child.id())), "{text}");
    assert!(text.contains("own output directory or rank"), "{text}");
    // Another rank in the same directory is fine.
    let (_, other) = MetricLogger::builder()
        .output_dir(dir.path())
        .rank(1)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    drop(other);
    // Once the holder has ended (its lock goes with it, however it ends), it is free.
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let (_, guard) = builder().build::<tracing_subscriber::Registry>().unwrap();
    drop(guard);
}

#[test]
fn a_lock_that_cannot_be_taken_for_another_reason_does_not_stop_logging() {
    let dir = tempfile::tempdir().unwrap();
    // Not a holder, just no lock to be had (as on a file system without locks).
    std::fs::create_dir(dir.path().join("metrics_rank0.jsonl.lock")).unwrap();
    let guard = with_logger(
        MetricLogger::builder().output_dir(dir.path()).rank(0),
        || info!(target: "metrics", step = 1, loss = 0.5),
    );
    guard.shutdown(RunOutcome::Completed).unwrap();
    let lines = read_jsonl(&dir.path().join("metrics_rank0.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["loss"], 0.5);
}
