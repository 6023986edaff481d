//! Putting it together: the [`MetricLogger`] builder, the [`MetricGuard`], and the
//! one-call [`setup_metric_logger`] / [`setup_root_logger`]. The one module that knows
//! every backend.

use std::borrow::Cow;
use std::fmt;
#[cfg(feature = "jsonl")]
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::Subscriber;
use tracing_subscriber::Layer;

use crate::filter::{MetricFilter, METRICS_TARGET};
use crate::layer::{MetricLayer, SinkLayer, Sinks};
use crate::rank::RankInfo;
use crate::sink::{RunOutcome, Sink};
use crate::worker::{Feeder, Worker, WorkerConfig};
use crate::{Error, Result};

/// What the logging call does when a sink's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Wait for room: nothing is lost, training slows to the sink's pace. The default.
    #[default]
    Block,
    /// Never wait: the record is dropped and counted ([`Stats::dropped`]); the total is
    /// reported when the guard shuts down.
    Drop,
}

/// A backend named in a `backends("...")` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Structured JSONL, one file per rank, written on every rank (`async` or `jsonl`).
    Jsonl,
    /// TensorBoard event files, rank 0 only by default (`tensorboard`).
    TensorBoard,
    /// JSON POSTs to a server, rank 0 only by default (`http`).
    Http,
    /// An MLflow tracking server, rank 0 only by default (`mlflow`).
    Mlflow,
    /// OpenTelemetry metrics over OTLP, rank 0 only by default (`otel`).
    Otel,
    /// A Weights & Biases offline run, rank 0 only by default (`wandb`).
    Wandb,
}

impl Backend {
    /// Parses one name of a backends list (case-insensitive).
    pub fn parse(name: &str) -> Result<Backend> {
        let name = name.trim();
        let (backend, feature, built) = match name.to_ascii_lowercase().as_str() {
            "async" | "jsonl" => (Backend::Jsonl, "jsonl", cfg!(feature = "jsonl")),
            "tensorboard" => (
                Backend::TensorBoard,
                "tensorboard",
                cfg!(feature = "tensorboard"),
            ),
            "http" => (Backend::Http, "http", cfg!(feature = "http")),
            "mlflow" => (Backend::Mlflow, "mlflow", cfg!(feature = "mlflow")),
            "otel" => (Backend::Otel, "otel", cfg!(feature = "otel")),
            "wandb" => (Backend::Wandb, "wandb", cfg!(feature = "wandb")),
            _ => return Err(Error::UnknownBackend { name: name.into() }),
        };
        if built {
            Ok(backend)
        } else {
            Err(Error::BackendUnavailable {
                name: name.into(),
                reason: format!("this build of trainlog lacks the `{feature}` feature"),
            })
        }
    }
}

/// Entry point: `MetricLogger::builder()`. See [`MetricLoggerBuilder`].
#[derive(Debug)]
pub struct MetricLogger {
    _private: (),
}

impl MetricLogger {
    /// A builder with the defaults: `async` backend when an output directory is given
    /// (no backend otherwise, for custom sinks), rank from the environment, target
    /// `metrics`, lossless queue of 65,536 records per sink, flush every second, shutdown
    /// deadline 5 seconds.
    pub fn builder() -> MetricLoggerBuilder {
        MetricLoggerBuilder::default()
    }
}

/// Configures the metrics layer and its sinks.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let dir = tempfile::tempdir()?;
/// let (metrics, guard) = trainlog::MetricLogger::builder()
///     .output_dir(dir.path())
///     .backends("async")?
///     .rank(0)
///     .build()?;
/// let subscriber = tracing_subscriber::registry().with(metrics);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(target: "metrics", step = 0, loss = 0.5);
/// });
/// drop(guard); // flushes and closes the file
/// let text = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl"))?;
/// assert!(text.contains(r#""step":0,"loss":0.5"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MetricLoggerBuilder {
    output_dir: Option<PathBuf>,
    backends: Vec<Backend>,
    backends_set: bool,
    rank: Option<RankInfo>,
    target: Cow<'static, str>,
    capacity: usize,
    overflow: Overflow,
    flush_interval: Duration,
    shutdown_timeout: Duration,
    custom: Vec<(Box<dyn Sink>, bool)>,
    console: bool,
    run_name: Option<String>,
    tensorboard_dir: Option<PathBuf>,
    tensorboard_all_ranks: bool,
    tensorboard_experiment: bool,
    #[cfg(feature = "http")]
    http: Option<crate::sink::HttpOptions>,
    #[cfg(feature = "mlflow")]
    mlflow: Option<crate::sink::MlflowOptions>,
    #[cfg(feature = "otel")]
    otel: Option<crate::sink::OtelOptions>,
    #[cfg(feature = "wandb")]
    wandb: Option<crate::sink::WandbOptions>,
}

