//! Core speed, each figure beside its baseline in the same run.
//!
//! - `filtered_out`: an event no trainlog sink wants vs. a disabled `tracing` event.
//! - `caller`: cost on the training thread of one enabled metrics event, trainlog's JSONL
//!   layer vs. `fmt().json()` + `tracing_appender::non_blocking`, with a no-op layer and a
//!   layer that only reads the fields as floors, in bursts the queues hold; plus sustained
//!   logging faster than the disk (block / drop).
//! - `end_to_end`: 1,000,000 events from the first call until the guard is dropped and every
//!   line is on disk, vs. `serde_json` into a `BufWriter<File>` (with a constant timestamp:
//!   the limit; and stamping each line) and vs. `fmt().json()` + lossless `non_blocking`;
//!   the same from 8 threads; and the TensorBoard sink (3 scalars per event) beside JSONL.
//! - `clock`: `SystemTime::now()` beside the CPU's time-stamp counter.
//!
//! Run: `cargo bench --bench core` (figures are recorded in the README).

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tracing::info;
use tracing_subscriber::{filter::LevelFilter, prelude::*, Layer};
use trainlog::{sink::MemorySink, MetricLogger, Overflow};

/// A layer that does nothing: the cost of `tracing` dispatch alone.
struct Noop;
impl<S: tracing::Subscriber> Layer<S> for Noop {}

/// A layer that reads every field of an event and keeps nothing: the cost of `tracing`'s
/// visitor (one dynamic call per field), which any layer that captures values pays.
struct VisitFields;

struct Xor(u64);

impl tracing::field::Visit for Xor {
    fn record_f64(&mut self, _: &tracing::field::Field, v: f64) {
        self.0 ^= v.to_bits();
    }
    fn record_u64(&mut self, _: &tracing::field::Field, v: u64) {
        self.0 ^= v;
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for VisitFields {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut xor = Xor(0);
        event.record(&mut xor);
        black_box(xor.0);
    }
}

fn count_lines(path: &Path) -> usize {
    BufReader::new(File::open(path).unwrap()).lines().count()
}

fn filtered_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("filtered_out");
    {
        let subscriber = tracing_subscriber::registry().with(Noop.with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function("baseline_disabled_tracing_event", |b| {
                b.iter(|| info!(target: "metrics", step = black_box(1u64), loss = 0.5))
            });
        });
    }
    {
        let (layer, guard) = MetricLogger::builder()
            .sink(MemorySink::new())
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            g.bench_function("trainlog_other_target", |b| {
                b.iter(|| info!(target: "app", step = black_box(1u64), loss = 0.5))
            });
        });
        drop(guard);
    }
    {
        let (layer, guard) = MetricLogger::builder()
            .rank(1)
            .rank0_sink(MemorySink::new())
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            g.bench_function("trainlog_rank0_sink_on_rank1", |b| {
                b.iter(|| info!(target: "metrics", step = black_box(1u64), loss = 0.5))
            });
        });
        drop(guard);
    }
    g.finish();
}

macro_rules! metrics_event {
    ($i:expr) => {{
        let i: u64 = $i;
        info!(target: "metrics", step = i, loss = 1.0 / (i as f64 + 1.0), lr = 3e-4, "train.acc" = 0.5)
    }};
}

/// Times `iters` events emitted in bursts that fit in the queues, running `drain`
/// (untimed) between bursts: the cost a training loop sees when logging is not
/// saturating the writer.
fn bursts(iters: u64, drain: impl FnMut(u64)) -> Duration {
    bursts_of(iters, |i| metrics_event!(i), drain)
}

/// [`bursts`] of `log(i)` instead of the usual event.
fn bursts_of(iters: u64, mut log: impl FnMut(u64), mut drain: impl FnMut(u64)) -> Duration {
    const BURST: u64 = 10_000;
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = BURST.min(iters - done);
        let start = Instant::now();
        for i in done..done + n {
            log(i);
        }
        total += start.elapsed();
        done += n;
        drain(n);
    }
    total
}

/// The usual event's fields for `log_fields`, with run-time names (a `String` each, as
/// `log_dict` makes them) or `&'static str` names (as the Python package interns them).
fn fields(i: u64, static_names: bool) -> Vec<(trainlog::Key, trainlog::Value)> {
    let values = [1.0 / (i as f64 + 1.0), 3e-4, 0.5];
    ["loss", "lr", "train.acc"]
        .iter()
        .zip(values)
        .map(|(name, v)| {
            let key = if static_names {
                trainlog::Key::Borrowed(name)
            } else {
                trainlog::Key::Owned(name.to_string())
            };
            (key, trainlog::Value::F64(v))
        })
        .collect()
}

