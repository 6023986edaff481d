//! `trainlog export RUN [--format csv|jsonl] [-o FILE]`: one table, all ranks.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value as Json};
use trainlog::jsonl::{fields, read as read_jsonl};

use crate::runs::{is_run, metric_files};
use crate::USAGE;

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Puts the run's final results from `run.json` (the latest of each name) in place of
/// the `result` events of the metrics files: one row each, `event` = `result`, the value
/// in the column of its name, the metadata in `metadata.*` columns.
fn add_results(run: &Path, rows: &mut Vec<Json>) {
    let Ok(info) = trainlog::run::read_info(run) else {
        return;
    };
    if info.results.is_empty() {
        return;
    }
    rows.retain(|row| {
        row["event"] != "result" || !fields(row).any(|(k, _)| info.results.contains_key(k.as_str()))
    });
    for (name, result) in &info.results {
        let mut row = Map::new();
        row.insert("event".into(), "result".into());
        // The run.json encoding: NaN and ±∞ as the JSONL strings.
        let encoded = serde_json::to_value(result).unwrap_or_default();
        row.insert(name.clone(), encoded["value"].clone());
        flatten_into("metadata", &result.metadata, &mut row);
        rows.push(Json::Object(row));
    }
}

fn flatten_into(prefix: &str, value: &Json, out: &mut Map<String, Json>) {
    match value {
        Json::Null => {}
        Json::Object(map) => {
            for (k, v) in map {
                flatten_into(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other.clone());
        }
    }
}

pub fn export(args: &[String]) -> Result<(), String> {
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
    add_results(run, &mut rows);
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