impl fmt::Debug for MetricLoggerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("MetricLoggerBuilder");
        f.field("output_dir", &self.output_dir)
            .field("backends", &self.backends)
            .field("rank", &self.rank)
            .field("target", &self.target)
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("flush_interval", &self.flush_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field(
                "custom_sinks",
                &self
                    .custom
                    .iter()
                    .map(|(s, _)| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("console", &self.console)
            .field("run_name", &self.run_name)
            .field("tensorboard_dir", &self.tensorboard_dir)
            .field("tensorboard_all_ranks", &self.tensorboard_all_ranks)
            .field("tensorboard_experiment", &self.tensorboard_experiment);
        #[cfg(feature = "http")]
        f.field("http", &self.http);
        #[cfg(feature = "mlflow")]
        f.field("mlflow", &self.mlflow);
        #[cfg(feature = "otel")]
        f.field("otel", &self.otel);
        #[cfg(feature = "wandb")]
        f.field("wandb", &self.wandb);
        f.finish()
    }
}

impl Default for MetricLoggerBuilder {
    fn default() -> Self {
        MetricLoggerBuilder {
            output_dir: None,
            backends: Vec::new(),
            backends_set: false,
            rank: None,
            target: Cow::Borrowed(METRICS_TARGET),
            capacity: 65_536,
            overflow: Overflow::Block,
            flush_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            custom: Vec::new(),
            console: true,
            run_name: None,
            tensorboard_dir: None,
            tensorboard_all_ranks: false,
            tensorboard_experiment: false,
            #[cfg(feature = "http")]
            http: None,
            #[cfg(feature = "mlflow")]
            mlflow: None,
            #[cfg(feature = "otel")]
            otel: None,
            #[cfg(feature = "wandb")]
            wandb: None,
        }
    }
}

impl MetricLoggerBuilder {
    /// Directory for file backends (created if missing). Required by `async`.
    pub fn output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }

    /// Backends as one comma-separated list, InstructLab's `--logger_type` spelling:
    /// `"async"`, `"async,tensorboard"`. Unknown or unavailable names are an error;
    /// an empty list means custom sinks only.
    pub fn backends(mut self, list: &str) -> Result<Self> {
        let mut backends = Vec::new();
        for name in list.split(',').filter(|n| !n.trim().is_empty()) {
            let backend = Backend::parse(name)?;
            if !backends.contains(&backend) {
                backends.push(backend);
            }
        }
        self.backends = backends;
        self.backends_set = true;
        Ok(self)
    }

    /// Sets the rank explicitly instead of reading it from the environment.
    pub fn rank(mut self, rank: u32) -> Self {
        self.rank = Some(RankInfo::new(rank));
        self
    }

    /// Sets rank, local rank and world size explicitly.
    pub fn rank_info(mut self, info: RankInfo) -> Self {
        self.rank = Some(info);
        self
    }

    /// The `tracing` target metrics events use (default `metrics`).
    pub fn target(mut self, target: impl Into<Cow<'static, str>>) -> Self {
        self.target = target.into();
        self
    }

    /// Records each sink's queue holds before the overflow policy applies (default 65,536).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.capacity = records.max(1);
        self
    }

    /// What to do when a queue is full (default [`Overflow::Block`]: nothing is lost).
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// How often sinks are flushed when records arrive (default 1 s). This bounds
    /// what a crash can lose.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How long dropping the guard may wait for sinks to drain and close (default 5 s).
    pub fn shutdown_timeout(mut self, deadline: Duration) -> Self {
        self.shutdown_timeout = deadline;
        self
    }

    /// Adds a sink of your own that receives records on every rank.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.custom.push((Box::new(sink), false));
        self
    }

    /// Adds a sink of your own that receives records on rank 0 only.
    pub fn rank0_sink(mut self, sink: impl Sink) -> Self {
        self.custom.push((Box::new(sink), true));
        self
    }

    /// Run-name template for backends that name runs (TensorBoard's run directory).
    /// Placeholders: `{time}`, `{utc_time}`, `{rank}`, `{local_rank}` (see
    /// [`naming::expand_run_name`](crate::naming::expand_run_name)). Default `{time}_rank{rank}`.
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// Where TensorBoard runs go (default `<output_dir>/tensorboard`). Setting it turns
    /// the `tensorboard` backend on, as InstructLab does when a log directory is given.
    pub fn tensorboard_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.tensorboard_dir = Some(dir.into());
        self
    }

    /// Write TensorBoard files on every rank instead of rank 0 only (give each rank its
    /// own run name, e.g. with `{rank}`, which the default has).
    pub fn tensorboard_all_ranks(mut self, all: bool) -> Self {
        self.tensorboard_all_ranks = all;
        self
    }

    /// Write an HParams experiment record at close (off by default; see
    /// [`TensorBoardSink`](crate::sink) for why).
    pub fn tensorboard_experiment(mut self, enabled: bool) -> Self {
        self.tensorboard_experiment = enabled;
        self
    }

    /// Settings of the `http` backend; setting them turns it on.
    #[cfg(feature = "http")]
    pub fn http(mut self, options: crate::sink::HttpOptions) -> Self {
        self.http = Some(options);
        self
    }

    /// Settings of the `mlflow` backend; setting them turns it on (as do
    /// `MLFLOW_TRACKING_URI` or `MLFLOW_EXPERIMENT_NAME` in the environment).
    #[cfg(feature = "mlflow")]
    pub fn mlflow(mut self, options: crate::sink::MlflowOptions) -> Self {
        self.mlflow = Some(options);
        self
    }

    /// Settings of the `otel` backend; setting them turns it on.
    #[cfg(feature = "otel")]
    pub fn otel(mut self, options: crate::sink::OtelOptions) -> Self {
        self.otel = Some(options);
        self
    }

    /// Settings of the `wandb` backend; setting them turns it on (as does
    /// `WANDB_PROJECT` in the environment).
    #[cfg(feature = "wandb")]
    pub fn wandb(mut self, options: crate::sink::WandbOptions) -> Self {
        self.wandb = Some(options);
        self
    }

    /// Whether [`init`](Self::init) adds the console layer for metrics (default true).
    pub fn console(mut self, enabled: bool) -> Self {
        self.console = enabled;
        self
    }

    /// Starts the sinks and returns the layer to add to your subscriber, and the guard
    /// that flushes and closes them when dropped.
    pub fn build<S>(self) -> Result<(MetricLayer<S>, MetricGuard)>
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let target = self.target.clone();
        let (feeders, guard) = self.start()?;
        let filter = MetricFilter {
            target,
            active: !feeders.is_empty(),
        };
        let layer = SinkLayer::new(Sinks {
            feeders,
            rank: guard.rank.rank,
        })
        .with_filter(filter);
        Ok((layer, guard))
    }

    /// Opens every sink and starts its worker.
    fn start(self) -> Result<(Vec<Feeder>, MetricGuard)> {
        let rank = self.rank.unwrap_or_else(RankInfo::from_env);
        // Without an explicit list, a given output directory means JSONL; a TensorBoard
        // directory means TensorBoard in any case (InstructLab's auto-detection).
        let mut backends = match (self.backends_set, &self.output_dir) {
            (true, _) => self.backends.clone(),
            (false, Some(_)) => vec![Backend::Jsonl],
            (false, None) => Vec::new(),
        };
        if self.tensorboard_dir.is_some() && !backends.contains(&Backend::TensorBoard) {
            backends.push(Backend::parse("tensorboard")?);
        }
        #[cfg(feature = "http")]
        if self.http.is_some() && !backends.contains(&Backend::Http) {
            backends.push(Backend::Http);
        }
        #[cfg(feature = "otel")]
        if self.otel.is_some() && !backends.contains(&Backend::Otel) {
            backends.push(Backend::Otel);
        }
        #[cfg(feature = "wandb")]
        if (self.wandb.is_some() || crate::sink::WandbOptions::requested_by_env())
            && !backends.contains(&Backend::Wandb)
        {
            backends.push(Backend::Wandb);
        }
        #[cfg(feature = "mlflow")]
        if (self.mlflow.is_some() || crate::sink::MlflowOptions::requested_by_env())
            && !backends.contains(&Backend::Mlflow)
        {
            backends.push(Backend::Mlflow);
        }
        if backends.is_empty() && self.custom.is_empty() {
            return Err(Error::Config(
                "nothing to log to: set `.output_dir(..)`, `.backends(..)` or add a `.sink(..)`"
                    .into(),
            ));
        }
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        for backend in &backends {
            match backend {
                Backend::Jsonl => sinks.push(self.jsonl_sink(rank.rank)?),
                Backend::TensorBoard => {
                    if rank.is_rank0() || self.tensorboard_all_ranks {
                        sinks.push(self.tensorboard_sink(rank)?);
                    }
                }
                Backend::Http => {
                    if let Some(sink) = self.http_sink(rank)? {
                        sinks.push(sink);
                    }
                }
                Backend::Mlflow => {
                    if let Some(sink) = self.mlflow_sink(rank)? {
                        sinks.push(sink);
                    }
                }
                Backend::Otel => {
                    if let Some(sink) = self.otel_sink(rank)? {
                        sinks.push(sink);
                    }
                }
                Backend::Wandb => {
                    if let Some(sink) = self.wandb_sink(rank)? {
                        sinks.push(sink);
                    }
                }
            }
        }
        for (sink, rank0_only) in self.custom {
            if !rank0_only || rank.is_rank0() {
                sinks.push(sink);
            }
        }
        let config = WorkerConfig {
            capacity: self.capacity,
            overflow: self.overflow,
            flush_interval: self.flush_interval,
        };
        let mut guard = MetricGuard {
            workers: Vec::with_capacity(sinks.len()),
            rank,
            shutdown_timeout: self.shutdown_timeout,
            shut_down: false,
        };
        let mut feeders = Vec::with_capacity(sinks.len());
        for sink in sinks {
            // On error the guard closes the workers started so far.
            let (worker, feeder) = Worker::spawn(sink, &config)?;
            guard.workers.push(worker);
            feeders.push(feeder);
        }
        Ok((feeders, guard))
    }

    /// The output directory, which the named backend cannot do without.
    #[cfg_attr(
        not(any(feature = "jsonl", feature = "http", feature = "mlflow")),
        allow(dead_code)
    )]
    fn output_dir_for(&self, backend: &str) -> Result<&std::path::Path> {
        self.output_dir.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "the `{backend}` backend writes to disk: set `.output_dir(..)` on the builder"
            ))
        })
    }

    #[cfg(feature = "jsonl")]
    fn jsonl_sink(&self, rank: u32) -> Result<Box<dyn Sink>> {
        let dir = self.output_dir_for("async")?;
        Ok(Box::new(crate::sink::JsonlSink::in_dir(dir, rank)?))
    }

    #[cfg(not(feature = "jsonl"))]
    fn jsonl_sink(&self, _rank: u32) -> Result<Box<dyn Sink>> {
        unreachable!("Backend::parse refuses `async` without the `jsonl` feature")
    }

    #[cfg(feature = "tensorboard")]
    fn tensorboard_sink(&self, rank: RankInfo) -> Result<Box<dyn Sink>> {
        let dir = match (&self.tensorboard_dir, &self.output_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(out)) => out.join("tensorboard"),
            (None, None) => {
                return Err(Error::Config(
                    "the `tensorboard` backend writes files: set `.output_dir(..)` or \
                     `.tensorboard_dir(..)` on the builder"
                        .into(),
                ))
            }
        };
        let template = self.run_name.as_deref().unwrap_or("{time}_rank{rank}");
        let name = crate::naming::expand_run_name(template, rank, std::time::SystemTime::now())?;
        let sink = crate::sink::TensorBoardSink::create(dir.join(name))?
            .with_experiment(self.tensorboard_experiment);
        Ok(Box::new(sink))
    }

    #[cfg(feature = "http")]
    fn http_sink(&self, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        let options = self.http.clone().unwrap_or_default();
        if !options.sends_on(rank) {
            return Ok(None);
        }
        let dir = self.output_dir_for("http")?;
        Ok(Some(Box::new(crate::sink::HttpSink::new(
            options, dir, rank,
        )?)))
    }

    #[cfg(feature = "mlflow")]
    fn mlflow_sink(&self, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        let options = self.mlflow.clone().unwrap_or_default();
        if !options.sends_on(rank) {
            return Ok(None);
        }
        let dir = self.output_dir_for("mlflow")?;
        let sink = crate::sink::MlflowSink::new(options, dir, rank, self.run_name.as_deref())?;
        Ok(Some(Box::new(sink)))
    }

    #[cfg(feature = "wandb")]
    fn wandb_sink(&self, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        let options = self.wandb.clone().unwrap_or_default();
        if !options.sends_on(rank) {
            return Ok(None);
        }
        let sink = crate::sink::WandbSink::new(
            options,
            self.output_dir.as_deref(),
            rank,
            self.run_name.as_deref(),
        )?;
        Ok(Some(Box::new(sink)))
    }

    #[cfg(not(feature = "wandb"))]
    fn wandb_sink(&self, _rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        unreachable!("Backend::parse refuses `wandb` without the `wandb` feature")
    }

    #[cfg(feature = "otel")]
    fn otel_sink(&self, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        let options = self.otel.clone().unwrap_or_default();
        if !options.sends_on(rank) {
            return Ok(None);
        }
        let sink = crate::sink::OtelSink::new(options, rank, self.run_name.as_deref())?;
        Ok(Some(Box::new(sink)))
    }

    #[cfg(not(feature = "otel"))]
    fn otel_sink(&self, _rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        unreachable!("Backend::parse refuses `otel` without the `otel` feature")
    }

    #[cfg(not(feature = "mlflow"))]
    fn mlflow_sink(&self, _rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        unreachable!("Backend::parse refuses `mlflow` without the `mlflow` feature")
    }

    #[cfg(not(feature = "http"))]
    fn http_sink(&self, _rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
        unreachable!("Backend::parse refuses `http` without the `http` feature")
    }

    #[cfg(not(feature = "tensorboard"))]
    fn tensorboard_sink(&self, _rank: RankInfo) -> Result<Box<dyn Sink>> {
        unreachable!("Backend::parse refuses `tensorboard` without the `tensorboard` feature")
    }
}

