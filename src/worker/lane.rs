//! Lanes: one single-producer ring of entry slots per (thread, sink), so that queueing an
//! event is a copy into memory only the calling thread writes and one release store.
//!
//! A thread gets its lane for a sink the first time it logs to it: it keeps the
//! producing end ([`Lane`]) in a thread-local list, and hands the reading end
//! ([`LaneReader`]) to the sink's worker through the sink's [`LaneSet`]. The worker reads
//! every lane, merging them by time. A lane whose thread ended is removed once the worker
//! has emptied it. Each lane holds at most the queue capacity in records and a ring of
//! [`lane_slots`] slots, whichever is reached first. The ring itself (`super::ring`) is
//! where the only `unsafe` code of the queue lives.

use std::cell::RefCell;

use arrayvec::ArrayVec;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::Sender;

use super::entry::{self, Entry, Sites, Slot, MAX_SLOTS};
use super::ring::{self, Consumer, Producer};
use super::{Msg, Padded};
use crate::Record;

/// Most slots a lane's ring holds (1 MiB: 16,384 events of three numbers and a step),
/// whatever the queue capacity.
const MAX_LANE_SLOTS: usize = 1 << 16;
/// Fewest: room for two entries of the largest size, so every entry fits an empty ring.
const MIN_LANE_SLOTS: usize = 2 * MAX_SLOTS;

/// Ring size for a queue of `capacity` records: 8 slots (an event of five numbers) each.
pub(crate) fn lane_slots(capacity: usize) -> usize {
    capacity
        .saturating_mul(8)
        .clamp(MIN_LANE_SLOTS, MAX_LANE_SLOTS)
        .next_power_of_two()
}

/// What the producing thread counts.
#[derive(Debug, Default)]
struct ProducerCounts {
    /// Entries published and entries dropped (full ring under `Drop`, sink closed).
    queued: AtomicU64,
    dropped: AtomicU64,
}

/// Rarely written flags, on a line of their own so the producer reads them from its cache.
#[derive(Debug, Default)]
struct Flags {
    /// The sink closed: records are dropped from now on.
    closed: AtomicBool,
    /// The producing thread ended (or the lane was for one event): remove once empty.
    producer_gone: AtomicBool,
}

/// What a lane's two ends and the guard's counters share besides the ring.
#[derive(Debug)]
pub(crate) struct LaneState {
    producer: Padded<ProducerCounts>,
    /// Entries the worker took (only it writes this).
    taken: Padded<AtomicU64>,
    flags: Padded<Flags>,
}

/// One thread's queue to one sink: the producing end, owned by the thread.
pub(crate) struct Lane {
    ring: Producer<Slot>,
    state: Arc<LaneState>,
    /// Entries published (mirrors `state.producer.queued`).
    queued: u64,
    /// The sites of the last entry that listed them: what the reader knows (see
    /// `Entry::start_for`).
    sites: Sites,
    /// The worker's `taken` when last looked at, so a push that fits need not read the
    /// worker's cache line.
    seen_taken: u64,
    /// Most entries in the lane at once (the queue capacity).
    max_entries: u64,
}

impl Lane {
    /// Slots published into the ring in all (tests).
    #[cfg(test)]
    fn ring_len(&self) -> usize {
        self.ring.published()
    }

    #[inline]
    pub(crate) fn closed(&self) -> bool {
        self.state.flags.0.closed.load(Relaxed)
    }

    pub(crate) fn count_dropped(&self) {
        let p = &self.state.producer.0;
        p.dropped.store(p.dropped.load(Relaxed) + 1, Relaxed);
    }

    /// Moves one entry in (or a copy of it, when it goes to other sinks too) and
    /// publishes it; false when there is no room now (and then the entry is left as it
    /// was).
    #[inline]
    pub(crate) fn try_push(&mut self, entry: &mut Entry<'_>, copy: bool) -> bool {
        let max = self.max_entries;
        if self.queued - self.seen_taken >= max {
            self.seen_taken = self.state.taken.0.load(Acquire);
            if self.queued - self.seen_taken >= max {
                return false;
            }
        }
        let (start, listed) = entry.start_for(&self.sites);
        let slots = entry.slots_mut();
        let pushed = if copy {
            push_copy(&mut self.ring, &slots[start..])
        } else {
            self.ring.push_from(slots, start)
        };
        if pushed {
            if listed {
                self.sites.clone_from(entry.sites());
            }
            self.queued += 1;
            self.state.producer.0.queued.store(self.queued, Relaxed);
        }
        pushed
    }
}

