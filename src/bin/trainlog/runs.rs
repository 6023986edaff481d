//! Run discovery and reading, shared by the commands: which directories are runs, their
//! metrics files and lines, and per-metric summaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use trainlog::jsonl::{fields, number, read as read_jsonl};

/// The `metrics_rank<r>.jsonl` files of a run directory, by rank.
pub fn metric_files(run: &Path) -> Vec<(u32, PathBuf)> {
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

pub fn is_run(dir: &Path) -> bool {
    dir.join("run.json").is_file() || !metric_files(dir).is_empty()
}

/// Every record line of a run (all ranks), hyperparameter lines included.
pub fn run_lines(run: &Path) -> Result<Vec<Json>, String> {
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
pub struct Summary {
    /// Numeric points, non-finite ones included.
    pub count: usize,
    /// Points that were NaN or ±∞.
    pub non_finite: usize,
    /// Smallest and largest finite value (∞ and −∞ while there is none).
    pub min: f64,
    pub max: f64,
    /// The last value, NaN or ±∞ if it was: divergence must not hide behind the last
    /// finite value.
    pub last: f64,
}

/// Per metric, over numeric values (NaN and ±∞ included), in file order.
pub fn summarize(lines: &[Json]) -> BTreeMap<String, Summary> {
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
pub fn cell(x: f64, present: bool) -> String {
    if present {
        trainlog::format::format_float(x)
    } else {
        "-".into()
    }
}

/// Metric names, losses first, then shorter names first: the ones worth showing.
pub fn key_metrics<V>(summary: &BTreeMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = summary.keys().collect();
    keys.sort_by_key(|k| (!k.contains("loss"), k.len(), k.as_str()));
    keys
}

pub fn format_time(secs: f64) -> String {
    trainlog::time::rfc3339(trainlog::time::from_unix_seconds(secs))[..19].replace('T', " ")
}
