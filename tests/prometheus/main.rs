//! The prometheus backend, scraped over HTTP while logging and parsed with the Prometheus
//! project's own Python client (pinned in `tests/python/requirements-prometheus.txt`).

#[path = "../support/python.rs"]
mod python;
mod server;
#[path = "../support/skip.rs"]
mod skip;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value as Json};
use tracing::info;
use tracing_subscriber::prelude::*;
use trainlog::sink::PrometheusOptions;
use trainlog::{Error, MetricLogger};

/// A free port on loopback.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Builds a logger listening on a free port, trying another when a test running beside
/// took the port between `free_addr` finding it and the endpoint binding it.
fn build_on_free_port(
    run_name: &str,
) -> (
    SocketAddr,
    trainlog::MetricLayer<tracing_subscriber::Registry>,
    trainlog::MetricGuard,
) {
    let (addr, (layer, guard)) = retry_on_used_port(|addr| {
        MetricLogger::builder()
            .rank(0)
            .run_name(run_name)
            .prometheus(PrometheusOptions::new().listen(addr))
            .build()
    });
    (addr, layer, guard)
}

/// Calls `build` with free addresses until one is not taken meanwhile (10 tries).
fn retry_on_used_port<T>(
    mut build: impl FnMut(SocketAddr) -> trainlog::Result<T>,
) -> (SocketAddr, T) {
    for _ in 0..10 {
        let addr = free_addr();
        match build(addr) {
            Ok(built) => return (addr, built),
            Err(e) if e.to_string().contains("Address already in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port after 10 tries");
}

/// GETs /metrics, optionally asking for OpenMetrics; returns the content type and body.
fn scrape(addr: SocketAddr, openmetrics: bool) -> (String, String) {
    let mut request = reqwest::blocking::Client::new().get(format!("http://{addr}/metrics"));
    if openmetrics {
        request = request.header(
            "Accept",
            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        );
    }
    let response = request.send().unwrap();
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().unwrap())
}

/// The families the real parser reads from `text`.
fn parse(text: &str, kind: &str) -> Json {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrape.txt");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(python::python("prometheus"))
        .arg(python::script("read_prometheus.py"))
        .arg(&path)
        .arg(kind)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one sample of a family, with its labels.
fn sample<'a>(families: &'a Json, family: &str) -> &'a Json {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {families}"));
    assert_eq!(samples.len(), 1, "{samples:?}");
    &samples[0]
}

#[test]
fn scraped_while_logging_the_values_are_the_last_ones_logged() {
    let (addr, layer, guard) = build_on_free_port("sft_{rank}");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for step in 0..10u64 {
            info!(
                target: "metrics",
                step,
                loss = 1.0 / (step + 1) as f64,
                "eval.acc" = 0.5,
                "monotonic_counter.tokens" = 512u64,
                note = "text is not a metric"
            );
        }
        info!(target: "metrics", step = 10u64, grad_norm = f64::NAN);
        trainlog::log_histogram(10, "weights", &[1.0f32, 2.0, 6.0, f32::INFINITY]);
    });
    guard.flush().unwrap();
    // Still running: scrape in both formats and parse with the real parsers.
    for (kind, openmetrics) in [("text", false), ("openmetrics", true)] {
        let (content_type, text) = scrape(addr, openmetrics);
        assert!(
            content_type.starts_with(if openmetrics {
                "application/openmetrics-text"
            } else {
                "text/plain; version=0.0.4"
            }),
            "{content_type}"
        );
        let families = parse(&text, kind);
        let loss = sample(&families, "trainlog_loss");
        assert_eq!(loss["value"], 0.1, "{kind}");
        assert_eq!(
            loss["labels"],
            json!({"run": "sft_0", "rank": "0"}),
            "{kind}"
        );
        assert_eq!(sample(&families, "trainlog_eval_acc")["value"], 0.5);
        assert_eq!(sample(&families, "trainlog_step")["value"], 10.0);
        assert_eq!(sample(&families, "trainlog_grad_norm")["value"], "NaN");
        let tokens = &families["trainlog_tokens"];
        assert_eq!(tokens["type"], "counter", "{kind}: {tokens}");
        let total = tokens["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "trainlog_tokens_total")
            .unwrap_or_else(|| panic!("{kind}: {tokens}"));
        assert_eq!(total["value"], 5120.0);
        assert!(families.get("trainlog_note").is_none());
        // A histogram: five gauges.
        for (name, value) in [
            ("count", 4.0),
            ("min", 1.0),
            ("max", 6.0),
            ("mean", 3.0),
            ("nonfinite", 1.0),
        ] {
            let family = format!("trainlog_weights_{name}");
            assert_eq!(
                sample(&families, &family)["value"],
                value,
                "{kind}: {family}"
            );
        }
    }
    drop(guard);
    // The endpoint stops with the guard: closed by the time the drop returns.
    assert!(
        reqwest::blocking::Client::new()
            .get(format!("http://{addr}/metrics"))
            .timeout(Duration::from_secs(2))
            .send()
            .is_err(),
        "still answering after the guard dropped"
    );
}