/// Pushes a copy of `slots` (an entry that goes to other sinks too). Cloned on the stack
/// first, so the ring gets one block copy; not inlined, so that the common case (one
/// sink, the entry moved) does not carry the copy's 2 KiB of stack.
#[inline(never)]
fn push_copy(ring: &mut Producer<Slot>, slots: &[Slot]) -> bool {
    let mut copy: ArrayVec<Slot, MAX_SLOTS> = slots.iter().cloned().collect();
    ring.push_from(&mut copy, 0)
}

/// The worker's end of one lane.
pub(crate) struct LaneReader {
    ring: Consumer<Slot>,
    state: Arc<LaneState>,
    /// Entries taken (published to `state.taken` by `release`).
    taken: u64,
    /// The sites of the last entry that listed them (see `Entry::start_for`).
    known: entry::Known,
}

impl LaneReader {
    /// Reads the producer's position: entries published up to now become visible.
    pub(crate) fn refresh(&mut self) {
        self.ring.refresh();
    }

    /// The time of the next visible entry (taking the sites listed before its head).
    pub(crate) fn peek_ticks(&mut self) -> Option<u64> {
        match self.ring.peek(|slot| slot.head().map(|(_, ticks)| ticks))? {
            Some(ticks) => Some(ticks),
            None => {
                self.take_sites();
                self.ring
                    .peek(|slot| slot.head().map(|(_, ticks)| ticks))
                    .flatten()
            }
        }
    }

    /// Takes the `Site` slots before an entry's head: they replace the lane's sites. (They
    /// were published with the head, so it is visible too.)
    #[cold]
    fn take_sites(&mut self) {
        let mut listed = Sites::new();
        while let Some(Some(site)) = self.ring.peek(|slot| match slot {
            entry::Slot::Site(site) => Some(*site),
            _ => None,
        }) {
            let _ = self.ring.pop();
            let _ = listed.try_push(site);
        }
        // Listed the first last (see `Entry::set_site`).
        listed.reverse();
        self.known.set(listed);
    }

    /// Decodes the next visible entry into `record` (which must be empty); `None` when
    /// there is none.
    pub(crate) fn next(
        &mut self,
        record: &mut Record,
        names: &mut entry::Names,
        rank: u32,
    ) -> Option<entry::Decoded> {
        self.peek_ticks()?;
        self.taken += 1;
        let ring = &mut self.ring;
        entry::decode(
            &mut std::iter::from_fn(|| ring.pop()),
            record,
            names,
            &mut self.known,
            rank,
        )
    }

    /// Drops every visible entry unread (records that raced the sink's close), keeping
    /// the sites they list, as reading them would: an entry published after them may
    /// leave its sites out.
    pub(crate) fn discard(&mut self) {
        while self.peek_ticks().is_some() {
            if let Some((len, _)) = self.ring.peek(Slot::head).flatten() {
                for _ in 0..len.max(1) {
                    drop(self.ring.pop());
                }
                self.taken += 1;
            }
        }
        self.release();
    }

    /// Hands the space of the entries read so far back to the producer.
    pub(crate) fn release(&mut self) {
        self.ring.release();
        self.state.taken.0.store(self.taken, Release);
    }

    /// Whether everything published (as of the last refresh) was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// The lanes of one sink, and what its producers and worker share.
#[derive(Debug)]
pub(crate) struct LaneSet {
    id: u64,
    /// Every lane's shared state (for the counters and the close), until it is retired.
    lanes: Mutex<Vec<Arc<LaneState>>>,
    /// Reading ends of new lanes, for the worker to pick up.
    new_readers: Mutex<Vec<LaneReader>>,
    /// Bumped when a lane is added, so the worker knows to look.
    generation: AtomicU64,
    /// The worker is (about to be) blocked: the next push wakes it.
    parked: Padded<AtomicBool>,
    wake: Sender<Msg>,
    closed: AtomicBool,
    /// The worker is gone: the counters are final.
    done: AtomicBool,
    /// Records the worker took before the sink closed.
    taken: AtomicU64,
    /// Counts of lanes removed (their thread ended), kept for the totals.
    retired_queued: AtomicU64,
    retired_dropped: AtomicU64,
    lane_slots: usize,
    max_entries: u64,
}

impl std::fmt::Debug for LaneReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneReader")
            .field("taken", &self.taken)
            .finish()
    }
}

