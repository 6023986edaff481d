//! `PrometheusSink`: the latest value of every metric on a `GET /metrics` scrape endpoint.
//!
//! Numeric fields become gauges holding their last value, the step its own gauge, and
//! fields named `monotonic_counter.<name>` counters (the convention of the OTel backend).
//! Every series carries the labels `run` and `rank`. Names are sanitized for Prometheus
//! (`eval.acc` → `<namespace>_eval_acc`). The endpoint serves the text exposition format,
//! or OpenMetrics when the scraper asks for it (`Accept: application/openmetrics-text`),
//! encoded by `prometheus-client`, the Prometheus project's Rust client. Values are updated
//! on the sink's worker thread; a scrape never makes the logging call wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Backend, BackendConfig, BuildContext, RunOutcome, Sink};
use crate::{Error, Record, Result};

/// The environment variable that sets the listen address (and turns the backend on).
pub(crate) const ADDR_VAR: &str = "TRAINLOG_PROMETHEUS_ADDR";

/// The address the endpoint listens on unless told otherwise: loopback only.
pub const DEFAULT_PROMETHEUS_ADDR: &str = "127.0.0.1:9464";

/// Settings of the `prometheus` backend.
///
/// ```
/// let options = trainlog::sink::PrometheusOptions::new()
///     .listen("127.0.0.1:9464".parse().unwrap())
///     .namespace("sft");
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusOptions {
    listen: Option<SocketAddr>,
    namespace: String,
    run_name: Option<String>,
    pub(crate) all_ranks: bool,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            listen: None,
            namespace: "trainlog".into(),
            run_name: None,
            all_ranks: false,
        }
    }
}

impl PrometheusOptions {
    /// Defaults: `TRAINLOG_PROMETHEUS_ADDR`, else `127.0.0.1:9464`; namespace `trainlog`;
    /// rank 0 only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to listen. Loopback by default: exposing training metrics on every interface
    /// (`0.0.0.0:9464`) is a decision to make on purpose. With `all_ranks`, each rank
    /// listens on this port plus its local rank.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// The prefix of every metric name (default `trainlog`; empty for none).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The `run` label, a run-name template (default: the builder's `run_name`, else
    /// `{time}_rank{rank}`).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }
}

all_ranks_setter!(PrometheusOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `prometheus` backend; setting them turns it on (as does
    /// `TRAINLOG_PROMETHEUS_ADDR` in the environment).
    pub fn prometheus(self, options: PrometheusOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for PrometheusOptions {
    fn backend(&self) -> Backend {
        Backend::Prometheus
    }

    /// `TRAINLOG_PROMETHEUS_ADDR`.
    fn from_env() -> Option<Self> {
        crate::env::first_env(&[ADDR_VAR]).map(|_| Self::default())
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || PrometheusSink::new(self.clone(), cx))
    }
}

/// The instruments registered so far, by sanitized name.
#[derive(Default)]
struct Instruments {
    gauges: HashMap<String, Gauge<f64, AtomicU64>>,
    counters: HashMap<String, Counter<f64, AtomicU64>>,
}

/// Serves the latest metric values on `GET /metrics`: numeric fields as gauges (last
/// value), the step as the gauge `step`, `monotonic_counter.<name>` fields as counters,
/// with the labels `run` and `rank` and names sanitized for Prometheus (`eval.acc` →
/// `<namespace>_eval_acc`). A histogram from [`log_histogram`](crate::log_histogram) is
/// five gauges, `<name>_count`, `_min`, `_max`, `_mean` and `_nonfinite` (Prometheus
/// histograms have fixed cumulative buckets; ours are re-binned at every step). The text
/// exposition format, or OpenMetrics when the scraper asks for it. NaN is served as `NaN`. The endpoint stops when the sink closes.
pub struct PrometheusSink {
    registry: Arc<Mutex<Registry>>,
    instruments: Instruments,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    warned_negative: bool,
}

impl std::fmt::Debug for PrometheusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusSink")
            .field("addr", &self.addr)
            .field("gauges", &self.instruments.gauges.len())
            .field("counters", &self.instruments.counters.len())
            .finish()
    }
}

/// A Prometheus metric name from a field name: `[a-zA-Z0-9_:]`, anything else `_`, and
/// no leading digit.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

