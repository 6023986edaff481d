//! No heap allocation on the calling thread per metrics event in steady state: a counting
//! global allocator (per thread, so the workers' allocations are not counted) around
//! 200,000 events after a warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::MetricLogger;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations on this thread per event for 200,000 events logged in bursts of 1,000
/// (what the sinks' record pools hold from the start), after 20 warm-up bursts;
/// `between` runs after each burst and is not counted (it lets the workers catch up, as a
/// training step's compute would).
fn per_event(log: impl Fn(u64), between: impl Fn()) -> f64 {
    const BURST: u64 = 1_000;
    const WARM_UP: u64 = 20;
    const COUNTED: u64 = 200;
    let mut step = 0;
    let mut counted = 0;
    for burst in 0..WARM_UP + COUNTED {
        let before = allocations();
        for _ in 0..BURST {
            log(step);
            step += 1;
        }
        if burst >= WARM_UP {
            counted += allocations() - before;
        }
        between();
    }
    counted as f64 / (COUNTED * BURST) as f64
}

fn metrics_event(step: u64) {
    info!(target: "metrics", step, loss = 1.0 / (step + 1) as f64, lr = 3e-4, "train.acc" = 0.5);
}

#[test]
fn logging_an_event_allocates_nothing_on_the_calling_thread() {
    for backends in ["async", "async,tensorboard"] {
        let dir = tempfile::tempdir().unwrap();
        let (layer, guard) = MetricLogger::builder()
            .output_dir(dir.path())
            .rank(0)
            .backends(backends)
            .unwrap()
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        let per = tracing::subscriber::with_default(subscriber, || {
            per_event(metrics_event, || guard.flush().unwrap())
        });
        let stats = guard
            .shutdown(trainlog::sink::RunOutcome::Completed)
            .unwrap();
        let sinks = backends.split(',').count() as u64;
        assert_eq!(
            stats.written,
            sinks * 220_000,
            "{backends}: every record written"
        );
        assert_eq!(
            per, 0.0,
            "{backends}: allocations per event on the calling thread"
        );
    }
}
