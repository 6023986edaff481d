//! Each network and file backend beside the JSONL sink in the same run, with the same
//! 100,000 records `{step, loss, lr, train.acc}`; every bench checks what arrived, so a
//! fast wrong answer fails.
//!
//! - `sink_write`: what one sink's worker spends per record, `write_batch` in batches of
//!   1,024 and `close` (the records built beforehand): JSONL (the baseline), W&B's offline
//!   writer (records counted back from the file's chunks), MLflow's encoding into its
//!   spool (server unreachable: lines counted in the spool), OpenTelemetry recording (an
//!   OTLP receiver on 127.0.0.1 decodes the export: the last loss and step).
//! - `http_end_to_end`: 100,000 events through the logger to a local HTTP server until
//!   the guard is dropped (every record acknowledged), beside JSONL through the logger.
//!
//! Run: `cargo bench --bench backends --all-features` (figures are in the README).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::{
    BuildContext, HttpOptions, JsonlSink, MlflowOptions, MlflowSink, OtelOptions, OtelSink,
    RunOutcome, Sink, WandbOptions, WandbSink,
};
use trainlog::{MetricLogger, RankInfo, Record};

const N: u64 = 100_000;

fn records() -> Vec<Arc<Record>> {
    (0..N)
        .map(|i| {
            Arc::new(
                Record::new(0)
                    .with_step(i)
                    .with_field("loss", 1.0 / (i as f64 + 1.0))
                    .with_field("lr", 3e-4)
                    .with_field("train.acc", 0.5),
            )
        })
        .collect()
}

fn rank0() -> RankInfo {
    RankInfo {
        rank: 0,
        local_rank: 0,
        world_size: 1,
    }
}

/// Times `iters` runs of `run` (writing all records into a fresh directory), then
/// checks each with `check`.
fn timed(iters: u64, mut run: impl FnMut(&Path), check: impl Fn(&Path)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        run(dir.path());
        total += start.elapsed();
        check(dir.path());
    }
    total
}

/// Feeds every record to `sink` in worker-sized batches and closes it.
fn write_all(mut sink: impl Sink, records: &[Arc<Record>]) {
    for batch in records.chunks(1024) {
        sink.write_batch(batch).unwrap();
    }
    // OTel's close reports a failed final export as an error; the check decides.
    let _ = sink.close(RunOutcome::Completed);
}

fn count_lines(path: &Path, containing: &str) -> u64 {
    BufReader::new(std::fs::File::open(path).unwrap())
        .lines()
        .filter(|l| l.as_ref().unwrap().contains(containing))
        .count() as u64
}

/// The one file under `dir` (searched recursively) whose name ends with `suffix`.
fn find(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                return path;
            }
        }
    }
    panic!("no *{suffix} under {}", dir.display());
}

/// Records in a W&B offline file, by walking its chunks: FULL and FIRST start a record.
fn wandb_records(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap();
    let (mut at, mut n) = (7usize, 0);
    while at + 7 <= data.len() {
        let left = 32_768 - at % 32_768;
        if left < 7 {
            at += left;
            continue;
        }
        let len = u16::from_le_bytes([data[at + 4], data[at + 5]]) as usize;
        if matches!(data[at + 6], 1 | 2) {
            n += 1;
        }
        at += 7 + len;
    }
    n
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An OTLP/HTTP receiver on 127.0.0.1 keeping the last value of each gauge it decodes.
struct OtlpReceiver {
    port: u16,
    gauges: Arc<Mutex<std::collections::HashMap<String, f64>>>,
    exports: Arc<AtomicU64>,
}

impl OtlpReceiver {
    fn start() -> Self {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
        use prost::Message as _;
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let gauges = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let exports = Arc::new(AtomicU64::new(0));
        let (g, e) = (gauges.clone(), exports.clone());
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                if let Ok(export) = ExportMetricsServiceRequest::decode(body.as_slice()) {
                    let mut gauges = g.lock().unwrap();
                    for metric in export
                        .resource_metrics
                        .iter()
                        .flat_map(|r| &r.scope_metrics)
                        .flat_map(|s| &s.metrics)
                    {
                        if let Some(Data::Gauge(gauge)) = &metric.data {
                            for point in &gauge.data_points {
                                if let Some(Value::AsDouble(v)) = point.value {
                                    gauges.insert(metric.name.clone(), v);
                                }
                            }
                        }
                    }
                    e.fetch_add(1, Ordering::Relaxed);
                }
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        });
        OtlpReceiver {
            port,
            gauges,
            exports,
        }
    }
}

