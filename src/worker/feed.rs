//! The producer's end of a sink's queue: what the layer holds for each sink, and how an
//! entry is queued on the calling thread's lane under the overflow policy.

use std::cell::Cell;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::entry;
use super::lane::{Lane, LaneSet};
use super::{Overflow, IN_WORKER};
use crate::{clock, Record};

/// The producer's end: what the layer holds for each sink.
#[derive(Debug, Clone)]
pub(crate) struct Feeder {
    /// The sink also takes ERROR events from every target.
    pub(crate) errors: bool,
    overflow: Overflow,
    lanes: Arc<LaneSet>,
}

impl Feeder {
    pub(super) fn new(errors: bool, overflow: Overflow, lanes: Arc<LaneSet>) -> Self {
        Feeder {
            errors,
            overflow,
            lanes,
        }
    }

    /// Queues one entry (see [`entry`]) on this thread's lane to the sink. With `clone`
    /// the entry's boxes are copied and `words` keeps its own; otherwise they are handed
    /// over, or freed when the record is dropped. Never panics; waits only under
    /// `Overflow::Block` with a full lane.
    #[inline]
    pub(crate) fn push(&self, words: &[u64], clone: bool) {
        let set = &*self.lanes;
        set.with_lane(|lane| {
            if !lane.closed() {
                if lane.try_push(words, clone) {
                    set.wake_if_parked();
                    return;
                }
                // Only a full lane under `Block` waits; a sink that logs metrics from its
                // own worker must not wait on a queue only it empties.
                let waits = self.overflow == Overflow::Block
                    && !IN_WORKER.try_with(Cell::get).unwrap_or(false);
                if waits && wait_and_push(set, lane, words, clone) {
                    return;
                }
            }
            // Full under the drop policy, or the sink is closed: dropped and counted.
            lane.count_dropped();
            if !clone {
                entry::free_boxes(words);
            }
        })
    }

    /// Queues a whole record: those trainlog makes itself, and events the compact form
    /// cannot hold.
    pub(crate) fn send(&self, record: Record) {
        let words = entry::record_entry(record, clock::now());
        self.push(&words, false);
    }
}

/// Queues `words` (one finished entry, which owns its boxes) to each of the `n` `feeders`:
/// copies for all but the last, which takes the entry's own.
pub(crate) fn publish<'a>(n: usize, feeders: impl Iterator<Item = &'a Feeder>, words: &[u64]) {
    if n == 0 {
        entry::free_boxes(words);
    }
    for (i, feeder) in feeders.enumerate() {
        feeder.push(words, i + 1 < n);
    }
}

/// Waits for room in a full lane; false if the sink closed meanwhile.
#[cold]
fn wait_and_push(set: &LaneSet, lane: &Lane, words: &[u64], clone: bool) -> bool {
    let mut round = 0u32;
    loop {
        set.wake_if_parked();
        if round < 64 {
            std::hint::spin_loop();
        } else if round < 128 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(50));
        }
        round = round.saturating_add(1);
        if lane.closed() {
            return false;
        }
        if lane.try_push(words, clone) {
            set.wake_if_parked();
            return true;
        }
    }
}
