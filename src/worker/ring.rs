//! A bounded single-producer single-consumer ring of typed values: the queue between a
//! logging thread and a sink's worker, and the only `unsafe` code of the queue.
//!
//! # Invariant
//!
//! The ring has `capacity` slots (a power of two) and two monotonic counters: `head`,
//! written only by the [`Producer`], and `tail`, written only by the [`Consumer`]; slot
//! `i` is `slots[i & mask]`.
//!
//! - Slots `tail..head` hold initialized values. Only the consumer touches them: it moves
//!   each out exactly once, advancing its own `tail`.
//! - Slots `head..tail + capacity` are free (never written, or moved out). Only the
//!   producer touches them: it writes values there, then publishes them by storing `head`
//!   with `Release`.
//! - The consumer reads `head` with `Acquire` before it reads any slot below it, so it
//!   sees the writes; it hands slots back by storing `tail` with `Release`, and the
//!   producer reads `tail` with `Acquire` before it reuses one.
//!
//! `Producer` and `Consumer` are the only handles, neither is `Clone`, and their methods
//! take `&mut self`: each counter has one writer, each slot one owner at a time. The values
//! still in the ring when both handles are gone are dropped with it (the consumer hands
//! back what it took when it drops, so none is dropped twice).
//!
//! Under `--cfg trainlog_loom` the atomics and cells are loom's, and the tests at the end check the
//! invariant under every interleaving loom explores (see the README's test section).

#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;

#[cfg(trainlog_loom)]
use loom::cell::UnsafeCell;
#[cfg(trainlog_loom)]
use loom::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(trainlog_loom)]
use loom::sync::Arc;
#[cfg(not(trainlog_loom))]
use std::sync::atomic::{AtomicUsize, Ordering::*};
#[cfg(not(trainlog_loom))]
use std::sync::Arc;

/// `std`'s cell with loom's interface, so the code below is the same under both.
#[cfg(not(trainlog_loom))]
#[derive(Debug)]
#[repr(transparent)]
struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(trainlog_loom))]
impl<T> UnsafeCell<T> {
    fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A counter on a cache line of its own, so the two ends do not share one.
#[repr(align(128))]
#[derive(Debug)]
struct Padded(AtomicUsize);

struct Shared<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    head: Padded,
    tail: Padded,
}

// SAFETY: the values move between threads (so `T: Send`), and by the invariant above a
// slot is accessed by one handle at a time, with the counters ordering the hand-over.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; `Shared` is only reached through the two handles.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let (tail, head) = (self.tail.0.load(Relaxed), self.head.0.load(Relaxed));
        for i in tail..head {
            // SAFETY: both handles are gone (`&mut self`), the consumer published every
            // slot it took, so `tail..head` are exactly the initialized values, each
            // dropped once here.
            self.slots[i & self.mask].with_mut(|p| unsafe { (*p).assume_init_drop() });
        }
    }
}

/// A ring of at least `capacity` slots (rounded up to a power of two, at least 2), and
/// its two ends.
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(2).next_power_of_two();
    let shared = Arc::new(Shared {
        slots: (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect(),
        mask: capacity - 1,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
    });
    let producer = Producer {
        shared: shared.clone(),
        head: 0,
        tail: 0,
    };
    let consumer = Consumer {
        shared,
        tail: 0,
        head: 0,
    };
    (producer, consumer)
}

/// The writing end.
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// What this end published (equal to `shared.head`).
    head: usize,
    /// The consumer's `tail` when last read: slots below `tail + capacity` are free.
    tail: usize,
}

impl<T> Producer<T> {
    /// How many values this end has published in all (tests).
    #[cfg(test)]
    pub(crate) fn published(&self) -> usize {
        self.head
    }

    /// Whether `len` more values fit now (reading the consumer's position only when the
    /// one known does not leave room).
    #[inline]
    pub(crate) fn fits(&mut self, len: usize) -> bool {
        let capacity = self.shared.mask + 1;
        if self.head + len - self.tail <= capacity {
            return true;
        }
        self.tail = self.shared.tail.0.load(Acquire);
        self.head + len - self.tail <= capacity
    }

