//! The builder: [`MetricLogger::builder()`] and its settings, and `build()`, which starts
//! the sinks the [registry](super::registry) makes and returns the layer and the guard.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::Layer;

use super::guard::MetricGuard;
use crate::filter::{MetricFilter, METRICS_TARGET};
use crate::layer::{MetricLayer, SinkLayer, Sinks};
use crate::rank::RankInfo;
use crate::sink::Sink;
use crate::sink::{Backend, BackendConfig, BuildContext};
use crate::worker::{Feeder, Overflow, Worker, WorkerConfig};
use crate::{Error, Result};

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
    pub(super) output_dir: Option<PathBuf>,
    pub(super) backends: Vec<Backend>,
    pub(super) backends_set: bool,
    pub(super) rank: Option<RankInfo>,
    pub(super) target: Cow<'static, str>,
    pub(super) capacity: usize,
    pub(super) overflow: Overflow,
    pub(super) flush_interval: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) custom: Vec<(Box<dyn Sink>, bool)>,
    pub(super) console: bool,
    pub(super) span_fields: bool,
    pub(super) system_metrics: Option<Duration>,
    pub(super) resume_from: Option<u64>,
    /// What `init` does besides `build` (feature `console`).
    #[cfg_attr(not(feature = "console"), allow(dead_code))]
    pub(crate) init: InitOptions,
    pub(super) run_name: Option<String>,
    /// Options set on the builder, one per backend (see [`BackendConfig`]).
    pub(super) configs: Vec<Box<dyn BackendConfig>>,
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
            .field("run_name", &self.run_name);
        f.field("configs", &self.configs);
        f.field("total_steps", &self.init.total_steps)
            .field("log_files", &self.init.log_files.is_some());
        f.finish()
    }
}

/// Settings only [`MetricLoggerBuilder::init`] uses: set by `total_steps` (feature
/// `progress`) and `log_files` (feature `logfiles`).
#[derive(Default)]
pub(crate) struct InitOptions {
    pub(crate) total_steps: Option<u64>,
    pub(crate) log_files: Option<super::MakeFilesLayer>,
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
            span_fields: false,
            system_metrics: None,
            resume_from: None,
            init: InitOptions::default(),
            run_name: None,
            configs: Vec::new(),
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