#[test]
fn an_address_in_use_fails_build_naming_it_and_other_ranks_do_not_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = MetricLogger::builder()
        .rank(0)
        .prometheus(PrometheusOptions::new().listen(addr))
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // Rank 1 does not start the endpoint (rank 0 only by default), so no conflict.
    let (_, guard) = MetricLogger::builder()
        .rank(1)
        .prometheus(PrometheusOptions::new().listen(addr))
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(guard.sinks().is_empty());
}

#[test]
fn with_all_ranks_each_rank_listens_on_port_plus_local_rank() {
    let info = trainlog::RankInfo {
        rank: 5,
        local_rank: 1,
        world_size: 8,
    };
    let (base, (layer, guard)) = retry_on_used_port(|base| {
        MetricLogger::builder()
            .rank_info(info)
            .prometheus(PrometheusOptions::new().listen(base).all_ranks(true))
            .build()
    });
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(target: "metrics", step = 1u64, loss = 0.25);
    });
    guard.flush().unwrap();
    let mut addr = base;
    addr.set_port(base.port() + 1);
    let (_, text) = scrape(addr, false);
    let families = parse(&text, "text");
    let loss = sample(&families, "trainlog_loss");
    assert_eq!(loss["labels"]["rank"], "5");
    assert_eq!(loss["value"], 0.25);
}

#[test]
fn a_real_prometheus_server_scrapes_the_endpoint_and_answers_promql() {
    let binary = match server::binary() {
        Ok(binary) => binary,
        Err(why) => {
            skip::skip(
                "a_real_prometheus_server_scrapes_the_endpoint_and_answers_promql",
                &format!("no Prometheus server on this machine: {why}"),
            );
            return;
        }
    };
    let (addr, layer, guard) = build_on_free_port("promql");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        for step in 0..=20u64 {
            info!(
                target: "metrics",
                step,
                loss = 2.0 - step as f64 / 16.0,
                "monotonic_counter.tokens" = 100u64,
                grad_norm = if step == 20 { f64::NAN } else { 1.0 },
            );
        }
    });
    guard.flush().unwrap();
    let prometheus = server::Prometheus::start_on_free_port(&binary, &addr.to_string());
    let loss = prometheus.query("trainlog_loss");
    assert_eq!(loss.len(), 1, "{loss:?}");
    assert_eq!(loss[0].1, "0.75");
    assert_eq!(loss[0].0["run"], "promql");
    assert_eq!(loss[0].0["rank"], "0");
    assert_eq!(loss[0].0["job"], "trainlog");
    assert_eq!(prometheus.query("trainlog_step")[0].1, "20");
    assert_eq!(prometheus.query("trainlog_tokens_total")[0].1, "2100");
    assert_eq!(prometheus.query("trainlog_grad_norm")[0].1, "NaN");
    // PromQL over the series: the scrape is healthy.
    let up = prometheus.query(r#"up{job="trainlog"}"#);
    assert_eq!(up[0].1, "1", "{}", prometheus.log());
    drop(guard);
}

#[test]
fn a_step_that_is_not_a_step_sets_no_step_gauge() {
    let (addr, layer, guard) = build_on_free_port("badstep");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        info!(target: "metrics", step = 3u64, loss = 1.0);
        info!(target: "metrics", step = -1i64, loss = 2.0);
        info!(target: "metrics", step = "ten", loss = 3.0);
    });
    guard.flush().unwrap();
    let (_, text) = scrape(addr, false);
    let families = parse(&text, "text");
    // The last real step stays; no series is made of the bad values.
    assert_eq!(sample(&families, "trainlog_step")["value"], 3.0);
    assert_eq!(sample(&families, "trainlog_loss")["value"], 3.0);
    assert!(!text.contains("-1"), "{text}");
    drop(guard);
}
