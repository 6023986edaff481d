//! The progress display: counting and postfix, and its behaviour when stderr is not a
//! terminal (checked in a child process whose stderr is a pipe).

use std::process::{Command, Stdio};

use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::progress::{Progress, ProgressMode};

#[test]
fn steps_and_chosen_metrics_move_the_bar() {
    let progress = Progress::hidden(100).with_metrics(&["loss", "eval.acc"]);
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(progress.layer()),
        || {
            info!(target: "metrics", step = 0, loss = 2.0, other = 1.0);
            assert_eq!(progress.position(), 1);
            assert_eq!(progress.message(), "loss=2.000");
            trainlog::log_dict(Some(41), &serde_json::json!({"eval": {"acc": 0.5}}));
            info!(target: "metrics", "a bare message moves nothing");
            info!(target: "app", step = 99, loss = 9.0); // not the metrics target
        },
    );
    assert_eq!(progress.position(), 42);
    assert_eq!(progress.message(), "loss=2.000 eval.acc=0.500");
}

/// Runs in a child process with stderr piped (see the next test).
#[test]
#[ignore = "run in a child process"]
fn child_logs_with_a_progress_bar() {
    if std::env::var_os("TRAINLOG_PROGRESS_CHILD").is_none() {
        return;
    }
    let progress = Progress::new(5).with_metrics(&["loss"]);
    println!("hidden={}", progress.is_hidden());
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(progress.writer(std::io::stderr)),
        )
        .with(progress.layer());
    tracing::subscriber::with_default(subscriber, || {
        for step in 0..5u64 {
            info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64);
            info!("log line {step}");
        }
    });
    println!(
        "position={} message={}",
        progress.position(),
        progress.message()
    );
    progress.finish();
}

fn child(rank: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_logs_with_a_progress_bar",
            "--ignored",
            "--nocapture",
            "--quiet",
        ])
        .env("TRAINLOG_PROGRESS_CHILD", "1")
        .env("RANK", rank)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn not_a_terminal_hides_the_bar_and_keeps_log_lines_whole() {
    let (stdout, stderr) = child("0");
    assert!(stdout.contains("hidden=true"), "{stdout}");
    assert!(stdout.contains("position=5 message=loss=0.200"), "{stdout}");
    let logs: Vec<&str> = stderr.lines().filter(|l| l.contains("log line")).collect();
    assert_eq!(logs.len(), 5, "{stderr}");
    for (i, line) in logs.iter().enumerate() {
        assert!(line.ends_with(&format!("log line {i}")), "{line:?}");
    }
    assert!(
        !stderr.contains('█') && !stderr.contains('\u{1b}'),
        "no bar drawn: {stderr:?}"
    );
    // Instead, plain lines: here only the last one (the run is shorter than 10 s).
    let plain: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert_eq!(plain.len(), 1, "{stderr}");
    assert!(
        plain[0].starts_with("progress: 5/5 steps (100%), "),
        "{}",
        plain[0]
    );
    assert!(
        plain[0].contains(", elapsed ") && plain[0].ends_with(", loss=0.200"),
        "{}",
        plain[0]
    );
}

#[test]
fn plain_lines_come_every_interval_and_the_mode_is_chosen_by_the_environment() {
    let progress = Progress::with_mode(100, ProgressMode::Plain).with_metrics(&["loss"]);
    assert_eq!(progress.mode(), ProgressMode::Plain);
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(progress.layer()),
        || info!(target: "metrics", step = 9, loss = 0.5),
    );
    let line = progress.plain_line();
    assert!(line.starts_with("progress: 10/100 steps (10%), "), "{line}");
    assert!(
        line.contains(" steps/s, elapsed ") && line.contains(", ETA "),
        "{line}"
    );
    assert!(line.ends_with(", loss=0.500"), "{line}");
    assert_eq!(Progress::hidden(5).mode(), ProgressMode::Off);

    // The demo in a child process, stderr a pipe: a line every 100 ms, then a last one.
    let run = |envs: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        // The example cargo builds beside the tests: target/<profile>/examples.
        let exe = std::env::current_exe().unwrap();
        let example = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/train_loop");
        assert!(
            example.exists(),
            "build the examples first: {}",
            example.display()
        );
        let out = Command::new(example)
            .args([
                "--steps",
                "60",
                "--step-ms",
                "10",
                "--quiet",
                "--output-dir",
            ])
            .arg(dir.path())
            .env_remove("TRAINLOG_PROGRESS")
            .env("RANK", "0")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let plain: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with("progress: "))
            .map(str::to_owned)
            .collect();
        plain
    };
    let plain = run(&[("TRAINLOG_PROGRESS_EVERY", "100ms")]);
    assert!(plain.len() >= 3, "{plain:?}");
    assert!(
        plain
            .last()
            .unwrap()
            .starts_with("progress: 60/60 steps (100%)"),
        "{plain:?}"
    );
    assert!(plain[0].contains("loss="), "{plain:?}");
    let finals = plain
        .iter()
        .filter(|l| l.starts_with("progress: 60/60 "))
        .count();
    assert_eq!(finals, 1, "the last position is printed once: {plain:?}");
    assert!(run(&[("TRAINLOG_PROGRESS", "off")]).is_empty());
    // `bar` off a terminal draws nothing (indicatif hides it) and prints no plain lines.
    assert!(run(&[("TRAINLOG_PROGRESS", "bar")]).is_empty());
}

#[test]
fn other_ranks_do_not_move_the_bar() {
    let (stdout, stderr) = child("1");
    assert!(stdout.contains("position=0 message="), "{stdout}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("progress: ")),
        "other ranks print no progress: {stderr}"
    );
}
