//! `trainlog show RUN`: status, tags, results, params and a summary of every metric.

use std::io::Write;

use serde_json::{json, Map, Value as Json};
use trainlog::format::format_float;

use std::collections::BTreeMap;

use crate::args::{RankChoice, ShowArgs};
use crate::runs::{cell, format_time, json_number, pad, visible, RunData, Summary};
use crate::style::Paint;

pub fn show(args: &ShowArgs) -> Result<(), String> {
    let data = RunData::load(&args.run)?;
    let params = data.params()?;
    let ranks = data.ranks();
    // The ranks whose metrics are shown, each with its summary.
    let shown: Vec<(Option<u32>, BTreeMap<String, Summary>)> = match args.rank {
        Some(RankChoice::All) if !ranks.is_empty() => ranks
            .iter()
            .map(|r| (Some(*r), data.summary_of(Some(*r))))
            .collect(),
        Some(RankChoice::One(r)) => {
            let rank = data.rank_for(Some(r))?;
            vec![(rank, data.summary_of(rank))]
        }
        _ => {
            let rank = data.default_rank();
            vec![(rank, data.summary_of(rank))]
        }
    };
    if args.json {
        let table = |summary: &BTreeMap<String, Summary>| -> Map<String, Json> {
            summary
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
                .collect()
        };
        // One rank's table, or with `--rank all` a table per rank (keyed by rank).
        let (rank, metrics) = if args.rank == Some(RankChoice::All) {
            let by_rank: Map<String, Json> = shown
                .iter()
                .map(|(r, s)| {
                    (
                        r.map_or_else(String::new, |r| r.to_string()),
                        table(s).into(),
                    )
                })
                .collect();
            (json!("all"), Json::Object(by_rank))
        } else {
            (json!(shown[0].0), Json::Object(table(&shown[0].1)))
        };
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
            "ranks": ranks,
            "rank": rank,
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
    if ranks.len() > 1 && args.rank != Some(RankChoice::All) {
        let list: Vec<String> = ranks.iter().map(u32::to_string).collect();
        let _ = writeln!(
            out,
            "\nranks    {} (metrics of rank {}; --rank N|all for others)",
            list.join(", "),
            shown[0].0.map_or_else(|| "-".into(), |r| r.to_string())
        );
    }
    for (rank, summary) in &shown {
        let title = match rank {
            Some(r) if ranks.len() > 1 => format!("metrics (rank {r})"),
            _ => "metrics".to_owned(),
        };
        print_metrics(&mut out, &paint, &title, summary);
    }
    Ok(())
}

/// One metrics table: count, min, max, last and non-finite points per metric.
fn print_metrics(
    out: &mut impl Write,
    paint: &Paint,
    title: &str,
    summary: &BTreeMap<String, Summary>,
) {
    // The title in the first column when it fits there, else on a line of its own.
    let first = if title.len() <= 7 {
        paint.head(&format!("{title:<7}"))
    } else {
        let _ = writeln!(out, "\n{}", paint.head(title));
        " ".repeat(7)
    };
    let blank = if title.len() <= 7 { "\n" } else { "" };
    let _ = writeln!(
        out,
        "{blank}{first}  {:<28} {:>8} {:>12} {:>12} {:>12} {:>10}",
        "", "count", "min", "max", "last", "non-finite"
    );
    for (k, m) in summary {
        let finite = m.count > m.non_finite;
        let bad = format!("{:>10}", m.non_finite);
        let _ = writeln!(
            out,
            "         {} {:>8} {:>12} {:>12} {:>12} {}",
            pad(&visible(k), 28),
            m.count,
            cell(m, m.min, finite),
            cell(m, m.max, finite),
            cell(m, m.last, true),
            if m.non_finite > 0 {
                paint.warn(&bad)
            } else {
                bad
            }
        );
    }
}
