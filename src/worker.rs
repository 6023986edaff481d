//! The private worker: one thread per sink behind a bounded queue, with batching,
//! interval and on-demand flushes, overflow policy, error reporting and a bounded shutdown.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use crate::record::pool::RecordPool;
use crate::sink::{RunOutcome, Sink};
use crate::{Error, Record, Result};

/// What the logging call does when a sink's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait for room: nothing is lost, training slows to the sink's pace. The default.
    #[default]
    Block,
    /// Never wait: the record is dropped and counted ([`Stats::dropped`](crate::Stats::dropped)); the total is
    /// reported when the guard shuts down.
    Drop,
}

thread_local! {
    /// Set on worker threads, so events logged there never block on a queue.
    static IN_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Most records handed to a sink in one `write_batch` call.
const MAX_BATCH: usize = 1024;

/// How long a worker keeps polling for records after the last one, and how long it
/// sleeps between polls: a burst then costs the callers no wake-ups, and a record waits at
/// most this poll interval longer to be written.
const LINGER: Duration = Duration::from_millis(20);
const POLL: Duration = Duration::from_micros(200);

/// What [`WorkerState::handle`] did.
enum Handled {
    /// Wrote records (more may follow soon).
    Wrote,
    /// Only a control message (a flush).
    Control,
    /// Shut down: the worker ends.
    Stopped,
}

/// Records made ready for each sink when it starts (about 0.4 MiB): bursts of up to this
/// many events in flight allocate nothing from the first event on.
const POOL_PREFILL: usize = 1024;

pub(crate) enum Msg {
    Record(Arc<Record>),
    Flush(Sender<Result<()>>),
    Shutdown(RunOutcome),
}

/// Counters shared by the layer (producer side) and the worker. The producers' counters
/// sit on their own cache line, so counting on the logging path does not contend with
/// the worker's.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) producer: Padded<ProducerCounters>,
    pub(crate) written: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) lost: AtomicU64,
    /// Records that were queued but arrived after the sink closed (counted in `dropped`
    /// too); [`queued`](Self::queued) leaves them out.
    pub(crate) discarded: AtomicU64,
}

/// What the logging path counts.
#[derive(Debug, Default)]
pub(crate) struct ProducerCounters {
    queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    /// Set once the sink is closed: later records are counted as dropped.
    closed: AtomicBool,
}

/// Aligns its content to a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl Counters {
    /// Records accepted into the queue that the worker took.
    pub(crate) fn queued(&self) -> u64 {
        let queued = self.producer.0.queued.load(Relaxed);
        queued.saturating_sub(self.discarded.load(Relaxed))
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.producer.0.dropped.load(Relaxed)
    }
}

/// The producer's end: what the layer holds for each sink.
#[derive(Debug, Clone)]
pub(crate) struct Feeder {
    /// The sink also takes ERROR events from every target.
    pub(crate) errors: bool,
    tx: Sender<Msg>,
    overflow: Overflow,
    counters: Arc<Counters>,
    pool: Arc<RecordPool>,
}

impl Feeder {
    /// An empty record for this sink stamped `at`: a reused one once the pool is warm.
    #[inline]
    pub(crate) fn take(&self, rank: u32, at: std::time::SystemTime) -> Arc<Record> {
        self.pool.take(rank, at)
    }

    /// Queues a record. Never panics; blocks only under `Overflow::Block` with a full queue.
    #[inline]
    pub(crate) fn send(&self, record: Arc<Record>) {
        let c = &self.counters.producer.0;
        if c.closed.load(Relaxed) {
            c.dropped.fetch_add(1, Relaxed);
            return;
        }
        let sent = match self.tx.try_send(Msg::Record(record)) {
            Ok(()) => true,
            // Only a full queue under `Block` waits; a sink that logs metrics from its
            // own worker must not wait on its own queue.
            Err(TrySendError::Full(msg))
                if self.overflow == Overflow::Block
                    && !IN_WORKER.try_with(Cell::get).unwrap_or(false) =>
            {
                self.tx.send(msg).is_ok()
            }
            Err(TrySendError::Full(Msg::Record(r))) => {
                // Dropped under the drop policy: the record can serve the next event.
                self.pool.give_back(r);
                false
            }
            Err(_) => false,
        };
        // Full queue under the drop policy, or the worker already gone: dropped.
        let counter = if sent { &c.queued } else { &c.dropped };
        counter.fetch_add(1, Relaxed);
    }
}

