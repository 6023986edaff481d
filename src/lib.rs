//! Structured logging of ML training metrics, built on [`tracing`].
//!
//! Training code writes ordinary `tracing` events on the `metrics` target; trainlog's
//! layers capture them and write them out on background threads: structured JSONL per
//! rank, TensorBoard event files, and behind cargo features a remote HTTP server, MLflow,
//! OpenTelemetry, Weights & Biases offline runs, a Prometheus scrape endpoint and webhook
//! alerts. Around them: an experiment [`run`]
//! API and a progress display; the `trainlog` command line is the `trainlog-cli` package.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # let output_dir = dir.path();
//! let (metrics, guard) = trainlog::MetricLogger::builder()
//!     .output_dir(output_dir)
//!     .backends("async")?
//!     .build()?;
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::WARN)) // your layers stay
//!     .with(metrics);
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(target: "metrics", hparams = true, lr = 3e-4, batch_size = 32u64);
//!     for step in 0..3u64 {
//!         tracing::info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64, "train.acc" = 0.9);
//!     }
//!     trainlog::log_dict(Some(3), &serde_json::json!({"eval": {"acc": 0.91}}));
//! });
//! drop(guard); // flushes and closes every sink
//!
//! let lines = std::fs::read_to_string(trainlog::jsonl_path(output_dir, 0))?;
//! assert_eq!(lines.lines().count(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! As the global subscriber, beside your own layers:
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let (metrics, _guard) = trainlog::MetricLogger::builder()
//!     .output_dir("runs/exp1")
//!     .backends("async")?
//!     .build()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(metrics)
//!     .init();
//! tracing::info!(target: "metrics", step = 10, loss = 0.25);
//! # Ok::<(), trainlog::Error>(())
//! ```
//!
//! Or in one call: `let _guard = trainlog::setup_metric_logger("async", "runs/exp1")?;`
//! installs the global subscriber with a metrics console ([`format::DictFormat`]) and
//! ordinary logs on stderr.
//!
//! # The event contract
//!
//! - Target `metrics` (configurable with [`MetricLoggerBuilder::target`]).
//! - `step` (non-negative integer) is the training step; `hparams = true` marks
//!   hyperparameters; `message` is text; `dict` carries a JSON object ([`log_dict`]).
//! - Every other field is a value; dotted names (`"eval.acc"`) are nesting.
//! - Events with only a message are not metrics and are ignored by the sinks.
//!
//! # Architecture
//!
//! ```text
//! tracing event ─► MetricFilter (per callsite: target, mapping; cached by tracing)
//!                 └► SinkLayer: encode into a few words (no I/O, no allocation)
//!                        ─► this thread's bounded queue to each sink
//!                           └► the sink's worker thread: decode into a Record ─► Sink::write_batch ─► file
//! ```
//!
//! Each sink has its own worker thread, so a slow backend never delays another. Queues
//! are lossless by default ([`Overflow::Block`]); [`Overflow::Drop`] never blocks and counts
//! what it drops. Write errors are reported once on stderr, counted in [`Stats`], and
//! retried. The [`MetricGuard`] flushes every second (configurable), on demand, and
//! at drop, waiting at most a deadline.
//!
//! # Features
//!
//! - `console` (default): `format::DictFormat`, `setup_metric_logger`, `setup_root_logger`.
//! - `jsonl` (default): the `async` backend, `sink::JsonlSink`.
//! - `tensorboard` (default): the `tensorboard` backend, `sink::TensorBoardSink`.
//! - `progress` (default): `progress::Progress`, a live progress bar fed by metrics events.
//! - `http`: the `http` backend, `sink::HttpSink` (reqwest with rustls).
//! - `mlflow`: the `mlflow` backend, `sink::MlflowSink` (reqwest with rustls).
//! - `otel`: the `otel` backend, `sink::OtelSink` (opentelemetry SDK, OTLP/HTTP).
//! - `wandb`: the `wandb` backend, `sink::WandbSink` (offline runs for `wandb sync`).
//! - `prometheus`: the `prometheus` backend, `sink::PrometheusSink` (a scrape endpoint).
//! - `webhook`: the `webhook` backend, `sink::WebhookSink` (Slack-style alerts).
//! - `logfiles`: ordinary logs to rotating files, `LogFiles`, `setup_root_logger_with_files`.
//!
//! (Plain names, not links: each exists only with its feature. On docs.rs every feature
//! is built and each item says which feature it needs.)
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs, unsafe_code)]
#![warn(unreachable_pub, rust_2018_idioms)]

mod clock;
#[cfg(any(feature = "network", feature = "otel"))]
#[macro_use]
mod deliver;
mod env;
mod error;
mod file;
pub mod filter;
mod flatten;
#[cfg(feature = "console")]
pub mod format;
mod json;
pub mod jsonl;
mod layer;
#[cfg(any(feature = "jsonl", feature = "network"))]
mod lock;
mod log_dict;
#[cfg(feature = "logfiles")]
mod logfiles;
pub mod naming;
mod panic_note;
#[cfg(feature = "progress")]
pub mod progress;
pub mod rank;
mod record;
pub mod run;
mod setup;
pub mod sink;
mod system;
pub mod time;
mod worker;

#[cfg(feature = "network")]
pub use deliver::{sync_spools, Delivered, SyncReport};
pub use error::{Error, Result};
pub use filter::MetricFilter;
pub use jsonl::jsonl_path;
pub use layer::{MetricLayer, SinkLayer};
pub use log_dict::{flatten, log_dict, log_fields, log_histogram, log_hparams};
#[cfg(feature = "logfiles")]
pub use logfiles::{setup_root_logger_with_files, LogFiles, LogFilesGuard, Rotation};
pub use rank::RankInfo;
pub use record::{
    Histogram, HistogramSummary, HistogramValue, Key, Record, UniqueFields, Value, HISTOGRAM_BINS,
};
#[cfg(feature = "console")]
pub use setup::{setup_metric_logger, setup_root_logger};
pub use setup::{MetricGuard, MetricLogger, MetricLoggerBuilder, Stats};
pub use sink::Backend;
pub use worker::Overflow;
