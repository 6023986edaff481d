//! Lanes: one single-producer ring of entry words per (thread, sink), so that queueing an
//! event is a copy into memory only the calling thread writes and one release store.
//!
//! A thread gets its lane for a sink the first time it logs to it (kept in a
//! thread-local list); the sink's worker reads every lane of its [`LaneSet`], merging
//! them by time. A lane whose thread ended is removed once the worker has emptied it.
//! Each lane holds at most the queue capacity in records and a ring of
//! [`lane_words`] words, whichever is reached first.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_channel::Sender;

use super::entry::{self, Header, KIND_PAD, MAX_WORDS};
use super::{Msg, Padded};

/// Most words a lane's ring holds (1 MiB: about 14,000 four-field events), whatever the
/// queue capacity.
const MAX_LANE_WORDS: usize = 1 << 17;
/// Fewest: room for two entries of the largest size, so every entry fits an empty ring.
const MIN_LANE_WORDS: usize = 2 * MAX_WORDS;

/// Ring size for a queue of `capacity` records: 16 words (an event of six numbers) each.
pub(crate) fn lane_words(capacity: usize) -> usize {
    capacity
        .saturating_mul(16)
        .clamp(MIN_LANE_WORDS, MAX_LANE_WORDS)
        .next_power_of_two()
}

/// What only the producing thread writes.
#[derive(Debug, Default)]
struct ProducerEnd {
    /// Words published (monotonic; the ring index is `head & mask`).
    head: AtomicUsize,
    /// Entries published and entries dropped (full ring under `Drop`, sink closed).
    queued: AtomicU64,
    dropped: AtomicU64,
    /// The consumer's position when last looked at, so a push that fits need not read
    /// the consumer's cache line.
    seen_tail: AtomicUsize,
    seen_taken: AtomicU64,
}

/// What only the worker writes.
#[derive(Debug, Default)]
struct ConsumerEnd {
    tail: AtomicUsize,
    taken: AtomicU64,
}

/// Rarely written flags, on a line of their own so the producer reads them from its cache.
#[derive(Debug, Default)]
struct Flags {
    /// The sink closed: records are dropped from now on.
    closed: AtomicBool,
    /// The producing thread ended (or the lane was for one event): remove once empty.
    producer_gone: AtomicBool,
}

/// One thread's queue to one sink.
#[derive(Debug)]
pub(crate) struct Lane {
    ring: Box<[AtomicU64]>,
    mask: usize,
    max_entries: u64,
    producer: Padded<ProducerEnd>,
    consumer: Padded<ConsumerEnd>,
    flags: Padded<Flags>,
}

/// A ring of `words` zeroed words, allocated zeroed so that its pages are only touched
/// (and count in the process's memory) as the ring fills.
#[allow(unsafe_code)]
fn zeroed_ring(words: usize) -> Box<[AtomicU64]> {
    let layout = std::alloc::Layout::array::<AtomicU64>(words).expect("ring size fits memory");
    // SAFETY: the layout is that of `words` AtomicU64s and not empty (words >= 512);
    // all-zero bytes are a valid AtomicU64; the box frees with the same layout.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<AtomicU64>();
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, words))
    }
}

impl Lane {
    fn new(words: usize, max_entries: u64) -> Self {
        let words = words.max(MIN_LANE_WORDS).next_power_of_two();
        Lane {
            ring: zeroed_ring(words),
            mask: words - 1,
            max_entries: max_entries.max(1),
            producer: Padded::default(),
            consumer: Padded::default(),
            flags: Padded::default(),
        }
    }

    #[inline]
    pub(crate) fn closed(&self) -> bool {
        self.flags.0.closed.load(Relaxed)
    }

    pub(crate) fn count_dropped(&self) {
        let p = &self.producer.0;
        p.dropped.store(p.dropped.load(Relaxed) + 1, Relaxed);
    }

