//! The `trainlog` command line against real run directories: the example's output and
//! runs made with the run API.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use tracing_subscriber::prelude::*;
use trainlog::run::Run;

mod support;
use support::{cli, output};

/// The example binary cargo builds beside the tests.
fn train_loop() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_trainlog"));
    let example = bin.parent().unwrap().join("examples/train_loop");
    assert!(
        example.exists(),
        "build the examples first: {}",
        example.display()
    );
    example
}

fn run_example(dir: &Path, rank: u32, steps: u32) {
    let status = Command::new(train_loop())
        .args([
            "--output-dir",
            dir.to_str().unwrap(),
            "--steps",
            &steps.to_string(),
            "--quiet",
        ])
        .env("RANK", rank.to_string())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn export_merges_all_ranks_into_one_csv_table() {
    let dir = tempfile::tempdir().unwrap();
    run_example(dir.path(), 0, 20);
    run_example(dir.path(), 1, 20);
    let csv_path = dir.path().join("out.csv");
    let (ok, _, err) = output(cli().args([
        "export",
        dir.path().to_str().unwrap(),
        "--format",
        "csv",
        "-o",
        csv_path.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..4], &["run", "rank", "step", "timestamp"]);
    for column in ["loss", "lr", "eval.acc", "eval.loss", "grad.norm"] {
        assert!(header.contains(&column), "{header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 40, "20 steps × 2 ranks, hparams lines left out");
    assert!(rows.iter().all(|r| r.len() == header.len()));
    // Sorted by step, then rank; values equal the JSONL files'.
    let loss_col = header.iter().position(|c| *c == "loss").unwrap();
    let jsonl = trainlog::run::read_jsonl(&dir.path().join("metrics_rank1.jsonl")).unwrap();
    let step7 = jsonl.iter().find(|l| l["step"] == 7).unwrap();
    let row = rows.iter().find(|r| r[1] == "1" && r[2] == "7").unwrap();
    assert_eq!(
        row[loss_col].parse::<f64>().unwrap(),
        step7["loss"].as_f64().unwrap()
    );
    assert_eq!(
        (rows[0][1], rows[0][2], rows[1][1], rows[1][2]),
        ("0", "0", "1", "0")
    );
    let run_name = dir.path().file_name().unwrap().to_str().unwrap();
    assert!(rows.iter().all(|r| r[0] == run_name));

    let (ok, jsonl_out, _) =
        output(cli().args(["export", dir.path().to_str().unwrap(), "--format", "jsonl"]));
    assert!(ok);
    let first: serde_json::Value = serde_json::from_str(jsonl_out.lines().next().unwrap()).unwrap();
    assert_eq!(first["rank"], 0);
    assert_eq!(first["step"], 0);
    assert_eq!(
        first["run"],
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    assert!(first.get("eval.acc").is_some());
}

#[test]
fn ls_and_show_report_status_params_and_metric_summaries() {
    let root = tempfile::tempdir().unwrap();
    let run = Run::builder()
        .root(root.path())
        .namespace("alice")
        .workspace("mnist")
        .prefix("exp-1")
        .create()
        .unwrap();
    let (layer, guard) = run.logger().rank(0).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        run.scope(|run| -> trainlog::Result<()> {
            run.params()
                .set(&json!({"lr": 0.01, "model": {"layers": 4}}))?;
            run.params().update("model.layers", 6)?;
            for step in 0..10u64 {
                run.metrics("train")
                    .log(step, &json!({"loss": 10.0 - step as f64}));
            }
            Ok(())
        })
        .unwrap();
    });
    drop(guard);
    let failed = Run::builder()
        .root(root.path())
        .namespace("alice")
        .workspace("mnist")
        .prefix("exp-2")
        .create()
        .unwrap();
    failed.start().unwrap();
    failed.fail("diverged").unwrap();

    let (ok, ls, err) = output(cli().args(["ls", root.path().to_str().unwrap()]));
    assert!(ok, "{err}");
    let line1 = ls
        .lines()
        .find(|l| l.starts_with("alice/mnist/exp-1"))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        line1.contains("completed") && line1.contains(" 10 ") && line1.contains("train.loss=1.000"),
        "{line1}"
    );
    let line2 = ls
        .lines()
        .find(|l| l.starts_with("alice/mnist/exp-2"))
        .unwrap();
    assert!(line2.contains("failed"), "{line2}");

    let (ok, show, err) = output(cli().args(["show", run.dir().to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(show.contains("status   completed"), "{show}");
    assert!(show.contains("\"layers\": 6"), "{show}");
    let summary = show
        .lines()
        .find(|l| l.trim_start().starts_with("train.loss"))
        .unwrap();
    let cells: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(cells, ["train.loss", "10", "1.000", "10.000", "1.000", "0"]);
    let (_, show2, _) = output(cli().args(["show", failed.dir().to_str().unwrap()]));
    assert!(show2.contains("error    diverged"), "{show2}");
}

#[test]
fn tail_formats_records_and_follows_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics_rank0.jsonl");
    std::fs::write(
        &path,
        "{\"timestamp\":\"t\",\"rank\":0,\"step\":1,\"loss\":0.25,\"lr\":0.0003}\n",
    )
    .unwrap();
    let (ok, out, _) = output(cli().args(["tail", path.to_str().unwrap()]));
    assert!(ok);
    assert_eq!(out, "step=1, loss=0.250, lr=3.00e-4\n");

    let mut child = cli()
        .args(["tail", "-f", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "step=1, loss=0.250, lr=3.00e-4"
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // A line written in two parts is shown once it is complete.
    f.write_all(b"{\"timestamp\":\"t\",\"rank\":0,\"step\":2,")
        .unwrap();
    f.flush().unwrap();
    // Wait until tail has read past the half line: it reads every rank's file in rank
    // order each round, so once two lines of a rank-1 file written after it are shown, a
    // whole round has seen the half line (and from then on lines name their rank).
    let rank1 = dir.path().join("metrics_rank1.jsonl");
    for (step, shown) in [(1, "[rank 1] step=1, x=1"), (2, "[rank 1] step=2, x=1")] {
        let mut r1 = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&rank1)
            .unwrap();
        writeln!(r1, "{{\"step\":{step},\"x\":1}}").unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), shown);
    }
    f.write_all(b"\"loss\":0.125}\n").unwrap();
    let next = lines.next().unwrap().unwrap();
    assert_eq!(next, "[rank 0] step=2, loss=0.125");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn unreadable_input_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("metrics_rank0.jsonl"),
        "{\"step\":0,\"loss\":1}\n{\"step\":1,\"loss\":\n{\"step\":2,\"loss\":3}\n",
    )
    .unwrap();
    // A bad line is skipped and named; the run's other lines are still read.
    let (ok, out, err) = output(cli().args(["show", dir.path().to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        err.contains("metrics_rank0.jsonl:2: skipped a line that is not a JSON object"),
        "{err}"
    );
    let loss = out
        .lines()
        .find(|l| l.trim_start().starts_with("loss"))
        .unwrap();
    assert!(loss.contains(" 2 "), "two points of loss: {loss}");
    let (ok, csv, err) = output(cli().args(["export", dir.path().to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(
        err.contains("metrics_rank0.jsonl:2: skipped a line that is not a JSON object"),
        "{err}"
    );
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and the two good rows: {csv}"
    );
    let (ok, _, err) = output(cli().args(["show", dir.path().join("missing").to_str().unwrap()]));
    assert!(!ok);
    assert!(err.contains("is not a run directory"), "{err}");
    let (ok, _, err) = output(cli().args(["frobnicate"]));
    assert!(
        !ok && err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
}

/// Okabe–Ito, the order series are drawn in.
const SERIES_COLORS: [[u8; 3]; 3] = [[0, 114, 178], [230, 159, 0], [0, 158, 115]];

/// A PNG's size and RGBA pixels.
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// Pixels that are `color` blended with the white background: a fraction t of the way
/// to white, 0 < t < 1, in every channel alike (what antialiasing leaves along a line).
fn blends_of(pixels: &[u8], color: [u8; 3]) -> usize {
    pixels
        .chunks(4)
        .filter(|p| {
            let t: Vec<f64> = (0..3)
                .filter(|&i| color[i] < 250)
                .map(|i| (p[i] as f64 - color[i] as f64) / (255.0 - color[i] as f64))
                .collect();
            let (lo, hi) = t
                .iter()
                .fold((1.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            lo > 0.1 && hi < 0.9 && hi - lo < 0.08
        })
        .count()
}

#[test]
fn plot_writes_svg_and_png_with_one_line_per_run_and_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("run-a"), dir.path().join("run-b"));
    run_example(&a, 0, 60);
    run_example(&a, 1, 60);
    run_example(&b, 0, 80);

    let svg_path = dir.path().join("cmp.svg");
    let (ok, out, err) = output(cli().args([
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--metric",
        "loss",
        "--metric",
        "lr",
        "-o",
        svg_path.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("wrote {}: 2 charts, 6 lines", svg_path.display())
    );
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
            && svg.trim_end().ends_with("</svg>")
    );
    assert_eq!(svg.matches("<g class=\"series\"").count(), 6);
    for label in ["run-a rank 0", "run-a rank 1", "run-b rank 0"] {
        assert_eq!(
            svg.matches(&format!("data-label=\"{label}\"")).count(),
            2,
            "{label}"
        );
    }
    // run-b's loss line has a point per step: 80 coordinate pairs.
    let group = svg
        .lines()
        .position(|l| l.contains("data-label=\"run-b rank 0\""))
        .unwrap();
    let line = svg.lines().nth(group + 1).unwrap();
    let points = line
        .split("points=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches("\"/>");
    assert_eq!(points.split(' ').count(), 80);
    assert!(svg.len() > 5_000, "{} bytes", svg.len());

    let png_path = dir.path().join("cmp.png");
    let (ok, out, err) = output(cli().args([
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        png_path.to_str().unwrap(),
    ]));
    assert!(ok, "{err}");
    assert!(out.contains(": 3 charts, 9 lines"), "{out}");
    let (width, height, pixels) = read_png(&png_path);
    assert_eq!(width, 960);
    assert!(
        (900..1300).contains(&height),
        "three charts stacked: {height}"
    );
    let present = |c: [u8; 3]| pixels.chunks(4).filter(|p| p[..3] == c).count();
    for color in SERIES_COLORS {
        // The legend swatches at least, in the exact colour.
        assert!(present(color) > 50, "series colour {color:?} drawn");
        // Antialiased edges: the colour blended with the background.
        assert!(blends_of(&pixels, color) > 50, "{color:?} antialiased");
    }
    // Antialiased text: greys between the text colour and white.
    let greys = pixels
        .chunks(4)
        .filter(|p| p[0] == p[1] && p[1] == p[2] && (60..200).contains(&p[0]))
        .count();
    assert!(greys > 500, "{greys} grey pixels");
    assert!(std::fs::metadata(&png_path).unwrap().len() > 5_000);

    let (ok, _, err) = output(cli().args([
        "plot",
        a.to_str().unwrap(),
        "--metric",
        "nope",
        "-o",
        "x.png",
    ]));
    assert!(!ok && err.contains("no run has values of `nope`"), "{err}");
}

/// Writes `lines` as a run's `metrics_rank0.jsonl` under `dir/name` and returns the run.
fn raw_run(dir: &Path, name: &str, lines: &[serde_json::Value]) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(run.join("metrics_rank0.jsonl"), text).unwrap();
    run
}

#[test]
fn ls_and_show_report_nan_as_the_last_value_and_count_non_finite_points() {
    let dir = tempfile::tempdir().unwrap();
    let t = "2026-11-24T07:40:31.000000Z";
    let run = raw_run(
        dir.path(),
        "diverged",
        &[
            json!({"timestamp": t, "rank": 0, "step": 0, "loss": 2.0, "bad": "NaN"}),
            json!({"timestamp": t, "rank": 0, "step": 1, "loss": 1.0, "bad": "Infinity"}),
            json!({"timestamp": t, "rank": 0, "step": u64::MAX, "loss": "NaN", "bad": "NaN"}),
        ],
    );
    let (ok, out, err) = output(cli().arg("ls").arg(dir.path()));
    assert!(ok, "{err}");
    assert!(out.contains("loss=NaN (1 non-finite)"), "{out}");
    assert!(out.contains("18446744073709551615"), "{out}");
    let (ok, out, err) = output(cli().arg("show").arg(&run));
    assert!(ok, "{err}");
    let loss = out
        .lines()
        .find(|l| l.trim_start().starts_with("loss"))
        .unwrap();
    let cells: Vec<&str> = loss.split_whitespace().collect();
    assert_eq!(cells, ["loss", "3", "1.000", "2.000", "NaN", "1"], "{out}");
    // A metric with no finite point at all is still listed.
    let bad = out
        .lines()
        .find(|l| l.trim_start().starts_with("bad"))
        .unwrap();
    let cells: Vec<&str> = bad.split_whitespace().collect();
    assert_eq!(cells, ["bad", "3", "-", "-", "NaN", "3"], "{out}");
}

#[test]
fn show_and_compare_print_integers_whole_and_an_exact_zero_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let hist = |count: u64| {
        json!({"edges": [0.0, 1.0], "counts": [count], "count": count, "min": 0.0,
               "max": 1.0, "mean": 0.5, "nan": 0, "pos_inf": 0, "neg_inf": 0})
    };
    let run = raw_run(
        dir.path(),
        "counts",
        &[
            json!({"step": 0, "tokens": 1024, "loss": 0.0, "h": hist(1024)}),
            json!({"step": 1, "tokens": 2048, "loss": 1.0, "h": hist(4096)}),
        ],
    );
    let (ok, out, err) = output(cli().arg("show").arg(&run));
    assert!(ok, "{err}");
    let row = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("tokens"), ["tokens", "2", "1024", "2048", "2048", "0"]);
    assert_eq!(
        row("h.count"),
        ["h.count", "2", "1024", "4096", "4096", "0"]
    );
    // A float metric keeps its decimals; its exact zero is `0`.
    assert_eq!(row("loss"), ["loss", "2", "0", "1.000", "1.000", "0"]);
    let (ok, out, err) = output(cli().arg("compare").arg(&run).arg(&run));
    assert!(ok, "{err}");
    assert!(!out.contains("e3"), "{out}");
}

/// The command line run as a user without root's right to read any directory: as
/// `nobody` through `setpriv` when the tests run as root (CI does), else as the user.
#[cfg(unix)]
fn cli_unprivileged() -> Command {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_trainlog"));
        cmd
    } else {
        Command::new(env!("CARGO_BIN_EXE_trainlog"))
    };
    cmd.env("NO_COLOR", "1");
    cmd
}

#[cfg(unix)]
#[test]
fn an_unreadable_run_directory_is_reported_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(dir.path(), 0o755);
    let line = [json!({"step": 0, "loss": 1.0})];
    let ok = raw_run(dir.path(), "ok", &line);
    let locked = raw_run(dir.path(), "locked", &line);
    mode(&ok, 0o755);
    mode(&ok.join("metrics_rank0.jsonl"), 0o644);
    mode(&locked, 0o000);
    let (ran, out, err) = output(cli_unprivileged().arg("ls").arg(dir.path()));
    assert!(ran, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("locked"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("unreadable") && row.contains("cannot read it: permission denied"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("ok ")), "{out}");
    let (ran, _, err) = output(cli_unprivileged().arg("show").arg(&locked));
    assert!(!ran);
    assert!(
        err.contains("locked: cannot read it: permission denied"),
        "{err}"
    );
    mode(&locked, 0o755);
}

#[test]
fn names_are_escaped_alike_and_columns_count_display_width() {
    let dir = tempfile::tempdir().unwrap();
    let run = raw_run(
        dir.path(),
        "names",
        &[
            json!({"step": 0, "red\u{1b}[31m": 1.0, "損失": 2.0, "a<b&c": 3.0, "plain": 4.0}),
            json!({"step": 1, "red\u{1b}[31m": 1.5, "損失": 2.5, "a<b&c": 3.5, "plain": 4.5}),
        ],
    );
    let (ok, out, err) = output(cli().arg("show").arg(&run));
    assert!(ok, "{err}");
    assert!(
        !out.contains('\u{1b}'),
        "no escape sequence reaches the terminal: {out:?}"
    );
    assert!(out.contains("red\\u{1b}[31m"), "{out}");
    // The count column starts at the same terminal column on every metric row.
    let column_of_count = |name: &str| {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap();
        let at = line.find(" 2 ").unwrap();
        unicode_width::UnicodeWidthStr::width(&line[..at])
    };
    let plain = column_of_count("plain");
    assert_eq!(column_of_count("損失"), plain, "{out}");
    assert_eq!(column_of_count("red"), plain, "{out}");
    let (ok, out, err) = output(cli().arg("compare").arg(&run).arg(&run));
    assert!(ok, "{err}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    // The chart's SVG stays XML: no control character, markup characters escaped.
    let svg = dir.path().join("names.svg");
    let (ok, _, err) = output(
        cli()
            .arg("plot")
            .arg(&run)
            .args(["-m", "red\u{1b}[31m", "-m", "a<b&c", "-m", "損失", "-o"])
            .arg(&svg),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
    assert!(
        text.contains("a&lt;b&amp;c") && text.contains("損失"),
        "{text}"
    );
    assert!(text.contains("red\\u{1b}[31m"), "{text}");
}

#[test]
fn show_and_compare_say_which_rank_their_metrics_are_from() {
    let dir = tempfile::tempdir().unwrap();
    let run = raw_run(
        dir.path(),
        "two",
        &[
            json!({"rank": 0, "step": 0, "loss": 2.0}),
            json!({"rank": 0, "step": 1, "loss": 1.0}),
        ],
    );
    std::fs::write(
        run.join("metrics_rank1.jsonl"),
        "{\"rank\":1,\"step\":0,\"loss\":4.0}\n{\"rank\":1,\"step\":1,\"loss\":3.0}\n{\"rank\":1,\"step\":2,\"loss\":2.5}\n",
    )
    .unwrap();
    let loss_cells = |out: &str| -> Vec<Vec<String>> {
        out.lines()
            .filter(|l| l.split_whitespace().next() == Some("loss"))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    // Rank 0 by default, and said so; not the two ranks' points mixed.
    let (ok, out, err) = output(cli().arg("show").arg(&run));
    assert!(ok, "{err}");
    assert!(out.contains("ranks    0, 1 (metrics of rank 0"), "{out}");
    assert_eq!(
        loss_cells(&out),
        [["loss", "2", "1.000", "2.000", "1.000", "0"]]
    );
    let (ok, out, err) = output(cli().arg("show").arg(&run).args(["--rank", "1"]));
    assert!(ok, "{err}");
    assert_eq!(
        loss_cells(&out),
        [["loss", "3", "2.500", "4.000", "2.500", "0"]]
    );
    let (ok, out, err) = output(cli().arg("show").arg(&run).args(["--rank", "all"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("metrics (rank 0)") && out.contains("metrics (rank 1)"),
        "{out}"
    );
    assert_eq!(loss_cells(&out).len(), 2, "{out}");
    let (ok, _, err) = output(cli().arg("show").arg(&run).args(["--rank", "5"]));
    assert!(
        !ok && err.contains("has no rank 5 (its ranks: 0, 1)"),
        "{err}"
    );
    let (ok, out, err) = output(cli().arg("show").arg(&run).arg("--json"));
    assert!(ok, "{err}");
    let json: Json = serde_json::from_str(&out).unwrap();
    assert_eq!((&json["rank"], &json["ranks"]), (&json!(0), &json!([0, 1])));
    assert_eq!(json["metrics"]["loss"]["count"], 2);
    // Compare: a rank row, and with --rank all a column per run and rank.
    let (ok, out, err) = output(cli().arg("compare").arg(&run).arg(&run));
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rank", "0", "0"]),
        "{out}"
    );
    let (ok, out, err) = output(
        cli()
            .arg("compare")
            .arg(&run)
            .arg(&run)
            .args(["--rank", "all"]),
    );
    assert!(ok, "{err}");
    let head = out.lines().next().unwrap();
    assert_eq!(head.matches("rank 0").count(), 2, "{out}");
    assert_eq!(head.matches("rank 1").count(), 2, "{out}");
}

#[test]
fn ls_on_a_run_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = raw_run(dir.path(), "solo", &[json!({"step": 0, "loss": 1.0})]);
    let (ok, out, err) = output(cli().arg("ls").arg(".").current_dir(&run));
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("solo ")), "{out}");
}

#[test]
fn plot_breaks_svg_lines_at_nan_marks_lone_points_and_refuses_all_nan() {
    let dir = tempfile::tempdir().unwrap();
    let t = "2026-11-24T07:40:31.000000Z";
    let loss = [1.0, 0.9, f64::NAN, 0.7, 0.6, f64::NAN, 0.4];
    let lines: Vec<serde_json::Value> = loss
        .iter()
        .enumerate()
        .map(|(step, &v)| {
            let v = if v.is_nan() { json!("NaN") } else { json!(v) };
            json!({"timestamp": t, "rank": 0, "step": step, "loss": v, "bad": "NaN"})
        })
        .collect();
    let run = raw_run(dir.path(), "gaps", &lines);
    let svg = dir.path().join("gaps.svg");
    let (ok, _, err) = output(
        cli()
            .args(["plot", "--metric", "loss", "-o"])
            .arg(&svg)
            .arg(&run),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    // Steps 0-1 and 3-4 are lines; step 6 stands alone between a NaN and the end.
    assert_eq!(text.matches("<polyline").count(), 2, "{text}");
    assert_eq!(text.matches("<circle class=\"point\"").count(), 1, "{text}");
    let (ok, out, err) = output(
        cli()
            .args(["plot", "--metric", "bad", "-o"])
            .arg(dir.path().join("bad.svg"))
            .arg(&run),
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("`bad` has nothing to draw: all of its 7 points are NaN or infinite"),
        "{err}"
    );
}

#[test]
fn the_demo_fails_at_a_step_with_a_non_zero_exit_and_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(train_loop())
        .args([
            "--output-dir",
            dir.path().to_str().unwrap(),
            "--steps",
            "50",
            "--quiet",
        ])
        .args(["--fail-at", "20"])
        .env("RANK", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("simulated failure at step 20"), "{err}");
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    let steps: Vec<u64> = lines.iter().filter_map(|l| l["step"].as_u64()).collect();
    assert_eq!(steps, (0..20).collect::<Vec<_>>());
}

#[test]
fn show_and_ls_report_tags_and_results() {
    let root = tempfile::tempdir().unwrap();
    let make = |prefix: &str| {
        Run::builder()
            .root(root.path())
            .namespace("bob")
            .workspace("qa")
            .prefix(prefix)
            .create()
            .unwrap()
    };
    let with = make("with-results");
    with.tags().set("stage", "sft").unwrap();
    with.result("final_accuracy", 0.945, &json!({"dataset": "test"}))
        .unwrap();
    let _without = make("plain");
    let (ok, ls, err) = output(cli().args(["ls", root.path().to_str().unwrap()]));
    assert!(ok, "{err}");
    let header = ls.lines().next().unwrap();
    assert!(header.contains("RESULTS"), "{ls}");
    let line = ls
        .lines()
        .find(|l| l.starts_with("bob/qa/with-results"))
        .unwrap();
    assert!(line.contains("final_accuracy=0.945"), "{ls}");
    let plain = ls.lines().find(|l| l.starts_with("bob/qa/plain")).unwrap();
    assert!(plain.contains(" - "), "{ls}");
    let (ok, show, err) = output(cli().args(["show", with.dir().to_str().unwrap()]));
    assert!(ok, "{err}");
    assert!(show.contains("tags     stage=sft"), "{show}");
    let result = show
        .lines()
        .find(|l| l.trim_start().starts_with("final_accuracy"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(
        result.contains("0.945") && result.contains(r#"{"dataset":"test"}"#),
        "{show}"
    );
}

#[test]
fn export_has_one_row_per_final_result() {
    let root = tempfile::tempdir().unwrap();
    let run = Run::builder()
        .root(root.path())
        .prefix("exported")
        .create()
        .unwrap();
    let (layer, guard) = run.logger().rank(0).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in 0..3u64 {
            tracing::info!(target: "metrics", step, loss = 1.0);
        }
        // Logged to the metrics file and kept in run.json: exported once.
        run.result("final_accuracy", 0.9, &json!({"dataset": "test"}))
            .unwrap();
        run.result("final_accuracy", 0.945, &json!({"dataset": "test"}))
            .unwrap();
    });
    drop(guard);
    // Kept in run.json only (no logger any more).
    run.result("final_loss", f64::NAN, &()).unwrap();
    let dir = run.dir().to_str().unwrap();
    let (ok, out, err) = output(cli().args(["export", dir, "--format", "jsonl"]));
    assert!(ok, "{err}");
    let rows: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let results: Vec<&Json> = rows.iter().filter(|r| r["event"] == "result").collect();
    assert_eq!(results.len(), 2, "{out}");
    assert_eq!(results[0]["final_accuracy"], 0.945);
    assert_eq!(results[0]["metadata.dataset"], "test");
    assert_eq!(results[1]["final_loss"], "NaN");
    assert_eq!(rows.iter().filter(|r| r["loss"] == 1.0).count(), 3);
    let (ok, csv, err) = output(cli().args(["export", dir]));
    assert!(ok, "{err}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "final_accuracy").unwrap();
    let values: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap_or(""))
        .filter(|v| !v.is_empty())
        .collect();
    assert_eq!(values, ["0.945"], "{csv}");
}

#[test]
fn every_command_has_help_with_examples_and_the_binary_a_version() {
    let commands = [
        "ls",
        "show",
        "compare",
        "tail",
        "export",
        "plot",
        "sync",
        "completions",
    ];
    let (ok, help, err) = output(cli().arg("--help"));
    assert!(ok, "{err}");
    for command in commands {
        assert!(
            help.contains(&format!("  {command}")),
            "{command} in\n{help}"
        );
        let (ok, out, err) = output(cli().args([command, "--help"]));
        assert!(ok, "{command} --help: {err}");
        assert!(out.contains("Examples:"), "{command} --help:\n{out}");
    }
    let (ok, out, _) = output(cli().arg("--version"));
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("trainlog {}", env!("CARGO_PKG_VERSION"))
    );
    let (ok, out, err) = output(cli().args(["completions", "bash"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("_trainlog") && out.contains("compare"),
        "{out}"
    );
    // Errors name the bad argument and exit with clap's usage code.
    let out = cli().args(["show", "--bogus", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bogus'"));
    let (ok, _, err) = output(cli().args(["plot", "x", "-o", "a.png", "--smooth", "1.5"]));
    assert!(!ok && err.contains("1.5 is outside 0 ≤ W < 1"), "{err}");
    // `export A B` uses both; a directory that is not a run is named.
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = output(
        cli()
            .arg("export")
            .arg(dir.path())
            .arg(dir.path().join("nope")),
    );
    assert!(!ok && err.contains("is not a run directory"), "{err}");
}

/// The last value of `metric` in a run's rank-0 file.
fn last_value(run: &Path, metric: &str) -> f64 {
    let lines = trainlog::jsonl::read(&run.join("metrics_rank0.jsonl")).unwrap();
    lines.iter().rev().find_map(|l| l[metric].as_f64()).unwrap()
}

#[test]
fn compare_shows_the_params_that_differ_and_each_runs_final_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("short"), dir.path().join("long"));
    run_example(&a, 0, 30);
    run_example(&b, 0, 50);
    let (ok, out, err) = output(cli().arg("compare").arg(&a).arg(&b));
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap();
    assert!(header.contains("short") && header.contains("long"), "{out}");
    let steps = out
        .lines()
        .find(|l| l.trim_start().starts_with("steps") && l.starts_with("  "))
        .unwrap_or_else(|| panic!("no steps param row:\n{out}"));
    assert_eq!(
        steps.split_whitespace().collect::<Vec<_>>(),
        ["steps", "30", "50"]
    );
    // Equal params (lr, batch_size, seed, ...) are folded away.
    assert!(
        out.contains("(5 equal, --all-params to list them)"),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.trim_start().starts_with("batch_size")),
        "{out}"
    );
    let section = out
        .find("loss (best = min)")
        .unwrap_or_else(|| panic!("{out}"));
    let last = out[section..]
        .lines()
        .find(|l| l.trim_start().starts_with("last"))
        .unwrap();
    let fmt = trainlog::format::format_float;
    assert_eq!(
        last.split_whitespace().collect::<Vec<_>>(),
        [
            "last",
            &fmt(last_value(&a, "loss")),
            &fmt(last_value(&b, "loss"))
        ],
        "{out}"
    );
    // The longer run has the lower loss: its best is marked.
    let best = out[section..]
        .lines()
        .find(|l| l.trim_start().starts_with("best"))
        .unwrap();
    assert!(best.trim_end().ends_with('*'), "{best}");

    let (ok, json, err) = output(cli().arg("compare").arg(&a).arg(&b).arg("--json"));
    assert!(ok, "{err}");
    let json: Json = serde_json::from_str(&json).unwrap();
    assert_eq!(json["runs"], json!(["short", "long"]));
    assert_eq!(json["params"]["differ"]["steps"], json!([30, 50]));
    assert_eq!(json["params"]["equal"]["batch_size"], 32);
    let loss = &json["metrics"]["loss"];
    assert_eq!(loss["best"], "min");
    assert_eq!(loss["runs"][0]["last"], last_value(&a, "loss"));
    assert_eq!(loss["runs"][1]["last"], last_value(&b, "loss"));
    assert_eq!(loss["runs"][1]["count"], 50);
    // --best overrides the direction.
    let (ok, json, _) = output(
        cli()
            .arg("compare")
            .arg(&a)
            .arg(&b)
            .args(["--json", "--best", "max:loss"]),
    );
    assert!(ok);
    let json: Json = serde_json::from_str(&json).unwrap();
    assert_eq!(json["metrics"]["loss"]["best"], "max");
    let (ok, _, err) = output(
        cli()
            .arg("compare")
            .arg(&a)
            .arg(&b)
            .args(["--best", "top:loss"]),
    );
    assert!(!ok && err.contains("expected min or max"), "{err}");
}

#[test]
fn ls_filters_by_status_sorts_by_start_and_speaks_json() {
    let root = tempfile::tempdir().unwrap();
    let make = |prefix: &str| {
        Run::builder()
            .root(root.path())
            .prefix(prefix)
            .create()
            .unwrap()
    };
    // Started in this order; names in the opposite order.
    let first = make("zz-first");
    first.start().unwrap();
    first.complete().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let second = make("aa-second");
    second.start().unwrap();
    second.fail("out of memory").unwrap();
    let (ok, out, err) = output(cli().arg("ls").arg(root.path()));
    assert!(ok, "{err}");
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default/default/zz-first", "default/default/aa-second"],
        "{out}"
    );
    let (ok, out, _) = output(
        cli()
            .arg("ls")
            .arg(root.path())
            .args(["--status", "failed"]),
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.contains("aa-second") && !out.contains("zz-first"),
        "{out}"
    );
    let (ok, out, _) = output(cli().arg("ls").arg(root.path()).arg("--json"));
    assert!(ok);
    let runs: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[1]["status"], "failed");
    assert_eq!(runs[1]["run"], "default/default/aa-second");
    let (ok, out, _) = output(cli().arg("show").arg(second.dir()).arg("--json"));
    assert!(ok);
    let shown: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["error"], "out of memory");
    assert_eq!(shown["status"], "failed");
}

#[test]
fn tail_starts_with_the_last_n_and_follows_rank_files_created_later() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..10)
        .map(|s| format!("{{\"step\":{s},\"loss\":{s}}}\n"))
        .collect();
    std::fs::write(dir.path().join("metrics_rank0.jsonl"), lines).unwrap();
    let (ok, out, err) = output(cli().arg("tail").args(["-n", "3"]).arg(dir.path()));
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["step=7, loss=7", "step=8, loss=8", "step=9, loss=9"]
    );
    let mut child = cli()
        .arg("tail")
        .args(["-f", "-n", "1"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "step=9, loss=9");
    // A rank that starts writing after tail started; from then on lines name their rank.
    std::fs::write(
        dir.path().join("metrics_rank1.jsonl"),
        "{\"step\":0,\"loss\":5}\n",
    )
    .unwrap();
    let started = Instant::now();
    assert_eq!(out.next().unwrap().unwrap(), "[rank 1] step=0, loss=5");
    assert!(started.elapsed() < Duration::from_secs(10));
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn tail_skips_bad_lines_shows_histogram_statistics_and_follows_a_file_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics_rank0.jsonl");
    let mut text = b"{\"step\":0,\"loss\":1}\n{\"step\":1,\"loss\":\xff}\n".to_vec();
    text.extend_from_slice(
        b"{\"step\":2,\"h\":{\"edges\":[0,1],\"counts\":[3],\"count\":3,\"min\":0.0,\"max\":1.0,\"mean\":0.5,\"nan\":0,\"pos_inf\":0,\"neg_inf\":0}}\n",
    );
    std::fs::write(&path, &text).unwrap();
    let (ok, out, err) = output(cli().arg("tail").arg(&path));
    assert!(ok, "{err}");
    assert!(
        err.contains("metrics_rank0.jsonl:2: skipped a line"),
        "{err}"
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "step=0, loss=1",
            "step=2, h.count=3, h.max=1.000, h.mean=0.500, h.min=0, h.nonfinite=0"
        ]
    );

    let mut child = cli()
        .args(["tail", "-f", "-n", "0"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Truncated and written again (a run restarted in place), then deleted and created
    // anew: each time read from its start, as `tail -F` does.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&path, "{\"step\":10,\"loss\":0.5}\n").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "step=10, loss=0.500");
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&path, "{\"step\":20,\"loss\":0.25}\n").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "step=20, loss=0.250");
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn export_puts_several_runs_in_one_table_with_a_run_column() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_example(&a, 0, 5);
    run_example(&b, 0, 7);
    let (ok, csv, err) = output(cli().arg("export").arg(&a).arg(&b));
    assert!(ok, "{err}");
    let runs: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(runs.iter().filter(|r| **r == "a").count(), 5);
    assert_eq!(runs.iter().filter(|r| **r == "b").count(), 7);
}