    /// Moves the values of `items` from `start` on into the ring and publishes them
    /// together, leaving `items` with the first `start`; `false`, and `items` as it was,
    /// when they do not fit now.
    ///
    /// The values go in as one or two block copies (two when they wrap), from the
    /// caller's stack where the entry was built: the slots are memory the consumer read
    /// last, and wide stores to it cost the logging thread far less than a store per
    /// field of each value (`caller/trainlog_jsonl` was about twice as slow written that
    /// way).
    #[inline]
    pub(crate) fn push_from<const N: usize>(
        &mut self,
        items: &mut ArrayVec<T, N>,
        start: usize,
    ) -> bool {
        let start = start.min(items.len());
        let len = items.len() - start;
        if !self.fits(len) {
            return false;
        }
        let mask = self.shared.mask;
        let at = self.head & mask;
        #[cfg(not(trainlog_loom))]
        {
            let first = len.min(mask + 1 - at);
            let slots = self
                .shared
                .slots
                .as_ptr()
                .cast::<std::cell::UnsafeCell<MaybeUninit<T>>>();
            // SAFETY: slots `head..head + len` (at `at`, wrapping to 0) are free, as
            // `fits` found (`head + len <= tail + capacity`), and only this end writes
            // them until the store below publishes them. The pointers come from the
            // slice of cells (our `UnsafeCell` is `repr(transparent)` over std's, which is
            // over its content), `at + first <= capacity` and `len - first <= at`, so
            // both copies stay in it; the source is `items[start..]` (`start + len` is
            // its length), another allocation. The values are moved: `set_len(start)`
            // keeps `items` from dropping what the ring now owns.
            unsafe {
                let src = items.as_ptr().add(start);
                let dst = std::cell::UnsafeCell::raw_get(slots.add(at)).cast::<T>();
                std::ptr::copy_nonoverlapping(src, dst, first);
                if first < len {
                    let dst = std::cell::UnsafeCell::raw_get(slots).cast::<T>();
                    std::ptr::copy_nonoverlapping(src.add(first), dst, len - first);
                }
                items.set_len(start);
            }
        }
        // Under loom the cells are loom's, one access each: the same hand-over, value by
        // value.
        #[cfg(trainlog_loom)]
        for (i, item) in items.drain(start..).enumerate() {
            // SAFETY: as above, slot `head + i` is free and only this end writes it.
            self.shared.slots[(self.head + i) & mask].with_mut(|p| unsafe {
                (*p).write(item);
            });
        }
        self.head += len;
        self.shared.head.0.store(self.head, Release);
        true
    }
}

/// The reading end.
pub(crate) struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// The next slot to take (ahead of `shared.tail` until [`release`](Self::release)).
    tail: usize,
    /// The producer's `head` when last read: slots below it are initialized.
    head: usize,
}

impl<T> Consumer<T> {
    /// Reads the producer's position: what it published up to now becomes visible.
    /// Returns how many values are visible.
    #[inline]
    pub(crate) fn refresh(&mut self) -> usize {
        self.head = self.shared.head.0.load(Acquire);
        self.head - self.tail
    }

    /// Whether every value visible (as of the last refresh) was taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// Looks at the next visible value without taking it.
    #[inline]
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        if self.tail == self.head {
            return None;
        }
        // SAFETY: `tail < head`, a position the producer published (the `Acquire` load
        // in `refresh` saw its `Release` store), so the slot is initialized, and only
        // this end reads it until `tail` passes it.
        Some(
            self.shared.slots[self.tail & self.shared.mask]
                .with(|p| f(unsafe { (*p).assume_init_ref() })),
        )
    }

    /// Takes the next visible value.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.tail == self.head {
            return None;
        }
        // SAFETY: as in `peek`; the value is moved out once, since `tail` then passes the
        // slot, which is free from here on.
        let value = self.shared.slots[self.tail & self.shared.mask]
            .with(|p| unsafe { (*p).assume_init_read() });
        self.tail += 1;
        Some(value)
    }

    /// Hands the slots of the values taken so far back to the producer.
    #[inline]
    pub(crate) fn release(&mut self) {
        self.shared.tail.0.store(self.tail, Release);
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // What was taken is not in the ring any more: the ring's drop must not see it.
        self.release();
    }
}

/// `len` values made by `make`, as an entry to push.
#[cfg(test)]
fn values<T>(len: usize, make: impl FnMut(usize) -> T) -> ArrayVec<T, 8> {
    (0..len).map(make).collect()
}

#[cfg(all(test, not(trainlog_loom)))]
mod tests {
    use super::*;

