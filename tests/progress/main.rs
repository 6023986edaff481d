//! The progress display: counting and postfix, and its behaviour when stderr is not a
//! terminal (checked in a child process whose stderr is a pipe).

use std::process::{Command, Stdio};

use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::progress::Progress;

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
}

#[test]
fn other_ranks_do_not_move_the_bar() {
    let (stdout, _) = child("1");
    assert!(stdout.contains("position=0 message="), "{stdout}");
}