#[test]
fn plot_smooths_like_tensorboard_and_draws_log_and_time_axes() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    run_example(&run, 0, 200);
    let svg = dir.path().join("smooth.svg");
    let (ok, _, err) = output(
        cli()
            .arg("plot")
            .arg(&run)
            .args(["-m", "loss", "--smooth", "0.6", "-o"])
            .arg(&svg),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    // The raw line, faint, then the smoothed one.
    assert_eq!(text.matches("<g class=\"series\"").count(), 2, "{text}");
    assert!(text.contains("stroke-opacity=\"0.25\""), "{text}");
    assert!(text.contains("(smoothed 0.6)"));
    for (flags, expect) in [
        (&["--log-y"][..], "1e-4"),
        (&["--x", "relative"][..], "relative time (s)"),
        (&["--x", "wall"][..], "wall time (UTC)"),
    ] {
        let out_path = dir.path().join("axis.svg");
        let (ok, _, err) = output(
            cli()
                .arg("plot")
                .arg(&run)
                .args(["-m", "lr"])
                .args(flags)
                .arg("-o")
                .arg(&out_path),
        );
        assert!(ok, "{flags:?}: {err}");
        let text = std::fs::read_to_string(&out_path).unwrap();
        assert!(text.contains(expect), "{flags:?}: {expect} missing");
    }
}

