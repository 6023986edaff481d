//! Run discovery and reading, shared by the commands: which directories are runs, their
//! metrics files and lines, and per-metric summaries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use trainlog::jsonl::fields;
#[cfg(test)]
use trainlog::jsonl::number;

use crate::engine::{report_skipped, FileScan, Keep};
use trainlog::run::{read_info, read_params, RunInfo};

/// The `metrics_rank<r>.jsonl` files of a run directory, by rank (none when it cannot be
/// read: see [`run_files`]).
pub fn metric_files(run: &Path) -> Vec<(u32, PathBuf)> {
    run_files(run).unwrap_or_default()
}

/// The `metrics_rank<r>.jsonl` files of a directory, by rank, or why it cannot be read
/// (`<dir>: cannot read it: permission denied`). A directory that does not exist has none.
pub fn run_files(run: &Path) -> Result<Vec<(u32, PathBuf)>, String> {
    let entries = match std::fs::read_dir(run) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(run, &e)),
    };
    let mut files: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let rank = trainlog::jsonl::rank_of(e.file_name().to_str()?)?;
            Some((rank, e.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Why a directory cannot be read, for people: `runs/a: cannot read it: permission denied`.
fn unreadable(dir: &Path, e: &std::io::Error) -> String {
    format!("{}: cannot read it: {}", dir.display(), e.kind())
}

pub fn is_run(dir: &Path) -> bool {
    dir.join("run.json").is_file() || !metric_files(dir).is_empty()
}

/// Every run directory under `root` (a run's own subdirectories are not searched), and
/// the directories that could not be read, with why.
pub fn find_runs(root: &Path) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut runs = Vec::new();
    let mut unread = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if is_run(&dir) {
            runs.push(dir);
            continue;
        }
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(entry.path());
                    }
                }
            }
            Err(e) => unread.push((dir.clone(), unreadable(&dir, &e))),
        }
    }
    runs.sort();
    unread.sort();
    (runs, unread)
}

/// A name as a terminal or a chart shows it: control characters escaped as the console's
/// dict lines write them, so a metric or run name can neither forge a line, send escape
/// sequences to the terminal, nor make an SVG that is not XML.
pub use trainlog::format::escape_controls as visible;

