//! `MemorySink`: records kept in memory and readable back, for tests and notebooks.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{RunOutcome, Sink};
use crate::{Record, Result};

/// Keeps every record in memory. Clones share the same storage, so keep one clone to
/// read what the logger wrote.
///
/// ```
/// use tracing_subscriber::prelude::*;
/// use trainlog::{sink::MemorySink, MetricLogger};
///
/// let memory = MemorySink::new();
/// let (layer, guard) = MetricLogger::builder().sink(memory.clone()).build()?;
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::info!(target: "metrics", step = 0, loss = 1.5);
/// });
/// guard.flush()?;
/// let records = memory.records();
/// assert_eq!(records[0].step, Some(0));
/// assert_eq!(records[0].get("loss").and_then(|v| v.as_f64()), Some(1.5));
/// # Ok::<(), trainlog::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    records: Vec<Arc<Record>>,
    outcome: Option<RunOutcome>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies of the records received so far, in order.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.iter().map(|r| (**r).clone()).collect()
    }

    /// Removes and returns the records received so far.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut self.lock().records)
            .into_iter()
            .map(|r| Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone()))
            .collect()
    }

    /// Number of records received so far.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether no record was received yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The outcome the sink was closed with, once the logger shut down.
    pub fn outcome(&self) -> Option<RunOutcome> {
        self.lock().outcome
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        self.lock().records.extend(batch.iter().cloned());
        Ok(())
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        self.lock().outcome = Some(outcome);
        Ok(())
    }
}