fn caller(c: &mut Criterion) {
    let mut g = c.benchmark_group("caller");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    {
        let subscriber = tracing_subscriber::registry().with(Noop);
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function("floor_noop_layer", |b| b.iter_custom(|n| bursts(n, |_| ())));
        });
    }
    {
        let subscriber = tracing_subscriber::registry().with(VisitFields);
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function("floor_visit_fields", |b| {
                b.iter_custom(|n| bursts(n, |_| ()))
            });
        });
    }
    {
        let (writer, guard) =
            tracing_appender::non_blocking(File::create(dir.path().join("fmt.jsonl")).unwrap());
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // non_blocking cannot be flushed on demand: give its worker time to catch up.
            g.bench_function("baseline_fmt_json_non_blocking", |b| {
                b.iter_custom(|n| bursts(n, |k| std::thread::sleep(Duration::from_nanos(k * 1500))))
            });
        });
        drop(guard);
    }
    {
        let (layer, guard) = MetricLogger::builder()
            .output_dir(dir.path().join("burst"))
            .rank(0)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            g.bench_function("trainlog_jsonl", |b| {
                b.iter_custom(|n| bursts(n, |_| guard.flush().unwrap()))
            });
        });
        drop(guard);
    }
    // `log_fields` (what `log_dict` and the Python package call): names made at run time
    // go as a boxed record; `&'static str` names through a run-time callsite, as events.
    for (name, static_names) in [
        ("trainlog_jsonl_log_fields_owned_names", false),
        ("trainlog_jsonl_log_fields_static_names", true),
    ] {
        let out = dir.path().join(name);
        let (layer, guard) = MetricLogger::builder()
            .output_dir(&out)
            .rank(0)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            g.bench_function(name, |b| {
                b.iter_custom(|n| {
                    bursts_of(
                        n,
                        |i| trainlog::log_fields(Some(i), false, fields(i, static_names)),
                        |_| guard.flush().unwrap(),
                    )
                })
            });
        });
        drop(guard);
    }
    // The price of `span_fields`: the same events inside two spans (`run`, `epoch`) whose
    // fields go on every record; beside it, the same spans without the option.
    for (name, span_fields) in [
        ("trainlog_jsonl_in_spans", false),
        ("trainlog_jsonl_span_fields", true),
    ] {
        let out = dir.path().join(name);
        let (layer, guard) = MetricLogger::builder()
            .output_dir(&out)
            .rank(0)
            .span_fields(span_fields)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let _run = tracing::info_span!("run", model = "tiny").entered();
            let _epoch = tracing::info_span!("epoch", epoch = 3u64).entered();
            g.bench_function(name, |b| {
                b.iter_custom(|n| bursts(n, |_| guard.flush().unwrap()))
            });
        });
        drop(guard);
        // A fast wrong answer fails: the fields are on the records only when asked.
        // (No lines: the bench was filtered out of this run.)
        let lines = std::fs::read_to_string(out.join("metrics_rank0.jsonl")).unwrap_or_default();
        if let Some(first) = lines.lines().next() {
            assert_eq!(first.contains("\"epoch\":3"), span_fields, "{first}");
        }
    }
    // Sustained logging faster than the disk takes it: under `Block` the caller runs at
    // the sink's pace; under `Drop` it never waits and the excess is counted.
    for (name, overflow) in [
        ("trainlog_jsonl_sustained_block", Overflow::Block),
        ("trainlog_jsonl_sustained_drop", Overflow::Drop),
    ] {
        let out = dir.path().join(name);
        let (layer, guard) = MetricLogger::builder()
            .output_dir(&out)
            .rank(0)
            .overflow(overflow)
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let mut i = 0u64;
            g.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    metrics_event!(i)
                })
            });
        });
        drop(guard);
    }
    g.finish();
}

const N: u64 = 1_000_000;

#[derive(serde::Serialize)]
struct Line<'a> {
    timestamp: &'a str,
    rank: u32,
    step: u64,
    loss: f64,
    lr: f64,
    #[serde(rename = "train.acc")]
    acc: f64,
}

/// Times `iters` runs of `write_all`, each in a fresh directory, from its first event until
/// its file is complete; then checks with `count` that the file it names holds all `N`.
fn timed_runs(
    iters: u64,
    count: fn(&Path) -> usize,
    mut write_all: impl FnMut(&Path) -> PathBuf,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let path = write_all(dir.path());
        total += start.elapsed();
        assert_eq!(count(&path) as u64, N, "records lost");
    }
    total
}

