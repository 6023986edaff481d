//! `trainlog ls [ROOT]`: the runs under ROOT with status, start, steps and last values.

use std::io::Write;
use std::path::Path;

use trainlog::run::read_info;

use crate::runs::{format_time, is_run, key_metrics, run_lines, summarize};

pub fn ls(root: &str) -> Result<(), String> {
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
    let mut rows = Vec::new();
    for run in runs {
        let name = run.strip_prefix(root).unwrap_or(&run).display().to_string();
        let (status, started, results) = match read_info(&run) {
            Ok(info) => (
                format!("{:?}", info.status).to_lowercase(),
                info.start_time.map_or_else(|| "-".into(), format_time),
                info.results
                    .iter()
                    .map(|(k, r)| format!("{k}={}", trainlog::format::format_float(r.value)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Err(_) if run.join("run.json").exists() => {
                ("unreadable".into(), "-".into(), String::new())
            }
            Err(_) => ("-".into(), "-".into(), String::new()),
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
        rows.push((name, status, started, steps, results, last));
    }
    // A results column only when some run has results.
    let with_results = rows.iter().any(|r| !r.4.is_empty());
    let width = rows.iter().map(|r| r.4.len()).max().unwrap_or(0).max(7);
    let mut out = std::io::stdout().lock();
    let results_head = if with_results {
        format!("{:<width$}  ", "RESULTS")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{:<40} {:<10} {:<20} {:>7}  {results_head}last values",
        "RUN", "STATUS", "STARTED", "STEPS"
    );
    for (name, status, started, steps, results, last) in rows {
        let results = if with_results {
            let shown = if results.is_empty() {
                "-"
            } else {
                results.as_str()
            };
            format!("{shown:<width$}  ")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{name:<40} {status:<10} {started:<20} {steps:>7}  {results}{last}"
        );
    }
    Ok(())
}
