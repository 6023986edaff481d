//! `trainlog show RUN`: status, tags, results, params and a summary of every metric.

use std::io::Write;

use serde_json::{json, Map, Value as Json};
use trainlog::format::format_float;

use crate::args::ShowArgs;
use crate::runs::{cell, format_time, json_number, pad, visible, RunData};
use crate::style::Paint;

pub fn show(args: &ShowArgs) -> Result<(), String> {
    let data = RunData::load(&args.run)?;
    let params = data.params()?;
    let summary = data.summary();
    if args.json {
        let metrics: Map<String, Json> = summary
            .iter()
            .map(|(k, m)| {
                let finite = m.count > m.non_finite;
                (
                    k.clone(),
                    json!({
                        "count": m.count,
                        "non_finite": m.non_finite,
                        "min": finite.then(|| json_number(m.min)),
                        "max": finite.then(|| json_number(m.max)),
                        "last": json_number(m.last),
                    }),
                )
            })
            .collect();
        let info = data.info.as_ref();
        let results: Map<String, Json> = info
            .map(|i| {
                i.results
                    .iter()
                    .map(|(k, r)| {
                        (
                            k.clone(),
                            json!({"value": json_number(r.value), "metadata": r.metadata}),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return crate::print_json(&json!({
            "run": data.path.display().to_string(),
            "name": info.map(|i| i.name.clone()),
            "status": data.status(),
            "error": info.and_then(|i| i.error.clone()),
            "start_time": data.start(),
            "end_time": info.and_then(|i| i.end_time),
            "host": info.map(|i| i.host.clone()),
            "pid": info.map(|i| i.pid),
            "git_commit": info.and_then(|i| i.git_commit.clone()),
            "tags": info.map(|i| i.tags.clone()).unwrap_or_default(),
            "results": results,
            "params": params,
            "steps": data.steps(),
            "metrics": metrics,
        }));
    }
    let paint = Paint::stdout();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "run      {}", data.path.display());
    if let Some(info) = &data.info {
        let status = data.status().unwrap_or_default();
        let _ = writeln!(out, "status   {}", paint.status(&status));
        if let Some(error) = &info.error {
            let _ = writeln!(out, "error    {}", paint.warn(error));
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
            let _ = writeln!(out, "\n{}", paint.head("results"));
            for (name, r) in &info.results {
                let meta = if r.metadata.is_null() {
                    String::new()
                } else {
                    format!("  {}", r.metadata)
                };
                let _ = writeln!(
                    out,
                    "         {} {:>12}{meta}",
                    pad(&visible(name), 28),
                    format_float(r.value)
                );
            }
        }
    } else if let Some(t) = data.start() {
        let _ = writeln!(out, "started  {}", format_time(t));
    }
    let _ = writeln!(
        out,
        "\n{}\n{}",
        paint.head("params"),
        serde_json::to_string_pretty(&params).unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "\n{}  {:<28} {:>8} {:>12} {:>12} {:>12} {:>10}",
        paint.head("metrics"),
        "",
        "count",
        "min",
        "max",
        "last",
        "non-finite"
    );
    for (k, m) in summary {
        let finite = m.count > m.non_finite;
        let bad = format!("{:>10}", m.non_finite);
        let _ = writeln!(
            out,
            "         {} {:>8} {:>12} {:>12} {:>12} {}",
            pad(&visible(&k), 28),
            m.count,
            cell(&m, m.min, finite),
            cell(&m, m.max, finite),
            cell(&m, m.last, true),
            if m.non_finite > 0 {
                paint.warn(&bad)
            } else {
                bad
            }
        );
    }
    Ok(())
}