    /// Adds one backend: the typed form of [`backends`](Self::backends). A backend this
    /// build lacks fails `build()` naming the cargo feature.
    ///
    /// ```
    /// use trainlog::{Backend, MetricLogger};
    /// let builder = MetricLogger::builder()
    ///     .output_dir("runs/exp1")
    ///     .backend(Backend::Jsonl)
    ///     .backend(Backend::TensorBoard);
    /// ```
    pub fn backend(mut self, backend: Backend) -> Self {
        if !self.backends_set {
            self.backends.clear();
            self.backends_set = true;
        }
        if !self.backends.contains(&backend) {
            self.backends.push(backend);
        }
        self
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
    ///
    /// trainlog's own calls ([`log_dict`](crate::log_dict), [`log_hparams`](crate::log_hparams),
    /// [`log_histogram`](crate::log_histogram), [`log_fields`](crate::log_fields) and the
    /// run API) log on target `metrics` (a `tracing` target is fixed at compile time), and
    /// every trainlog logger takes them whatever its target: with `.target("train")` they
    /// are recorded too. Other layers see them on `metrics`.
    pub fn target(mut self, target: impl Into<Cow<'static, str>>) -> Self {
        self.target = target.into();
        self
    }

    /// Records each sink's queue holds before the overflow policy applies (default 65,536).
    ///
    /// Each thread that logs has its own queue to each sink (so logging threads never
    /// contend), holding up to this many records and at most 1 MiB of them: about 13,000
    /// events of four numbers and a step, fewer with long texts. The memory is touched as
    /// it fills.
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

    /// Sets a backend's options, replacing options set before for the same backend;
    /// setting them turns the backend on. The typed setters (`.tensorboard(..)`,
    /// `.http(..)`, …) call this.
    ///
    /// ```
    /// # #[cfg(feature = "tensorboard")] {
    /// use trainlog::{sink::TensorBoardOptions, MetricLogger};
    /// let builder = MetricLogger::builder()
    ///     .output_dir("runs/exp1")
    ///     .configure(TensorBoardOptions::new().run_name("sft"));
    /// # }
    /// ```
    pub fn configure(mut self, options: impl BackendConfig) -> Self {
        let backend = options.backend();
        self.configs.retain(|c| c.backend() != backend);
        self.configs.push(Box::new(options));
        self
    }

    /// Puts the fields of the spans a metrics event is logged in on its record, as
    /// `fmt().json()` does (off by default): inside `info_span!("epoch", epoch = 3)`,
    /// `info!(target: "metrics", step, loss)` records `epoch: 3` too. Outer spans' fields
    /// come first; the event's own fields win over a span's of the same name; a span's
    /// `step` is the record's step when the event has none. It costs the caller a walk up
    /// the span scope per event (see the `caller` benches).
    pub fn span_fields(mut self, enabled: bool) -> Self {
        self.span_fields = enabled;
        self
    }

    /// Sends a record of system metrics to the sinks every `every` (or
    /// `TRAINLOG_SYSTEM_METRICS=10s`): `system.cpu.percent` (this process; 100 = one core),
    /// `system.memory.rss_bytes` and `system.memory.host_used_percent`, read from `/proc` on
    /// Linux, and with the `gpu` feature `system.gpu.<i>.*` from NVML when the NVIDIA
    /// driver is there (fields that cannot be read are left out). Each rank samples itself; the
    /// sampling stops when the guard closes. Records have no step.
    pub fn system_metrics(mut self, every: Duration) -> Self {
        self.system_metrics = Some(every);
        self
    }

    /// This process continues a run restarted from a checkpoint taken at `step` (or
    /// `TRAINLOG_RESUME_STEP=500`): what an earlier attempt logged at `step` or later is
    /// orphaned, and every reader is told to drop it.
    ///
    /// - JSONL appends to the same `metrics_rank<r>.jsonl` a line
    ///   `{"step":500,"event":"resume",…}`; [`jsonl::without_orphans`](crate::jsonl::without_orphans),
    ///   the run API and the command line drop earlier lines at or past that step.
    /// - TensorBoard writes a new event file into the run directory, starting with a
    ///   session-start event at `step`, on which TensorBoard drops the earlier points at or
    ///   past `step` (tensorboardX's `purge_step`). Give a fixed
    ///   [`run_name`](Self::run_name) (no `{time}`), or it is a new run directory.
    /// - W&B continues the offline run with the same run id (`WANDB_RUN_ID`; see
    ///   `WandbOptions::resume`, feature `wandb`): its history at or past
    ///   `step` is removed from the run file, which then goes on.
    ///
    /// Network backends (HTTP, MLflow, OTel, Prometheus) cannot take points back; they
    /// receive the resumed points again.
    pub fn resume_from(mut self, step: u64) -> Self {
        self.resume_from = Some(step);
        self
    }

    /// The resume step: [`resume_from`](Self::resume_from), else `TRAINLOG_RESUME_STEP`.
    fn resume_step(&self) -> Result<Option<u64>> {
        if self.resume_from.is_some() {
            return Ok(self.resume_from);
        }
        match crate::env::first_env(&["TRAINLOG_RESUME_STEP"]) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                Error::Config(format!(
                    "TRAINLOG_RESUME_STEP=`{text}` is not a step (a non-negative integer)"
                ))
            }),
        }
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
        let span_fields = self.span_fields;
        let (feeders, mut guard) = self.start()?;
        let errors = feeders.iter().any(|f| f.errors);
        let arrivals = guard.watch_arrivals(&target);
        let filter = MetricFilter {
            target: target.clone(),
            active: !feeders.is_empty(),
            errors,
            spans: span_fields,
            arrivals: Some(arrivals.clone()),
        };
        let layer = SinkLayer::new(Sinks {
            feeders,
            rank: guard.rank().rank,
            target,
            errors,
            span_fields,
            arrivals,
        })
        .with_filter(filter);
        Ok((layer, guard))
    }

    /// The options set on the builder for `backend`, taken out of its list.
    fn take_config(&mut self, backend: Backend) -> Option<Box<dyn BackendConfig>> {
        let at = self.configs.iter().position(|c| c.backend() == backend)?;
        Some(self.configs.remove(at))
    }

    /// Opens every sink and starts its worker.
    pub(super) fn start(mut self) -> Result<(Vec<Feeder>, MetricGuard)> {
        let rank = self.rank.unwrap_or_else(RankInfo::from_env);
        // Resolved once, so every backend sees the same step (and a bad value fails here).
        self.resume_from = self.resume_step()?;
        // Without an explicit list, a given output directory means JSONL; options set on
        // the builder, or the environment, turn their backends on (InstructLab's
        // auto-detection).
        let listed = match (self.backends_set, &self.output_dir) {
            (true, _) => self.backends.clone(),
            (false, Some(_)) => vec![Backend::Jsonl],
            (false, None) => Vec::new(),
        };
        let mut configs: Vec<Box<dyn BackendConfig>> = Vec::new();
        for backend in listed {
            configs.push(match self.take_config(backend) {
                Some(config) => config,
                None => backend.default_config()?,
            });
        }
        for &backend in Backend::ALL {
            if !configs.iter().any(|c| c.backend() == backend) {
                configs.extend(
                    self.take_config(backend)
                        .or_else(|| backend.config_from_env()),
                );
            }
        }
        if configs.is_empty() && self.custom.is_empty() {
            let what = if self.backends_set {
                // `.backends("")`: setting the output directory would not help.
                "nothing to log to: `.backends(..)` was given an empty list; name a backend \
                 (e.g. `\"async\"` for JSONL in the output directory) or add a `.sink(..)`"
            } else {
                "nothing to log to: set `.output_dir(..)`, `.backends(..)` or add a `.sink(..)`"
            };
            return Err(Error::Config(what.into()));
        }
        let mut cx = BuildContext::new(rank);
        if let Some(dir) = &self.output_dir {
            cx = cx.with_output_dir(dir);
        }
        if let Some(template) = &self.run_name {
            cx = cx.with_run_name(template);
        }
        if let Some(step) = self.resume_from {
            cx = cx.with_resume_from(step);
        }
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        for config in &configs {
            sinks.extend(config.build(&cx)?);
        }
        for (sink, rank0_only) in self.custom {
            if !rank0_only || rank.is_rank0() {
                sinks.push(sink);
            }
        }
        // One process-wide panic hook, only for sinks that report the panic's message.
        if sinks.iter().any(|s| s.wants_panic_message()) {
            crate::panic_note::install();
        }
        let config = WorkerConfig {
            rank: rank.rank,
            capacity: self.capacity,
            overflow: self.overflow,
            flush_interval: self.flush_interval,
        };
        let mut guard = MetricGuard::new(rank, self.shutdown_timeout, sinks.len());
        let mut feeders = Vec::with_capacity(sinks.len());
        for sink in sinks {
            // On error the guard closes the workers started so far.
            let (worker, feeder) = Worker::spawn(sink, &config)?;
            guard.push(worker);
            feeders.push(feeder);
        }
        let every = self
            .system_metrics
            .or_else(|| crate::env::duration_env("TRAINLOG_SYSTEM_METRICS"))
            .filter(|every| !every.is_zero());
        if let Some(every) = every {
            let sampler = crate::system::Sampler::start(every, feeders.clone(), rank.rank)
                .map_err(|e| {
                    Error::Config(format!("cannot start the system metrics thread: {e}"))
                })?;
            guard.before_close(move || drop(sampler));
        }
        Ok((feeders, guard))
    }
}
