//! Run discovery and reading, shared by the commands: which directories are runs, their
//! metrics files and lines, and per-metric summaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};
use trainlog::jsonl::{fields, number, read as read_jsonl, without_orphans};
use trainlog::run::{read_info, read_params, RunInfo};

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
        // A resumed run's orphaned lines are not part of it.
        let read = read_jsonl(&path).map_err(|e| e.to_string())?;
        lines.extend(without_orphans(read).into_iter().map(histogram_stats));
    }
    Ok(lines)
}

/// Every run directory under `root` (a run's own subdirectories are not searched).
pub fn find_runs(root: &Path) -> Vec<PathBuf> {
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
    runs
}

/// Labels for runs given on the command line: their directory names, or the paths as
/// given when two names are the same.
pub fn labels(runs: &[PathBuf]) -> Vec<String> {
    let name = |p: &PathBuf| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let names: Vec<String> = runs.iter().map(name).collect();
    let unique = names
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == names.len();
    if unique {
        names
    } else {
        runs.iter().map(|p| p.display().to_string()).collect()
    }
}

/// A record line's time, seconds since the Unix epoch.
pub fn line_time(line: &Json) -> Option<f64> {
    let t = trainlog::time::parse_rfc3339(line["timestamp"].as_str()?)?;
    Some(trainlog::time::unix_seconds(t))
}

/// Everything the commands say about one run, read once.
pub struct RunData {
    pub path: PathBuf,
    /// `run.json`, for runs of the run API.
    pub info: Option<RunInfo>,
    /// Record lines of every rank, hyperparameter lines included.
    pub lines: Vec<Json>,
}

impl RunData {
    pub fn load(path: &Path) -> Result<RunData, String> {
        let lines = run_lines(path)?;
        let info = match read_info(path) {
            Ok(info) => Some(info),
            Err(e) if path.join("run.json").exists() => return Err(e.to_string()),
            Err(_) => None,
        };
        Ok(RunData {
            path: path.to_path_buf(),
            info,
            lines,
        })
    }

    /// `created`, `running`, `completed`, `failed`; None without `run.json`.
    pub fn status(&self) -> Option<String> {
        let info = self.info.as_ref()?;
        Some(format!("{:?}", info.status).to_lowercase())
    }

    /// `run.json`'s start, else the first record's time.
    pub fn start(&self) -> Option<f64> {
        self.info
            .as_ref()
            .and_then(|i| i.start_time)
            .or_else(|| self.lines.iter().find_map(line_time))
    }

    /// From the start to `run.json`'s end, else to the last record.
    pub fn duration(&self) -> Option<f64> {
        let end = self
            .info
            .as_ref()
            .and_then(|i| i.end_time)
            .or_else(|| self.lines.iter().rev().find_map(line_time))?;
        Some((end - self.start()?).max(0.0))
    }

    /// One past the largest step.
    pub fn steps(&self) -> u64 {
        self.lines
            .iter()
            .filter_map(|l| l["step"].as_u64())
            .max()
            .map_or(0, |s| s.saturating_add(1))
    }

    /// The run API's params, else the hparams records of the metrics files (later ones win).
    pub fn params(&self) -> Result<Json, String> {
        if self.path.join("parameters.jsonl").exists() {
            return read_params(&self.path).map_err(|e| e.to_string());
        }
        let mut current = Map::new();
        for line in self.lines.iter().filter(|l| l["hparams"] == true) {
            for (k, v) in fields(line) {
                current.insert(k.clone(), v.clone());
            }
        }
        Ok(Json::Object(current))
    }

    pub fn summary(&self) -> BTreeMap<String, Summary> {
        summarize(&self.lines)
    }
}

/// Nested params as dotted names: `{"model": {"layers": 4}}` → `model.layers = 4`.
pub fn flat_params(params: &Json) -> BTreeMap<String, Json> {
    fn walk(prefix: &str, v: &Json, out: &mut BTreeMap<String, Json>) {
        match v {
            Json::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    if params.as_object().is_some_and(|m| !m.is_empty()) {
        walk("", params, &mut out);
    }
    out
}

/// `line` with each histogram (an object with `edges` and `counts`, as JSONL writes
/// `log_histogram`'s values) replaced by its statistics as numeric fields
/// `<name>.count`, `.min`, `.max`, `.mean` and `.nonfinite`, so that tables, summaries and
/// charts see numbers. Lines without histograms are returned as they are.
pub fn histogram_stats(line: Json) -> Json {
    if !has_histogram(&line) {
        return line;
    }
    let Json::Object(map) = line else { return line };
    let mut out = serde_json::Map::with_capacity(map.len() + 4);
    for (k, v) in map {
        if !is_histogram(&v) {
            out.insert(k, v);
            continue;
        }
        for name in ["count", "min", "max", "mean"] {
            out.insert(format!("{k}.{name}"), v[name].clone());
        }
        let nonfinite: u64 = ["nan", "pos_inf", "neg_inf"]
            .iter()
            .filter_map(|n| v[*n].as_u64())
            .sum();
        out.insert(format!("{k}.nonfinite"), nonfinite.into());
    }
    Json::Object(out)
}

/// Whether a value is a histogram as JSONL writes it (an object with `edges` and `counts`).
fn is_histogram(v: &Json) -> bool {
    v.get("edges").is_some() && v.get("counts").is_some()
}

/// Whether a line holds a histogram (see [`histogram_stats`]).
pub fn has_histogram(line: &Json) -> bool {
    line.as_object()
        .is_some_and(|m| m.values().any(is_histogram))
}

/// A number for JSON output: NaN and ±∞ as the JSONL strings.
pub fn json_number(x: f64) -> Json {
    trainlog::jsonl::value(&trainlog::Value::F64(x))
}

/// What `ls` and `show` print about one metric.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Numeric points, non-finite ones included.
    pub count: usize,
    /// Points that were NaN or ±∞.
    pub non_finite: usize,
    /// Smallest and largest finite value (∞ and −∞ while there is none), and the step of
    /// each (the first one that reached it).
    pub min: f64,
    pub max: f64,
    pub min_step: Option<u64>,
    pub max_step: Option<u64>,
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
                min_step: None,
                max_step: None,
                last: x,
            });
            e.count += 1;
            if x.is_finite() {
                if x < e.min {
                    e.min = x;
                    e.min_step = line["step"].as_u64();
                }
                if x > e.max {
                    e.max = x;
                    e.max_step = line["step"].as_u64();
                }
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

/// Metrics whose best value is the smallest: losses, errors, perplexities.
pub fn lower_is_better(metric: &str) -> bool {
    let m = metric.to_ascii_lowercase();
    ["loss", "error", "err", "perplexity", "ppl", "wer", "cer"]
        .iter()
        .any(|w| m.split(['.', '/', '_', '-']).any(|part| part == *w))
        || m.contains("loss")
}

pub fn format_time(secs: f64) -> String {
    trainlog::time::rfc3339(trainlog::time::from_unix_seconds(secs))[..19].replace('T', " ")
}