/// Settings for one worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) flush_interval: Duration,
}

/// The owner's end: what the guard holds for each sink.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) name: String,
    /// How long this sink's close may take, when longer than the shutdown timeout.
    pub(crate) close_budget: Option<Duration>,
    tx: Sender<Msg>,
    done: Receiver<()>,
    thread: Option<thread::JoinHandle<()>>,
    pub(crate) counters: Arc<Counters>,
}

impl Worker {
    /// Starts a worker thread for `sink`.
    pub(crate) fn spawn(sink: Box<dyn Sink>, config: &WorkerConfig) -> Result<(Worker, Feeder)> {
        let name = sink.name().to_owned();
        let close_budget = sink.close_budget();
        let errors = sink.wants_errors();
        let (tx, rx) = bounded(config.capacity.max(1));
        let (done_tx, done) = bounded(1);
        let counters = Arc::new(Counters::default());
        // Room for every record that can be queued or in a batch at once.
        let pool = Arc::new(RecordPool::new(
            config.capacity.max(1) + MAX_BATCH,
            POOL_PREFILL,
        ));
        let mut state = WorkerState {
            pool: pool.clone(),
            sink,
            name: name.clone(),
            counters: counters.clone(),
            failing: 0,
            dead: false,
            accepted: 0,
            dead_lost: 0,
            sink_lost: 0,
        };
        let interval = config.flush_interval;
        let thread = thread::Builder::new()
            .name(format!("trainlog-{name}"))
            .spawn(move || {
                IN_WORKER.with(|w| w.set(true));
                state.run(&rx, interval);
                let _ = done_tx.send(());
            })
            .map_err(|source| Error::Thread {
                what: format!("the {name} worker"),
                source,
            })?;
        let feeder = Feeder {
            errors,
            tx: tx.clone(),
            overflow: config.overflow,
            counters: counters.clone(),
            pool,
        };
        let worker = Worker {
            name,
            close_budget,
            tx,
            done,
            thread: Some(thread),
            counters,
        };
        Ok((worker, feeder))
    }

    /// Asks the sink to flush and waits for it, at most until `deadline`.
    /// `timeout` is the allowance `deadline` came from, for the error message.
    pub(crate) fn flush(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        let (ack_tx, ack) = bounded(1);
        let timeout = || Error::Timeout {
            what: format!("flushing the {} sink", self.name),
            after: timeout,
        };
        self.tx
            .send_deadline(Msg::Flush(ack_tx), deadline)
            .map_err(|_| timeout())?;
        ack.recv_deadline(deadline).map_err(|_| timeout())?
    }

    /// Sends the shutdown message; [`finish`](Self::finish) waits for it to complete.
    pub(crate) fn begin_shutdown(&self, outcome: RunOutcome, deadline: Instant) -> bool {
        self.tx
            .send_deadline(Msg::Shutdown(outcome), deadline)
            .is_ok()
    }

    /// Waits for the worker to drain its queue and close its sink, at most until `deadline`.
    /// Returns false when the deadline passed (the thread is then left to finish alone).
    pub(crate) fn finish(&mut self, deadline: Instant) -> bool {
        if self.done.recv_deadline(deadline).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            true
        } else {
            // Timed out: still working, left to finish alone. Disconnected: the thread
            // ended without reporting, which only a bug in the worker itself can cause.
            self.thread.as_ref().is_some_and(|t| t.is_finished())
        }
    }

    /// Records accepted but not yet written (an estimate while the worker runs).
    pub(crate) fn backlog(&self) -> usize {
        self.tx.len()
    }
}

