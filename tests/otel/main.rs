//! The otel backend against a real OTLP/HTTP receiver on 127.0.0.1 that decodes the
//! protobuf with the official OpenTelemetry definitions (`opentelemetry-proto`).

#[path = "../support/child.rs"]
mod child;
#[path = "../support/python.rs"]
mod python;
#[path = "../support/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value as Json;
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::OtelOptions;
use trainlog::{MetricLogger, MetricLoggerBuilder};

/// A receiver process; it exits when this value (and its stdin) is dropped.
struct Receiver {
    port: u16,
    child: Child,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = Command::new(python::python("otel"))
            .arg(python::script("otlp_receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting otlp_receiver.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver did not start: {line}"));
        Receiver { port, child }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/metrics", self.port)
    }

    /// Every export request received, decoded.
    fn requests(&self) -> Vec<Json> {
        let text = reqwest::blocking::get(format!("http://127.0.0.1:{}/dump", self.port))
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// (resource attributes, metrics) of the last export that had any metrics.
fn last_export(receiver: &Receiver) -> (Json, Vec<Json>) {
    let requests = receiver.requests();
    let last = requests
        .iter()
        .rev()
        .find(|r| {
            !r["request"]["resourceMetrics"]
                .as_array()
                .is_none_or(Vec::is_empty)
        })
        .unwrap_or_else(|| panic!("no export with metrics: {requests:?}"));
    assert_eq!(last["path"], "/v1/metrics");
    assert_eq!(last["content_type"], "application/x-protobuf");
    let rm = &last["request"]["resourceMetrics"][0];
    let metrics = rm["scopeMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["metrics"].as_array().cloned().unwrap_or_default())
        .collect();
    (rm["resource"]["attributes"].clone(), metrics)
}

fn attribute<'a>(attrs: &'a Json, key: &str) -> &'a Json {
    let kv = attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == key)
        .unwrap_or_else(|| panic!("no attribute {key} in {attrs}"));
    &kv["value"]
}

fn metric<'a>(metrics: &'a [Json], name: &str) -> &'a Json {
    metrics
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no metric {name} in {:?}",
                metrics.iter().map(|m| &m["name"]).collect::<Vec<_>>()
            )
        })
}

fn only_point(m: &Json, kind: &str) -> Json {
    let points = m[kind]["dataPoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{m} is not a {kind}"));
    assert_eq!(points.len(), 1, "one series, no per-step attributes: {m}");
    points[0].clone()
}

/// Logs `f`'s events to `receiver` through `builder` (rank 0, exported when the guard
/// drops).
fn log_to(receiver: &Receiver, builder: MetricLoggerBuilder, f: impl FnOnce()) {
    let (layer, guard) = builder
        .rank(0)
        .otel(
            OtelOptions::new()
                .url(receiver.endpoint())
                .export_interval(Duration::from_secs(3600)),
        )
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    drop(guard); // shutdown exports the last values
}

#[test]
fn gauges_counters_step_and_resource_attributes_arrive_decoded() {
    let receiver = Receiver::start();
    log_to(
        &receiver,
        MetricLogger::builder().run_name("otel_run_{rank}"),
        || {
            info!(target: "metrics", hparams = true, lr = 3e-4);
            for step in 0..10u64 {
                info!(
                    target: "metrics",
                    step,
                    loss = 1.0 / (step + 1) as f64,
                    "eval.acc" = step as f64 / 10.0,
                    "monotonic_counter.tokens" = 512u64,
                    note = "text is not a metric"
                );
            }
        },
    );
    let (resource, metrics) = last_export(&receiver);
    assert_eq!(
        attribute(&resource, "trainlog.run")["stringValue"],
        "otel_run_0"
    );
    assert_eq!(attribute(&resource, "trainlog.rank")["intValue"], "0");
    assert_eq!(
        attribute(&resource, "service.name")["stringValue"],
        "trainlog"
    );
    assert!(attribute(&resource, "host.name")["stringValue"].is_string());

    let step = only_point(metric(&metrics, "train.step"), "gauge");
    assert_eq!(step["asDouble"], 9.0);
    assert!(
        step.get("attributes").is_none(),
        "the step is a gauge, never an attribute"
    );
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        0.1
    );
    assert_eq!(
        only_point(metric(&metrics, "eval.acc"), "gauge")["asDouble"],
        0.9
    );
    let tokens = metric(&metrics, "tokens");
    assert_eq!(tokens["sum"]["isMonotonic"], true);
    assert_eq!(only_point(tokens, "sum")["asDouble"], 5120.0);
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"note") && !names.contains(&"lr"),
        "{names:?}"
    );
}

