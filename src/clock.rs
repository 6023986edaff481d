//! Timestamps on the logging path: the caller's thread reads raw ticks, the sink's worker
//! turns them into wall-clock time.
//!
//! Ticks are the CPU's time-stamp counter where it is invariant (x86-64 with the
//! `constant_tsc`/`nonstop_tsc` guarantee, CPUID leaf 0x8000_0007), otherwise nanoseconds
//! of the system clock. Why by hand: profiling the caller's path showed `clock_gettime`
//! as the largest single cost left after capture (about 20 ns of 115), while `rdtsc` is a
//! few nanoseconds; `quanta` would do the same but calibrates on first use and brings
//! its own dependencies for what is forty lines here.
//!
//! Conversion ([`WallClock`]) uses anchors, readings of the counter and the system clock
//! taken together every 100 ms while records flow, so clock adjustments are followed and
//! no drift accumulates: an event's time is the last anchor before it plus the ticks
//! since, at the tick rate measured since the process's first anchor. The anchors are
//! shared by all workers, so every sink gives an event the same time.
//! `TRAINLOG_CLOCK=system` forces the system clock.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UNDECIDED: u8 = 0;
const TSC: u8 = 1;
const SYSTEM: u8 = 2;

/// Which tick source this process uses; decided once, before the first tick is read.
static SOURCE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The process's first anchor and the tick rate measured over a short calibration.
struct Calibration {
    ticks: u64,
    wall: SystemTime,
    /// Nanoseconds per tick from the calibration, used until anchors are far enough
    /// apart to measure the rate better.
    ns_per_tick: f64,
}

static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

/// Decides the tick source (and calibrates the counter) if not done yet. Called when a
/// worker starts, so the caller's path never pays for it.
pub(crate) fn init() {
    if SOURCE.load(Relaxed) != UNDECIDED {
        return;
    }
    let forced_system = std::env::var("TRAINLOG_CLOCK").is_ok_and(|v| v == "system");
    let source = if !forced_system && tsc::invariant() {
        TSC
    } else {
        SYSTEM
    };
    if source == TSC {
        CALIBRATION.get_or_init(calibrate);
    }
    // Several workers may start at once: the first decision stands.
    let _ = SOURCE.compare_exchange(UNDECIDED, source, Relaxed, Relaxed);
}

/// Reads the tick counter and the system clock together (the counter's midpoint around
/// the clock read).
fn anchor() -> (u64, SystemTime) {
    let before = tsc::read();
    let wall = SystemTime::now();
    let after = tsc::read();
    (before + (after.wrapping_sub(before)) / 2, wall)
}

/// Measures ticks per nanosecond against the monotonic clock over about a millisecond.
fn calibrate() -> Calibration {
    let (ticks, wall) = anchor();
    let start = Instant::now();
    let start_ticks = tsc::read();
    while start.elapsed() < Duration::from_millis(1) {
        std::hint::spin_loop();
    }
    let end_ticks = tsc::read();
    let elapsed = start.elapsed().as_nanos() as f64;
    let ticks_passed = end_ticks.wrapping_sub(start_ticks).max(1) as f64;
    Calibration {
        ticks,
        wall,
        ns_per_tick: elapsed / ticks_passed,
    }
}

/// The current time in ticks: what the caller's path stamps an event with.
#[inline]
pub(crate) fn now() -> u64 {
    match SOURCE.load(Relaxed) {
        TSC => tsc::read(),
        SYSTEM => system_nanos(SystemTime::now()),
        _ => {
            init();
            now()
        }
    }
}

fn system_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// A reading of the tick counter and the system clock taken together, and the tick
/// rate measured up to then: converts the ticks that follow it (until the next anchor).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ticks: u64,
    /// Nanoseconds since the Unix epoch.
    wall_ns: i128,
    ns_per_tick: f64,
}

/// How often a new anchor is taken while records flow: clock adjustments are followed
/// within this, and a rate error only ever applies to this much time.
const ANCHOR_EVERY: Duration = Duration::from_millis(100);
/// Anchors kept: ticks older than the oldest (a record queued for minutes) use it.
const MAX_ANCHORS: usize = 1024;

