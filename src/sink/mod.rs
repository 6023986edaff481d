//! Where records go: the [`Sink`] trait and the built-in sinks.
//!
//! A sink runs on its own worker thread (see the crate docs' architecture section), so
//! it may block on I/O without slowing training. It receives records in batches, is
//! flushed on an interval and on demand, and is closed once with the run's outcome.
//!
//! Writing a sink:
//!
//! ```
//! use std::sync::Arc;
//! use trainlog::{sink::{Sink, RunOutcome}, Record};
//!
//! /// Counts loss values above a threshold.
//! struct Spikes { threshold: f64, count: u64 }
//!
//! impl Sink for Spikes {
//!     fn name(&self) -> &str { "spikes" }
//!     fn write_batch(&mut self, batch: &[Arc<Record>]) -> trainlog::Result<()> {
//!         let over = |r: &&Arc<Record>| {
//!             r.get("loss").and_then(|v| v.as_f64()).is_some_and(|v| v > self.threshold)
//!         };
//!         self.count += batch.iter().filter(over).count() as u64;
//!         Ok(())
//!     }
//!     fn close(&mut self, _outcome: RunOutcome) -> trainlog::Result<()> {
//!         eprintln!("{} loss spikes", self.count);
//!         Ok(())
//!     }
//! }
//! ```

use std::sync::Arc;

use crate::{Record, Result};

/// The rank-0 gating every backend's options share, written once: `all_ranks(bool)` on
/// `$options`, whose `all_ranks` field the registry reads.
#[cfg_attr(
    not(any(
        feature = "tensorboard",
        feature = "http",
        feature = "mlflow",
        feature = "otel",
        feature = "wandb",
        feature = "prometheus"
    )),
    allow(unused_macros)
)]
macro_rules! all_ranks_setter {
    ($options:ty) => {
        impl $options {
            /// Write from every rank instead of rank 0 only (give each rank its own run
            /// name where the backend names runs, e.g. with `{rank}`, which the default
            /// run name has).
            pub fn all_ranks(mut self, all: bool) -> Self {
                self.all_ranks = all;
                self
            }
        }
    };
}

/// The close and retry settings every network backend's options share, written once:
/// `close_cap`, `stall_timeout` and `retry_backoff` on `$options`, stored in its
/// `delivery` field (a `crate::deliver::DeliverySettings`; what is unset there comes from
/// the [`BuildContext`]'s defaults).
#[cfg(feature = "network")]
macro_rules! delivery_setters {
    ($options:ty) => {
        impl $options {
            /// The longest closing may keep delivering while the server makes progress
            /// (default 120 s); what is left stays spooled on disk for `trainlog sync`.
            /// Not the logger's `MetricLoggerBuilder::shutdown_timeout` (how long the
            /// guard waits for the other sinks), which a network sink may outlast.
            pub fn close_cap(mut self, cap: std::time::Duration) -> Self {
                self.delivery.close_cap = Some(cap);
                self
            }

            /// The old name of [`close_cap`](Self::close_cap), which it calls.
            #[deprecated(
                since = "0.1.0",
                note = "renamed `close_cap`: the builder's `shutdown_timeout` is another setting"
            )]
            pub fn shutdown_timeout(self, cap: std::time::Duration) -> Self {
                self.close_cap(cap)
            }

            /// How long closing waits for the server to accept a batch before it gives up
            /// (default 4 s), so a dead server holds the exit this long, plus a second.
            pub fn stall_timeout(mut self, timeout: std::time::Duration) -> Self {
                self.delivery.stall = Some(timeout);
                self
            }

            /// First retry delay and its cap (default 200 ms and 30 s; delays double,
            /// with jitter).
            pub fn retry_backoff(
                mut self,
                base: std::time::Duration,
                max: std::time::Duration,
            ) -> Self {
                self.delivery.retry = Some((base, max.max(base)));
                self
            }
        }
    };
}

mod backends;
#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "jsonl")]
mod jsonl;
mod memory;
#[cfg(feature = "mlflow")]
pub(crate) mod mlflow;
pub(crate) mod run_events;

#[cfg(feature = "otel")]
mod otel;
#[cfg(feature = "prometheus")]
pub(crate) mod prometheus;
#[cfg(feature = "webhook")]
pub(crate) mod webhook;

#[cfg(feature = "tensorboard")]
mod tensorboard;
#[cfg(feature = "wandb")]
mod wandb;

