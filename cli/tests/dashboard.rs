//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads `trainlog serve`'s page over real HTTP, driven over the DevTools
//! protocol by `tests/python/dashboard.py`. Skipped with a printed reason where Chromium is
//! missing, except under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/support/python.rs"]
mod python;
#[path = "../../tests/support/skip.rs"]
mod skip;
mod support;

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return Some(path.into());
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
}

/// A run the way trainlog writes one: `run.json` through the run API, and metrics lines
/// with a step, a time, a nested name, a histogram and, in `nan_at`, a NaN loss.
fn write_run(dir: &Path, name: &str, lr: f64, nan_at: Option<u64>) -> PathBuf {
    let path = dir.join(name);
    let run = trainlog::run::Run::builder().dir(&path).create().unwrap();
    run.start().unwrap();
    run.params()
        .set(&serde_json::json!({ "lr": lr, "batch_size": 32 }))
        .unwrap();
    let mut lines = String::new();
    for step in 0..3000u64 {
        let loss = 2.5 * (-(step as f64) * lr * 3000.0 / 300.0).exp() + 0.3;
        let loss = if Some(step) == nan_at {
            "\"NaN\"".to_owned()
        } else {
            loss.to_string()
        };
        let mut line = format!(
            "{{\"timestamp\":\"2026-01-01T00:{:02}:{:02}.000000Z\",\"rank\":0,\"step\":{step},\"loss\":{loss},\"train/acc\":{}",
            step / 60 % 60,
            step % 60,
            1.0 - 1.0 / (step + 2) as f64
        );
        if step % 100 == 0 {
            let spread = 0.1 + step as f64 / 3000.0;
            line.push_str(&format!(
                ",\"eval/loss\":{},\"weights\":{{\"count\":10,\"min\":{},\"max\":{spread},\"mean\":0.0,\"nan\":0,\"pos_inf\":0,\"neg_inf\":0,\"edges\":[{},{spread}],\"counts\":[10]}}",
                loss.trim_matches('"'),
                -spread,
                -spread
            ));
        }
        line.push_str("}\n");
        lines.push_str(&line);
    }
    let file = path.join("metrics_rank0.jsonl");
    std::fs::write(&file, lines).unwrap();
    file
}

#[test]
fn the_dashboard_lists_runs_draws_charts_and_draws_new_points_in_chromium() {
    let Some(chromium) = chromium() else {
        skip::skip(
            "the_dashboard_lists_runs_draws_charts_and_draws_new_points_in_chromium",
            "no Chromium here (`apt-get install chromium`, or set CHROMIUM to a Chrome binary)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), "sweep/lr-0.001", 0.001, None);
    let live = write_run(dir.path(), "sweep/lr-0.0003", 0.0003, Some(1234));
    // A second rank, shown apart when asked.
    std::fs::copy(&live, live.with_file_name("metrics_rank1.jsonl")).unwrap();
    let server = support::serve(dir.path());
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new(python::python("browser"))
        .arg(python::script("dashboard.py"))
        .arg(&chromium)
        .arg(format!("http://{}/", server.addr))
        .arg("sweep/lr-0.0003")
        .arg(&live)
        .arg(dir.path().join("new-run"))
        .arg(&shots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dashboard.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen:#}\nscreenshots in {}", shots.display());

    assert_eq!(seen["errors"], serde_json::json!([]), "console errors");
    let before = &seen["before"];
    assert_eq!(
        before["rows"],
        serde_json::json!(["sweep/lr-0.0003", "sweep/lr-0.001"])
    );
    // Every chart, grouped by prefix; a histogram as one distribution chart.
    for key in ["s:loss", "s:train/acc", "s:eval/loss", "h:weights"] {
        assert!(
            before["charts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == key),
            "{key}: {before}"
        );
    }
    assert!(before["drawn"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "s:loss"));
    assert!(
        before["inked"].as_u64().unwrap() > 500,
        "the canvas is drawn on: {before}"
    );
    assert_eq!(before["loss_max_x"], 2999);
    assert!(
        before["loss_title"].as_str().unwrap().contains("1 NaN/∞"),
        "the NaN is counted: {before}"
    );
    assert!(
        before["loss_foot"]
            .as_str()
            .unwrap()
            .contains("6,000 points"),
        "{before}"
    );
    // The new points are drawn within two seconds of being written.
    let after = &seen["after"];
    let appended = seen["appended_step"].as_u64().unwrap();
    assert_eq!(after["loss_last_step"]["sweep/lr-0.0003"], appended);
    let took = seen["drawn_after_seconds"]
        .as_f64()
        .expect("the new points were drawn");
    assert!(took < 2.0, "drawn {took} s after being written");
    let tooltip = seen["tooltip"].as_str().expect("a tooltip on hover");
    assert!(
        tooltip.contains("sweep/lr-0.001") && tooltip.contains("sweep/lr-0.0003"),
        "{tooltip}"
    );
    // Zoomed on a fifth of the steps: that window comes whole (no buckets).
    let zoomed = &seen["zoomed"];
    assert!(zoomed["zoom"]["from"].as_f64().unwrap() > 500.0, "{zoomed}");
    assert_eq!(zoomed["bucketed"], false, "{zoomed}");
    assert!(
        zoomed["foot"].as_str().unwrap().contains("zoomed"),
        "{zoomed}"
    );
    let window = zoomed["totals"][0].as_u64().unwrap();
    assert!((100..2000).contains(&window), "{zoomed}");
    assert_eq!(zoomed["points"][0], window, "every point of the window");
    // Relative time starts near 0 (the runs' first line is at 00:00:00); wall time is
    // 2026's Unix seconds; steps end at the last one.
    let axes = &seen["axes"];
    assert!(axes["relative"][0].as_f64().unwrap().abs() < 1.0, "{axes}");
    assert!(axes["wall"][0].as_f64().unwrap() > 1.7e9, "{axes}");
    assert_eq!(seen["logy_distr"], 3);
    assert_eq!(
        seen["ranks"],
        serde_json::json!([
            "sweep/lr-0.0003 · rank 0",
            "sweep/lr-0.0003 · rank 1",
            "sweep/lr-0.001"
        ])
    );
    assert!(
        seen["new_run_seconds"].as_f64().is_some_and(|s| s < 2.0),
        "a new run is listed without a reload: {}",
        seen["rows_at_end"]
    );
    assert!(shots.join("dashboard.png").is_file());
}
