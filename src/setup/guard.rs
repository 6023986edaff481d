//! The guard: [`MetricGuard`] flushes and closes every sink when dropped, and [`Stats`]
//! counts what happened (like tracing-appender's `WorkerGuard`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::filter::Arrivals;
use crate::rank::RankInfo;
use crate::sink::RunOutcome;
use crate::worker::Worker;
use crate::{Error, Result};

/// Totals over a logger's sinks (or one sink's own, in [`MetricGuard::sink_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records accepted into a queue.
    pub queued: u64,
    /// Records not queued: the queue was full under [`Overflow::Drop`](crate::Overflow::Drop), or the logger
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
/// ([`shutdown_timeout`](crate::MetricLoggerBuilder::shutdown_timeout), default 5 s) for queued
/// records to be written. If the thread is panicking, sinks are closed with
/// [`RunOutcome::Failed`]. Keep the guard alive for as long as you log: `let _guard = ..`,
/// not `let _ = ..`.
#[must_use = "dropping the guard shuts the metric logger down"]
pub struct MetricGuard {
    workers: Vec<Worker>,
    rank: RankInfo,
    shutdown_timeout: Duration,
    shut_down: bool,
    /// What lives until the guard drops, after the sinks close: the log files' writer
    /// (`init` with `log_files`), flushed when dropped.
    pub(super) _keep: Vec<Box<dyn Send + Sync>>,
    /// What finishes before the sinks close: the system metrics sampler (no sample may
    /// arrive after the sinks close), the progress display `init` shows (`total_steps`).
    before_close: Vec<Box<dyn FnOnce() + Send + Sync>>,
    /// What reached the layer, and its target: checked at close (see `warn_if_muted`).
    arrivals: Option<(Arc<Arrivals>, String)>,
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
    pub(super) fn new(rank: RankInfo, shutdown_timeout: Duration, sinks: usize) -> Self {
        MetricGuard {
            workers: Vec::with_capacity(sinks),
            rank,
            shutdown_timeout,
            shut_down: false,
            _keep: Vec::new(),
            before_close: Vec::new(),
            arrivals: None,
        }
    }

    /// The arrivals the layer and its filter report to; checked when the guard closes.
    pub(super) fn watch_arrivals(&mut self, target: &str) -> Arc<Arrivals> {
        let arrivals = Arc::new(Arrivals::default());
        self.arrivals = Some((arrivals.clone(), target.to_owned()));
        arrivals
    }

    /// Says once on stderr when no metrics event reached the layer although one was
    /// logged, or the subscriber's level hides them: a global filter muting every metric
    /// would otherwise pass unnoticed (0 records, exit 0).
    fn warn_if_muted(&self) {
        if self.workers.is_empty() {
            return;
        }
        if let Some(why) = self
            .arrivals
            .as_ref()
            .and_then(|(arrivals, target)| arrivals.muted(target))
        {
            eprintln!("trainlog: {why}");
        }
    }

    /// Runs `finish` when the guard closes, before the sinks close.
    pub(super) fn before_close(&mut self, finish: impl FnOnce() + Send + Sync + 'static) {
        self.before_close.push(Box::new(finish));
    }

    pub(super) fn push(&mut self, worker: Worker) {
        self.workers.push(worker);
    }

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
                // One reading of both, so a worker ending in between cannot count a
                // record in each.
                let (queued, dropped) = c.queued_dropped();
                let stats = Stats {
                    queued,
                    dropped,
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
        self.warn_if_muted();
        for finish in std::mem::take(&mut self.before_close) {
            finish();
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
