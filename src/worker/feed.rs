//! The producer's end of a sink's queue: what the layer holds for each sink, and how an
//! entry is queued on the calling thread's lane under the overflow policy.

use std::cell::Cell;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::entry::{self, Entry};
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

    /// Queues one entry (see [`entry`]) on this thread's lane to the sink: a copy, or the
    /// entry itself (what is not queued stays with the caller, who drops it). Never
    /// panics; waits only under `Overflow::Block` with a full lane.
    #[inline]
    fn push(&self, entry: &mut Entry<'_>, copy: bool) {
        self.lanes.with_lane(|lane| self.push_to(lane, entry, copy))
    }

    /// [`push`](Self::push) to this thread's lane. Always inlined: called from a closure
    /// that is then small enough to be inlined too (as one function, its prologue and
    /// epilogue were a tenth of the queue's cost per event).
    #[inline(always)]
    fn push_to(&self, lane: &mut Lane, entry: &mut Entry<'_>, copy: bool) {
        let set = &*self.lanes;
        if !lane.closed() {
            if lane.try_push(entry, copy) {
                set.wake_if_parked();
                return;
            }
            // Only a full lane under `Block` waits; a sink that logs metrics from its
            // own worker must not wait on a queue only it empties.
            let waits =
                self.overflow == Overflow::Block && !IN_WORKER.try_with(Cell::get).unwrap_or(false);
            if waits && wait_and_push(set, lane, entry, copy) {
                return;
            }
        }
        // Full under the drop policy, or the sink is closed: dropped and counted.
        lane.count_dropped();
    }

    /// Queues a whole record: those trainlog makes itself, and events the compact form
    /// cannot hold.
    pub(crate) fn send(&self, record: Record) {
        let mut slots = entry::Slots::new();
        let mut entry = entry::record_entry(record, clock::now(), &mut slots);
        self.push(&mut entry, false);
    }
}

/// Queues one finished entry to each of the `n` `feeders`: copies for all but the last,
/// which takes the entry itself.
pub(crate) fn publish<'a>(
    n: usize,
    feeders: impl Iterator<Item = &'a Feeder>,
    entry: &mut Entry<'_>,
) {
    for (i, feeder) in feeders.enumerate() {
        feeder.push(entry, i + 1 < n);
    }
}

/// Queues one finished entry to each of `feeders` (as [`publish`]; the entry itself
/// when there is one sink, the common case, without the loop).
#[inline]
pub(crate) fn publish_all(feeders: &[Feeder], entry: &mut Entry<'_>) {
    match feeders {
        [only] => only.push(entry, false),
        _ => publish(feeders.len(), feeders.iter(), entry),
    }
}

/// Waits for room in a full lane; false if the sink closed meanwhile.
#[cold]
fn wait_and_push(set: &LaneSet, lane: &mut Lane, entry: &mut Entry<'_>, copy: bool) -> bool {
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
        if lane.try_push(entry, copy) {
            set.wake_if_parked();
            return true;
        }
    }
}
