//! `trainlog`: list, inspect, follow and export training runs.
//!
//! ```text
//! trainlog ls [ROOT]                              runs under ROOT (default: runs)
//! trainlog show RUN                               status, params, metric summary
//! trainlog tail [-f] FILE|RUN                     records, dict-formatted; -f follows
//! trainlog export RUN [--format csv|jsonl] [-o F] one table, all ranks, a `rank` column
//! trainlog plot RUN... [--metric NAME]... -o OUT.png|OUT.svg
//!                                                 a chart per metric, a line per run and rank
//! trainlog sync [DIR]                             send what http/mlflow left spooled under DIR
//! ```
//!
//! A run is a directory holding `run.json` (the run API) or `metrics_rank*.jsonl` files
//! (any metric logger's JSONL output).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use trainlog::jsonl::{fields, number, read as read_jsonl, to_record};
use trainlog::run::{read_info, read_params};

mod plot;
mod sync;

const USAGE: &str = "usage:
  trainlog ls [ROOT]
  trainlog show RUN
  trainlog tail [-f] FILE|RUN
  trainlog export RUN [--format csv|jsonl] [-o FILE]
  trainlog plot RUN... [--metric NAME]... -o OUT.png|OUT.svg
  trainlog sync [DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ls") => ls(args.get(1).map_or("runs", String::as_str)),
        Some("show") => match args.get(1) {
            Some(run) => show(Path::new(run)),
            None => Err(format!("show needs a run directory\n{USAGE}")),
        },
        Some("tail") => tail(&args[1..]),
        Some("export") => export(&args[1..]),
        Some("plot") => plot(&args[1..]),
        Some("sync") => sync::sync(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("trainlog: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The `metrics_rank<r>.jsonl` files of a run directory, by rank.
fn metric_files(run: &Path) -> Vec<(u32, PathBuf)> {
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(run)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let rank = trainlog::jsonl::rank_of(e.file_name().to_str()?)?;
            Some((rank, e.path()))
        })
        .collect();
    files.sort();
    files
}

fn is_run(dir: &Path) -> bool {
    dir.join("run.json").is_file() || !metric_files(dir).is_empty()
}

/// Every record line of a run (all ranks), hyperparameter lines included.
fn run_lines(run: &Path) -> Result<Vec<Json>, String> {
    let files = metric_files(run);
    if files.is_empty() && !run.join("run.json").is_file() {
        return Err(format!(
            "{} is not a run directory (no run.json or metrics_rank*.jsonl)",
            run.display()
        ));
    }
    let mut lines = Vec::new();
    for (_, path) in files {
        lines.extend(read_jsonl(&path).map_err(|e| e.to_string())?);
    }
    Ok(lines)
}

/// What `ls` and `show` print about one metric.
#[derive(Debug, Clone, Copy)]
struct Summary {
    /// Numeric points, non-finite ones included.
    count: usize,
    /// Points that were NaN or ±∞.
    non_finite: usize,
    /// Smallest and largest finite value (∞ and −∞ while there is none).
    min: f64,
    max: f64,
    /// The last value, NaN or ±∞ if it was: divergence must not hide behind the last
    /// finite value.
    last: f64,
}

/// Per metric, over numeric values (NaN and ±∞ included), in file order.
fn summarize(lines: &[Json]) -> BTreeMap<String, Summary> {
    let mut out: BTreeMap<String, Summary> = BTreeMap::new();
    for line in lines.iter().filter(|l| l["hparams"] != true) {
        for (k, v) in fields(line) {
            let Some(x) = number(v) else { continue };
            let e = out.entry(k.clone()).or_insert(Summary {
                count: 0,
                non_finite: 0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                last: x,
            });
            e.count += 1;
            if x.is_finite() {
                e.min = e.min.min(x);
                e.max = e.max.max(x);
            } else {
                e.non_finite += 1;
            }
            e.last = x;
        }
    }
    out
}

/// A value for a table cell: `-` when there is none (a minimum with no finite point).
fn cell(x: f64, present: bool) -> String {
    if present {
        trainlog::format::format_float(x)
    } else {
        "-".into()
    }
}

fn ls(root: &str) -> Result<(), String> {
    let root = Path::new(root);
    if !root.is_dir() {
        return Err(format!("{} is not a directory", root.display()));
    }
    let mut runs = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if is_run(&dir) {
            runs.push(dir);
            continue;
        }
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    runs.sort();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<40} {:<10} {:<20} {:>7}  last values",
        "RUN", "STATUS", "STARTED", "STEPS"
    );
    for run in runs {
        let name = run.strip_prefix(root).unwrap_or(&run).display().to_string();
        let (status, started) = match read_info(&run) {
            Ok(info) => (
                format!("{:?}", info.status).to_lowercase(),
                info.start_time.map_or_else(|| "-".into(), format_time),
            ),
            Err(_) if run.join("run.json").exists() => ("unreadable".into(), "-".into()),
            Err(_) => ("-".into(), "-".into()),
        };
        let (steps, last) = match run_lines(&run) {
            Ok(lines) => {
                let steps = lines
                    .iter()
                    .filter_map(|l| l["step"].as_u64())
                    .max()
                    .map_or(0, |s| s.saturating_add(1));
                let summary = summarize(&lines);
                let last = key_metrics(&summary)
                    .iter()
                    .take(3)
                    .map(|k| {
                        let m = &summary[*k];
                        let bad = match m.non_finite {
                            0 => String::new(),
                            n => format!(" ({n} non-finite)"),
                        };
                        format!("{k}={}{bad}", trainlog::format::format_float(m.last))
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                (steps.to_string(), last)
            }
            Err(e) => ("?".into(), e),
        };
        let _ = writeln!(
            out,
            "{name:<40} {status:<10} {started:<20} {steps:>7}  {last}"
        );
    }
    Ok(())
}

/// Metric names, losses first, then shorter names first: the ones worth showing.
fn key_metrics<V>(summary: &BTreeMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = summary.keys().collect();
    keys.sort_by_key(|k| (!k.contains("loss"), k.len(), k.as_str()));
    keys
}

fn format_time(secs: f64) -> String {
    trainlog::time::rfc3339(trainlog::time::from_unix_seconds(secs))[..19].replace('T', " ")
}

fn show(run: &Path) -> Result<(), String> {
    let lines = run_lines(run)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "run      {}", run.display());
    match read_info(run) {
        Ok(info) => {
            let _ = writeln!(
                out,
                "status   {}",
                format!("{:?}", info.status).to_lowercase()
            );
            if let Some(error) = &info.error {
                let _ = writeln!(out, "error    {error}");
            }
            if let Some(t) = info.start_time {
                let _ = writeln!(out, "started  {}", format_time(t));
            }
            if let Some(t) = info.end_time {
                let _ = writeln!(out, "ended    {}", format_time(t));
            }
            let _ = writeln!(out, "host     {} (pid {})", info.host, info.pid);
            if let Some(commit) = &info.git_commit {
                let _ = writeln!(out, "commit   {commit}");
            }
        }
        Err(e) if run.join("run.json").exists() => return Err(e.to_string()),
        Err(_) => {}
    }
    // Parameters: the run API's file, else the hparams records of the metrics.
    let params = if run.join("parameters.jsonl").exists() {
        read_params(run).map_err(|e| e.to_string())?
    } else {
        let mut current = Map::new();
        for line in lines.iter().filter(|l| l["hparams"] == true) {
            for (k, v) in fields(line) {
                current.insert(k.clone(), v.clone());
            }
        }
        Json::Object(current)
    };
    let _ = writeln!(
        out,
        "\nparams\n{}",
        serde_json::to_string_pretty(&params).unwrap_or_default()
    );
    let summary = summarize(&lines);
    let _ = writeln!(
        out,
        "\nmetrics  {:<28} {:>8} {:>12} {:>12} {:>12} {:>10}",
        "", "count", "min", "max", "last", "non-finite"
    );
    for (k, m) in summary {
        let finite = m.count > m.non_finite;
        let _ = writeln!(
            out,
            "         {k:<28} {:>8} {:>12} {:>12} {:>12} {:>10}",
            m.count,
            cell(m.min, finite),
            cell(m.max, finite),
            cell(m.last, true),
            m.non_finite
        );
    }
    Ok(())
}