impl PrometheusSink {
    /// Starts listening. An address in use (or otherwise refused) fails with the address
    /// in the error.
    pub fn new(options: PrometheusOptions, cx: &BuildContext) -> Result<Self> {
        let rank = cx.rank();
        let mut addr = match options.listen {
            Some(addr) => addr,
            None => {
                let text = crate::env::first_env(&[ADDR_VAR])
                    .unwrap_or_else(|| DEFAULT_PROMETHEUS_ADDR.to_owned());
                text.parse().map_err(|e| {
                    Error::Config(format!(
                        "TRAINLOG_PROMETHEUS_ADDR `{text}` is not an address like 127.0.0.1:9464: {e}"
                    ))
                })?
            }
        };
        if options.all_ranks {
            addr.set_port(addr.port().saturating_add(rank.local_rank as u16));
        }
        let run = cx.run_name(options.run_name.as_deref(), &[])?;
        let labels = [
            ("run".into(), run.into()),
            ("rank".into(), rank.rank.to_string().into()),
        ];
        let registry = if options.namespace.is_empty() {
            Registry::with_labels(labels.into_iter())
        } else {
            Registry::with_prefix_and_labels(sanitize(&options.namespace), labels.into_iter())
        };
        let registry = Arc::new(Mutex::new(registry));
        let server = tiny_http::Server::http(addr).map_err(|e| {
            Error::Config(format!(
                "the prometheus endpoint cannot listen on {addr}: {e} (another process, or \
                 another rank without `all_ranks`, may hold it; choose another address with \
                 PrometheusOptions::listen or TRAINLOG_PROMETHEUS_ADDR)"
            ))
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (registry, stop) = (registry.clone(), stop.clone());
            std::thread::Builder::new()
                .name("trainlog-prometheus".into())
                .spawn(move || serve(&server, &registry, &stop))
                .map_err(|source| Error::Thread {
                    what: "the prometheus endpoint".into(),
                    source,
                })?
        };
        Ok(PrometheusSink {
            registry,
            instruments: Instruments::default(),
            addr,
            stop,
            server: Some(handle),
            warned_negative: false,
        })
    }

    /// The address the endpoint listens on (the port the OS chose, for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gauge(&mut self, name: &str, value: f64) {
        let name = sanitize(name);
        if !self.instruments.gauges.contains_key(&name) {
            let gauge = Gauge::<f64, AtomicU64>::default();
            self.registry()
                .register(name.clone(), "last value logged", gauge.clone());
            self.instruments.gauges.insert(name.clone(), gauge);
        }
        if let Some(g) = self.instruments.gauges.get(&name) {
            g.set(value);
        }
    }

    fn count(&mut self, name: &str, value: f64) {
        if value.is_nan() || value < 0.0 {
            if !self.warned_negative {
                self.warned_negative = true;
                eprintln!(
                    "trainlog: prometheus: counter `{name}` got {value}; counters only go up, so it was skipped"
                );
            }
            return;
        }
        let name = sanitize(name);
        if !self.instruments.counters.contains_key(&name) {
            let counter = Counter::<f64, AtomicU64>::default();
            self.registry()
                .register(name.clone(), "sum of the values logged", counter.clone());
            self.instruments.counters.insert(name.clone(), counter);
        }
        if let Some(c) = self.instruments.counters.get(&name) {
            c.inc_by(value);
        }
    }
}

/// Answers scrapes until `stop` is set.
fn serve(server: &tiny_http::Server, registry: &Mutex<Registry>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let path = request.url().split('?').next().unwrap_or("");
        if path != "/metrics" || *request.method() != tiny_http::Method::Get {
            let _ = request.respond(
                tiny_http::Response::from_string("not found: try /metrics\n").with_status_code(404),
            );
            continue;
        }
        let openmetrics = request.headers().iter().any(|h| {
            h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
        });
        let mut text = String::new();
        {
            let registry = registry.lock().unwrap_or_else(|e| e.into_inner());
            let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
        }
        let content_type = if openmetrics {
            text.push_str("# EOF\n");
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            text = openmetrics_to_text(&text);
            "text/plain; version=0.0.4; charset=utf-8"
        };
        let header = tiny_http::Header::from_bytes("Content-Type", content_type);
        let mut response = tiny_http::Response::from_string(text);
        if let Ok(h) = header {
            response.add_header(h);
        }
        let _ = request.respond(response);
    }
}

/// The classic text exposition format (0.0.4) from OpenMetrics text without its EOF
/// marker: no UNIT lines, and a counter's HELP and TYPE lines name its `_total` sample, as
/// classic scrapers and parsers expect.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Sink for PrometheusSink {
    fn name(&self) -> &str {
        "prometheus"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for r in batch {
            if r.hparams {
                continue;
            }
            if let Some(step) = r.step {
                self.gauge("step", step as f64);
            }
            for (k, x) in r.numbers() {
                match k.strip_prefix(super::MONOTONIC_PREFIX) {
                    Some(name) => self.count(name, x),
                    None => self.gauge(k, x),
                }
            }
            // No histogram type with per-record bins: the statistics as gauges.
            for (k, h) in r.histograms() {
                for (name, x) in h.summary().scalars() {
                    self.gauge(&format!("{k}.{name}"), x);
                }
            }
        }
        Ok(())
    }

    fn close(&mut self, _outcome: RunOutcome) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        Ok(())
    }
}

impl Drop for PrometheusSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::{openmetrics_to_text, sanitize};

    #[test]
    fn counters_take_their_total_name_in_the_classic_format() {
        let om = "# HELP x_tokens sum.\n# TYPE x_tokens counter\nx_tokens_total 5.0\n\
                  # HELP x_loss last.\n# TYPE x_loss gauge\n# UNIT x_loss seconds\nx_loss 0.5\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP x_tokens_total sum.\n# TYPE x_tokens_total counter\nx_tokens_total 5.0\n\
             # HELP x_loss last.\n# TYPE x_loss gauge\nx_loss 0.5\n"
        );
    }

    #[test]
    fn names_are_sanitized_for_prometheus() {
        assert_eq!(sanitize("eval.acc"), "eval_acc");
        assert_eq!(sanitize("loss/layer-0"), "loss_layer_0");
        assert_eq!(sanitize("1st"), "_1st");
        assert_eq!(sanitize(""), "_");
    }
}
