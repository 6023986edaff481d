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

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "jsonl")]
mod jsonl;
mod memory;
#[cfg(feature = "mlflow")]
mod mlflow;

#[cfg(feature = "otel")]
mod otel;
#[cfg(any(feature = "http", feature = "mlflow"))]
mod sync;
#[cfg(feature = "tensorboard")]
mod tensorboard;
#[cfg(feature = "wandb")]
mod wandb;

#[cfg(feature = "http")]
pub use http::{HttpOptions, HttpSink, TOKEN_VARS, URL_VARS};
#[cfg(feature = "jsonl")]
pub use jsonl::JsonlSink;
pub use memory::MemorySink;
#[cfg(feature = "mlflow")]
pub use mlflow::{MlflowOptions, MlflowSink};
#[cfg(feature = "otel")]
pub use otel::{OtelOptions, OtelSink, MONOTONIC_PREFIX, NON_FINITE_COUNTER};
#[cfg(any(feature = "http", feature = "mlflow"))]
pub use sync::{sync_spools, SyncReport};
#[cfg(feature = "tensorboard")]
pub use tensorboard::{TensorBoardOptions, TensorBoardSink};
#[cfg(feature = "wandb")]
pub use wandb::{WandbOptions, WandbSink};

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

    /// Takes a batch of records, in the order they were logged.
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

    /// How many records this sink has given up on so far (e.g. discarded after its retry
    /// buffer filled up). Polled by the worker for [`Stats::lost`](crate::Stats).
    fn lost(&self) -> u64 {
        0
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
    fn lost(&self) -> u64 {
        (**self).lost()
    }
}