/// How many terminal columns `s` takes (a CJK character two, a combining mark none).
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` padded with spaces to `columns` terminal columns (see [`width`]).
pub fn pad(s: &str, columns: usize) -> String {
    format!("{s}{}", " ".repeat(columns.saturating_sub(width(s))))
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
    let names: Vec<String> = runs
        .iter()
        .map(|p| visible(&name(p)).into_owned())
        .collect();
    let unique = names
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == names.len();
    if unique {
        names
    } else {
        runs.iter()
            .map(|p| visible(&p.display().to_string()).into_owned())
            .collect()
    }
}

/// Everything the commands say about one run, read once (each metrics file streamed by
/// the [`engine`](crate::engine), keeping summaries, not lines).
pub struct RunData {
    pub path: PathBuf,
    /// `run.json`, for runs of the run API.
    pub info: Option<RunInfo>,
    /// Each rank's file, in rank order (shared: `serve` keeps them between requests).
    pub files: Vec<(u32, Arc<FileScan>)>,
}

impl RunData {
    /// Reads the run's summaries (no points), naming its skipped lines on stderr.
    pub fn load(path: &Path) -> Result<RunData, String> {
        RunData::load_with(path, |file| {
            let scan = FileScan::read(file, Keep::NONE)?;
            report_bad_lines(file, &scan);
            Ok(Arc::new(scan))
        })
    }

    /// Reads the run, its metrics files through `read` (which may keep them).
    pub fn load_with(
        path: &Path,
        mut read: impl FnMut(&Path) -> Result<Arc<FileScan>, String>,
    ) -> Result<RunData, String> {
        let files = run_files(path)?;
        if files.is_empty() && !path.join("run.json").is_file() {
            return Err(not_a_run(path));
        }
        let mut scans = Vec::with_capacity(files.len());
        for (rank, file) in files {
            scans.push((rank, read(&file)?));
        }
        let info = match read_info(path) {
            Ok(info) => Some(info),
            Err(e) if path.join("run.json").exists() => return Err(e.to_string()),
            Err(_) => None,
        };
        Ok(RunData {
            path: path.to_path_buf(),
            info,
            files: scans,
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
            .or_else(|| self.files.iter().find_map(|(_, f)| f.first_time))
    }

    /// From the start to `run.json`'s end, else to the last record.
    pub fn duration(&self) -> Option<f64> {
        let end = self
            .info
            .as_ref()
            .and_then(|i| i.end_time)
            .or_else(|| self.files.iter().rev().find_map(|(_, f)| f.last_time))?;
        Some((end - self.start()?).max(0.0))
    }

    /// One past the largest step.
    pub fn steps(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(_, f)| f.max_step)
            .max()
            .map_or(0, |s| s.saturating_add(1))
    }

    /// The run API's params, else the hparams records of the metrics files (later ones win).
    pub fn params(&self) -> Result<Json, String> {
        if self.path.join("parameters.jsonl").exists() {
            return read_params(&self.path).map_err(|e| e.to_string());
        }
        let mut current = Map::new();
        for line in self.files.iter().flat_map(|(_, f)| &f.hparams) {
            for (k, v) in fields(line) {
                current.insert(k.clone(), v.clone());
            }
        }
        Ok(Json::Object(current))
    }

    /// The ranks that have a metrics file, in order.
    pub fn ranks(&self) -> Vec<u32> {
        self.files.iter().map(|(rank, _)| *rank).collect()
    }

    /// The rank shown unless another is asked for: 0, else the lowest the run has.
    pub fn default_rank(&self) -> Option<u32> {
        self.files.first().map(|(rank, _)| *rank)
    }

    /// The rank `choice` names (one of the run's), or the default; an error naming the
    /// ranks there are when the run has no such rank.
    pub fn rank_for(&self, choice: Option<u32>) -> Result<Option<u32>, String> {
        match choice {
            None => Ok(self.default_rank()),
            Some(rank) if self.files.iter().any(|(r, _)| *r == rank) => Ok(Some(rank)),
            Some(rank) => Err(format!(
                "{} has no rank {rank} (its ranks: {})",
                self.path.display(),
                self.ranks()
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Per metric, of one rank's file (`None`: every rank's, in rank order).
    pub fn summary_of(&self, rank: Option<u32>) -> BTreeMap<String, Summary> {
        let mut out: BTreeMap<String, Summary> = BTreeMap::new();
        for (_, file) in self
            .files
            .iter()
            .filter(|(r, _)| rank.is_none_or(|x| x == *r))
        {
            for metric in &file.metrics {
                out.entry(metric.name.clone())
                    .or_default()
                    .extend(&metric.summary);
            }
        }
        out
    }
}

fn not_a_run(path: &Path) -> String {
    format!(
        "{} is not a run directory (no run.json or metrics_rank*.jsonl)",
        path.display()
    )
}

/// Names the lines of `file` that were skipped (the first few, then a count), on stderr.
pub fn report_bad_lines(file: &Path, scan: &FileScan) {
    for (line, why) in &scan.first_bad {
        report_skipped(file, *line, why);
    }
    if scan.bad_lines > scan.first_bad.len() {
        eprintln!(
            "trainlog: {}: {} lines skipped in all",
            file.display(),
            scan.bad_lines
        );
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

/// The fields a histogram becomes, `<name>.count` and so on (the last counts NaN and ±∞).
pub const HISTOGRAM_FIELDS: [&str; 5] = ["count", "min", "max", "mean", "nonfinite"];

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
        let [statistics @ .., nonfinite_name] = HISTOGRAM_FIELDS;
        for name in statistics {
            out.insert(format!("{k}.{name}"), v[name].clone());
        }
        let nonfinite: u64 = ["nan", "pos_inf", "neg_inf"]
            .iter()
            .filter_map(|n| v[*n].as_u64())
            .sum();
        out.insert(format!("{k}.{nonfinite_name}"), nonfinite.into());
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
    /// Every point was a JSON integer (a count, a number of tokens): values print whole.
    pub integers: bool,
}

impl Summary {
    /// No points yet.
    pub fn new() -> Summary {
        Summary {
            count: 0,
            non_finite: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            min_step: None,
            max_step: None,
            last: f64::NAN,
            integers: true,
        }
    }

    /// A value of this metric for a table: whole for a metric of integers (a histogram
    /// count of 1024 is `1024`, not `1.02e3`), else by the console's float rules.
    pub fn text(&self, x: f64) -> String {
        if self.integers && x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            trainlog::format::format_float(x)
        }
    }

    /// Adds the points `later` summarizes (a later file), as if added one by one.
    pub fn extend(&mut self, later: &Summary) {
        if later.count == 0 {
            return;
        }
        self.count += later.count;
        self.non_finite += later.non_finite;
        self.integers &= later.integers;
        if later.min < self.min {
            self.min = later.min;
            self.min_step = later.min_step;
        }
        if later.max > self.max {
            self.max = later.max;
            self.max_step = later.max_step;
        }
        self.last = later.last;
    }

    /// Adds a point, in file order, logged at `step`; `integer` if it was a JSON integer.
    pub fn add(&mut self, x: f64, step: Option<u64>, integer: bool) {
        self.integers &= integer;
        self.count += 1;
        if x.is_finite() {
            if x < self.min {
                self.min = x;
                self.min_step = step;
            }
            if x > self.max {
                self.max = x;
                self.max_step = step;
            }
        } else {
            self.non_finite += 1;
        }
        self.last = x;
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

/// Per metric, over numeric values (NaN and ±∞ included), in file order, from whole lines
/// (the reader the engine replaced; its tests compare the two).
#[cfg(test)]
pub fn summarize(lines: &[Json]) -> BTreeMap<String, Summary> {
    let mut out: BTreeMap<String, Summary> = BTreeMap::new();
    for line in lines.iter().filter(|l| l["hparams"] != true) {
        for (k, v) in fields(line) {
            let Some(x) = number(v) else { continue };
            out.entry(k.clone()).or_default().add(
                x,
                line["step"].as_u64(),
                v.is_i64() || v.is_u64(),
            );
        }
    }
    out
}

/// A value for a table cell: `-` when there is none (a minimum with no finite point).
/// A value of `summary`'s metric for a table cell (see [`Summary::text`]); `-` when there
/// is none (a minimum with no finite point).
pub fn cell(summary: &Summary, x: f64, present: bool) -> String {
    if present {
        summary.text(x)
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