#[test]
fn the_export_interval_sends_while_training_runs() {
    let receiver = Receiver::start();
    let (layer, guard) = MetricLogger::builder()
        .rank(0)
        .otel(
            OtelOptions::new()
                .url(receiver.endpoint())
                .export_interval(Duration::from_millis(200))
                .step_gauge("global_step"),
        )
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || info!(target: "metrics", step = 5, loss = 2.0));
    guard.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.requests().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, metrics) = last_export(&receiver);
    assert_eq!(
        only_point(metric(&metrics, "global_step"), "gauge")["asDouble"],
        5.0
    );
    drop(guard);
}

#[test]
fn rank0_only_by_default_and_bad_endpoints_are_refused() {
    let guard = MetricLogger::builder()
        .rank(3)
        .otel(OtelOptions::new().url("http://127.0.0.1:9/v1/metrics"))
        .build::<tracing_subscriber::Registry>()
        .unwrap()
        .1;
    assert!(guard.sinks().is_empty());
    let err = MetricLogger::builder()
        .rank(0)
        .otel(OtelOptions::new().url("grpc://x:4317"))
        .build::<tracing_subscriber::Registry>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTLP endpoint"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_and_dropping_inside_a_tokio_runtime_is_safe() {
    let receiver = Receiver::start();
    let (layer, guard) = MetricLogger::builder()
        .rank(0)
        .otel(OtelOptions::new().url(receiver.endpoint()))
        .build()
        .unwrap();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(layer),
        || info!(target: "metrics", step = 1, loss = 0.5),
    );
    drop(guard); // on a runtime thread: must not panic
                 // The test's own blocking HTTP client must not run on a runtime thread.
    let metrics = tokio::task::spawn_blocking(move || last_export(&receiver).1)
        .await
        .unwrap();
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        0.5
    );
}

/// Runs in a child process with a controlled environment (see the next test).
#[test]
#[ignore = "run in a child process"]
fn child_configured_by_otel_variables() {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return;
    }
    let (layer, guard) = MetricLogger::builder()
        .rank(0)
        .backends("otel")
        .unwrap()
        .build()
        .unwrap();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(layer),
        || info!(target: "metrics", step = 2, loss = 0.75),
    );
    drop(guard);
}

#[test]
fn the_standard_otel_variables_are_honoured() {
    let receiver = Receiver::start();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_configured_by_otel_variables",
            "--ignored",
            "--quiet",
        ])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", receiver.port),
        )
        .env("OTEL_SERVICE_NAME", "sft-job")
        .env("OTEL_RESOURCE_ATTRIBUTES", "team=research")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .status()
        .unwrap();
    assert!(status.success());
    let (resource, metrics) = last_export(&receiver);
    assert_eq!(
        attribute(&resource, "service.name")["stringValue"],
        "sft-job"
    );
    assert_eq!(attribute(&resource, "team")["stringValue"], "research");
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        0.75
    );
}

#[test]
fn https_endpoint_with_a_private_ca() {
    let receiver = Receiver::start();
    let ca = tls::TestCa::new();
    let proxy = tls::TlsProxy::start(&ca, receiver.port);
    let export = |options: OtelOptions| {
        let (layer, guard) = MetricLogger::builder()
            .rank(0)
            .otel(
                options
                    .url(proxy.url("/v1/metrics"))
                    .export_interval(Duration::from_secs(3600)),
            )
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info!(target: "metrics", step = 1u64, loss = 0.5);
        });
        drop(guard);
    };
    // Not trusted: the export fails (reported on stderr), nothing arrives.
    export(OtelOptions::new());
    assert!(receiver.requests().is_empty());
    export(OtelOptions::new().ca_certificate(ca.ca()));
    let (_, metrics) = last_export(&receiver);
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        0.5
    );
    // The standard variable, in a child process for its own environment.
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_configured_by_otel_variables",
            "--ignored",
            "--quiet",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", proxy.url(""))
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.ca())
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE")
        .status()
        .unwrap();
    assert!(status.success());
    let (_, metrics) = last_export(&receiver);
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        0.75
    );
}

