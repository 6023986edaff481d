//! `HttpSink`: records POSTed as JSON to a server, batched, authenticated, spooled to disk.
//!
//! Every message is first appended to `<output_dir>/http_spool/<run_id>_rank<r>.jsonl`
//! and delivered from there by the shared [spool](crate::deliver::spool) machinery; this module
//! knows the message format and how to POST a batch.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod deliver;

use self::deliver::HttpDeliver;
use super::{Backend, BackendConfig, BuildContext, RunOutcome, Sink};
use crate::deliver::net::{redact_url, without_password, LazyClient, Secret, Tls};
use crate::deliver::spool::{Spool, SpoolOptions};
use crate::deliver::spooled::{Batching, Endpoint, Messages, Spooled};
use crate::deliver::DeliverySettings;
use crate::env::first_env;
use crate::json::{write_fields, write_str};
use crate::time::TimestampFormatter;
use crate::{Error, RankInfo, Record, Result, Value};

/// Environment variables for the server URL, in the order they are consulted.
pub const URL_VARS: [&str; 2] = ["TRAINLOG_SERVER_URL", "MESSENGER_LOGGER_SERVER_URL"];
/// Environment variables for the bearer token, in the order they are consulted.
pub const TOKEN_VARS: [&str; 2] = ["TRAINLOG_AUTH_TOKEN", "MESSENGER_LOGGER_AUTH_TOKEN"];

/// Settings of the `http` backend. Everything has a default; the URL and token also
/// come from the environment ([`URL_VARS`], [`TOKEN_VARS`]); values set here win.
///
/// ```
/// use std::time::Duration;
/// let options = trainlog::sink::HttpOptions::new()
///     .url("https://metrics.example.com/ingest")
///     .token("s3cret")
///     .project("llm-sft")
///     .batch(200, Duration::from_millis(500));
/// assert!(!format!("{options:?}").contains("s3cret"));
/// ```
#[derive(Clone, Debug)]
pub struct HttpOptions {
    url: Option<String>,
    token: Option<Secret>,
    project: Option<String>,
    run_id: Option<String>,
    batch_size: usize,
    batch_interval: Duration,
    single_record: bool,
    request_timeout: Duration,
    heartbeat: Option<Duration>,
    delivery: DeliverySettings,
    allow_insecure: bool,
    ca_files: Vec<std::path::PathBuf>,
    pub(crate) all_ranks: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            url: None,
            token: None,
            project: None,
            run_id: None,
            batch_size: 100,
            batch_interval: Duration::from_secs(1),
            single_record: false,
            request_timeout: Duration::from_secs(10),
            heartbeat: None,
            delivery: DeliverySettings::default(),
            allow_insecure: false,
            ca_files: Vec::new(),
            all_ranks: false,
        }
    }
}

impl HttpOptions {
    /// Defaults: batches of up to 100 messages or 1 s, 10 s request timeout; at close,
    /// delivery goes on while the server accepts batches (up to 120 s) and gives up after
    /// 4 s without progress; retries from 200 ms doubling up to 30 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to POST (`http://` or `https://`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sent as `Authorization: Bearer <token>`; never printed.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret(token.into()));
        self
    }

    /// `project_name` of every message (default: `TRAINLOG_PROJECT`, else `trainlog`).
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.project = Some(name.into());
        self
    }

    /// `run_id` of every message (default: `TRAINLOG_RUN_ID`, else `run_<UTC time>_<host>_<pid>_<random>`, unique per process).
    /// Starting again with the same id sends what the previous process left spooled.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// A request carries up to `size` messages, and waits at most `interval` to fill up.
    pub fn batch(mut self, size: usize, interval: Duration) -> Self {
        self.batch_size = size.max(1);
        self.batch_interval = interval;
        self
    }

    /// One JSON object per request instead of an array, for servers that take one.
    pub fn single_record(mut self, single: bool) -> Self {
        self.single_record = single;
        self
    }

    /// How long one request may take before it is abandoned and retried.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sends a `heartbeat` message when nothing else was sent for `every`.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every);
        self
    }

    /// Allows sending the token over plain `http://` to a host that is not loopback.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure = allow;
        self
    }

    /// Also trusts the CA certificates in this PEM file (a cluster's private CA), besides
    /// the system's trust store and `SSL_CERT_FILE`.
    pub fn ca_certificate(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.ca_files.push(pem_file.into());
        self
    }
}

