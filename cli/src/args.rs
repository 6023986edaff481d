//! The command line's arguments: one clap definition per command, with examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// List, inspect, compare, follow, export and plot training runs.
///
/// A run is a directory holding `run.json` (trainlog's run API) or `metrics_rank*.jsonl`
/// files (any trainlog metric logger's JSONL output).
#[derive(Debug, Parser)]
#[command(name = "trainlog", version, max_term_width = 100)]
#[command(after_help = "Examples:
  trainlog ls runs --status failed
  trainlog compare runs/sft_a runs/sft_b
  trainlog tail -f -n 20 runs/sft_a
  trainlog plot runs/sft_a runs/sft_b -m loss --smooth 0.6 -o loss.png")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Ls(LsArgs),
    Show(ShowArgs),
    Compare(CompareArgs),
    Tail(TailArgs),
    Export(ExportArgs),
    Plot(PlotArgs),
    Sync(SyncArgs),
    Serve(ServeArgs),
    Completions(CompletionsArgs),
}

/// The runs under a directory: status, start, steps, results and last values.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog ls                      runs under ./runs, oldest first
  trainlog ls /data/runs --status running
  trainlog ls --json | jq '.[] | select(.status == \"failed\") | .run'")]
pub struct LsArgs {
    /// Where to look for runs (searched recursively).
    #[arg(default_value = "runs")]
    pub root: PathBuf,
    /// Only runs with this status (a run without `run.json` has none).
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// One JSON array of runs instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    Created,
    Running,
    Completed,
    Failed,
}

/// A run's status, tags, results, params and a summary of every metric.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog show runs/sft_a
  trainlog show runs/sft_a --json | jq .metrics.loss.last")]
pub struct ShowArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Whose metrics, in a run of several ranks: a rank, or `all` (a table per rank).
    /// Default: rank 0 (the lowest rank the run has).
    #[arg(long, value_name = "N|all", value_parser = parse_rank)]
    pub rank: Option<RankChoice>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs side by side: the params that differ, then each metric's last and best value.