fn print_line(
    out: &mut impl Write,
    line: &str,
    prefix: &str,
    path: &Path,
    number: usize,
) -> Result<(), String> {
    if line.trim().is_empty() {
        return Ok(());
    }
    let json: Json = serde_json::from_str(line)
        .map_err(|e| format!("{}:{number}: not valid JSON ({e})", path.display()))?;
    let mut text = String::new();
    let _ = trainlog::format::write_dict(
        &mut text,
        &to_record(&json),
        trainlog::format::color_enabled(),
    );
    let _ = writeln!(out, "{prefix}{text}");
    Ok(())
}

fn tail(args: &[String]) -> Result<(), String> {
    let follow = args.iter().any(|a| a == "-f" || a == "--follow");
    let target = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .ok_or_else(|| format!("tail needs a file or a run directory\n{USAGE}"))?;
    let target = Path::new(target);
    let files: Vec<(String, PathBuf)> = if target.is_dir() {
        let files = metric_files(target);
        if files.is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                target.display()
            ));
        }
        let many = files.len() > 1;
        files
            .into_iter()
            .map(|(rank, p)| {
                (
                    if many {
                        format!("[rank {rank}] ")
                    } else {
                        String::new()
                    },
                    p,
                )
            })
            .collect()
    } else {
        vec![(String::new(), target.to_path_buf())]
    };
    let mut readers = Vec::new();
    for (prefix, path) in files {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        readers.push((prefix, path, BufReader::new(file), 0));
    }
    let mut out = std::io::stdout().lock();
    loop {
        for (prefix, path, reader, number) in &mut readers {
            print_new_lines(&mut out, reader, prefix, path, number)?;
        }
        let _ = out.flush();
        if !follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints the complete lines `reader` has; a last line still being written is left for
/// the next call.
fn print_new_lines(
    out: &mut impl Write,
    reader: &mut BufReader<std::fs::File>,
    prefix: &str,
    path: &Path,
    number: &mut usize,
) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 || !line.ends_with('\n') {
            let _ = reader.seek(SeekFrom::Current(-(line.len() as i64)));
            return Ok(());
        }
        *number += 1;
        print_line(out, &line, prefix, path, *number)?;
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn export(args: &[String]) -> Result<(), String> {
    let mut run = None;
    let mut format = "csv".to_owned();
    let mut output = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--format" => format = it.next().ok_or("--format needs csv or jsonl")?.clone(),
            "-o" | "--output" => output = Some(it.next().ok_or("-o needs a file name")?.clone()),
            other if !other.starts_with('-') => run = Some(other.to_owned()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let run = run.ok_or_else(|| format!("export needs a run directory\n{USAGE}"))?;
    let run = Path::new(&run);
    let mut rows: Vec<Json> = Vec::new();
    for (rank, path) in metric_files(run) {
        for mut line in read_jsonl(&path).map_err(|e| e.to_string())? {
            if line["hparams"] == true {
                continue;
            }
            if line.get("rank").is_none() {
                line["rank"] = rank.into();
            }
            rows.push(line);
        }
    }
    if rows.is_empty() && !is_run(run) {
        return Err(format!(
            "{} is not a run directory (no metrics_rank*.jsonl)",
            run.display()
        ));
    }
    rows.sort_by(|a, b| {
        let key = |l: &Json| {
            (
                l["step"].as_u64().unwrap_or(u64::MAX),
                l["rank"].as_u64().unwrap_or(0),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()))
    });
    let columns: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| fields(r).map(|(k, _)| k.clone()))
        .collect();
    let mut text = String::new();
    match format.as_str() {
        "csv" => {
            let mut header = vec!["rank".to_owned(), "step".into(), "timestamp".into()];
            header.extend(columns.iter().map(|c| csv_cell(c)));
            text.push_str(&header.join(","));
            text.push('\n');
            for row in &rows {
                let cell = |v: &Json| match v {
                    Json::Null => String::new(),
                    Json::String(s) => csv_cell(s),
                    other => csv_cell(&other.to_string()),
                };
                let mut cells = vec![
                    cell(&row["rank"]),
                    cell(&row["step"]),
                    cell(&row["timestamp"]),
                ];
                cells.extend(
                    columns
                        .iter()
                        .map(|c| cell(row.get(c).unwrap_or(&Json::Null))),
                );
                text.push_str(&cells.join(","));
                text.push('\n');
            }
        }
        "jsonl" => {
            for row in &rows {
                let mut obj = Map::new();
                obj.insert("rank".into(), row["rank"].clone());
                obj.insert("step".into(), row["step"].clone());
                obj.insert("timestamp".into(), row["timestamp"].clone());
                for c in &columns {
                    obj.insert(c.clone(), row.get(c).cloned().unwrap_or(Json::Null));
                }
                text.push_str(&Json::Object(obj).to_string());
                text.push('\n');
            }
        }
        other => return Err(format!("unknown format `{other}` (csv or jsonl)")),
    }
    match output {
        Some(path) => std::fs::write(&path, text).map_err(|e| format!("{path}: {e}")),
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string()),
    }
}