all_ranks_setter!(HttpOptions);
delivery_setters!(HttpOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `http` backend; setting them turns it on.
    pub fn http(self, options: HttpOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for HttpOptions {
    fn backend(&self) -> Backend {
        Backend::Http
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || HttpSink::new(self.clone(), cx))
    }
}

/// What every message of this sink shares.
#[derive(Debug)]
struct Identity {
    project: String,
    run_id: String,
    rank: u32,
    /// Distinguishes processes that write the same run: unix milliseconds at start.
    session: u64,
}

spooled_sink! {
    /// POSTs records to an HTTP server. See the README's HTTP section for the message format.
    HttpSink(HttpMessages)
}

/// The http backend's messages: one JSON object per record, with the run's identity.
struct HttpMessages {
    identity: Arc<Identity>,
    rank: RankInfo,
    next_n: u64,
    timestamps: TimestampFormatter,
}

impl HttpSink {
    /// Opens (or resumes) the spool under the context's output directory and starts the
    /// sender thread.
    /// Fails without a URL, with a malformed one, or when a token would travel over
    /// plain HTTP to another host without [`HttpOptions::allow_insecure_http`].
    pub fn new(options: HttpOptions, cx: &BuildContext) -> Result<Self> {
        let rank = cx.rank();
        let url = options
            .url
            .clone()
            .or_else(|| first_env(&URL_VARS))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the http backend needs a server URL: set HttpOptions::url, or {} (or {})",
                    URL_VARS[0], URL_VARS[1]
                ))
            })?;
        let token = options
            .token
            .clone()
            .or_else(|| first_env(&TOKEN_VARS).map(Secret));
        let parsed = check_url(&url, token.is_some(), options.allow_insecure)?;
        let started = SystemTime::now();
        let now = crate::time::unix_duration(started);
        let run_id = options
            .run_id
            .clone()
            .or_else(|| first_env(&["TRAINLOG_RUN_ID"]))
            .unwrap_or_else(|| crate::naming::unique_run_id(started));
        if run_id.is_empty() || run_id.contains(['/', '\\']) {
            return Err(Error::Config(format!(
                "run id `{run_id}` must be non-empty and without path separators"
            )));
        }
        let identity = Arc::new(Identity {
            project: options
                .project
                .clone()
                .or_else(|| first_env(&["TRAINLOG_PROJECT"]))
                .unwrap_or_else(|| "trainlog".into()),
            run_id,
            rank: rank.rank,
            session: now.as_millis() as u64,
        });
        let endpoint = Endpoint {
            backend: "http",
            destination: parsed.clone(),
            session: serde_json::json!({
                "backend": "http",
                "url": without_password(&parsed),
                "project": identity.project,
                "run_id": identity.run_id,
                "rank": identity.rank,
                "single_record": options.single_record,
            }),
            deliver: HttpDeliver {
                client: LazyClient::new("http", Tls::load(&options.ca_files, false)?),
                own: Some((parsed.clone(), token.clone())),
                url: parsed,
                token,
                allow_insecure: options.allow_insecure,
                single_record: options.single_record,
                identity: Some(identity.clone()),
            },
            sync_env: None,
        };
        let batching = Batching {
            size: if options.single_record {
                1
            } else {
                options.batch_size
            },
            interval: options.batch_interval,
            request_timeout: options.request_timeout,
            heartbeat: options.heartbeat,
        };
        let messages = HttpMessages {
            identity,
            rank,
            next_n: 0,
            timestamps: TimestampFormatter::default(),
        };
        Spooled::open(cx, endpoint, batching, &options.delivery, messages).map(HttpSink)
    }
}