/// Writes the `N` lines with `serde_json` into a `BufWriter<File>` under `dir`, each line
/// stamped with the time now (`stamp_each`) or all with one timestamp formatted once.
fn serde_json_lines(dir: &Path, stamp_each: bool) -> PathBuf {
    let path = dir.join("serde.jsonl");
    let mut w = BufWriter::new(File::create(&path).unwrap());
    let mut ts = trainlog::Record::new(0).timestamp_rfc3339();
    for i in 0..N {
        if stamp_each {
            ts = trainlog::Record::new(0).timestamp_rfc3339();
        }
        let line = Line {
            timestamp: &ts,
            rank: 0,
            step: i,
            loss: 1.0 / (i as f64 + 1.0),
            lr: 3e-4,
            acc: 0.5,
        };
        serde_json::to_writer(&mut w, &line).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
    path
}

/// Logs all `N` events through trainlog with `backends` into `dir` from `threads` threads
/// (each its share), until the guard is done.
fn log_all_through(dir: &Path, backends: &str, threads: u64) {
    let (layer, guard) = MetricLogger::builder()
        .output_dir(dir)
        .backends(backends)
        .unwrap()
        .rank(0)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    std::thread::scope(|scope| {
        for t in 0..threads {
            let dispatch = &dispatch;
            scope.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    for i in (t..N).step_by(threads as usize) {
                        metrics_event!(i);
                    }
                })
            });
        }
    });
    let stats = guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    assert_eq!(stats.written, N);
}

/// Events in a TensorBoard file, not counting the version record, by walking the framing.
fn count_events(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap();
    let (mut at, mut n) = (0, 0);
    while at + 12 <= data.len() {
        let len = u64::from_le_bytes(data[at..at + 8].try_into().unwrap()) as usize;
        at += 12 + len + 4;
        n += 1;
    }
    assert_eq!(at, data.len(), "a torn record");
    n - 1
}

/// The event file of the only run under `<dir>/tensorboard`.
fn event_file(dir: &Path) -> PathBuf {
    let run = std::fs::read_dir(dir.join("tensorboard"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::read_dir(run.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn end_to_end(c: &mut Criterion) {
    let mut g = c.benchmark_group("end_to_end_1m");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(N));

    // The limit: `serde_json` into a `BufWriter` on the calling thread, the timestamp
    // formatted once (a constant), so only serialization and writing are timed.
    g.bench_function("baseline_serde_json_bufwriter_const_ts", |b| {
        b.iter_custom(|iters| timed_runs(iters, count_lines, |dir| serde_json_lines(dir, false)))
    });

    g.bench_function("baseline_serde_json_bufwriter", |b| {
        b.iter_custom(|iters| timed_runs(iters, count_lines, |dir| serde_json_lines(dir, true)))
    });

    g.bench_function("baseline_fmt_json_non_blocking_lossless", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, count_lines, |dir| {
                let path = dir.join("fmt.jsonl");
                let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                    .lossy(false)
                    .finish(File::create(&path).unwrap());
                let subscriber = tracing_subscriber::fmt()
                    .json()
                    .with_writer(writer)
                    .finish();
                tracing::subscriber::with_default(subscriber, || {
                    for i in 0..N {
                        metrics_event!(i);
                    }
                });
                drop(guard);
                path
            })
        })
    });

    g.bench_function("trainlog_jsonl", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, count_lines, |dir| {
                log_all_through(dir, "async", 1);
                trainlog::jsonl_path(dir, 0)
            })
        })
    });

    g.bench_function("trainlog_jsonl_8_threads", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, count_lines, |dir| {
                log_all_through(dir, "async", 8);
                trainlog::jsonl_path(dir, 0)
            })
        })
    });

    g.bench_function("trainlog_tensorboard", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, count_events, |dir| {
                log_all_through(dir, "tensorboard", 1);
                event_file(dir)
            })
        })
    });
    g.finish();
}

/// What a timestamp costs the caller: the system clock, and the CPU's time-stamp counter
/// trainlog reads instead where it is invariant.
fn clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    g.bench_function("system_time_now", |b| b.iter(std::time::SystemTime::now));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC exists on every x86-64 processor and has no memory effects.
    g.bench_function("rdtsc", |b| {
        b.iter(|| unsafe { std::arch::x86_64::_rdtsc() })
    });
    g.finish();
}

criterion_group!(benches, filtered_out, caller, end_to_end, clock);
criterion_main!(benches);
