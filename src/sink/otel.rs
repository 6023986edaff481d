//! `OtelSink`: metrics records as OpenTelemetry instruments, exported over OTLP/HTTP protobuf.
//!
//! The standard OpenTelemetry environment variables apply: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (or `OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE`) and
//! `OTEL_EXPORTER_OTLP_TIMEOUT`; values set in [`OtelOptions`] win. https endpoints trust
//! the system's store, `SSL_CERT_FILE` and those certificates.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;

use super::{Backend, BackendConfig, BuildContext, RunOutcome, Sink};
use crate::deliver::net::{http_client, redact_url, Tls};
use crate::env::first_env;
use crate::{Error, Record, Result};

use super::{HISTOGRAM_PREFIX, MONOTONIC_PREFIX};

/// The counter that NaN and ±∞ values are counted in, with attributes `metric` (the
/// field) and `value` (`NaN`, `Infinity`, `-Infinity`): the OpenTelemetry SDK drops
/// non-finite measurements, so a gauge cannot show them.
pub const NON_FINITE_COUNTER: &str = "trainlog.non_finite";

/// Settings of the `otel` backend.
#[derive(Clone, Debug)]
pub struct OtelOptions {
    endpoint: Option<String>,
    interval: Option<Duration>,
    run_name: Option<String>,
    step_gauge: String,
    pub(crate) all_ranks: bool,
    ca_file: Option<PathBuf>,
}

impl Default for OtelOptions {
    fn default() -> Self {
        OtelOptions {
            endpoint: None,
            interval: None,
            run_name: None,
            step_gauge: "train.step".into(),
            all_ranks: false,
            ca_file: None,
        }
    }
}

impl OtelOptions {
    /// Defaults: endpoint and interval from the environment (OTLP's defaults otherwise:
    /// `http://localhost:4318/v1/metrics`, 60 s), step gauge `train.step`, rank 0 only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The full metrics URL, e.g. `http://collector:4318/v1/metrics`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// How often the last values are exported.
    pub fn export_interval(mut self, every: Duration) -> Self {
        self.interval = Some(every);
        self
    }

    /// The `trainlog.run` resource attribute (a run-name template; default the builder's
    /// `run_name`, else `{time}_rank{rank}`).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// Name of the gauge that carries the step (default `train.step`).
    pub fn step_gauge(mut self, name: impl Into<String>) -> Self {
        self.step_gauge = name.into();
        self
    }

    /// Also trusts the CA certificates in this PEM file (`OTEL_EXPORTER_OTLP_CERTIFICATE`),
    /// besides the system's trust store and `SSL_CERT_FILE`.
    pub fn ca_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(pem_file.into());
        self
    }
}

all_ranks_setter!(OtelOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `otel` backend; setting them turns it on.
    pub fn otel(self, options: OtelOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for OtelOptions {
    fn backend(&self) -> Backend {
        Backend::Otel
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || OtelSink::new(self.clone(), cx))
    }
}

/// Turns numeric fields into OpenTelemetry gauges (last value) named after the field,
/// the step into its own gauge (never an attribute: that would explode cardinality), and
/// fields named `monotonic_counter.<name>` into a counter `<name>` that the value is added
/// to, fields named `histogram.<name>` and [`log_histogram`](crate::log_histogram)'s values
/// into a histogram instrument `<name>` (bucket boundaries: the bin edges of the first
/// histogram logged under that name, else the SDK's defaults). Booleans are 0/1; text and hyperparameter records are not metrics and are skipped.
/// Run, rank and host are resource attributes (`trainlog.run`, `trainlog.rank`,
/// `host.name`; service name `trainlog` unless `OTEL_SERVICE_NAME` says otherwise).
///
/// The OpenTelemetry pipeline is built on the sink's worker thread at first use, so
/// building the logger inside an async runtime is safe. Close exports the last values.
pub struct OtelSink {
    options: OtelOptions,
    tls: Tls,
    /// Taken when the pipeline starts.
    resource: Option<Resource>,
    provider: Option<SdkMeterProvider>,
    meter: Option<Meter>,
    gauges: HashMap<String, Gauge<f64>>,
    counters: HashMap<String, Counter<f64>>,
    histograms: HashMap<String, Histogram<f64>>,
    warned_negative: bool,
    /// Why the last export failed (cleared by one that succeeds), shared with the
    /// exporter's client: what close says when the final export fails too.
    last_failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for OtelSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelSink")
            .field("started", &self.provider.is_some())
            .field("gauges", &self.gauges.len())
            .field("counters", &self.counters.len())
            .finish()
    }
}

