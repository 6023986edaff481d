//! `MlflowSink`: runs, params, metrics and tags in an MLflow tracking server, over its REST API.
//!
//! Records are turned into MLflow entities when they are captured and spooled to disk;
//! the shared [spool](crate::deliver::spool) machinery delivers them in order with retries. The
//! run is created on first delivery (so a server that is down at start costs nothing) and
//! its id kept beside the spool, so a logger restarted with the same run name resumes the
//! same MLflow run.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::json;

mod deliver;
mod runs;

use self::deliver::MlflowDeliver;
use super::{clip, Backend, BackendConfig, BuildContext, RunOutcome, Sink};
use crate::deliver::net::{redact_url, without_password, Secret, Tls};
use crate::deliver::spool::{Spool, SpoolOptions};
use crate::deliver::spooled::{spool_dir, Batching, Endpoint, Messages, Spooled};
use crate::deliver::DeliverySettings;
use crate::env::first_env;
use crate::json::{write_str, write_value};
use crate::sink::run_events::RunEvent;
use crate::{Error, Record, Result, Value};

/// MLflow's per-request limits for `runs/log-batch` (metrics; params and tags; bytes).
const MAX_METRICS: usize = 1000;
const MAX_PARAMS_TAGS: usize = 100;
const MAX_BODY: usize = 900 * 1024;
/// MLflow's value length limits.
const MAX_PARAM_VALUE: usize = 6000;
const MAX_TAG_VALUE: usize = 8000;
const MAX_KEY: usize = 250;

/// Settings of the `mlflow` backend. Unset values come from the standard variables
/// `MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`, `MLFLOW_RUN_NAME`,
/// `MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME`/`MLFLOW_TRACKING_PASSWORD`.
#[derive(Clone, Debug, Default)]
pub struct MlflowOptions {
    tracking_uri: Option<String>,
    experiment: Option<String>,
    run_name: Option<String>,
    token: Option<Secret>,
    basic: Option<(String, Secret)>,
    pub(crate) all_ranks: bool,
    delivery: DeliverySettings,
    ca_file: Option<PathBuf>,
    insecure_tls: bool,
}

impl MlflowOptions {
    /// Everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracking server's URL, e.g. `http://127.0.0.1:5000` (`MLFLOW_TRACKING_URI`).
    pub fn url(mut self, uri: impl Into<String>) -> Self {
        self.tracking_uri = Some(uri.into());
        self
    }

    /// Experiment name, created if missing (`MLFLOW_EXPERIMENT_NAME`, else `Default`).
    pub fn experiment(mut self, name: impl Into<String>) -> Self {
        self.experiment = Some(name.into());
        self
    }

    /// Run name template with the placeholders of
    /// [`expand_run_name`](crate::naming::expand_run_name) (`MLFLOW_RUN_NAME`, else the
    /// builder's `run_name`, else `{time}_rank{rank}`).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// Bearer token (`MLFLOW_TRACKING_TOKEN`); never printed.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    /// Basic authentication (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic = Some((user.into(), Secret(password.into())));
        self
    }

    /// Also trusts the CA certificates in this PEM file (`MLFLOW_TRACKING_SERVER_CERT_PATH`),
    /// besides the system's trust store and `SSL_CERT_FILE`.
    pub fn ca_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(pem_file.into());
        self
    }

    /// Accepts any server certificate (`MLFLOW_TRACKING_INSECURE_TLS=true`): for a test
    /// server with a self-signed certificate, never for real traffic.
    pub fn insecure_tls(mut self, insecure: bool) -> Self {
        self.insecure_tls = insecure;
        self
    }
}