    /// Copies `words` (one entry) in and publishes it; false when there is no room now.
    /// With `clone` the entry's boxes are copied, otherwise they move into the ring.
    #[inline]
    pub(crate) fn try_push(&self, words: &[u64], clone: bool) -> bool {
        let p = &self.producer.0;
        let head = p.head.load(Relaxed);
        let queued = p.queued.load(Relaxed);
        let size = self.mask + 1;
        let offset = head & self.mask;
        // An entry never wraps: the rest of the ring is padded instead.
        let pad = if offset + words.len() > size {
            size - offset
        } else {
            0
        };
        let need = pad + words.len();
        let fits = |tail: usize, taken: u64| {
            head + need - tail <= size && queued - taken < self.max_entries
        };
        if !fits(p.seen_tail.load(Relaxed), p.seen_taken.load(Relaxed)) {
            let c = &self.consumer.0;
            let (tail, taken) = (c.tail.load(Acquire), c.taken.load(Acquire));
            p.seen_tail.store(tail, Relaxed);
            p.seen_taken.store(taken, Relaxed);
            if !fits(tail, taken) {
                return false;
            }
        }
        if pad > 0 {
            let header = Header {
                len: pad,
                kind: KIND_PAD,
                flags: 0,
                rank: 0,
            };
            self.ring[offset].store(header.encode(), Relaxed);
        }
        let start = (head + pad) & self.mask;
        entry::write_entry(words, clone, &self.ring[start..start + words.len()]);
        p.head.store(head + need, Release);
        p.queued.store(queued + 1, Relaxed);
        true
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        // Free the boxes of entries nobody read (a worker that never got to them).
        let mut reader = LaneReader {
            tail: self.consumer.0.tail.load(Relaxed),
            head: self.producer.0.head.load(Relaxed),
            taken: 0,
        };
        let mut words = Vec::new();
        while reader.next(self, &mut words) {
            entry::free_boxes(&words);
        }
    }
}

/// The worker's position in one lane.
#[derive(Debug)]
pub(crate) struct LaneReader {
    tail: usize,
    /// The producer's head when last read.
    head: usize,
    taken: u64,
}

impl LaneReader {
    /// Reads the producer's position: entries published up to now become visible.
    pub(crate) fn refresh(&mut self, lane: &Lane) {
        self.head = lane.producer.0.head.load(Acquire);
    }

    /// Skips padding; the ring index of the next entry, if one is visible.
    fn next_index(&mut self, lane: &Lane) -> Option<usize> {
        while self.tail != self.head {
            let index = self.tail & lane.mask;
            let header = Header::decode(lane.ring[index].load(Relaxed));
            if header.kind != KIND_PAD {
                return Some(index);
            }
            self.tail += header.len;
        }
        None
    }

    /// The time of the next visible entry.
    pub(crate) fn peek_ticks(&mut self, lane: &Lane) -> Option<u64> {
        let index = self.next_index(lane)?;
        Some(lane.ring[index + 1].load(Relaxed))
    }

    /// Copies the next visible entry into `words`; false when there is none.
    pub(crate) fn next(&mut self, lane: &Lane, words: &mut Vec<u64>) -> bool {
        let Some(index) = self.next_index(lane) else {
            return false;
        };
        let len = Header::decode(lane.ring[index].load(Relaxed)).len;
        words.clear();
        words.extend(
            lane.ring[index..index + len]
                .iter()
                .map(|w| w.load(Relaxed)),
        );
        self.tail += len;
        self.taken += 1;
        true
    }

    /// Hands the space of the entries read so far back to the producer.
    pub(crate) fn release(&self, lane: &Lane) {
        let c = &lane.consumer.0;
        c.tail.store(self.tail, Release);
        c.taken.store(self.taken, Release);
    }

    /// Whether everything published (as of the last refresh) was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.tail == self.head
    }
}

/// The lanes of one sink, and what its producers and worker share.
#[derive(Debug)]
pub(crate) struct LaneSet {
    id: u64,
    lanes: Mutex<Vec<Arc<Lane>>>,
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
    lane_words: usize,
    max_entries: u64,
}

static NEXT_SET: AtomicU64 = AtomicU64::new(1);

impl LaneSet {
    pub(crate) fn new(capacity: usize, wake: Sender<Msg>) -> Self {
        LaneSet {
            id: NEXT_SET.fetch_add(1, Relaxed),
            lanes: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            parked: Padded::default(),
            wake,
            closed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            retired_queued: AtomicU64::new(0),
            retired_dropped: AtomicU64::new(0),
            lane_words: lane_words(capacity),
            max_entries: capacity as u64,
        }
    }

    fn lanes(&self) -> MutexGuard<'_, Vec<Arc<Lane>>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new lane of `words` words, registered with the worker.
    fn add_lane(&self, words: usize) -> Arc<Lane> {
        let lane = Arc::new(Lane::new(words, self.max_entries));
        let mut lanes = self.lanes();
        lane.flags
            .0
            .closed
            .store(self.closed.load(Relaxed), Relaxed);
        lanes.push(lane.clone());
        self.generation.fetch_add(1, Release);
        lane
    }