#[test]
fn nan_and_infinities_from_log_dict_are_counted_since_the_sdk_drops_them() {
    let receiver = Receiver::start();
    log_to(&receiver, MetricLogger::builder(), || {
        let mut values = std::collections::BTreeMap::new();
        values.insert("loss", f64::NAN);
        values.insert("grad_norm", f64::INFINITY);
        trainlog::log_dict(Some(3), &values);
    });
    let (_, metrics) = last_export(&receiver);
    // The SDK drops non-finite measurements: they are counted, by metric and value.
    let counter = metric(&metrics, "trainlog.non_finite");
    let points = counter["sum"]["dataPoints"].as_array().unwrap();
    let mut seen: Vec<(String, String, f64)> = points
        .iter()
        .map(|p| {
            let attrs = &p["attributes"];
            (
                attribute(attrs, "metric")["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                attribute(attrs, "value")["stringValue"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                p["asDouble"].as_f64().unwrap(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("grad_norm".into(), "Infinity".into(), 1.0),
            ("loss".into(), "NaN".into(), 1.0)
        ]
    );
}

#[test]
fn histograms_are_histogram_instruments_with_their_first_bins() {
    let receiver = Receiver::start();
    log_to(&receiver, MetricLogger::builder(), || {
        let values: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        trainlog::log_histogram(1, "weights", &values);
        let mut more = values.clone();
        more.push(f64::NAN);
        trainlog::log_histogram(2, "weights", &more);
        // The tracing-opentelemetry convention for single values.
        for step in 0..5u64 {
            info!(target: "metrics", step, "histogram.latency_ms" = 10.0 * step as f64);
        }
    });
    let (_, metrics) = last_export(&receiver);
    let weights = only_point(metric(&metrics, "weights"), "histogram");
    // Both histograms' finite values, in buckets whose bounds are the first one's edges.
    assert_eq!(weights["count"], "200");
    let expected_sum: f64 = 2.0 * (0..100).map(|i| i as f64 / 100.0).sum::<f64>();
    assert!((weights["sum"].as_f64().unwrap() - expected_sum).abs() < 1e-9);
    assert_eq!(weights["min"], 0.0);
    assert_eq!(weights["max"], 0.99);
    let bounds = weights["explicitBounds"].as_array().unwrap();
    assert_eq!(bounds.len(), trainlog::HISTOGRAM_BINS + 1);
    assert_eq!(
        (bounds[0].as_f64(), bounds[64].as_f64()),
        (Some(0.0), Some(0.99))
    );
    let counts: u64 = weights["bucketCounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 200);
    let latency = only_point(metric(&metrics, "latency_ms"), "histogram");
    assert_eq!(
        (latency["count"].as_str(), latency["sum"].as_f64()),
        (Some("5"), Some(100.0))
    );
    // The NaN is counted where the SDK would drop it.
    let counter = metric(&metrics, "trainlog.non_finite");
    let point = only_point(counter, "sum");
    assert_eq!(
        attribute(&point["attributes"], "metric")["stringValue"],
        "weights"
    );
    assert_eq!(point["asDouble"], 1.0);
}

#[test]
fn a_step_that_is_not_a_step_sets_no_step_gauge_and_makes_no_step_metric() {
    let receiver = Receiver::start();
    log_to(&receiver, MetricLogger::builder(), || {
        info!(target: "metrics", step = "ten", loss = 2.0);
        info!(target: "metrics", step = -1i64, loss = 3.0);
    });
    let (_, metrics) = last_export(&receiver);
    let names: Vec<&Json> = metrics.iter().map(|m| &m["name"]).collect();
    assert!(
        !names.iter().any(|n| *n == "step" || *n == "train.step"),
        "{names:?}"
    );
    assert_eq!(
        only_point(metric(&metrics, "loss"), "gauge")["asDouble"],
        3.0
    );
}

#[test]
#[ignore = "run in a child process by export_failures_are_reported_once_without_credentials"]
fn child_exports_to_a_url() {
    if !child::is_child("child_exports_to_a_url") {
        return;
    }
    let (layer, guard) = MetricLogger::builder()
        .rank(0)
        .otel(
            OtelOptions::new()
                .url(child::var("CHILD_URL"))
                .export_interval(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in 0..8u64 {
            info!(target: "metrics", step, loss = 1.0);
            // Several export intervals pass, each export failing.
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    drop(guard);
}

#[test]
fn export_failures_are_reported_once_without_credentials() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://bob:hunter2@127.0.0.1:{port}/v1/metrics?token=s3cr3t");
    let out = child::run("child_exports_to_a_url", &[("CHILD_URL", &url)]);
    assert!(out.ok, "{}", out.stderr);
    let said = out.trainlog_lines();
    let failures: Vec<&&str> = said
        .iter()
        .filter(|l| l.starts_with("trainlog: otel: export to"))
        .collect();
    assert_eq!(failures.len(), 1, "{}", out.stderr);
    assert!(
        // User info and the query's values are masked; where it went is still clear.
        failures[0].starts_with(&format!(
            "trainlog: otel: export to http://***@127.0.0.1:{port}/v1/metrics?token=*** failed: "
        )),
        "{}",
        out.stderr
    );
    assert!(
        failures[0].contains("(further failures are not printed)"),
        "{}",
        out.stderr
    );
    // Besides, close says that the last values were not exported either, and why.
    let at_close: Vec<&&str> = said
        .iter()
        .filter(|l| l.contains("the last values were not exported"))
        .collect();
    assert_eq!(at_close.len(), 1, "{}", out.stderr);
    assert!(
        at_close[0].contains(&format!(
            "the last values were not exported: export to http://***@127.0.0.1:{port}/v1/metrics?token=*** failed: "
        )),
        "{}",
        out.stderr
    );
    assert_eq!(said.len(), 2, "{}", out.stderr);
    for secret in ["hunter2", "s3cr3t", "bob"] {
        assert!(!out.stderr.contains(secret), "{secret} in:\n{}", out.stderr);
    }
}