static NEXT_SET: AtomicU64 = AtomicU64::new(1);

/// A lock that a panic elsewhere does not make unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl LaneSet {
    pub(crate) fn new(capacity: usize, wake: Sender<Msg>) -> Self {
        LaneSet {
            id: NEXT_SET.fetch_add(1, Relaxed),
            lanes: Mutex::new(Vec::new()),
            new_readers: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            parked: Padded::default(),
            wake,
            closed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            retired_queued: AtomicU64::new(0),
            retired_dropped: AtomicU64::new(0),
            lane_slots: lane_slots(capacity),
            max_entries: capacity as u64,
        }
    }

    /// A new lane of `slots` slots; its reading end goes to the worker.
    fn add_lane(&self, slots: usize) -> Lane {
        let (producer, consumer) = ring::ring(slots.max(MIN_LANE_SLOTS));
        let state = Arc::new(LaneState {
            producer: Padded::default(),
            taken: Padded::default(),
            flags: Padded::default(),
        });
        let mut lanes = lock(&self.lanes);
        state
            .flags
            .0
            .closed
            .store(self.closed.load(Relaxed), Relaxed);
        lanes.push(state.clone());
        lock(&self.new_readers).push(LaneReader {
            ring: consumer,
            state: state.clone(),
            taken: 0,
            known: entry::Known::default(),
        });
        self.generation.fetch_add(1, Release);
        Lane {
            ring: producer,
            state,
            queued: 0,
            sites: Sites::new(),
            seen_taken: 0,
            max_entries: self.max_entries.max(1),
        }
    }

    /// Runs `f` with this thread's lane to this sink, made on first use. (`FnMut`, called
    /// once: borrowed into the thread-local's closure rather than moved through an
    /// `Option`, whose copy through the stack `perf` showed on every event.)
    #[inline]
    pub(crate) fn with_lane<R>(&self, mut f: impl FnMut(&mut Lane) -> R) -> R {
        let done = THREAD_LANES.try_with(|cell| {
            let Ok(mut mine) = cell.try_borrow_mut() else {
                return None;
            };
            let lanes = &mut mine.0;
            // The common case, one sink logged to again, finds its lane first.
            let index = match lanes.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => self.register(lanes),
            };
            // Called with the list borrowed: `f` only copies into the lane and never
            // logs; should it ever, the nested call finds the list borrowed and takes
            // the path below.
            Some(f(&mut lanes[index].1))
        });
        match done {
            Ok(Some(r)) => r,
            _ => self.with_lane_alone(f),
        }
    }

    /// This thread's lanes are in use or torn down (a log call from a thread-local's
    /// destructor): a small lane for this one record. (Apart, and not inlined, so that
    /// `with_lane` calls `f` in one place only and the compiler inlines it there.)
    #[cold]
    #[inline(never)]
    fn with_lane_alone<R>(&self, mut f: impl FnMut(&mut Lane) -> R) -> R {
        let mut lane = self.add_lane(0);
        let r = f(&mut lane);
        lane.state.flags.0.producer_gone.store(true, Release);
        r
    }

    /// This thread's new lane to this sink, in its list (forgetting the lanes of sinks
    /// that have closed); its index.
    #[cold]
    fn register(&self, lanes: &mut Vec<(u64, Lane)>) -> usize {
        lanes.retain(|(_, lane)| !lane.closed());
        lanes.push((self.id, self.add_lane(self.lane_slots)));
        lanes.len() - 1
    }

    /// Wakes the worker if it is blocked waiting for records.
    #[inline]
    pub(crate) fn wake_if_parked(&self) {
        if self.parked.0.load(Relaxed) && self.parked.0.swap(false, AcqRel) {
            let _ = self.wake.try_send(Msg::Wake);
        }
    }

    pub(crate) fn set_parked(&self, parked: bool) {
        self.parked.0.store(parked, SeqCst);
    }

    /// The lanes added since `generation`, for the worker's readers.
    pub(crate) fn new_lanes(&self, seen: &mut u64, readers: &mut Vec<LaneReader>) {
        let now = self.generation.load(Acquire);
        if now == *seen {
            return;
        }
        *seen = now;
        readers.append(&mut lock(&self.new_readers));
    }

    /// Drops the readers (and lanes) of threads that ended once they are read out.
    pub(crate) fn retire_finished(&self, readers: &mut Vec<LaneReader>) {
        readers.retain_mut(|reader| {
            if !reader.state.flags.0.producer_gone.load(Acquire) {
                return true;
            }
            reader.refresh();
            if !reader.is_empty() {
                return true;
            }
            lock(&self.lanes).retain(|l| !Arc::ptr_eq(l, &reader.state));
            let p = &reader.state.producer.0;
            self.retired_queued
                .fetch_add(p.queued.load(Relaxed), Relaxed);
            self.retired_dropped
                .fetch_add(p.dropped.load(Relaxed), Relaxed);
            false
        });
    }

    /// Counts records the worker took (while the sink is open).
    pub(crate) fn count_taken(&self, n: u64) {
        self.taken.fetch_add(n, Relaxed);
    }

    /// From now on records are dropped, not queued.
    pub(crate) fn close(&self) {
        let lanes = lock(&self.lanes);
        self.closed.store(true, Relaxed);
        for lane in lanes.iter() {
            lane.flags.0.closed.store(true, Relaxed);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// The worker has ended: whatever it did not take counts as dropped.
    pub(crate) fn finish(&self) {
        self.close();
        self.done.store(true, Release);
    }

    /// (queued, dropped): records accepted into the lanes, and records dropped. Once the
    /// worker has ended, records it never took count as dropped, not queued.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let lanes = lock(&self.lanes);
        let (mut queued, mut dropped) = (
            self.retired_queued.load(Relaxed),
            self.retired_dropped.load(Relaxed),
        );
        for lane in lanes.iter() {
            queued += lane.producer.0.queued.load(Relaxed);
            dropped += lane.producer.0.dropped.load(Relaxed);
        }
        if self.done.load(Acquire) {
            let taken = self.taken.load(Relaxed).min(queued);
            (taken, dropped + (queued - taken))
        } else {
            (queued, dropped)
        }
    }

    /// Records queued but not yet taken by the worker.
    pub(crate) fn backlog(&self) -> u64 {
        let (queued, _) = self.counts();
        queued.saturating_sub(self.taken.load(Relaxed))
    }
}