fn plot(args: &[String]) -> Result<(), String> {
    let mut runs = Vec::new();
    let mut metrics = Vec::new();
    let mut output = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--metric" | "-m" => metrics.push(it.next().ok_or("--metric needs a name")?.clone()),
            "-o" | "--output" => output = Some(it.next().ok_or("-o needs a file name")?.clone()),
            other if !other.starts_with('-') => runs.push(PathBuf::from(other)),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    let output = output.ok_or_else(|| format!("plot needs -o OUT.png or -o OUT.svg\n{USAGE}"))?;
    if runs.is_empty() {
        return Err(format!("plot needs at least one run directory\n{USAGE}"));
    }
    // (run label, rank) → lines, for every run.
    let mut sources = Vec::new();
    let mut summary = BTreeMap::new();
    for run in &runs {
        let files = metric_files(run);
        if files.is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                run.display()
            ));
        }
        let name = run.file_name().map_or_else(
            || run.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        for (rank, path) in files {
            let lines = read_jsonl(&path).map_err(|e| e.to_string())?;
            summary.extend(summarize(&lines));
            sources.push((name.clone(), rank, lines));
        }
    }
    if metrics.is_empty() {
        metrics = key_metrics(&summary).into_iter().take(3).cloned().collect();
        if metrics.is_empty() {
            return Err("no numeric metrics to draw in the given runs".into());
        }
    }
    let one_rank = sources.iter().all(|(_, rank, _)| *rank == 0);
    let one_run = runs.len() == 1;
    let mut charts = Vec::new();
    for metric in &metrics {
        let mut series = Vec::new();
        for (name, rank, lines) in &sources {
            let points: Vec<(f64, f64)> = lines
                .iter()
                .filter(|l| l["hparams"] != true)
                .filter_map(|l| {
                    let step = l["step"].as_u64()? as f64;
                    Some((step, number(&l[metric.as_str()])?))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let label = match (one_run, one_rank) {
                (true, true) => name.clone(),
                (true, false) => format!("rank {rank}"),
                (false, true) => name.clone(),
                (false, false) => format!("{name} rank {rank}"),
            };
            series.push(plot::Series { label, points });
        }
        if series.is_empty() {
            return Err(format!("no run has values of `{metric}` with a step"));
        }
        let points: usize = series.iter().map(|s| s.points.len()).sum();
        let finite = series
            .iter()
            .flat_map(|s| &s.points)
            .any(|(_, y)| y.is_finite());
        if !finite {
            return Err(format!(
                "`{metric}` has nothing to draw: all of its {points} points are NaN or infinite"
            ));
        }
        charts.push(plot::Chart {
            title: metric.clone(),
            series,
        });
    }
    let bytes = if output.ends_with(".svg") {
        plot::svg(&charts).into_bytes()
    } else if output.ends_with(".png") {
        plot::png(&charts)?
    } else {
        return Err(format!("{output}: the output must end in .png or .svg"));
    };
    std::fs::write(&output, bytes).map_err(|e| format!("{output}: {e}"))?;
    let lines: usize = charts.iter().map(|c| c.series.len()).sum();
    println!("wrote {output}: {} charts, {lines} lines", charts.len());
    Ok(())
}
