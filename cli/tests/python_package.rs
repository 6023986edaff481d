//! `trainlog show`, `ls`, `plot` and `serve` on runs written by the Python package (built
//! and installed by `python/ci.sh --install-only`, as a user installs it): its files are
//! the Rust API's.

mod support;

use std::path::Path;
use std::process::Command;

use support::{cli, output, request, serve};

/// The interpreter of the venv the package is installed in.
fn python_with_the_package() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new("bash")
        .arg(root.join("python/ci.sh"))
        .arg("--install-only")
        .output()
        .expect("running python/ci.sh (needs bash and python3 with venv)");
    assert!(
        out.status.success(),
        "python/ci.sh --install-only failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().unwrap().trim().to_owned()
}

/// `trainlog ARGS`' stdout, once it succeeded.
fn trainlog(args: &[&str]) -> String {
    let (ok, out, err) = output(cli().args(args));
    assert!(ok, "trainlog {args:?}: {err}");
    out
}

#[test]
fn the_command_line_reads_what_the_python_package_writes() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
import logging, trainlog
root = {root:?}
# The wandb-like API: a run directory with its status and parameters.
with trainlog.init(output_dir=root + "/wandb-like", config={{"lr": 0.01, "model": {{"layers": 4}}}}) as run:
    for step in range(1000):
        run.log({{"loss": 1.0 / (step + 1), "eval": {{"acc": step / 1000}}}}, step=step)
    run.log({{"loss": float("nan"), "weights": trainlog.Histogram([0.1 * i for i in range(50)])}}, step=1000)
# InstructLab's shape, a second pipeline after the first finished.
log = trainlog.setup_metric_logger("async", None, root + "/instructlab", sep=".")
log.info({{"lr": 0.02}}, extra={{"hparams": True}})
for step in range(500):
    log.info({{"loss": 2.0 / (step + 1)}}, extra={{"step": step}})
"#,
        root = dir.path().to_str().unwrap()
    );
    let out = Command::new(python_with_the_package())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = dir.path().join("wandb-like");
    let b = dir.path().join("instructlab");

    let show = trainlog(&["show", a.to_str().unwrap()]);
    assert!(show.contains("completed"), "{show}");
    assert!(
        show.contains("\"lr\": 0.01") && show.contains("\"layers\": 4"),
        "{show}"
    );
    let loss = show
        .lines()
        .find(|l| l.trim_start().starts_with("loss "))
        .unwrap();
    // count 1001 (the NaN included), one non-finite.
    let cells: Vec<&str> = loss.split_whitespace().collect();
    assert_eq!((cells[1], cells[cells.len() - 1]), ("1001", "1"), "{loss}");
    assert!(show.contains("weights.count"), "{show}");

    let ls = trainlog(&["ls", dir.path().to_str().unwrap()]);
    let rows: Vec<&str> = ls.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{ls}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("wandb-like") && r.contains("completed") && r.contains("1001")),
        "{ls}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("instructlab") && r.contains("500")),
        "{ls}"
    );

    let svg = dir.path().join("loss.svg");
    let said = trainlog(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--metric",
        "loss",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(
        said.trim(),
        format!("wrote {}: 1 charts, 2 lines", svg.display())
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(svg.matches("<g class=\"series\"").count(), 2);

    let server = serve(dir.path());
    let (status, runs) = request(&server, "GET", "/api/runs");
    assert_eq!(status, 200, "{runs}");
    let runs = runs.as_array().unwrap();
    let wandb_like = runs.iter().find(|r| r["name"] == "wandb-like").unwrap();
    assert_eq!(wandb_like["status"], "completed", "{wandb_like}");
    // Bucketed to 50 points: `request` reads plain bodies, and a long one comes chunked.
    let (status, s) = request(
        &server,
        "GET",
        "/api/scalars?run=wandb-like&metric=loss&points=50",
    );
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["total"], 1001, "{s}");
    assert_eq!(s["nonfinite"], 1, "{s}");
    let (_, s) = request(
        &server,
        "GET",
        "/api/scalars?run=instructlab&metric=loss&points=50",
    );
    assert_eq!(s["total"], 500, "{s}");
}