impl OtelSink {
    /// Checks the settings; the exporter starts on first use.
    pub fn new(options: OtelOptions, cx: &BuildContext) -> Result<Self> {
        let rank = cx.rank();
        if let Some(url) = &options.endpoint {
            let ok = reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(Error::Config(format!(
                    "OTLP endpoint `{url}` is not an http(s) URL (OTLP over HTTP/protobuf)"
                )));
            }
        }
        let ca = options.ca_file.clone().or_else(|| {
            first_env(&[
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ])
            .map(PathBuf::from)
        });
        let tls = Tls::load(ca.as_slice(), false)?;
        let run = cx.run_name(options.run_name.as_deref(), &[])?;
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "trainlog".into());
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attributes([
                KeyValue::new("trainlog.run", run),
                KeyValue::new("trainlog.rank", i64::from(rank.rank)),
                KeyValue::new("trainlog.world_size", i64::from(rank.world_size)),
                KeyValue::new("host.name", crate::naming::hostname()),
            ])
            .build();
        Ok(OtelSink {
            options,
            tls,
            resource: Some(resource),
            provider: None,
            meter: None,
            gauges: HashMap::new(),
            counters: HashMap::new(),
            histograms: HashMap::new(),
            warned_negative: false,
            last_failure: Arc::default(),
        })
    }

    /// Builds the exporter and meter on first use (on the worker thread).
    fn meter(&mut self) -> Result<&Meter> {
        if self.meter.is_none() {
            let Some(resource) = self.resource.take() else {
                return Err(Error::Sink {
                    sink: "otel".into(),
                    message: "the OTLP exporter could not be created".into(),
                });
            };
            let client = OtlpClient::new(
                &self.tls,
                self.options.endpoint.as_deref(),
                self.last_failure.clone(),
            )?;
            let mut exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_http_client(client);
            if let Some(url) = &self.options.endpoint {
                exporter = exporter.with_endpoint(url.clone());
            }
            let exporter = exporter.build().map_err(|e| Error::Sink {
                sink: "otel".into(),
                message: format!("could not create the OTLP exporter: {e}"),
            })?;
            let mut reader = PeriodicReader::builder(exporter);
            if let Some(every) = self.options.interval {
                reader = reader.with_interval(every);
            }
            let provider = SdkMeterProvider::builder()
                .with_resource(resource)
                .with_reader(reader.build())
                .build();
            self.meter = Some(provider.meter("trainlog"));
            self.provider = Some(provider);
        }
        self.meter.as_ref().ok_or_else(|| Error::Sink {
            sink: "otel".into(),
            message: "no meter".into(),
        })
    }

    fn gauge(&mut self, name: &str, value: f64) -> Result<()> {
        if !self.gauges.contains_key(name) {
            let gauge = self.meter()?.f64_gauge(name.to_owned()).build();
            self.gauges.insert(name.to_owned(), gauge);
        }
        if let Some(g) = self.gauges.get(name) {
            g.record(value, &[]);
        }
        Ok(())
    }

    fn count(&mut self, name: &str, value: f64) -> Result<()> {
        if value < 0.0 || value.is_nan() {
            if !self.warned_negative {
                self.warned_negative = true;
                eprintln!(
                    "trainlog: otel: counter `{name}` got {value}; counters only go up, so it was skipped"
                );
            }
            return Ok(());
        }
        if !self.counters.contains_key(name) {
            let counter = self.meter()?.f64_counter(name.to_owned()).build();
            self.counters.insert(name.to_owned(), counter);
        }
        if let Some(c) = self.counters.get(name) {
            c.add(value, &[]);
        }
        Ok(())
    }

    /// Records finite values into the histogram instrument `name`, created with
    /// `boundaries` (else the SDK's defaults) when it is new.
    fn histogram(
        &mut self,
        name: &str,
        boundaries: Option<&[f64]>,
        values: impl Iterator<Item = f64>,
    ) -> Result<()> {
        if !self.histograms.contains_key(name) {
            let mut builder = self.meter()?.f64_histogram(name.to_owned());
            if let Some(b) = boundaries {
                builder = builder.with_boundaries(b.to_vec());
            }
            let histogram = builder.build();
            self.histograms.insert(name.to_owned(), histogram);
        }
        if let Some(h) = self.histograms.get(name) {
            for x in values.filter(|x| x.is_finite()) {
                h.record(x, &[]);
            }
        }
        Ok(())
    }

    /// The OpenTelemetry SDK drops NaN and ±∞ measurements (a gauge would silently keep
    /// its last finite value, hiding a divergence), so they are counted instead in
    /// [`NON_FINITE_COUNTER`], with the field and the value as attributes; `times` is how
    /// many there were.
    fn non_finite(&mut self, name: &str, value: f64, times: u64) -> Result<()> {
        if times == 0 {
            return Ok(());
        }
        if !self.counters.contains_key(NON_FINITE_COUNTER) {
            let counter = self
                .meter()?
                .f64_counter(NON_FINITE_COUNTER)
                .with_description("NaN and infinite values logged, by metric")
                .build();
            self.counters.insert(NON_FINITE_COUNTER.to_owned(), counter);
        }
        let shown = if value.is_nan() {
            "NaN"
        } else if value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        let metric = name
            .strip_prefix(MONOTONIC_PREFIX)
            .or_else(|| name.strip_prefix(HISTOGRAM_PREFIX))
            .unwrap_or(name)
            .to_owned();
        if let Some(c) = self.counters.get(NON_FINITE_COUNTER) {
            c.add(
                times as f64,
                &[
                    KeyValue::new("metric", metric),
                    KeyValue::new("value", shown),
                ],
            );
        }
        Ok(())
    }

    fn write_record(&mut self, r: &Record) -> Result<()> {
        if r.hparams {
            return Ok(());
        }
        if let Some(step) = r.step {
            let name = self.options.step_gauge.clone();
            self.gauge(&name, step as f64)?;
        }
        for (k, number) in r.numbers() {
            if !number.is_finite() {
                self.non_finite(k, number, 1)?;
                continue;
            }
            if let Some(name) = k.strip_prefix(MONOTONIC_PREFIX) {
                self.count(name, number)?;
            } else if let Some(name) = k.strip_prefix(HISTOGRAM_PREFIX) {
                self.histogram(name, None, std::iter::once(number))?;
            } else {
                self.gauge(k, number)?;
            }
        }
        for (k, h) in r.histograms() {
            let name = k.strip_prefix(HISTOGRAM_PREFIX).unwrap_or(k);
            let s = h.summary();
            // An instrument's buckets are fixed: the first histogram's bin edges.
            let edges = (s.finite > 0).then_some(s.edges.as_slice());
            self.histogram(name, edges, h.values().into_iter())?;
            self.non_finite(name, f64::NAN, s.nan)?;
            self.non_finite(name, f64::INFINITY, s.pos_inf)?;
            self.non_finite(name, f64::NEG_INFINITY, s.neg_inf)?;
        }
        Ok(())
    }
}