    /// Runs `f` with this thread's lane to this sink, made on first use.
    #[inline]
    #[allow(unsafe_code)]
    pub(crate) fn with_lane<R>(&self, f: impl FnOnce(&Lane) -> R) -> R {
        // The common case, one sink logged to again: the lane remembered from last time,
        // without the registration check and borrow of the list's thread-local.
        if let Ok((id, lane)) = LAST_LANE.try_with(Cell::get) {
            if id == self.id {
                // SAFETY: `LAST_LANE` names a lane this thread's `THREAD_LANES` holds an
                // `Arc` to: it is set only next to one, and cleared before the list drops
                // or forgets a lane.
                return f(unsafe { &*lane });
            }
        }
        self.with_lane_slow(f)
    }

    #[cold]
    fn with_lane_slow<R>(&self, f: impl FnOnce(&Lane) -> R) -> R {
        let mut f = Some(f);
        let done = THREAD_LANES.try_with(|cell| {
            let Ok(mut mine) = cell.try_borrow_mut() else {
                return None;
            };
            let index = match mine.0.iter().position(|(id, _)| *id == self.id) {
                Some(index) => index,
                None => {
                    // A new sink: forget the lanes of sinks that have closed.
                    let _ = LAST_LANE.try_with(|last| last.set((0, std::ptr::null())));
                    mine.0.retain(|(_, lane)| !lane.closed());
                    let lane = self.add_lane(self.lane_words);
                    mine.0.push((self.id, lane));
                    mine.0.len() - 1
                }
            };
            // Called with the list borrowed (no reference count touched per event): `f`
            // only copies into the lane and never logs; should it ever, the nested call
            // finds the list borrowed and takes the path below.
            let lane = &mine.0[index].1;
            let _ = LAST_LANE.try_with(|last| last.set((self.id, Arc::as_ptr(lane))));
            f.take().map(|f| f(lane))
        });
        match done {
            Ok(Some(r)) => r,
            // This thread's lanes are being torn down (a log call from a thread-local's
            // destructor): a small lane for this one record.
            _ => {
                let lane = self.add_lane(0);
                let r = (f.take().expect("not called yet"))(&lane);
                lane.flags.0.producer_gone.store(true, Release);
                r
            }
        }
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
    pub(crate) fn new_lanes(&self, seen: &mut u64, readers: &mut Vec<(Arc<Lane>, LaneReader)>) {
        let now = self.generation.load(Acquire);
        if now == *seen {
            return;
        }
        *seen = now;
        for lane in self.lanes().iter() {
            if !readers.iter().any(|(l, _)| Arc::ptr_eq(l, lane)) {
                let c = &lane.consumer.0;
                let reader = LaneReader {
                    tail: c.tail.load(Relaxed),
                    head: c.tail.load(Relaxed),
                    taken: c.taken.load(Relaxed),
                };
                readers.push((lane.clone(), reader));
            }
        }
    }

    /// Drops the readers (and lanes) of threads that ended once they are read out.
    pub(crate) fn retire_finished(&self, readers: &mut Vec<(Arc<Lane>, LaneReader)>) {
        readers.retain_mut(|(lane, reader)| {
            if !lane.flags.0.producer_gone.load(Acquire) {
                return true;
            }
            reader.refresh(lane);
            if !reader.is_empty() {
                return true;
            }
            let mut lanes = self.lanes();
            lanes.retain(|l| !Arc::ptr_eq(l, lane));
            let p = &lane.producer.0;
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
        let lanes = self.lanes();
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
        let lanes = self.lanes();
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
struct ThreadLanes(Vec<(u64, Arc<Lane>)>);

impl Drop for ThreadLanes {
    fn drop(&mut self) {
        let _ = LAST_LANE.try_with(|last| last.set((0, std::ptr::null())));
        for (_, lane) in &self.0 {
            lane.flags.0.producer_gone.store(true, Release);
        }
    }
}

thread_local! {
    static THREAD_LANES: RefCell<ThreadLanes> = const { RefCell::new(ThreadLanes(Vec::new())) };
    /// The lane this thread used last (sink id 0 and null: none), held by
    /// `THREAD_LANES`. No destructor, so reading it needs no registration check.
    static LAST_LANE: Cell<(u64, *const Lane)> = const { Cell::new((0, std::ptr::null())) };
}
