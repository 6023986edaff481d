//! `trainlog show RUN`: status, params and a summary of every metric.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value as Json};
use trainlog::jsonl::fields;
use trainlog::run::{read_info, read_params};

use crate::runs::{cell, format_time, run_lines, summarize};

pub fn show(run: &Path) -> Result<(), String> {
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
            if !info.tags.is_empty() {
                let tags: Vec<String> = info.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(out, "tags     {}", tags.join(", "));
            }
            if !info.results.is_empty() {
                let _ = writeln!(out, "\nresults");
                for (name, r) in &info.results {
                    let meta = if r.metadata.is_null() {
                        String::new()
                    } else {
                        format!("  {}", r.metadata)
                    };
                    let _ = writeln!(
                        out,
                        "         {name:<28} {:>12}{meta}",
                        trainlog::format::format_float(r.value)
                    );
                }
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