pub use crate::panic_note::last_panic;
pub use backends::{Backend, BackendConfig, BuildContext};
#[cfg(feature = "http")]
pub use http::{HttpOptions, HttpSink, TOKEN_VARS, URL_VARS};
#[cfg(feature = "jsonl")]
pub use jsonl::{JsonlOptions, JsonlSink};
pub use memory::MemorySink;
#[cfg(feature = "mlflow")]
pub use mlflow::{MlflowOptions, MlflowSink};
#[cfg(feature = "otel")]
pub use otel::{OtelOptions, OtelSink, NON_FINITE_COUNTER};
#[cfg(feature = "prometheus")]
pub use prometheus::{PrometheusOptions, PrometheusSink, DEFAULT_PROMETHEUS_ADDR};
#[cfg(feature = "webhook")]
pub use webhook::{WebhookOptions, WebhookSink, WEBHOOK_URL_VAR};

/// Field-name prefix that makes a field a monotonic counter (the value is added), the
/// convention of `tracing-opentelemetry`; the `otel` and `prometheus` backends follow it.
pub const MONOTONIC_PREFIX: &str = "monotonic_counter.";

/// Field-name prefix that records a field's value into a histogram instrument (the
/// `tracing-opentelemetry` convention), followed by the `otel` backend.
pub const HISTOGRAM_PREFIX: &str = "histogram.";

/// At most `max` characters of `s`: for the backends' length limits (MLflow keys and
/// values, W&B tags).
#[cfg(any(feature = "mlflow", feature = "wandb"))]
pub(crate) fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(feature = "tensorboard")]
pub use tensorboard::{TensorBoardOptions, TensorBoardSink};
#[cfg(feature = "wandb")]
pub use wandb::{WandbOptions, WandbResume, WandbSink};

/// How the run ended, as far as the logger can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunOutcome {
    /// The guard was dropped or shut down normally.
    Completed,
    /// The guard was dropped while the thread was panicking.
    Failed,
}

/// A destination for records. Implementations run on a dedicated worker thread.
///
/// Errors returned here never reach training code: the worker reports the first error of
/// a streak on stderr, counts every one in [`Stats::write_errors`](crate::Stats), and keeps
/// calling the sink. A sink that can retry (the JSONL sink keeps unwritten bytes) should
/// keep what it could not write and try again on the next call. Records a sink gives up
/// on are reported through [`lost`](Sink::lost).
pub trait Sink: Send + 'static {
    /// A short name for messages and statistics, e.g. `"jsonl"`.
    fn name(&self) -> &str;

    /// Takes a batch of records in the order they were logged (each thread's in its own
    /// order, records of several threads merged by their timestamps). The records are reused
    /// for later events once the call returns, unless the sink keeps a clone of the `Arc`
    /// (as [`MemorySink`] does): keeping one is allowed, it just costs an allocation later.
    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()>;

    /// Pushes buffered data to its destination. Called on the flush interval, on
    /// [`MetricGuard::flush`](crate::MetricGuard::flush), and before [`close`](Sink::close).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Finishes the sink; called once, after a final flush.
    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        let _ = outcome;
        Ok(())
    }

    /// The longest [`close`](Sink::close) may take, when that is more than the logger's
    /// shutdown timeout: a network sink keeps delivering at close while the server makes
    /// progress. The guard waits for this sink that long at most. `None` (the default):
    /// the logger's shutdown timeout applies.
    fn close_budget(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether this sink also takes ERROR-level events from every target (as records with
    /// [`Record::error_target`] set), besides metrics records. Asked once, when the logger
    /// starts. Default: no.
    fn wants_errors(&self) -> bool {
        false
    }

    /// How many records this sink has given up on so far (e.g. discarded after its retry
    /// buffer filled up). Polled by the worker for [`Stats::lost`](crate::Stats).
    fn lost(&self) -> u64 {
        0
    }

    /// Whether this sink reports why a run failed with the panic's message: then the
    /// logger installs, once per process, a panic hook that remembers it (chaining the hook
    /// that was there), and [`last_panic`] gives it, e.g. in [`close`](Sink::close) with
    /// [`RunOutcome::Failed`]. Asked once, when the logger starts. Default: no.
    fn wants_panic_message(&self) -> bool {
        false
    }
}

impl<T: Sink + ?Sized> Sink for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        (**self).write_batch(batch)
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        (**self).close(outcome)
    }
    fn close_budget(&self) -> Option<std::time::Duration> {
        (**self).close_budget()
    }
    fn wants_errors(&self) -> bool {
        (**self).wants_errors()
    }
    fn lost(&self) -> u64 {
        (**self).lost()
    }
    fn wants_panic_message(&self) -> bool {
        (**self).wants_panic_message()
    }
}