/// Totals over a logger's sinks (or one sink's own, in [`MetricGuard::sink_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted into a queue.
    pub queued: u64,
    /// Records not queued: the queue was full under [`Overflow::Drop`], or the logger
    /// had already shut down.
    pub dropped: u64,
    /// Records the sinks took and have not given up on: written, or held in a sink's
    /// buffer for a retry after a write error. After shutdown, `queued == written + lost`.
    pub written: u64,
    /// Failed sink calls (writes, flushes, closes). Failed writes are retried.
    pub write_errors: u64,
    /// Records a sink gave up on.
    pub lost: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.queued += o.queued;
        self.dropped += o.dropped;
        self.written += o.written;
        self.write_errors += o.write_errors;
        self.lost += o.lost;
    }
}

/// Flushes and closes every sink when dropped; returned with the layer.
///
/// Dropping waits at most the shutdown deadline
/// ([`shutdown_timeout`](MetricLoggerBuilder::shutdown_timeout), default 5 s) for queued
/// records to be written. If the thread is panicking, sinks are closed with
/// [`RunOutcome::Failed`]. Keep the guard alive for as long as you log: `let _guard = ..`,
/// not `let _ = ..`.
#[must_use = "dropping the guard shuts the metric logger down"]
pub struct MetricGuard {
    workers: Vec<Worker>,
    rank: RankInfo,
    shutdown_timeout: Duration,
    shut_down: bool,
}