struct WorkerState {
    /// Where written records go back for reuse.
    pool: Arc<RecordPool>,
    sink: Box<dyn Sink>,
    name: String,
    counters: Arc<Counters>,
    /// Consecutive failed sink calls; the first one of a streak is reported.
    failing: u64,
    /// The sink panicked: records are counted as lost from then on.
    dead: bool,
    /// Records the sink took (`write_batch` returned, with or without an error: a sink
    /// keeps what it could not write yet and reports what it gives up on as lost).
    accepted: u64,
    /// Records lost because the sink is dead, and the sink's own count when last asked.
    dead_lost: u64,
    sink_lost: u64,
}

impl WorkerState {
    fn run(&mut self, rx: &Receiver<Msg>, interval: Duration) {
        let mut batch: Vec<Arc<Record>> = Vec::with_capacity(MAX_BATCH);
        let mut next_flush = Instant::now() + interval;
        let mut dirty = false;
        // While records keep coming, the worker polls instead of blocking: a blocked
        // receiver makes every send wake it with a system call (about a microsecond on
        // the caller's thread); a polling one costs the caller nothing.
        let mut linger_until: Option<Instant> = None;
        loop {
            let first = match linger_until {
                Some(until) => match rx.try_recv() {
                    Ok(msg) => msg,
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now < until && now < next_flush {
                            thread::sleep(POLL);
                        } else {
                            linger_until = None;
                        }
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => {
                        linger_until = None;
                        continue;
                    }
                },
                None => match rx.recv_deadline(next_flush) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        if dirty {
                            // A failed flush keeps its data: try again next interval.
                            dirty = self.call("flush", |s| s.flush()).is_err();
                        }
                        next_flush = Instant::now() + interval;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = self.close(RunOutcome::Completed);
                        return;
                    }
                },
            };
            match self.handle(first, rx, &mut batch, &mut dirty, &mut next_flush, interval) {
                Handled::Stopped => return,
                Handled::Wrote => linger_until = Some(Instant::now() + LINGER),
                Handled::Control => {}
            }
        }
    }

    /// Handles `first` and the records queued behind it (up to a batch), then the control
    /// message that ended the batch, if any.
    fn handle(
        &mut self,
        first: Msg,
        rx: &Receiver<Msg>,
        batch: &mut Vec<Arc<Record>>,
        dirty: &mut bool,
        next_flush: &mut Instant,
        interval: Duration,
    ) -> Handled {
        let mut control = None;
        match first {
            Msg::Record(r) => batch.push(r),
            other => control = Some(other),
        }
        while control.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Record(r)) => batch.push(r),
                Ok(other) => control = Some(other),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let wrote = !batch.is_empty();
        if wrote {
            self.write(batch);
            self.recycle(batch);
            *dirty = true;
            // Under steady traffic the receive never times out: flush on schedule here.
            let now = Instant::now();
            if now >= *next_flush {
                *dirty = self.call("flush", |s| s.flush()).is_err();
                *next_flush = now + interval;
            }
        }
        match control {
            Some(Msg::Flush(ack)) => {
                let result = self.call("flush", |s| s.flush());
                *dirty = result.is_err();
                let _ = ack.send(result);
                *next_flush = Instant::now() + interval;
                if wrote {
                    Handled::Wrote
                } else {
                    Handled::Control
                }
            }
            Some(Msg::Shutdown(outcome)) => {
                self.shut_down(rx, outcome, batch);
                Handled::Stopped
            }
            // Records go to the batch; `None`: the batch ended without a control message.
            Some(Msg::Record(_)) | None if wrote => Handled::Wrote,
            Some(Msg::Record(_)) | None => Handled::Control,
        }
    }

    /// Empties the batch, handing its records back to the pool.
    fn recycle(&self, batch: &mut Vec<Arc<Record>>) {
        for record in batch.drain(..) {
            self.pool.give_back(record);
        }
    }

    fn write(&mut self, batch: &[Arc<Record>]) {
        if !self.dead {
            let _ = self.call("write", |s| s.write_batch(batch));
        }
        if self.dead {
            // The sink panicked on this batch, or earlier: the records are gone with it.
            self.dead_lost += batch.len() as u64;
        } else {
            self.accepted += batch.len() as u64;
        }
        self.update_counters();
    }

    /// Writes what other threads queued before the shutdown message was handled (up to
    /// the queue's length then, so a sink that logs cannot keep it going), closes the
    /// sink, then counts records that still arrive as dropped rather than queued.
    fn shut_down(&mut self, rx: &Receiver<Msg>, outcome: RunOutcome, batch: &mut Vec<Arc<Record>>) {
        let pending = rx.len();
        let mut acks = Vec::new();
        for msg in rx.try_iter().take(pending) {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(ack) => acks.push(ack),
                Msg::Shutdown(_) => {}
            }
            if batch.len() == MAX_BATCH {
                self.write(batch);
                self.recycle(batch);
            }
        }
        if !batch.is_empty() {
            self.write(batch);
            self.recycle(batch);
        }
        let closed = self.close(outcome);
        for ack in acks {
            let _ = ack.send(
                closed
                    .as_ref()
                    .map_err(|e| Error::Sink {
                        sink: self.name.clone(),
                        message: e.to_string(),
                    })
                    .copied(),
            );
        }
        self.counters.producer.0.closed.store(true, Relaxed);
        for msg in rx.try_iter() {
            if let Msg::Record(_) = msg {
                self.counters.discarded.fetch_add(1, Relaxed);
                self.counters.producer.0.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        let flushed = self.call("flush", |s| s.flush());
        let closed = self.call("close", |s| s.close(outcome));
        flushed.and(closed)
    }

    /// Calls the sink, turning errors and panics into a report and counters.
    fn call(&mut self, what: &str, f: impl FnOnce(&mut dyn Sink) -> Result<()>) -> Result<()> {
        if self.dead {
            return Err(self.dead_error());
        }
        let sink = &mut *self.sink;
        let result = match catch_unwind(AssertUnwindSafe(|| f(sink))) {
            Ok(result) => result,
            Err(panic) => {
                self.dead = true;
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                eprintln!(
                    "trainlog: the {} sink panicked during {what} ({msg}); its further records are counted as lost",
                    self.name
                );
                Err(self.dead_error())
            }
        };
        if !self.dead {
            self.sink_lost = self.sink.lost();
        }
        self.update_counters();
        match &result {
            Ok(()) if self.failing > 0 => {
                eprintln!(
                    "trainlog: the {} sink recovered after {} failed attempts",
                    self.name, self.failing
                );
                self.failing = 0;
            }
            Ok(()) => {}
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Relaxed);
                if self.failing == 0 && !self.dead {
                    let next = if what == "close" {
                        ""
                    } else {
                        "; will retry (further failures are counted, not printed)"
                    };
                    eprintln!("trainlog: {what} failed: {e}{next}");
                }
                self.failing += 1;
            }
        }
        result
    }

    /// Publishes `written` and `lost`: what the sink took and has not given up on counts
    /// as written (it may still sit in the sink's retry buffer), so that once the queue is
    /// drained `queued == written + lost` holds exactly.
    fn update_counters(&self) {
        let c = &self.counters;
        c.written
            .store(self.accepted.saturating_sub(self.sink_lost), Relaxed);
        c.lost.store(self.sink_lost + self.dead_lost, Relaxed);
    }

    fn dead_error(&self) -> Error {
        Error::Sink {
            sink: self.name.clone(),
            message: "the sink panicked earlier and is disabled".into(),
        }
    }
}
