//! `trainlog export RUN... [--format csv|jsonl] [-o FILE]`: one table, every rank of
//! every run, with `run` and `rank` columns, streamed: rows are read and written one at a
//! time (CSV reads the files twice, first for the column names).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use trainlog::jsonl::fields;
use trainlog::run::{read_info, RunInfo};

use crate::args::{ExportArgs, Format};
use crate::engine::{reason, report_skipped, Lines};
use crate::runs::{has_histogram, histogram_stats, is_run, json_number, labels, metric_files};

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_value(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => csv_cell(s),
        other => csv_cell(&other.to_string()),
    }
}

/// A row as the CSV table has it: a table has no room for bins, so a histogram becomes
/// its statistics columns; other rows are not copied.
fn table_row(row: &Json) -> Cow<'_, Json> {
    if has_histogram(row) {
        Cow::Owned(histogram_stats(row.clone()))
    } else {
        Cow::Borrowed(row)
    }
}

pub fn export(args: &ExportArgs) -> Result<(), String> {
    for run in &args.runs {
        if !is_run(run) {
            return Err(format!(
                "{} is not a run directory (no run.json or metrics_rank*.jsonl)",
                run.display()
            ));
        }
    }
    let names = labels(&args.runs);
    let out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let write_err = |e: std::io::Error| format!("writing the export: {e}");
    match args.format {
        Format::Csv => {
            // First pass: the columns.
            let mut columns = BTreeSet::new();
            for run in &args.runs {
                for_each_row(run, |row| {
                    let row = table_row(row);
                    columns.extend(fields(&row).map(|(k, _)| k.clone()));
                    Ok(())
                })?;
            }
            let mut header = vec![
                "run".to_owned(),
                "rank".into(),
                "step".into(),
                "timestamp".into(),
            ];
            header.extend(columns.iter().map(|c| csv_cell(c)));
            writeln!(out, "{}", header.join(",")).map_err(write_err)?;
            for (run, name) in args.runs.iter().zip(&names) {
                let name = csv_cell(name);
                for_each_row(run, |row| {
                    let row = &*table_row(row);
                    let mut cells = vec![
                        name.clone(),
                        csv_value(&row["rank"]),
                        csv_value(&row["step"]),
                        csv_value(&row["timestamp"]),
                    ];
                    cells.extend(
                        columns
                            .iter()
                            .map(|c| csv_value(row.get(c).unwrap_or(&Json::Null))),
                    );
                    writeln!(out, "{}", cells.join(",")).map_err(write_err)
                })?;
            }
        }
        Format::Jsonl => {
            for (run, name) in args.runs.iter().zip(&names) {
                for_each_row(run, |row| {
                    let mut obj = Map::new();
                    obj.insert("run".into(), name.clone().into());
                    for key in ["rank", "step", "timestamp"] {
                        obj.insert(key.into(), row[key].clone());
                    }
                    for (k, v) in fields(row) {
                        obj.insert(k.clone(), v.clone());
                    }
                    writeln!(out, "{}", Json::Object(obj)).map_err(write_err)
                })?;
            }
        }
    }
    out.flush().map_err(write_err)
}

/// One rank file being read.
struct RankFile {
    rank: u32,
    path: PathBuf,
    lines: Lines,
    /// The next row and its sort step (a row without a step sorts with the one before).
    head: Option<(u64, Json)>,
    last_step: u64,
}

impl RankFile {
    fn advance(&mut self, results: Option<&RunInfo>) -> Result<(), String> {
        self.head = None;
        while let Some(line) = self.lines.next_line()? {
            let mut row: Json = match serde_json::from_slice(line.text) {
                Ok(row) => row,
                // A torn last line (a crash mid-write) is not a record.
                Err(_) if !line.complete => continue,
                // Nor is a line that is not JSON (invalid UTF-8 included): named, skipped.
                Err(e) => {
                    report_skipped(&self.path, line.number, &reason(&e));
                    continue;
                }
            };
            if row["hparams"] == true || replaced_by_run_json(&row, results) {
                continue;
            }
            if line.orphaned(row["step"].as_u64()) {
                continue;
            }
            if row.get("rank").is_none() {
                row["rank"] = self.rank.into();
            }
            if let Some(step) = row["step"].as_u64() {
                self.last_step = step;
            }
            self.head = Some((self.last_step, row));
            return Ok(());
        }
        Ok(())
    }
}

/// A `result` event whose result `run.json` holds (the latest value of that name).
fn replaced_by_run_json(row: &Json, info: Option<&RunInfo>) -> bool {
    let Some(info) = info else { return false };
    row["event"] == "result" && fields(row).any(|(k, _)| info.results.contains_key(k.as_str()))
}

/// Calls `f` with each row of a run: the records of every rank merged by step (then rank),
/// hyperparameter lines left out, then one row per final result from `run.json`.
fn for_each_row(run: &Path, mut f: impl FnMut(&Json) -> Result<(), String>) -> Result<(), String> {
    let info = read_info(run).ok();
    let mut files = Vec::new();
    for (rank, path) in metric_files(run) {
        let mut rank_file = RankFile {
            rank,
            lines: Lines::open(&path)?,
            path,
            head: None,
            last_step: 0,
        };
        rank_file.advance(info.as_ref())?;
        files.push(rank_file);
    }
    loop {
        let next = files
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.head.as_ref().map(|(step, _)| ((*step, r.rank), i)))
            .min();
        let Some((_, i)) = next else { break };
        if let Some((_, row)) = &files[i].head {
            f(row)?;
        }
        files[i].advance(info.as_ref())?;
    }
    if let Some(info) = &info {
        for (name, result) in &info.results {
            // The fields `Run::result` logs: the value under its name, then the metadata.
            let mut row = Map::new();
            row.insert("event".into(), "result".into());
            row.insert(name.clone(), json_number(result.value));
            if !result.metadata.is_null() {
                let metadata = trainlog::flatten("metadata", &result.metadata)
                    .map_err(|e| format!("{}: result `{name}`: {e}", run.display()))?;
                for (k, v) in metadata {
                    row.insert(k.into_owned(), trainlog::jsonl::value(&v));
                }
            }
            f(&Json::Object(row))?;
        }
    }
    Ok(())
}