///
/// Best is the minimum for metrics whose name contains `loss`, `error`, `perplexity` or
/// `ppl`, and the maximum otherwise; `--best` says otherwise for a metric.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog compare runs/sft_a runs/sft_b
  trainlog compare runs/* --best max:eval.acc --best min:grad_norm
  trainlog compare runs/sft_a runs/sft_b --json")]
pub struct CompareArgs {
    /// Two or more run directories.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Whose metrics, in runs of several ranks: a rank, or `all` (a column per run and
    /// rank). Default: rank 0 (each run's lowest rank).
    #[arg(long, value_name = "N|all", value_parser = parse_rank)]
    pub rank: Option<RankChoice>,
    /// How to pick a metric's best value: `min:NAME` or `max:NAME` (repeatable).
    #[arg(long, value_name = "min|max:METRIC", value_parser = parse_best)]
    pub best: Vec<(Direction, String)>,
    /// Also list the params that are equal in every run.
    #[arg(long)]
    pub all_params: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--rank`: one rank, or every rank apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankChoice {
    One(u32),
    All,
}

fn parse_rank(s: &str) -> Result<RankChoice, String> {
    match s {
        "all" => Ok(RankChoice::All),
        n => n
            .parse()
            .map(RankChoice::One)
            .map_err(|_| format!("`{n}`: a rank is a number, or `all`")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Min,
    Max,
}

fn parse_best(s: &str) -> Result<(Direction, String), String> {
    let (direction, metric) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected min:METRIC or max:METRIC"))?;
    let direction = match direction {
        "min" => Direction::Min,
        "max" => Direction::Max,
        other => return Err(format!("`{other}`: expected min or max before the `:`")),
    };
    if metric.is_empty() {
        return Err(format!("`{s}`: the metric name is missing"));
    }
    Ok((direction, metric.to_owned()))
}

/// A run's records as dict lines; with `-f`, new records as they arrive.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog tail runs/sft_a               every record of every rank
  trainlog tail -n 20 -f runs/sft_a      the last 20, then follow (new ranks too)
  trainlog tail runs/sft_a/metrics_rank3.jsonl")]
pub struct TailArgs {
    /// A run directory (every rank) or one JSONL file.
    pub target: PathBuf,
    /// Keep printing records as they are written; picks up rank files created later.
    #[arg(short, long)]
    pub follow: bool,
    /// Start with the last N records (of each file) instead of all of them.
    #[arg(short = 'n', long, value_name = "N")]
    pub lines: Option<usize>,
}

/// Runs as one table (CSV or JSONL), with `run` and `rank` columns.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog export runs/sft_a > sft_a.csv
  trainlog export runs/sft_a runs/sft_b --format jsonl -o both.jsonl")]
pub struct ExportArgs {
    /// One or more run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

/// Line charts of metrics (PNG or SVG): a chart per metric, a line per run and rank.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog plot runs/sft_a -o sft_a.png                 the key metrics of one run
  trainlog plot runs/sft_* -m loss -m eval.acc --smooth 0.6 -o compare.svg
  trainlog plot runs/sft_a -m lr --log-y --x relative -o lr.png")]
pub struct PlotArgs {
    /// One or more run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// A metric to draw (repeatable; default: up to three key metrics, losses first).
    #[arg(short, long = "metric", value_name = "NAME")]
    pub metrics: Vec<String>,
    /// The image to write: `.png` or `.svg`.
    #[arg(short, long, value_name = "OUT.png|OUT.svg")]
    pub output: PathBuf,
    /// TensorBoard's smoothing: a debiased exponential moving average with this weight
    /// (0 = none, 0.6 is TensorBoard's default, below 1); the raw line stays, faint.
    #[arg(long, value_name = "W", default_value_t = 0.0, value_parser = parse_weight)]
    pub smooth: f64,
    /// A logarithmic y axis (values ≤ 0 are left out).
    #[arg(long)]
    pub log_y: bool,
    /// The x axis, as in TensorBoard: the step, the time since the run's first record, or
    /// the wall clock (UTC).
    #[arg(long = "x", value_enum, default_value_t = XAxis::Step)]
    pub x: XAxis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XAxis {
    Step,
    Relative,
    Wall,
}

fn parse_weight(s: &str) -> Result<f64, String> {
    let w: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..1.0).contains(&w) {
        Ok(w)
    } else {
        Err(format!("{w} is outside 0 ≤ W < 1"))
    }
}

/// Sends what the http, mlflow and webhook backends left spooled (server down at exit).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog sync runs/sft_a        the logger's output directory
  MLFLOW_TRACKING_TOKEN=... trainlog sync")]
pub struct SyncArgs {
    /// The logger's output directory (its `*_spool` directories are sent).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// A live dashboard of the runs under a directory, in the browser (read-only).
///
/// Open http://127.0.0.1:6007/ for the runs table and the charts, which follow new lines
/// as they are written. The page's JSON API is there for scripts too: `GET /api/runs` lists
/// the runs; `GET /api/scalars?run=NAME&metric=NAME&points=N` gives one series, every
/// point counted, cut to N buckets with their min and max; `GET /api/events` streams
/// changes. Listens on 127.0.0.1 only unless told otherwise.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog serve runs              then open http://127.0.0.1:6007/
  curl -s localhost:6007/api/runs | jq '.[].name'
  curl -s 'localhost:6007/api/scalars?run=sft_a&metric=loss&points=500' | jq .total")]
pub struct ServeArgs {
    /// The directory whose runs are served (searched recursively).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to listen; an address other than 127.0.0.1 or ::1 is warned about.
    #[arg(long, default_value = "127.0.0.1:6007", value_name = "HOST:PORT")]
    pub addr: String,
}

/// A completion script for your shell, on standard output.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  trainlog completions bash > ~/.local/share/bash-completion/completions/trainlog
  trainlog completions zsh > ~/.zfunc/_trainlog
  trainlog completions fish > ~/.config/fish/completions/trainlog.fish")]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}