/// This thread's lanes, by sink; marked finished when the thread ends.
struct ThreadLanes(Vec<(u64, Lane)>);

impl Drop for ThreadLanes {
    fn drop(&mut self) {
        for (_, lane) in &self.0 {
            lane.state.flags.0.producer_gone.store(true, Release);
        }
    }
}

thread_local! {
    static THREAD_LANES: RefCell<ThreadLanes> = const { RefCell::new(ThreadLanes(Vec::new())) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::capture::{Fields, Name, Number};
    use crate::worker::entry::{Encoder, Names, Slots};
    use crate::Value;

    fn site() -> &'static tracing::field::FieldSet {
        use tracing::callsite::Callsite as _;
        tracing::callsite!(name: "lane", kind: tracing::metadata::Kind::EVENT, fields: loss = 0)
            .metadata()
            .fields()
    }

    fn push(lane: &mut Lane, v: f64) {
        let mut slots = Slots::new();
        let mut e = Encoder::for_site(&mut slots, site());
        e.number(
            Name {
                name: "loss",
                index: 0,
            },
            Number::F64(v),
        );
        assert!(!e.bailed());
        assert!(lane.try_push(e.finish(0), false));
    }

    fn next(reader: &mut LaneReader) -> Record {
        reader.refresh();
        let mut record = Record::new(0);
        record.fields.clear();
        reader
            .next(&mut record, &mut Names::default(), 3)
            .expect("an entry is visible");
        record
    }

    #[test]
    fn a_lane_lists_its_site_once_and_a_reader_discarding_entries_keeps_it() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let set = LaneSet::new(16, tx);
        let mut lane = set.add_lane(set.lane_slots);
        let mut readers = Vec::new();
        set.new_lanes(&mut 0, &mut readers);
        let reader = &mut readers[0];
        // The first entry lists the site; the reader drops it unread (a sink closing).
        push(&mut lane, 1.0);
        reader.refresh();
        reader.discard();
        // The next leaves the site out (one slot for the head, one for the field), and
        // still decodes to its name, with the worker's rank.
        let before = lane.ring_len();
        push(&mut lane, 2.0);
        assert_eq!(lane.ring_len() - before, 2);
        let record = next(reader);
        assert_eq!(record.fields, vec![("loss".into(), Value::F64(2.0))]);
        assert_eq!(record.rank, 3);
    }
}