all_ranks_setter!(MlflowOptions);
delivery_setters!(MlflowOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `mlflow` backend; setting them turns it on (as do
    /// `MLFLOW_TRACKING_URI` or `MLFLOW_EXPERIMENT_NAME` in the environment).
    pub fn mlflow(self, options: MlflowOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for MlflowOptions {
    fn backend(&self) -> Backend {
        Backend::Mlflow
    }

    /// `MLFLOW_TRACKING_URI` or `MLFLOW_EXPERIMENT_NAME` (InstructLab's auto-detection).
    fn from_env() -> Option<Self> {
        first_env(&["MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"]).map(|_| Self::default())
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || MlflowSink::new(self.clone(), cx))
    }
}

spooled_sink! {
    /// Logs to an MLflow tracking server: `hparams` records as params (once each, values
    /// stringified and cut to MLflow's 6,000 characters with a message), numbers and booleans
    /// as metrics with the record's step (0 without one) and millisecond timestamp, text as
    /// tags; nested names joined with `.`. The run API's tags become run tags and its results
    /// metrics at the last step logged, their metadata tags `<result>.<key>`. The run ends
    /// `FINISHED`, or `FAILED` when the
    /// guard drops during a panic. MLflow stores +∞/−∞ as ±1.797e308 and keeps NaN.
    MlflowSink(MlflowMessages)
}

/// The mlflow backend's spool lines: metrics, params and tags per record, the run's end.
#[derive(Debug, Default)]
struct MlflowMessages {
    warned_cut: bool,
    /// The largest step logged so far: where a final result goes.
    last_step: Option<u64>,
}

impl MlflowSink {
    /// Starts the sink, its spool under the context's output directory.
    pub fn new(options: MlflowOptions, cx: &BuildContext) -> Result<Self> {
        let output_dir = cx.require_output_dir("mlflow")?;
        let uri = options
            .tracking_uri
            .clone()
            .or_else(|| first_env(&["MLFLOW_TRACKING_URI"]))
            .ok_or_else(|| {
                Error::Config(
                    "the mlflow backend needs a tracking server: set MlflowOptions::url \
                     or MLFLOW_TRACKING_URI (e.g. http://127.0.0.1:5000)"
                        .into(),
                )
            })?;
        let base = parse_uri(&uri)?;
        let experiment = options
            .experiment
            .clone()
            .or_else(|| first_env(&["MLFLOW_EXPERIMENT_NAME"]))
            .unwrap_or_else(|| "Default".into());
        let run_name = cx.run_name(options.run_name.as_deref(), &["MLFLOW_RUN_NAME"])?;
        let auth = match (&options.token, &options.basic) {
            (Some(token), _) => Auth::Bearer(token.clone()),
            (None, Some((user, pass))) => Auth::Basic(user.clone(), pass.clone()),
            (None, None) => Auth::from_env(),
        };
        let tls = tls_from(options.ca_file.clone(), options.insecure_tls)?;
        let dir = spool_dir(output_dir, "mlflow");
        let endpoint = Endpoint {
            backend: "mlflow",
            destination: base.clone(),
            session: json!({
                "backend": "mlflow",
                "tracking_uri": without_password(&base),
                "experiment": experiment,
                "run_name": run_name,
            }),
            deliver: MlflowDeliver::new(&dir, Some((base.clone(), auth)), base, tls),
            sync_env: None,
        };
        let batching = Batching {
            size: 200,
            interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            heartbeat: None,
        };
        let messages = MlflowMessages::default();
        Spooled::open(cx, endpoint, batching, &options.delivery, messages).map(MlflowSink)
    }
}

impl MlflowMessages {
    /// Appends the spool lines for one record: `{"t":ms,"s":step,"m":[[k,v]..],"p":..,"g":..}`,
    /// split so that each line fits in one `log-batch` request (lines after the first
    /// are marked `"more":true`).
    fn append(&mut self, r: &Record, spool: &mut Spool) {
        let t = crate::time::unix_millis(r.timestamp);
        let mut metrics: Vec<(String, Cow<'_, Value>)> = Vec::new();
        let mut texts: Vec<(String, String)> = Vec::new();
        let mut cut = Vec::new();
        let mut text = |key: String, value: String, max: usize| {
            if value.chars().count() > max {
                cut.push(key.clone());
            }
            texts.push((key, clip(&value, max).to_owned()));
        };
        let mut step = r.step;
        match r.run_event() {
            // The run API's tags: MLflow run tags, without an `event` tag.
            Some(RunEvent::Tags(tags)) => {
                for (k, v) in tags {
                    text(clip(k, MAX_KEY).to_owned(), v.to_owned(), MAX_TAG_VALUE);
                }
            }
            // A final result: a metric at the run's last step, its metadata as tags.
            Some(RunEvent::Result(result)) => {
                step = step.or(self.last_step);
                metrics.push((
                    clip(result.name, MAX_KEY).to_owned(),
                    Cow::Borrowed(result.value),
                ));
                for (k, v) in result.metadata {
                    let key = format!("{}.{k}", result.name);
                    text(clip(&key, MAX_KEY).to_owned(), v.to_string(), MAX_TAG_VALUE);
                }
            }
            None => {
                for (k, v) in r.unique_fields() {
                    let key = clip(k, MAX_KEY).to_owned();
                    if r.hparams {
                        text(key, v.to_string(), MAX_PARAM_VALUE);
                    } else if let Value::Histogram(h) = v {
                        // No histogram type in MLflow: its statistics as metrics.
                        for (name, x) in h.summary().scalars() {
                            let key = format!("{k}.{name}");
                            metrics
                                .push((clip(&key, MAX_KEY).to_owned(), Cow::Owned(Value::F64(x))));
                        }
                    } else if v.as_f64().is_some() {
                        metrics.push((key, Cow::Borrowed(v)));
                    } else {
                        text(key, v.to_string(), MAX_TAG_VALUE);
                    }
                }
            }
        }
        if let Some(s) = r.step {
            self.last_step = Some(self.last_step.map_or(s, |last| last.max(s)));
        }
        if !cut.is_empty() && !self.warned_cut {
            self.warned_cut = true;
            eprintln!(
                "trainlog: mlflow: values of {} were cut to MLflow's limit ({MAX_PARAM_VALUE} \
                 characters for params, {MAX_TAG_VALUE} for tags)",
                cut.join(", ")
            );
        }
        let text_kind = if r.hparams { "p" } else { "g" };
        let step = step.unwrap_or(0).min(i64::MAX as u64);
        let mut metrics = metrics.into_iter().peekable();
        let mut texts = texts.into_iter().peekable();
        let mut first = true;
        while metrics.peek().is_some() || texts.peek().is_some() {
            let out = spool.buffer();
            let start = out.len();
            // A record too large for one request continues on lines marked `"more"`.
            out.extend_from_slice(if first { b"{" } else { b"{\"more\":true," });
            first = false;
            out.extend_from_slice(b"\"t\":");
            out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
            out.extend_from_slice(b",\"s\":");
            out.extend_from_slice(itoa::Buffer::new().format(step).as_bytes());
            out.extend_from_slice(b",\"m\":[");
            write_pairs(
                out,
                start,
                MAX_METRICS / 2,
                &mut metrics,
                |out, v| match &**v {
                    Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
                    number => write_value(out, number),
                },
            );
            out.extend_from_slice(b"],\"");
            out.extend_from_slice(text_kind.as_bytes());
            out.extend_from_slice(b"\":[");
            write_pairs(out, start, MAX_PARAMS_TAGS / 2, &mut texts, |out, v| {
                write_str(out, v)
            });
            out.extend_from_slice(b"]}\n");
            spool.end_record();
        }
    }
}

/// Writes `[key,value]` pairs taken from `items` while fewer than `max` are written and
/// the line begun at `start` stays within a quarter of a request's byte budget.
fn write_pairs<T>(
    out: &mut Vec<u8>,
    start: usize,
    max: usize,
    items: &mut impl Iterator<Item = (String, T)>,
    write: impl Fn(&mut Vec<u8>, &T),
) {
    let mut n = 0;
    while n < max && out.len() - start < MAX_BODY / 4 {
        let Some((k, v)) = items.next() else { break };
        if n > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_str(out, &k);
        out.push(b',');
        write(out, &v);
        out.push(b']');
        n += 1;
    }
}

impl Messages for MlflowMessages {
    fn record(&mut self, record: &Record, spool: &mut Spool) {
        self.append(record, spool);
    }

    fn close(&mut self, outcome: RunOutcome, spool: &mut Spool) {
        let status = match outcome {
            RunOutcome::Completed => "FINISHED",
            RunOutcome::Failed => "FAILED",
        };
        let now = crate::time::unix_millis(SystemTime::now());
        let out = spool.buffer();
        out.extend_from_slice(format!("{{\"end\":\"{status}\",\"t\":{now}}}\n").as_bytes());
        spool.end_record();
    }
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Bearer(Secret),
    Basic(String, Secret),
}

impl Auth {
    /// `MLFLOW_TRACKING_TOKEN` (bearer), else `MLFLOW_TRACKING_USERNAME`/`_PASSWORD`.
    fn from_env() -> Auth {
        match (
            first_env(&["MLFLOW_TRACKING_TOKEN"]),
            first_env(&["MLFLOW_TRACKING_USERNAME"]),
            first_env(&["MLFLOW_TRACKING_PASSWORD"]),
        ) {
            (Some(token), _, _) => Auth::Bearer(Secret(token)),
            (None, Some(user), pass) => Auth::Basic(user, Secret(pass.unwrap_or_default())),
            _ => Auth::None,
        }
    }
}

/// TLS settings: the given CA file, else `MLFLOW_TRACKING_SERVER_CERT_PATH`; insecure
/// when asked or when `MLFLOW_TRACKING_INSECURE_TLS` is true (as MLflow's client reads them).
fn tls_from(ca_file: Option<PathBuf>, insecure: bool) -> Result<Tls> {
    let ca =
        ca_file.or_else(|| first_env(&["MLFLOW_TRACKING_SERVER_CERT_PATH"]).map(PathBuf::from));
    let insecure = insecure
        || first_env(&["MLFLOW_TRACKING_INSECURE_TLS"]).is_some_and(|v| {
            matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
        });
    Tls::load(ca.as_slice(), insecure)
}

/// A tracking URI as an http(s) URL, or a configuration error (the URI shown redacted).
fn parse_uri(uri: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(uri.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            Error::Config(format!(
                "MLflow tracking URI `{}` is not an http(s) URL: trainlog talks to a \
                 tracking server (`mlflow server`) over its REST API",
                match reqwest::Url::parse(uri) {
                    Ok(url) => redact_url(&url),
                    Err(_) => "(unparseable)".into(),
                }
            ))
        })
}

/// Opens a spool an mlflow logger left, to deliver it to the runs its session lines name
/// (`trainlog sync`). Credentials come from the `MLFLOW_TRACKING_*` variables.
pub(crate) fn resume_spool(path: &Path, options: SpoolOptions) -> Result<Spool> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Replaced by the first session line; nothing is sent before one.
    let base = parse_uri("http://localhost")?;
    let tls = tls_from(None, false)?;
    Spool::resume(
        "mlflow",
        path,
        options,
        MlflowDeliver::new(dir, None, base, tls),
    )
}