fn sink_write(c: &mut Criterion) {
    let records = records();
    let mut g = c.benchmark_group("sink_write_100k");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(N));

    g.bench_function("baseline_jsonl", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |dir| write_all(JsonlSink::in_dir(dir, 0).unwrap(), &records),
                |dir| assert_eq!(count_lines(&dir.join("metrics_rank0.jsonl"), "loss"), N),
            )
        })
    });

    g.bench_function("wandb_offline", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |dir| {
                    let options = WandbOptions::new().dir(dir).run_id("bench001");
                    write_all(
                        WandbSink::new(options, &BuildContext::new(rank0())).unwrap(),
                        &records,
                    )
                },
                // Header, run, one history row per record, summary, exit, final.
                |dir| assert_eq!(wandb_records(&find(dir, ".wandb")), N + 5),
            )
        })
    });

    g.bench_function("mlflow_encode_spool", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |dir| {
                    let options = MlflowOptions::new()
                        .url(format!("http://127.0.0.1:{}", closed_port()))
                        .close_cap(Duration::ZERO)
                        .stall_timeout(Duration::ZERO);
                    write_all(
                        MlflowSink::new(options, &BuildContext::new(rank0()).with_output_dir(dir))
                            .unwrap(),
                        &records,
                    )
                },
                // The server never answered: every record waits in the spool.
                |dir| assert_eq!(count_lines(&find(dir, "_rank0.jsonl"), "\"loss\""), N),
            )
        })
    });

    let receiver = OtlpReceiver::start();
    g.bench_function("otel_record", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |_| {
                    let options = OtelOptions::new()
                        .url(format!("http://127.0.0.1:{}", receiver.port))
                        .export_interval(Duration::from_secs(3600));
                    write_all(
                        OtelSink::new(options, &BuildContext::new(rank0())).unwrap(),
                        &records,
                    )
                },
                // The final export holds the last record's values.
                |_| {
                    assert!(receiver.exports.load(Ordering::Relaxed) > 0);
                    let gauges = receiver.gauges.lock().unwrap();
                    assert_eq!(gauges.get("train.step"), Some(&((N - 1) as f64)));
                    assert_eq!(gauges.get("loss"), Some(&(1.0 / N as f64)));
                },
            )
        })
    });
    g.finish();
}

/// A local HTTP server that counts the metrics records it receives (JSON arrays or objects).
fn ingest_server() -> (String, Arc<AtomicU64>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ingest", server.server_addr());
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = Vec::new();
            let _ = request.as_reader().read_to_end(&mut body);
            // Metrics records only (the run's start and end messages are not counted).
            let is_record = |m: &serde_json::Value| m["data"].get("loss").is_some();
            let n = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(serde_json::Value::Array(items)) => {
                    items.iter().filter(|m| is_record(m)).count() as u64
                }
                Ok(one) => u64::from(is_record(&one)),
                Err(_) => 0,
            };
            count.fetch_add(n, Ordering::Relaxed);
            let _ = request.respond(tiny_http::Response::empty(200));
        }
    });
    (url, received)
}

fn log_all(builder: trainlog::MetricLoggerBuilder) {
    let (layer, guard) = builder.rank(0).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..N {
            info!(target: "metrics", step = i, loss = 1.0 / (i as f64 + 1.0), lr = 3e-4, "train.acc" = 0.5);
        }
    });
    let stats = guard.shutdown(RunOutcome::Completed).unwrap();
    assert_eq!((stats.written, stats.lost), (N, 0));
}

fn http_end_to_end(c: &mut Criterion) {
    let mut g = c.benchmark_group("end_to_end_100k");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(N));
    g.bench_function("baseline_jsonl", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |dir| log_all(MetricLogger::builder().output_dir(dir)),
                |dir| assert_eq!(count_lines(&dir.join("metrics_rank0.jsonl"), "loss"), N),
            )
        })
    });
    let (url, received) = ingest_server();
    g.bench_function("http_local_server", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                |dir| {
                    received.store(0, Ordering::Relaxed);
                    log_all(
                        MetricLogger::builder()
                            .output_dir(dir)
                            .backends("http")
                            .unwrap()
                            .http(HttpOptions::new().url(url.clone())),
                    )
                },
                // Closing waited for every batch to be acknowledged.
                |_| assert_eq!(received.load(Ordering::Relaxed), N, "records received"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, sink_write, http_end_to_end);
criterion_main!(benches);
