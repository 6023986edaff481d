//! `trainlog compare RUN RUN...`: status, duration and the params that differ side by
//! side, then each metric's last value, best value and point count per run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{json, Map, Value as Json};
use trainlog::format::format_duration;

use crate::args::{CompareArgs, Direction, RankChoice};
use crate::runs::{
    flat_params, json_number, key_metrics, labels, lower_is_better, pad, visible, width, RunData,
    Summary,
};
use crate::style::Paint;

/// A param's value as a table cell: text without quotes, other JSON as JSON.
fn param_text(v: Option<&Json>) -> String {
    match v {
        None => "-".into(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn compare(args: &CompareArgs) -> Result<(), String> {
    let loaded: Vec<RunData> = args
        .runs
        .iter()
        .map(|p| RunData::load(p))
        .collect::<Result<_, _>>()?;
    // A column per run, of its rank 0 (lowest rank) or the rank asked for; with
    // `--rank all`, a column per run and rank.
    let mut columns: Vec<(&RunData, String, Option<u32>)> = Vec::new();
    for (run, name) in loaded.iter().zip(labels(&args.runs)) {
        match args.rank {
            Some(RankChoice::All) if run.ranks().len() > 1 => {
                for rank in run.ranks() {
                    columns.push((run, format!("{name} rank {rank}"), Some(rank)));
                }
            }
            Some(RankChoice::One(rank)) => columns.push((run, name, run.rank_for(Some(rank))?)),
            _ => columns.push((run, name, run.default_rank())),
        }
    }
    let several_ranks = loaded.iter().any(|r| r.ranks().len() > 1);
    let runs: Vec<&RunData> = columns.iter().map(|c| c.0).collect();
    let names: Vec<String> = columns.iter().map(|c| c.1.clone()).collect();
    let ranks: Vec<Option<u32>> = columns.iter().map(|c| c.2).collect();
    let params: Vec<BTreeMap<String, Json>> = runs
        .iter()
        .map(|r| r.params().map(|p| flat_params(&p)))
        .collect::<Result<_, _>>()?;
    let keys: BTreeSet<&String> = params.iter().flat_map(|p| p.keys()).collect();
    let (differ, equal): (Vec<&String>, Vec<&String>) = keys
        .into_iter()
        .partition(|k| params.iter().any(|p| p.get(*k) != params[0].get(*k)));
    let summaries: Vec<BTreeMap<String, Summary>> = columns
        .iter()
        .map(|(run, _, rank)| run.summary_of(*rank))
        .collect();
    let mut all_metrics: BTreeMap<String, ()> = BTreeMap::new();
    for s in &summaries {
        all_metrics.extend(s.keys().map(|k| (k.clone(), ())));
    }
    let metrics: Vec<String> = key_metrics(&all_metrics).into_iter().cloned().collect();
    let direction = |metric: &str| {
        args.best
            .iter()
            .rev()
            .find(|(_, m)| m == metric)
            .map(|(d, _)| *d)
            .unwrap_or(if lower_is_better(metric) {
                Direction::Min
            } else {
                Direction::Max
            })
    };
    // Per metric and run: (last, best, best step, count), None where the run lacks it.
    let best_of = |m: &Summary, d: Direction| match d {
        Direction::Min => (m.min, m.min_step),
        Direction::Max => (m.max, m.max_step),
    };
    if args.json {
        let mut out_params = Map::new();
        for k in &differ {
            let values: Vec<Json> = params
                .iter()
                .map(|p| p.get(*k).cloned().unwrap_or(Json::Null))
                .collect();
            out_params.insert((*k).clone(), Json::Array(values));
        }
        let equal_params: Map<String, Json> = equal
            .iter()
            .map(|k| ((*k).clone(), params[0][*k].clone()))
            .collect();
        let mut out_metrics = Map::new();
        for metric in &metrics {
            let d = direction(metric);
            let per_run: Vec<Json> = summaries
                .iter()
                .map(|s| match s.get(metric) {
                    None => Json::Null,
                    Some(m) => {
                        let finite = m.count > m.non_finite;
                        let (best, step) = best_of(m, d);
                        json!({
                            "last": json_number(m.last),
                            "best": finite.then(|| json_number(best)),
                            "best_step": step,
                            "count": m.count,
                            "non_finite": m.non_finite,
                        })
                    }
                })
                .collect();
            let best = if d == Direction::Min { "min" } else { "max" };
            out_metrics.insert(metric.clone(), json!({"best": best, "runs": per_run}));
        }
        return crate::print_json(&json!({
            "runs": names,
            "paths": runs.iter().map(|r| r.path.display().to_string()).collect::<Vec<_>>(),
            "ranks": ranks,
            "status": runs.iter().map(|r| r.status()).collect::<Vec<_>>(),
            "duration_secs": runs.iter().map(|r| r.duration()).collect::<Vec<_>>(),
            "steps": runs.iter().map(|r| r.steps()).collect::<Vec<_>>(),
            "params": {"differ": out_params, "equal": equal_params},
            "metrics": out_metrics,
        }));
    }

    let paint = Paint::stdout();
    let mut table = Table::new(&names);
    table.row(
        "status",
        runs.iter()
            .map(|r| r.status().unwrap_or_else(|| "-".into()))
            .collect(),
        |p, s| p.status(s),
    );
    table.row(
        "duration",
        runs.iter()
            .map(|r| {
                r.duration().map_or_else(
                    || "-".into(),
                    |d| format_duration(std::time::Duration::from_secs_f64(d)),
                )
            })
            .collect(),
        |_, s| s.to_owned(),
    );
    table.row(
        "steps",
        runs.iter().map(|r| r.steps().to_string()).collect(),
        |_, s| s.to_owned(),
    );
    if several_ranks {
        // Which rank's records each column's metrics are.
        let cells = ranks
            .iter()
            .map(|r| r.map_or_else(|| "-".into(), |r| r.to_string()))
            .collect();
        table.row("rank", cells, |_, s| s.to_owned());
        if args.rank.is_none() {
            table.note("(metrics of each run's rank 0; --rank N|all for others)");
        }
    }
    let folded = if args.all_params || equal.is_empty() {
        String::new()
    } else {
        format!(" ({} equal, --all-params to list them)", equal.len())
    };
    table.section(&format!("params that differ{folded}"));
    if differ.is_empty() {
        table.note("none");
    }
    for k in &differ {
        let cells = params.iter().map(|p| param_text(p.get(*k))).collect();
        table.row(&format!("  {k}"), cells, |_, s| s.to_owned());
    }
    if args.all_params && !equal.is_empty() {
        table.section("params that are equal");
        for k in &equal {
            let cells = params.iter().map(|p| param_text(p.get(*k))).collect();
            table.row(&format!("  {k}"), cells, |_, s| s.to_owned());
        }
    }
    for metric in &metrics {
        let d = direction(metric);
        let word = if d == Direction::Min { "min" } else { "max" };
        table.section(&format!("{} (best = {word})", visible(metric)));
        let cells: Vec<Option<&Summary>> = summaries.iter().map(|s| s.get(metric)).collect();
        let last = cells
            .iter()
            .map(|m| m.map_or_else(|| "-".into(), |m| m.text(m.last)))
            .collect();
        table.row("  last", last, |p, s| {
            if s.contains("NaN") || s.contains("inf") {
                p.warn(s)
            } else {
                s.to_owned()
            }
        });
        // The best value over the runs, marked in colour.
        let bests: Vec<Option<(f64, Option<u64>)>> = cells
            .iter()
            .map(|m| m.filter(|m| m.count > m.non_finite).map(|m| best_of(m, d)))
            .collect();
        let winner = bests.iter().filter_map(|b| b.map(|b| b.0)).reduce(|a, b| {
            if d == Direction::Min {
                a.min(b)
            } else {
                a.max(b)
            }
        });
        let texts: Vec<String> = bests
            .iter()
            .zip(&cells)
            .map(|(b, m)| match (b, m) {
                (Some((v, Some(step))), Some(m)) => format!("{} @ {step}", m.text(*v)),
                (Some((v, None)), Some(m)) => m.text(*v),
                _ => "-".into(),
            })
            .collect();
        let winners: Vec<bool> = bests
            .iter()
            .map(|b| runs.len() > 1 && b.is_some_and(|b| Some(b.0) == winner))
            .collect();
        table.row_marked("  best", texts, &winners);
        let counts = cells
            .iter()
            .map(|m| m.map_or_else(|| "-".into(), |m| m.count.to_string()))
            .collect();
        table.row("  points", counts, |_, s| s.to_owned());
    }
    table.print(&paint);
    Ok(())
}

/// A table with one column per run; cells are painted when printed.
struct Table {
    names: Vec<String>,
    lines: Vec<Line>,
}

enum Line {
    Section(String),
    Note(String),
    Row {
        label: String,
        cells: Vec<String>,
        marked: Vec<bool>,
        paint: fn(&Paint, &str) -> String,
    },
}

impl Table {
    fn new(names: &[String]) -> Table {
        Table {
            names: names.to_vec(),
            lines: Vec::new(),
        }
    }

    fn section(&mut self, title: &str) {
        self.lines.push(Line::Section(title.to_owned()));
    }

    fn note(&mut self, text: &str) {
        self.lines.push(Line::Note(text.to_owned()));
    }

    fn row(&mut self, label: &str, cells: Vec<String>, paint: fn(&Paint, &str) -> String) {
        let marked = vec![false; cells.len()];
        self.lines.push(Line::Row {
            label: label.to_owned(),
            cells,
            marked,
            paint,
        });
    }

    fn row_marked(&mut self, label: &str, cells: Vec<String>, marked: &[bool]) {
        self.lines.push(Line::Row {
            label: label.to_owned(),
            cells,
            marked: marked.to_vec(),
            paint: |_, s| s.to_owned(),
        });
    }

    fn print(&self, paint: &Paint) {
        let label_width = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Row { label, .. } => Some(width(label)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
            .max(10);
        let widths: Vec<usize> = (0..self.names.len())
            .map(|i| {
                let cells = self.lines.iter().filter_map(|l| match l {
                    Line::Row { cells, .. } => Some(width(&cells[i])),
                    _ => None,
                });
                cells.chain([width(&self.names[i])]).max().unwrap_or(1)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        let mut head = format!("{:label_width$}", "");
        for (name, w) in self.names.iter().zip(&widths) {
            // Each column is its widest cell plus room for the ` *` of the best value.
            head.push_str(&format!("  {}", pad(name, w + 2)));
        }
        let _ = writeln!(out, "{}", paint.head(head.trim_end()));
        for line in &self.lines {
            match line {
                Line::Section(title) => {
                    let _ = writeln!(out, "\n{}", paint.head(title));
                }
                Line::Note(text) => {
                    let _ = writeln!(out, "  {text}");
                }
                Line::Row {
                    label,
                    cells,
                    marked,
                    paint: how,
                } => {
                    let mut text = pad(label, label_width);
                    for ((cell, w), mark) in cells.iter().zip(&widths).zip(marked) {
                        text.push_str("  ");
                        // Without colour the best cell gets a `*`, so pipes see it too.
                        let shown = if *mark {
                            format!("{cell} *")
                        } else {
                            cell.clone()
                        };
                        let painted = if *mark {
                            paint.best(&shown)
                        } else {
                            how(paint, &shown)
                        };
                        let spaces = (w + 2).saturating_sub(width(&shown));
                        text.push_str(&painted);
                        text.push_str(&" ".repeat(spaces));
                    }
                    let _ = writeln!(out, "{}", text.trim_end());
                }
            }
        }
    }
}
