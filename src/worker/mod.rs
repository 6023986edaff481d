//! The private worker: one thread per sink behind a bounded queue, with batching,
//! interval and on-demand flushes, overflow policy, error reporting and a bounded shutdown.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::clock::WallClock;
use crate::sink::{RunOutcome, Sink};
use crate::{Error, Record, Result};

mod drain;
pub(crate) mod entry;
mod feed;
mod lane;
mod ring;

pub(crate) use feed::{publish, publish_all, Feeder};
use lane::{LaneReader, LaneSet};

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

/// What [`WorkerState::control`] did.
enum Handled {
    /// Wrote records (more may follow soon).
    Wrote,
    /// Only a control message (a flush).
    Control,
    /// Shut down: the worker ends.
    Stopped,
}

/// The longest a blocked worker sleeps before looking at its lanes again, should a wake-up
/// have been missed (a producer reads the parked flag without a fence, to keep the logging
/// path cheap; see `LaneSet::wake_if_parked`).
const PARK_MAX: Duration = Duration::from_millis(50);

/// Written records kept for reuse by a worker.
const MAX_FREE: usize = MAX_BATCH;

/// Messages to a worker besides records (which travel in lanes).
pub(crate) enum Msg {
    /// Records arrived while the worker was blocked.
    Wake,
    Flush(Sender<Result<()>>),
    Shutdown(RunOutcome),
}

/// Counters shared by the guard and the worker: what the worker publishes, and the lanes,
/// which count what was queued and dropped.
#[derive(Debug)]
pub(crate) struct Counters {
    lanes: Arc<LaneSet>,
    pub(crate) written: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) lost: AtomicU64,
}

/// Aligns its content to a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl Counters {
    /// (queued, dropped), read together: records accepted into the queue (once the worker
    /// has ended: that it took), and records dropped.
    pub(crate) fn queued_dropped(&self) -> (u64, u64) {
        self.lanes.counts()
    }
}

/// Settings for one worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    /// The rank of the records the layer queues (entries do not carry it).
    pub(crate) rank: u32,
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
        // Control messages only: records travel in lanes.
        let (tx, rx) = bounded(64);
        let (done_tx, done) = bounded(1);
        let lanes = Arc::new(LaneSet::new(config.capacity.max(1), tx.clone()));
        let counters = Arc::new(Counters {
            lanes: lanes.clone(),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let mut state = WorkerState {
            lanes: lanes.clone(),
            readers: Vec::new(),
            names: entry::Names::default(),
            rank: config.rank,
            generation: 0,
            clock: WallClock::new(),
            free: Vec::new(),
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
                // Counters final, later records dropped: also if the worker itself panics.
                let finish = Finish(state.lanes.clone());
                state.run(&rx, interval);
                drop(finish);
                let _ = done_tx.send(());
            })
            .map_err(|source| Error::Thread {
                what: format!("the {name} worker"),
                source,
            })?;
        let feeder = Feeder::new(errors, config.overflow, lanes);
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
    pub(crate) fn backlog(&self) -> u64 {
        self.counters.lanes.backlog()
    }
}