impl fmt::Debug for MetricGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricGuard")
            .field(
                "sinks",
                &self.workers.iter().map(|w| &w.name).collect::<Vec<_>>(),
            )
            .field("rank", &self.rank)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MetricGuard {
    /// Waits until every record logged so far is written and the sinks are flushed,
    /// at most the shutdown deadline.
    pub fn flush(&self) -> Result<()> {
        let deadline = Instant::now() + self.shutdown_timeout;
        let mut first_error = None;
        for worker in &self.workers {
            if let Err(e) = worker.flush(deadline, self.shutdown_timeout) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Counters summed over all sinks.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for (_, s) in self.sink_stats() {
            total += s;
        }
        total
    }

    /// Counters per sink, by sink name.
    pub fn sink_stats(&self) -> Vec<(String, Stats)> {
        use std::sync::atomic::Ordering::Relaxed;
        self.workers
            .iter()
            .map(|w| {
                let c = &w.counters;
                let stats = Stats {
                    queued: c.queued(),
                    dropped: c.dropped(),
                    written: c.written.load(Relaxed),
                    write_errors: c.write_errors.load(Relaxed),
                    lost: c.lost.load(Relaxed),
                };
                (w.name.clone(), stats)
            })
            .collect()
    }

    /// The rank this logger writes as.
    pub fn rank(&self) -> RankInfo {
        self.rank
    }

    /// Names of the sinks this logger feeds on this rank.
    pub fn sinks(&self) -> Vec<&str> {
        self.workers.iter().map(|w| w.name.as_str()).collect()
    }

    /// Shuts down now with the given outcome and returns the final counters.
    ///
    /// Errors if some sink did not finish before the deadline ([`Error::Timeout`]), or if
    /// records were lost ([`Error::Lost`], which carries the final counters): a disk still
    /// full at exit, a sink that panicked, messages a server refused for good.
    pub fn shutdown(mut self, outcome: RunOutcome) -> Result<Stats> {
        self.close(outcome)?;
        Ok(self.stats())
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        if std::mem::replace(&mut self.shut_down, true) {
            return Ok(());
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        let started: Vec<bool> = self
            .workers
            .iter()
            .map(|w| w.begin_shutdown(outcome, deadline))
            .collect();
        let mut late = Vec::new();
        let begun = Instant::now();
        for (worker, started) in self.workers.iter_mut().zip(started) {
            // A network sink may keep delivering while its server makes progress.
            let deadline = worker
                .close_budget
                .map_or(deadline, |budget| deadline.max(begun + budget));
            if !(started && worker.finish(deadline)) {
                late.push(format!(
                    "{} ({} records queued)",
                    worker.name,
                    worker.backlog()
                ));
            }
        }
        let mut lost = Vec::new();
        for (name, s) in self.sink_stats() {
            if s.dropped > 0 {
                eprintln!(
                    "trainlog: {name}: {} records were dropped (queue full under the drop policy, or logged after shutdown)",
                    s.dropped
                );
            }
            if s.lost > 0 {
                eprintln!(
                    "trainlog: {name}: {} of {} records could not be written and are lost",
                    s.lost, s.queued
                );
                lost.push(format!("{name}: {}", s.lost));
            }
        }
        if !late.is_empty() {
            let err = Error::Timeout {
                what: format!("shutting down {}", late.join(", ")),
                after: self.shutdown_timeout,
            };
            eprintln!("trainlog: {err}; unwritten records may be lost");
            return Err(err);
        }
        if !lost.is_empty() {
            return Err(Error::Lost {
                stats: self.stats(),
                detail: format!("lost by sink: {}", lost.join(", ")),
            });
        }
        Ok(())
    }
}

impl Drop for MetricGuard {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            RunOutcome::Failed
        } else {
            RunOutcome::Completed
        };
        // Errors were reported on stderr by `close`.
        let _ = self.close(outcome);
    }
}