impl Sink for OtelSink {
    fn name(&self) -> &str {
        "otel"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            self.write_record(record)?;
        }
        Ok(())
    }

    fn close(&mut self, _outcome: RunOutcome) -> Result<()> {
        match self.provider.take() {
            // Shutdown exports what was recorded since the last interval.
            // The SDK's error here only says that shutting down failed; the client knows
            // why the export did.
            Some(provider) => provider.shutdown().map_err(|e| {
                let why = self
                    .last_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_else(|| e.to_string());
                Error::Sink {
                    sink: "otel".into(),
                    message: format!("the last values were not exported: {why}"),
                }
            }),
            None => Ok(()),
        }
    }
}

/// The exporter's HTTP client: trainlog's reqwest client (system trust store,
/// `SSL_CERT_FILE`, the OTLP certificate variables; redirects refused). It reports the
/// first failed export of a streak on stderr, as the other sinks do, since the SDK's own
/// logs are off; exports are retried at the next interval and at close.
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::blocking::Client,
    /// Per request (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
    timeout: Duration,
    /// Where exports go, for messages (redacted).
    target: String,
    failing: AtomicBool,
    /// Why the last export failed, for the sink's close (see `OtelSink::last_failure`).
    last_failure: Arc<Mutex<Option<String>>>,
}

impl OtlpClient {
    /// Built on the sink's worker thread (a blocking client must not be created inside
    /// an async runtime).
    fn new(
        tls: &Tls,
        endpoint: Option<&str>,
        last_failure: Arc<Mutex<Option<String>>>,
    ) -> Result<Self> {
        let timeout = first_env(&[
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ])
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
        let client = http_client(tls).map_err(|e| Error::Sink {
            sink: "otel".into(),
            message: format!("could not create the HTTP client: {e}"),
        })?;
        let target = endpoint
            .map(str::to_owned)
            .or_else(|| {
                first_env(&[
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                ])
            })
            .and_then(|u| reqwest::Url::parse(&u).ok())
            .map_or_else(|| "the OTLP endpoint".into(), |u| redact_url(&u));
        Ok(OtlpClient {
            client,
            timeout,
            target,
            failing: AtomicBool::new(false),
            last_failure,
        })
    }

    fn failed(&self, why: &str) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("export to {} failed: {why}", self.target));
        if !self.failing.swap(true, Ordering::Relaxed) {
            eprintln!(
                "trainlog: otel: export to {} failed: {why}; the last values are exported \
                 again at the next interval and at close (further failures are not printed)",
                self.target
            );
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> std::result::Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let mut request = reqwest::blocking::Request::try_from(request.map(|b| b.to_vec()))?;
        *request.timeout_mut() = Some(self.timeout);
        let response = match self.client.execute(request) {
            Ok(response) => response,
            Err(e) => {
                let e = e.without_url();
                self.failed(&e.to_string());
                return Err(Box::new(e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes()?;
        if status.is_success() {
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
            if self.failing.swap(false, Ordering::Relaxed) {
                eprintln!("trainlog: otel: exporting to {} again", self.target);
            }
        } else {
            let text = String::from_utf8_lossy(&body);
            self.failed(&format!(
                "status {status}: {}",
                text.chars().take(300).collect::<String>()
            ));
        }
        let mut out = http::Response::builder().status(status).body(body)?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}