#[test]
fn colour_follows_clicolor_force_and_no_color() {
    let root = tempfile::tempdir().unwrap();
    let run = Run::builder()
        .root(root.path())
        .prefix("c")
        .create()
        .unwrap();
    run.start().unwrap();
    run.complete().unwrap();
    let ls = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainlog"));
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        cmd.envs(envs.iter().copied()).arg("ls").arg(root.path());
        output(&mut cmd).1
    };
    // Not a terminal: plain, unless forced; NO_COLOR wins over everything.
    assert!(!ls(&[]).contains('\u{1b}'));
    assert!(ls(&[("CLICOLOR_FORCE", "1")]).contains("\u{1b}[32mcompleted"));
    assert!(!ls(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\u{1b}'));
}

#[test]
fn long_run_names_are_shortened_in_the_middle_of_the_legend() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("sft_{}_seed1", "llama-3-8b-instruct-lora-r64".repeat(4));
    let run = dir.path().join(&long);
    run_example(&run, 0, 20);
    let svg = dir.path().join("legend.svg");
    let (ok, _, err) = output(
        cli()
            .arg("plot")
            .arg(&run)
            .args(["-m", "loss", "-o"])
            .arg(&svg),
    );
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    // The group keeps the whole name; the legend shows its start and end.
    assert!(text.contains(&format!("data-label=\"{long}\"")));
    let legend = text
        .lines()
        .find(|l| l.contains(">sft_llama") && l.contains('…'))
        .unwrap_or_else(|| panic!("no shortened legend entry:\n{text}"));
    assert!(legend.contains("_seed1</text>"), "{legend}");
}