/// Marks the lanes finished when the worker thread ends, however it ends.
struct Finish(Arc<LaneSet>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

struct WorkerState {
    lanes: Arc<LaneSet>,
    /// The worker's position in each lane.
    readers: Vec<LaneReader>,
    /// Field names by callsite, for decoding entries.
    names: entry::Names,
    /// The rank of the records the layer queues (see `WorkerConfig::rank`).
    rank: u32,
    /// The lane set's generation when lanes were last looked for.
    generation: u64,
    clock: WallClock,
    /// Written records kept for reuse.
    free: Vec<Arc<Record>>,
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
        // While records keep coming, the worker polls its lanes instead of blocking, so a
        // burst costs the callers no wake-ups.
        let mut linger_until: Option<Instant> = None;
        loop {
            let mut control = match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(TryRecvError::Empty) => None,
                // Not reached while the lane set (which holds a sender) lives.
                Err(TryRecvError::Disconnected) => Some(Msg::Shutdown(RunOutcome::Completed)),
            };
            if control.is_none() {
                let taken = self.drain(&mut batch, true);
                if taken > 0 {
                    self.write_out(&mut batch);
                    dirty = true;
                    // Under steady traffic the worker never blocks: flush on schedule here.
                    let now = Instant::now();
                    self.flush_if_due(now, &mut dirty, &mut next_flush, interval);
                    linger_until = Some(now + LINGER);
                    if taken < MAX_BATCH {
                        // Caught up: let the producers get ahead before reading again. A
                        // worker reading right behind a producer takes each cache line of
                        // the ring it is still writing, and the producer stalls taking it
                        // back (caller/trainlog_jsonl 113 -> 107 ns with this, a sink that
                        // discards records 102 -> 89 ns: medians of alternating runs).
                        thread::sleep(POLL);
                    }
                    continue;
                }
                let now = Instant::now();
                if let Some(until) = linger_until {
                    if now < until && now < next_flush {
                        thread::sleep(POLL);
                        continue;
                    }
                    linger_until = None;
                }
                // Block until a producer wakes us, a control message or the flush schedule.
                self.lanes.set_parked(true);
                if self.has_records() {
                    self.lanes.set_parked(false);
                    continue;
                }
                let received = rx.recv_deadline(next_flush.min(now + PARK_MAX));
                self.lanes.set_parked(false);
                control = match received {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => {
                        self.flush_if_due(Instant::now(), &mut dirty, &mut next_flush, interval);
                        None
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        Some(Msg::Shutdown(RunOutcome::Completed))
                    }
                };
            }
            if let Some(msg) = control {
                match self.control(msg, rx, &mut batch, &mut dirty, &mut next_flush, interval) {
                    Handled::Stopped => return,
                    Handled::Wrote => linger_until = Some(Instant::now() + LINGER),
                    Handled::Control => {}
                }
            }
        }
    }

    /// Flushes the sink when the flush interval is up and something was written since the
    /// last flush. A failed flush keeps its data (`dirty` stays set): tried again next
    /// interval.
    fn flush_if_due(
        &mut self,
        now: Instant,
        dirty: &mut bool,
        next_flush: &mut Instant,
        interval: Duration,
    ) {
        if now < *next_flush {
            return;
        }
        if *dirty {
            *dirty = self.call("flush", |s| s.flush()).is_err();
        }
        *next_flush = now + interval;
    }

    /// Handles a control message.
    fn control(
        &mut self,
        msg: Msg,
        rx: &Receiver<Msg>,
        batch: &mut Vec<Arc<Record>>,
        dirty: &mut bool,
        next_flush: &mut Instant,
        interval: Duration,
    ) -> Handled {
        match msg {
            Msg::Wake => Handled::Control,
            Msg::Flush(ack) => {
                // Everything logged before the flush was asked for is in the lanes now.
                let wrote = self.drain_all(batch);
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
            Msg::Shutdown(outcome) => {
                self.shut_down(rx, outcome, batch);
                Handled::Stopped
            }
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

    /// Writes what was queued before the shutdown message was handled, closes the sink,
    /// then refuses later records (counted as dropped) and answers flushes queued behind.
    fn shut_down(&mut self, rx: &Receiver<Msg>, outcome: RunOutcome, batch: &mut Vec<Arc<Record>>) {
        self.drain_all(batch);
        let closed = self.close(outcome);
        self.lanes.close();
        // Records that raced the close: freed, not written (the counters call them dropped).
        self.has_records();
        for reader in &mut self.readers {
            reader.discard();
        }
        for msg in rx.try_iter() {
            if let Msg::Flush(ack) = msg {
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
                let msg = crate::panic_note::payload_text(&*panic)
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