    #[test]
    fn values_come_out_in_order_and_a_full_ring_refuses_whole_entries() {
        let (mut p, mut c) = ring::<Box<u32>>(4);
        assert!(p.push_from(&mut values(3, |i| Box::new(i as u32)), 0));
        let mut refused = values(2, |i| Box::new(7 + i as u32));
        assert!(!p.push_from(&mut refused, 0));
        assert_eq!(refused.len(), 2, "a refused entry is left as it was");
        assert_eq!(c.refresh(), 3);
        assert_eq!(c.peek(|v| **v), Some(0));
        assert_eq!(c.pop().as_deref(), Some(&0));
        assert_eq!(c.pop().as_deref(), Some(&1));
        // Not handed back yet: still no room for two.
        assert!(!p.push_from(&mut refused, 0));
        c.release();
        // Slots 3 and 0: the copy wraps around the end of the ring.
        assert!(p.push_from(&mut refused, 0));
        assert!(refused.is_empty());
        assert_eq!(c.refresh(), 3);
        let rest: Vec<u32> = std::iter::from_fn(|| c.pop()).map(|b| *b).collect();
        assert_eq!(rest, [2, 7, 8]);
        assert!(c.is_empty());
    }

    #[test]
    fn a_push_from_an_offset_leaves_the_values_before_it() {
        let (mut p, mut c) = ring::<Box<u32>>(4);
        let mut entry = values(5, |i| Box::new(i as u32));
        assert!(
            !p.push_from(&mut entry, 0),
            "five values never fit four slots"
        );
        assert!(p.push_from(&mut entry, 2));
        assert_eq!(entry.iter().map(|b| **b).collect::<Vec<_>>(), [0, 1]);
        // Past the end: nothing to push.
        assert!(p.push_from(&mut entry, 9));
        assert_eq!(entry.len(), 2);
        c.refresh();
        let taken: Vec<u32> = std::iter::from_fn(|| c.pop()).map(|b| *b).collect();
        assert_eq!(taken, [2, 3, 4]);
    }

    #[test]
    fn values_left_in_the_ring_are_dropped_once() {
        let value = std::sync::Arc::new(());
        let (mut p, mut c) = ring(8);
        assert!(p.push_from(&mut values(5, |_| value.clone()), 0));
        c.refresh();
        drop(c.pop());
        drop(c.pop());
        assert_eq!(std::sync::Arc::strong_count(&value), 4);
        drop(c);
        drop(p);
        assert_eq!(std::sync::Arc::strong_count(&value), 1);
    }
}

#[cfg(all(test, trainlog_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize as Count;

    /// A value that counts its drops.
    struct Tracked(u32, Arc<Count>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.fetch_add(1, Relaxed);
        }
    }

    #[test]
    fn entries_cross_threads_whole_in_order_and_every_value_drops_once() {
        loom::model(|| {
            let drops = Arc::new(Count::new(0));
            let (mut p, mut c) = ring::<Tracked>(4);
            let d = drops.clone();
            let producer = loom::thread::spawn(move || {
                // Entries of two and three values into four slots: the second waits for
                // the consumer to hand slots back (or is refused and left out). It is
                // pushed from an offset: its first value stays with the producer.
                let mut pushed = 0;
                for (first, len, from) in [(0u32, 2usize, 0usize), (9, 4, 1)] {
                    let mut entry = values(len, |i| Tracked(first + i as u32, d.clone()));
                    if p.push_from(&mut entry, from) {
                        pushed += len - from;
                    }
                }
                pushed
            });
            let mut seen = Vec::new();
            for _ in 0..2 {
                c.refresh();
                while let Some(v) = c.pop() {
                    seen.push(v.0);
                }
                c.release();
                loom::thread::yield_now();
            }
            let pushed = producer.join().unwrap();
            c.refresh();
            while let Some(v) = c.pop() {
                seen.push(v.0);
            }
            // Whole entries, in order.
            let expected: Vec<u32> = match pushed {
                2 => vec![0, 1],
                5 => vec![0, 1, 10, 11, 12],
                n => panic!("pushed {n} values: only whole entries may be"),
            };
            assert_eq!(seen, expected);
            drop(c);
            // Every value made dropped once: a refused entry, and what comes before the
            // offset, by the producer.
            assert_eq!(drops.load(Relaxed), 6);
        });
    }

    #[test]
    fn values_left_when_both_ends_drop_are_dropped_once() {
        loom::model(|| {
            let drops = Arc::new(Count::new(0));
            let (mut p, mut c) = ring::<Tracked>(2);
            let d = drops.clone();
            let producer = loom::thread::spawn(move || {
                assert!(p.push_from(&mut values(2, |i| Tracked(i as u32, d.clone())), 0));
            });
            c.refresh();
            let taken = c.pop().map(|v| v.0);
            drop(c);
            producer.join().unwrap();
            assert!(matches!(taken, None | Some(0)));
            assert_eq!(drops.load(Relaxed), 2);
        });
    }
}