impl HttpMessages {
    /// Appends one message for `record` to the spool buffer.
    fn append(&mut self, spool: &mut Spool, event_type: &str, record: &Record) {
        let id = &*self.identity;
        let out = spool.buffer();
        out.extend_from_slice(b"{\"message_id\":");
        write_str(
            out,
            &format!("{}:{}:{}:{}", id.run_id, id.rank, id.session, self.next_n),
        );
        self.next_n += 1;
        out.extend_from_slice(b",\"project_name\":");
        write_str(out, &id.project);
        out.extend_from_slice(b",\"run_id\":");
        write_str(out, &id.run_id);
        out.extend_from_slice(b",\"event_type\":");
        write_str(out, event_type);
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(self.timestamps.format(record.timestamp).as_bytes());
        out.extend_from_slice(b"\",\"rank\":");
        out.extend_from_slice(itoa::Buffer::new().format(record.rank).as_bytes());
        out.extend_from_slice(b",\"step\":");
        match record.step {
            Some(step) => out.extend_from_slice(itoa::Buffer::new().format(step).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        if let Some(Value::Str(status)) = record
            .get("status")
            .filter(|_| event_type == "training_finished")
        {
            out.extend_from_slice(b",\"status\":");
            write_str(out, status);
        }
        out.extend_from_slice(b",\"data\":{");
        if let Some(message) = &record.message {
            out.extend_from_slice(b"\"message\":");
            write_str(out, message);
        }
        let has_message = record.message.is_some();
        write_fields(
            out,
            record,
            |k| has_message && k == "message",
            !has_message,
            // The `event` field became the event type.
            |k| k == "event" && event_type != "log" && event_type != "hparams",
        );
        out.extend_from_slice(b"}}\n");
        spool.end_record();
    }
}

impl Messages for HttpMessages {
    fn start(&mut self, spool: &mut Spool) {
        let rank = self.rank;
        let started = Record::new(rank.rank)
            .with_field("world_size", rank.world_size)
            .with_field("local_rank", rank.local_rank)
            .with_field("host", crate::naming::hostname())
            .with_field("pid", std::process::id());
        self.append(spool, "training_started", &started);
    }

    fn record(&mut self, record: &Record, spool: &mut Spool) {
        self.append(spool, event_type(record), record);
    }

    fn close(&mut self, outcome: RunOutcome, spool: &mut Spool) {
        let status = match outcome {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
        };
        let finished = Record::new(self.identity.rank).with_field("status", status);
        self.append(spool, "training_finished", &finished);
    }
}

/// The message type of a record: `hparams`, the text of an `event` field, or `log`.
fn event_type(record: &Record) -> &str {
    if record.hparams {
        return "hparams";
    }
    match record.get("event") {
        Some(Value::Str(kind)) if !kind.is_empty() => kind,
        _ => "log",
    }
}

/// Parses and checks a server URL: http or https, and no token over plain http to a
/// host other than loopback unless allowed. Messages show the URL redacted.
fn check_url(url: &str, token: bool, allow_insecure: bool) -> Result<reqwest::Url> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Config(format!("invalid server URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if !token || allow_insecure || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(Error::Config(format!(
            "refusing to send the auth token over plain http to `{}`; use https, or \
             HttpOptions::allow_insecure_http(true) if you accept the risk",
            parsed.host_str().unwrap_or("")
        ))),
        other => Err(Error::Config(format!(
            "server URL `{}` must be http:// or https://, not {other}://",
            redact_url(&parsed)
        ))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Opens a spool an http logger left, to deliver it to the server its session lines name
/// (`trainlog sync`). The token comes from the environment ([`TOKEN_VARS`]).
pub(crate) fn resume_spool(path: &Path, options: SpoolOptions) -> Result<Spool> {
    let deliver = HttpDeliver {
        client: LazyClient::new("http", Tls::load(&[], false)?),
        own: None,
        // Replaced by the first session line; nothing is sent before one.
        url: reqwest::Url::parse("http://localhost/")
            .map_err(|e| Error::Config(format!("the placeholder URL of a resumed spool: {e}")))?,
        token: None,
        allow_insecure: false,
        single_record: false,
        identity: None,
    };
    Spool::resume("http", path, options, deliver)
}