#[cfg(feature = "console")]
pub use console::{setup_metric_logger, setup_root_logger};

#[cfg(feature = "console")]
mod console {
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};

    use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
    use tracing_subscriber::prelude::*;

    use super::{MetricGuard, MetricLoggerBuilder};
    use crate::filter::{self, MetricFilter, METRICS_TARGET};
    use crate::format::{color_enabled, color_enabled_for, DictFormat};
    use crate::layer::{SinkLayer, Sinks};
    use crate::rank::RankInfo;
    use crate::{Error, Result};

    /// The sink slot of the subscriber trainlog installed, if it installed one.
    static INSTALLED: Mutex<Option<Arc<OnceLock<Sinks>>>> = Mutex::new(None);

    /// Installs the global subscriber: ordinary logs on stderr (level from `RUST_LOG`,
    /// else `default_level`), metrics as dict lines on stdout (rank 0), and the metric
    /// sinks, which may be attached later.
    fn install(default_level: &str, console: bool, rank: RankInfo) -> Result<Arc<OnceLock<Sinks>>> {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        if installed.is_some() {
            return Err(Error::AlreadyInitialized(
                "trainlog already installed the global subscriber".into(),
            ));
        }
        let env = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(default_level))
            .map_err(|e| Error::Config(format!("invalid log level `{default_level}`: {e}")))?;
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(color_enabled_for(&std::io::stderr()))
            .with_filter(env.and(filter_fn(|meta| meta.target() != METRICS_TARGET)));
        let metrics_console = console.then(|| {
            tracing_subscriber::fmt::layer()
                .event_format(DictFormat::new())
                .with_writer(std::io::stdout)
                .with_ansi(color_enabled())
                .with_filter(
                    filter::metrics()
                        .and(filter::is_mapping())
                        .and(filter::rank0_for(rank.rank)),
                )
        });
        let (sinks, slot) = SinkLayer::deferred();
        let sinks = sinks.with_filter(MetricFilter {
            target: METRICS_TARGET.into(),
            active: true,
        });
        tracing_subscriber::registry()
            .with(logs)
            .with(metrics_console)
            .with(sinks)
            .try_init()
            .map_err(|e| {
                Error::AlreadyInitialized(format!(
                    "a global tracing subscriber is already set ({e}); add the layer from \
                     `MetricLogger::builder().build()` to it instead"
                ))
            })?;
        *installed = Some(slot.clone());
        Ok(slot)
    }

    /// Sets up human-readable logging for everything but metrics: stderr, level from
    /// `RUST_LOG` when set, else `level` (an `EnvFilter` directive such as `"info"` or
    /// `"warn,my_crate=debug"`). Installs the global subscriber, so call it once, before
    /// [`setup_metric_logger`] if you use both (metrics then join this subscriber).
    pub fn setup_root_logger(level: &str) -> Result<()> {
        install(level, true, RankInfo::from_env()).map(|_| ())
    }

    /// One call for the common case: JSONL (or other `backends`) under `output_dir`,
    /// metrics printed on the console (rank 0), ordinary logs on stderr, all installed
    /// as the global subscriber. Keep the returned guard alive until training ends.
    ///
    /// ```no_run
    /// let _guard = trainlog::setup_metric_logger("async", "runs/exp1")?;
    /// tracing::info!(target: "metrics", step = 0, loss = 2.3);
    /// # Ok::<(), trainlog::Error>(())
    /// ```
    pub fn setup_metric_logger(
        backends: &str,
        output_dir: impl AsRef<Path>,
    ) -> Result<MetricGuard> {
        MetricLoggerBuilder::default()
            .backends(backends)?
            .output_dir(output_dir.as_ref())
            .init()
    }

    impl MetricLoggerBuilder {
        /// Like [`build`](Self::build), then installs the layer as (or into) the global
        /// subscriber with a metrics console on stdout and ordinary logs on stderr. If
        /// [`setup_root_logger`] ran before, the sinks join that subscriber. The target
        /// must be the default `metrics` here.
        pub fn init(self) -> Result<MetricGuard> {
            if self.target != METRICS_TARGET {
                return Err(Error::Config(
                    "init() installs the default `metrics` target; use build() for a custom target"
                        .into(),
                ));
            }
            let existing = INSTALLED.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let console = self.console;
            let (feeders, guard) = self.start()?;
            let slot = match existing {
                Some(slot) => slot,
                None => install("info", console, guard.rank())?,
            };
            let rank = guard.rank().rank;
            slot.set(Sinks { feeders, rank }).map_err(|_| {
                Error::AlreadyInitialized(
                    "the metric logger is already set up in this process".into(),
                )
            })?;
            Ok(guard)
        }
    }
}

/// Path of the JSONL file a rank writes under `output_dir`.
///
/// ```
/// let p = trainlog::jsonl_path("runs/a", 3);
/// assert!(p.ends_with("metrics_rank3.jsonl"));
/// ```
#[cfg(feature = "jsonl")]
pub fn jsonl_path(output_dir: impl AsRef<Path>, rank: u32) -> PathBuf {
    output_dir
        .as_ref()
        .join(crate::sink::JsonlSink::file_name(rank))
}
