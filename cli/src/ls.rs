//! `trainlog ls [ROOT]`: the runs under ROOT, oldest first, with status, start, steps,
//! results and last values.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value as Json};
use trainlog::format::format_float;

use crate::args::{LsArgs, StatusFilter};

use crate::runs::{find_runs, format_time, json_number, key_metrics, pad, visible, width, RunData};
use crate::style::Paint;

struct Row {
    name: String,
    status: Option<String>,
    start: Option<f64>,
    steps: Option<u64>,
    results: Vec<(String, f64)>,
    /// Key metrics' last values (and the value as a table shows it) and their
    /// non-finite counts.
    last: Vec<(String, f64, String, usize)>,
    error: Option<String>,
}

pub fn ls(args: &LsArgs) -> Result<(), String> {
    let root = &args.root;
    if !root.is_dir() {
        return Err(format!("{} is not a directory", root.display()));
    }
    let mut rows = Vec::new();
    let (runs, unread) = find_runs(root);
    let name_of = |run: &Path| {
        let name = run.strip_prefix(root).unwrap_or(run).display().to_string();
        if !name.is_empty() {
            return visible(&name).into_owned();
        }
        // DIR is itself a run: its own name (`.` says nothing), else as given.
        let name = std::fs::canonicalize(root)
            .ok()
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_else(|| root.display().to_string());
        visible(&name).into_owned()
    };
    // Directories that could not be searched are listed, not skipped in silence.
    for (dir, why) in unread {
        rows.push(Row {
            name: name_of(&dir),
            status: Some("unreadable".into()),
            start: None,
            steps: None,
            results: Vec::new(),
            last: Vec::new(),
            error: Some(why),
        });
    }
    for run in runs {
        let name = name_of(&run);
        let row = match RunData::load(&run) {
            Ok(data) => {
                // The last values of rank 0 (the lowest rank), as `show` gives by default.
                let summary = data.summary_of(data.default_rank());
                Row {
                    name,
                    status: data.status(),
                    start: data.start(),
                    steps: Some(data.steps()),
                    results: data
                        .info
                        .as_ref()
                        .map(|i| {
                            i.results
                                .iter()
                                .map(|(k, r)| (k.clone(), r.value))
                                .collect()
                        })
                        .unwrap_or_default(),
                    last: key_metrics(&summary)
                        .iter()
                        .take(3)
                        .map(|k| {
                            let s = &summary[*k];
                            ((*k).clone(), s.last, s.text(s.last), s.non_finite)
                        })
                        .collect(),
                    error: None,
                }
            }
            Err(e) => Row {
                name,
                status: Some("unreadable".into()),
                start: None,
                steps: None,
                results: Vec::new(),
                last: Vec::new(),
                error: Some(e),
            },
        };
        rows.push(row);
    }
    if let Some(wanted) = args.status {
        let wanted = match wanted {
            StatusFilter::Created => "created",
            StatusFilter::Running => "running",
            StatusFilter::Completed => "completed",
            StatusFilter::Failed => "failed",
        };
        rows.retain(|r| r.status.as_deref() == Some(wanted));
    }
    // Oldest first; runs without a time last, by name.
    rows.sort_by(|a, b| {
        let key = |r: &Row| r.start.unwrap_or(f64::INFINITY);
        key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name))
    });
    if args.json {
        let runs: Vec<Json> = rows.iter().map(row_json).collect();
        return crate::print_json(&Json::Array(runs));
    }
    print_table(&rows);
    Ok(())
}

fn row_json(r: &Row) -> Json {
    let results: Map<String, Json> = r
        .results
        .iter()
        .map(|(k, v)| (k.clone(), json_number(*v)))
        .collect();
    let last: Map<String, Json> = r
        .last
        .iter()
        .map(|(k, v, ..)| (k.clone(), json_number(*v)))
        .collect();
    json!({
        "run": r.name,
        "status": r.status,
        "start_time": r.start,
        "steps": r.steps,
        "results": results,
        "last": last,
        "error": r.error,
    })
}

fn print_table(rows: &[Row]) {
    let paint = Paint::stdout();
    let results: Vec<String> = rows
        .iter()
        .map(|r| {
            r.results
                .iter()
                .map(|(k, v)| format!("{}={}", visible(k), format_float(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    // A results column only when some run has results.
    let with_results = results.iter().any(|r| !r.is_empty());
    let rwidth = results.iter().map(|r| width(r)).max().unwrap_or(0).max(7);
    let nwidth = rows
        .iter()
        .map(|r| width(&r.name))
        .max()
        .unwrap_or(0)
        .clamp(3, 48);
    let mut out = std::io::stdout().lock();
    let results_head = if with_results {
        format!("{:<rwidth$}  ", "RESULTS")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}",
        paint.head(&format!(
            "{:<nwidth$}  {:<10} {:<19} {:>7}  {results_head}LAST VALUES",
            "RUN", "STATUS", "STARTED", "STEPS"
        ))
    );
    for (r, res) in rows.iter().zip(&results) {
        let status = r.status.as_deref().unwrap_or("-");
        let started = r.start.map_or_else(|| "-".into(), format_time);
        let steps = r.steps.map_or_else(|| "?".into(), |s| s.to_string());
        let res = if with_results {
            format!("{}  ", pad(if res.is_empty() { "-" } else { res }, rwidth))
        } else {
            String::new()
        };
        let last = match &r.error {
            Some(e) => paint.warn(e),
            None => r
                .last
                .iter()
                .map(|(k, _, v, bad)| {
                    let text = format!("{}={v}", visible(k));
                    match bad {
                        0 => text,
                        n => paint.warn(&format!("{text} ({n} non-finite)")),
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "{}  {} {started:<19} {steps:>7}  {res}{last}",
            pad(&r.name, nwidth),
            paint.pad(status, 10, Paint::status),
        );
    }
}