#[test]
fn trainlog_system_metrics_adds_system_records_to_the_demo_run() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(train_loop())
        .args(["--output-dir", dir.path().to_str().unwrap()])
        .args(["--steps", "40", "--step-ms", "10", "--quiet"])
        .env("RANK", "0")
        .env("TRAINLOG_SYSTEM_METRICS", "100ms")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let lines = trainlog::jsonl::read(&dir.path().join("metrics_rank0.jsonl")).unwrap();
    let system: Vec<&Json> = lines
        .iter()
        .filter(|l| l.get("system.memory.rss_bytes").is_some())
        .collect();
    assert!(system.len() >= 2, "{} system records", system.len());
    assert!(system
        .iter()
        .all(|l| l.get("step").is_none() && l["system.cpu.percent"].is_number()));
    // `trainlog show` summarises them with the other metrics.
    let (ok, out, err) = output(cli().arg("show").arg(dir.path()));
    assert!(ok, "{err}");
    assert!(out.contains("system.memory.rss_bytes"), "{out}");
}

#[test]
fn a_resumed_runs_orphaned_lines_are_left_out_of_export_and_show() {
    let dir = tempfile::tempdir().unwrap();
    // Steps 0..=3 logged, the job killed, restarted from the checkpoint at step 2.
    let lines = [
        r#"{"rank":0,"step":0,"loss":1.0}"#,
        r#"{"rank":0,"step":1,"loss":0.9}"#,
        r#"{"rank":0,"step":2,"loss":0.8}"#,
        r#"{"rank":0,"step":3,"loss":0.7}"#,
        r#"{"rank":0,"step":2,"event":"resume"}"#,
        r#"{"rank":0,"step":2,"loss":0.85}"#,
        r#"{"rank":0,"step":3,"loss":0.75}"#,
        r#"{"rank":0,"step":4,"loss":0.65}"#,
    ];
    std::fs::write(
        dir.path().join("metrics_rank0.jsonl"),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, out, err) = output(cli().args(["export", path, "--format", "jsonl"]));
    assert!(ok, "{err}");
    let rows: Vec<(u64, f64)> = out
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .map(|r| (r["step"].as_u64().unwrap(), r["loss"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [(0, 1.0), (1, 0.9), (2, 0.85), (3, 0.75), (4, 0.65)],
        "{out}"
    );
    let (ok, out, err) = output(cli().args(["export", path]));
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6, "header and five rows:\n{out}");
    let (ok, show, err) = output(cli().args(["show", path, "--json"]));
    assert!(ok, "{err}");
    let show: Json = serde_json::from_str(&show).unwrap();
    assert_eq!(show["steps"], 5, "{show}");
    assert_eq!(show["metrics"]["loss"]["count"], 5, "{show}");
    assert_eq!(show["metrics"]["loss"]["last"], 0.65, "{show}");
}
