//! The worker's reading side: finding its lanes' records, decoding them into reused
//! records in time order, and handing written records back for reuse.

use std::sync::Arc;

use super::{entry, WorkerState, MAX_BATCH, MAX_FREE};
use crate::Record;

impl WorkerState {
    /// Looks for lanes of new threads and for records published since the last look.
    pub(super) fn has_records(&mut self) -> bool {
        self.lanes
            .new_lanes(&mut self.generation, &mut self.readers);
        let mut any = false;
        for reader in &mut self.readers {
            reader.refresh();
            any |= !reader.is_empty();
        }
        any
    }

    /// Decodes up to a batch of records from the lanes, oldest first across lanes (each
    /// lane is in its thread's order). With `refresh`, records published since the last
    /// refresh are included; without, only those visible then. Returns how many.
    pub(super) fn drain(&mut self, batch: &mut Vec<Arc<Record>>, refresh: bool) -> usize {
        if refresh {
            self.has_records();
        }
        self.clock.refresh();
        // With one lane holding records (one thread logging) there is nothing to merge.
        let mut with_records = self
            .readers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, reader)| reader.peek_ticks().map(|_| i));
        let only = match (with_records.next(), with_records.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        };
        while batch.len() < MAX_BATCH {
            let i = match only {
                Some(i) => i,
                None => {
                    let mut oldest: Option<(usize, u64)> = None;
                    for (i, reader) in self.readers.iter_mut().enumerate() {
                        if let Some(ticks) = reader.peek_ticks() {
                            if oldest.is_none_or(|(_, t)| ticks < t) {
                                oldest = Some((i, ticks));
                            }
                        }
                    }
                    let Some((i, _)) = oldest else { break };
                    i
                }
            };
            // Only unshared records are kept for reuse, so `get_mut` finds them unique.
            let mut record = match self.free.pop() {
                Some(r) if Arc::strong_count(&r) == 1 => r,
                _ => Arc::new(Record {
                    fields: Vec::with_capacity(4),
                    ..Record::new(0)
                }),
            };
            let empty = Arc::make_mut(&mut record);
            let Some(decoded) = self.readers[i].next(empty, &mut self.names, self.rank) else {
                self.free.push(record);
                break;
            };
            match decoded {
                entry::Decoded::Fields { ticks } => {
                    empty.timestamp = self.clock.to_wall(ticks);
                    batch.push(record);
                }
                entry::Decoded::Record(mut whole, ticks) => {
                    // Stamped like the compact entries, so a thread's records keep their
                    // order in time whichever form they took.
                    whole.timestamp = self.clock.to_wall(ticks);
                    self.free.push(record);
                    batch.push(Arc::new(*whole));
                }
            }
        }
        for reader in &mut self.readers {
            reader.release();
        }
        if !self.lanes.is_closed() {
            self.lanes.count_taken(batch.len() as u64);
        }
        self.lanes.retire_finished(&mut self.readers);
        batch.len()
    }

    /// Writes every record visible now (a flush or shutdown); true if there were any.
    pub(super) fn drain_all(&mut self, batch: &mut Vec<Arc<Record>>) -> bool {
        self.has_records();
        let mut wrote = false;
        while self.drain(batch, false) > 0 {
            self.write_out(batch);
            wrote = true;
        }
        wrote
    }

    /// Writes the batch and keeps its records for reuse.
    pub(super) fn write_out(&mut self, batch: &mut Vec<Arc<Record>>) {
        self.write(batch);
        for mut record in batch.drain(..) {
            // A record a sink kept (a clone of the `Arc`) is simply not reused.
            if let Some(r) = Arc::get_mut(&mut record) {
                // Values are dropped here; huge field vectors are not kept.
                if self.free.len() < MAX_FREE && r.clear_for_reuse() {
                    self.free.push(record);
                }
            }
        }
    }
}