/// The process's anchors, oldest first, shared by all workers so that every sink gives
/// an event the same time: ticks always convert with the last anchor taken before them,
/// and an anchor taken later never precedes ticks already read.
static ANCHORS: std::sync::Mutex<Vec<Anchor>> = std::sync::Mutex::new(Vec::new());
static ANCHORS_TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Turns ticks into wall-clock time on a worker. [`refresh`](Self::refresh) before
/// converting the ticks read from the queues.
#[derive(Debug, Default)]
pub(crate) struct WallClock {
    /// A copy of the shared anchors as of `seen`.
    anchors: Vec<Anchor>,
    seen: u64,
}

impl WallClock {
    pub(crate) fn new() -> Self {
        init();
        let mut clock = WallClock::default();
        clock.refresh();
        clock
    }

    /// Takes a new shared anchor if the last is older than [`ANCHOR_EVERY`], and copies
    /// the shared anchors if they changed.
    pub(crate) fn refresh(&mut self) {
        if SOURCE.load(Relaxed) != TSC {
            return;
        }
        let Some(cal) = CALIBRATION.get() else { return };
        let every = (ANCHOR_EVERY.as_nanos() as f64 / cal.ns_per_tick) as u64;
        let stale = |anchors: &[Anchor]| {
            anchors
                .last()
                .is_none_or(|a| tsc::read().wrapping_sub(a.ticks) > every)
        };
        if stale(&self.anchors) {
            let mut shared = ANCHORS.lock().unwrap_or_else(|e| e.into_inner());
            if stale(&shared) {
                let (ticks, wall) = anchor();
                let span = wall.duration_since(cal.wall).unwrap_or_default();
                let ns_per_tick = if span >= Duration::from_secs(1) {
                    span.as_nanos() as f64 / ticks.wrapping_sub(cal.ticks).max(1) as f64
                } else {
                    cal.ns_per_tick
                };
                if shared.len() == MAX_ANCHORS {
                    shared.remove(0);
                }
                shared.push(Anchor {
                    ticks,
                    wall_ns: system_nanos(wall) as i128,
                    ns_per_tick,
                });
                ANCHORS_TAKEN.fetch_add(1, Relaxed);
            }
        }
        let taken = ANCHORS_TAKEN.load(Relaxed);
        if taken != self.seen {
            let shared = ANCHORS.lock().unwrap_or_else(|e| e.into_inner());
            self.anchors.clone_from(&shared);
            self.seen = taken;
        }
    }

    /// The wall-clock time of `ticks` from [`now`].
    pub(crate) fn to_wall(&self, ticks: u64) -> SystemTime {
        if SOURCE.load(Relaxed) != TSC {
            return UNIX_EPOCH + Duration::from_nanos(ticks);
        }
        // The last anchor taken before the ticks were read (usually the last one).
        let Some(a) = self
            .anchors
            .iter()
            .rev()
            .find(|a| a.ticks <= ticks)
            .or(self.anchors.first())
        else {
            return SystemTime::now();
        };
        let since = ticks.wrapping_sub(a.ticks) as i64;
        let ns = a.wall_ns + (since as f64 * a.ns_per_tick) as i128;
        UNIX_EPOCH + Duration::from_nanos(ns.clamp(0, u64::MAX as i128) as u64)
    }
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    /// Whether the time-stamp counter runs at a constant rate in every power state
    /// (CPUID 0x8000_0007, EDX bit 8), so ticks measure time.
    pub(super) fn invariant() -> bool {
        raw_cpuid::CpuId::new()
            .get_advanced_power_mgmt_info()
            .is_some_and(|info| info.has_invariant_tsc())
    }

    /// The counter (RDTSC, a few nanoseconds, no memory effects).
    #[inline]
    pub(super) fn read() -> u64 {
        safe_arch::read_timestamp_counter()
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    pub(super) fn invariant() -> bool {
        false
    }

    pub(super) fn read() -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_the_time_they_were_read() {
        let mut clock = WallClock::new();
        let before = SystemTime::now();
        let t = now();
        std::thread::sleep(Duration::from_millis(20));
        let after_sleep = now();
        clock.refresh();
        let at = clock.to_wall(t);
        let late = clock.to_wall(after_sleep);
        let err = |a: SystemTime, b: SystemTime| {
            a.duration_since(b)
                .unwrap_or_else(|e| e.duration())
                .as_secs_f64()
        };
        assert!(err(at, before) < 0.002, "{at:?} vs {before:?}");
        let gap = late.duration_since(at).unwrap();
        assert!(
            gap >= Duration::from_millis(19) && gap < Duration::from_millis(60),
            "{gap:?}"
        );
    }
}
