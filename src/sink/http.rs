//! `HttpSink`: records POSTed as JSON to a server, batched, authenticated, spooled to disk.
//!
//! Every message is first appended to a spool file (`<output_dir>/http_spool/<run_id>_rank<r>.jsonl`),
//! one JSON object per line; a sender thread reads the spool in order and POSTs batches,
//! remembering in `<...>.offset` how far the server has acknowledged. So training never
//! waits for the network, memory stays bounded while the server is away, and messages
//! survive a crash: a logger started later with the same run id sends what is left.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::file::RecordFile;
use super::{RunOutcome, Sink};
use crate::json::{write_str, write_value};
use crate::record::TimestampFormatter;
use crate::retry::{classify, Backoff, Verdict};
use crate::{Error, RankInfo, Record, Result, Value};

/// Environment variables for the server URL, in the order they are consulted.
pub const URL_VARS: [&str; 2] = ["TRAINLOG_SERVER_URL", "MESSENGER_LOGGER_SERVER_URL"];
/// Environment variables for the bearer token, in the order they are consulted.
pub const TOKEN_VARS: [&str; 2] = ["TRAINLOG_AUTH_TOKEN", "MESSENGER_LOGGER_AUTH_TOKEN"];

/// A credential that never shows up in `Debug` output or messages.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

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
    shutdown_timeout: Duration,
    allow_insecure: bool,
    retry_base: Duration,
    retry_max: Duration,
    all_ranks: bool,
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
            shutdown_timeout: Duration::from_secs(3),
            allow_insecure: false,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            all_ranks: false,
        }
    }
}

impl HttpOptions {
    /// Defaults: batches of up to 100 messages or 1 s, 10 s request timeout, 3 s to
    /// deliver at shutdown, retries from 200 ms doubling up to 30 s.
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

    /// `run_id` of every message (default: `TRAINLOG_RUN_ID`, else `run_<unix seconds>`).
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

    /// How long closing may keep delivering; what is left stays spooled on disk. Keep it
    /// below the logger's own shutdown timeout.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Allows sending the token over plain `http://` to a host that is not loopback.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure = allow;
        self
    }

    /// Send from every rank instead of rank 0 only.
    pub fn all_ranks(mut self, all: bool) -> Self {
        self.all_ranks = all;
        self
    }

    pub(crate) fn sends_on(&self, rank: RankInfo) -> bool {
        self.all_ranks || rank.is_rank0()
    }

    /// First retry delay and its cap (delays double, with jitter).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max.max(base);
        self
    }
}

fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
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

/// State shared by the sink (producer) and its sender thread.
#[derive(Debug, Default)]
struct State {
    /// Bytes of the spool file that are complete on disk.
    spooled: u64,
    /// Set at close: deliver until then, then stop.
    deadline: Option<Instant>,
    /// The sender thread has stopped.
    stopped: bool,
    /// The spool was delivered completely when the sender stopped.
    drained: bool,
    /// Messages the server refused for good (now in the dead-letter file).
    rejected: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a notification or `timeout`, whichever comes first.
    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        match self.wake.wait_timeout(state, timeout) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }
}

/// POSTs records to an HTTP server. See the [module docs](crate::sink) and the README's
/// HTTP section for the message format.
#[derive(Debug)]
pub struct HttpSink {
    spool: RecordFile,
    identity: Arc<Identity>,
    next_n: u64,
    timestamps: TimestampFormatter,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
    offset_path: PathBuf,
    dead_path: PathBuf,
}

impl HttpSink {
    /// Opens (or resumes) the spool under `output_dir` and starts the sender thread.
    /// Fails without a URL, with a malformed one, or when a token would travel over
    /// plain HTTP to another host without [`HttpOptions::allow_insecure_http`].
    pub fn new(options: HttpOptions, output_dir: &Path, rank: RankInfo) -> Result<Self> {
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
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| Error::Config(format!("invalid server URL `{url}`: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if token.is_none() || options.allow_insecure || is_loopback(&parsed) => {}
            "http" => {
                return Err(Error::Config(format!(
                    "refusing to send the auth token over plain http to `{}`; use https, or \
                     HttpOptions::allow_insecure_http(true) if you accept the risk",
                    parsed.host_str().unwrap_or("")
                )))
            }
            other => {
                return Err(Error::Config(format!(
                    "server URL `{url}` must be http:// or https://, not {other}://"
                )))
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let run_id = options
            .run_id
            .clone()
            .or_else(|| first_env(&["TRAINLOG_RUN_ID"]))
            .unwrap_or_else(|| format!("run_{}", now.as_secs()));
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

        let dir = output_dir.join("http_spool");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create spool directory", &dir, e))?;
        let stem = format!("{}_rank{}", identity.run_id, identity.rank);
        let spool_path = dir.join(format!("{stem}.jsonl"));
        let offset_path = dir.join(format!("{stem}.offset"));
        let dead_path = dir.join(format!("{stem}.dead.jsonl"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spool_path)
            .map_err(|e| Error::io("open spool file", &spool_path, e))?;
        let spooled = file
            .metadata()
            .map_err(|e| Error::io("read spool file", &spool_path, e))?
            .len();
        let sent = read_offset(&offset_path).min(spooled);
        if sent < spooled {
            eprintln!(
                "trainlog: http: resuming {} unsent bytes spooled by an earlier run in {}",
                spooled - sent,
                spool_path.display()
            );
        }

        let shared = Arc::new(Shared::default());
        shared.lock().spooled = spooled;
        let sender = Sender {
            url: parsed,
            token,
            options: options.clone(),
            shared: shared.clone(),
            spool_path: spool_path.clone(),
            offset_path: offset_path.clone(),
            dead_path: dead_path.clone(),
            identity: identity.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("trainlog-http-send".into())
            .spawn(move || sender.run(sent))
            .map_err(|e| Error::Config(format!("could not start the http sender thread: {e}")))?;

        let mut sink = HttpSink {
            spool: RecordFile::new("http", spool_path, file),
            identity,
            next_n: 0,
            timestamps: TimestampFormatter::default(),
            shared,
            sender: Some(handle),
            shutdown_timeout: options.shutdown_timeout,
            offset_path,
            dead_path,
        };
        let started = Record::new(rank.rank)
            .with_field("world_size", rank.world_size)
            .with_field("local_rank", rank.local_rank)
            .with_field("host", crate::naming::hostname())
            .with_field("pid", std::process::id());
        sink.append("training_started", &started);
        sink.publish()?;
        Ok(sink)
    }

    /// The spool file (also a local copy of everything sent).
    pub fn spool_path(&self) -> &Path {
        self.spool.path()
    }

    /// Where messages the server refused for good (4xx other than 408/429) are kept.
    pub fn dead_letter_path(&self) -> &Path {
        &self.dead_path
    }

    /// Appends one message for `record` to the spool buffer.
    fn append(&mut self, event_type: &str, record: &Record) {
        let id = &*self.identity;
        let out = self.spool.buffer();
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
        let mut first = true;
        if let Some(message) = &record.message {
            out.extend_from_slice(b"\"message\":");
            write_str(out, message);
            first = false;
        }
        for (k, v) in record.unique_fields() {
            if k == "event" && event_type != "log" && event_type != "hparams" {
                continue; // it became the event type
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, k);
            out.push(b':');
            write_value(out, v);
        }
        out.extend_from_slice(b"}}\n");
        self.spool.end_record();
    }

    /// Writes the spool buffer out and tells the sender how far the file is complete.
    fn publish(&mut self) -> Result<()> {
        self.spool.write_out()?;
        let len = self.spool.file_len();
        self.shared.lock().spooled = len;
        self.shared.wake.notify_all();
        Ok(())
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

impl Sink for HttpSink {
    fn name(&self) -> &str {
        "http"
    }

    /// Messages the server refused for good; they are in the dead-letter file.
    fn lost(&self) -> u64 {
        self.shared.lock().rejected
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            self.append(event_type(record), record);
        }
        self.publish()
    }

    fn flush(&mut self) -> Result<()> {
        self.publish()
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        let status = match outcome {
            RunOutcome::Completed => "completed",
            RunOutcome::Failed => "failed",
        };
        let finished = Record::new(self.identity.rank).with_field("status", status);
        self.append("training_finished", &finished);
        let published = self.publish();
        let deadline = Instant::now() + self.shutdown_timeout;
        let mut state = self.shared.lock();
        state.deadline = Some(deadline);
        self.shared.wake.notify_all();
        while !state.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.shared.wait(state, left);
        }
        let (stopped, drained) = (state.stopped, state.drained);
        drop(state);
        if stopped {
            if let Some(sender) = self.sender.take() {
                let _ = sender.join();
            }
        }
        published?;
        if drained {
            // Everything was delivered: the spool has served its purpose.
            let _ = std::fs::remove_file(self.spool.path());
            let _ = std::fs::remove_file(&self.offset_path);
            Ok(())
        } else {
            Err(Error::Sink {
                sink: "http".into(),
                message: format!(
                    "messages not yet delivered stay in {}; a logger started with run id `{}` \
                     sends them",
                    self.spool.path().display(),
                    self.identity.run_id
                ),
            })
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Dropped without close (the worker gave up): let the sender thread end.
        let mut state = self.shared.lock();
        state.deadline.get_or_insert_with(Instant::now);
        drop(state);
        self.shared.wake.notify_all();
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

fn read_offset(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The sender thread: reads the spool in order and delivers it.
struct Sender {
    url: reqwest::Url,
    token: Option<Secret>,
    options: HttpOptions,
    shared: Arc<Shared>,
    spool_path: PathBuf,
    offset_path: PathBuf,
    dead_path: PathBuf,
    identity: Arc<Identity>,
}

/// Lines read from the spool but not yet acknowledged.
#[derive(Default)]
struct Window {
    lines: std::collections::VecDeque<Vec<u8>>,
    /// Offset of the first line in `lines` (everything before it is acknowledged).
    acked: u64,
    /// Offset up to which the file has been read into `lines`.
    read: u64,
}

impl Sender {
    fn run(self, start: u64) {
        let mut window = Window {
            acked: start,
            read: start,
            ..Window::default()
        };
        let drained = self.deliver(&mut window);
        let mut state = self.shared.lock();
        state.stopped = true;
        state.drained = drained;
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Delivers until closed; returns whether everything spooled was acknowledged.
    fn deliver(&self, window: &mut Window) -> bool {
        let client = match reqwest::blocking::Client::builder().build() {
            Ok(client) => client,
            Err(e) => {
                eprintln!(
                    "trainlog: http: could not create the HTTP client: {e}; messages stay spooled"
                );
                return false;
            }
        };
        let mut reader = None;
        let mut backoff = Backoff::new(self.options.retry_base, self.options.retry_max);
        let mut rejected_once = false;
        let mut first_waiting: Option<Instant> = None;
        let mut last_sent = Instant::now();
        loop {
            // Wait until a batch is due, the run closes, or a heartbeat is due.
            let (spooled, deadline) = {
                let mut state = self.shared.lock();
                loop {
                    let unsent =
                        window.lines.len() as u64 + state.spooled.saturating_sub(window.read);
                    if unsent > 0 && first_waiting.is_none() {
                        first_waiting = Some(Instant::now());
                    }
                    let full = window.lines.len() >= self.options.batch_size
                        || state.spooled > window.read && state.spooled - window.read >= 64 * 1024;
                    let due =
                        first_waiting.is_some_and(|t| t.elapsed() >= self.options.batch_interval);
                    if state.deadline.is_some() || (unsent > 0 && (full || due)) {
                        break;
                    }
                    let heartbeat_in = self
                        .options
                        .heartbeat
                        .map(|every| every.saturating_sub(last_sent.elapsed()));
                    if heartbeat_in.is_some_and(|d| d.is_zero()) {
                        break;
                    }
                    let batch_in = first_waiting
                        .map(|t| self.options.batch_interval.saturating_sub(t.elapsed()));
                    let wait = [heartbeat_in, batch_in]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(Duration::from_secs(3600));
                    state = self.shared.wait(state, wait);
                }
                (state.spooled, state.deadline)
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return window.lines.is_empty() && window.read >= spooled;
            }
            if let Err(e) = self.fill(window, &mut reader, spooled) {
                eprintln!("trainlog: http: could not read the spool: {e}");
                return false;
            }
            if window.lines.is_empty() {
                if deadline.is_some() {
                    return true;
                }
                if self.options.heartbeat.is_some()
                    && last_sent.elapsed() >= self.options.heartbeat.unwrap_or_default()
                {
                    self.heartbeat(&client);
                    last_sent = Instant::now();
                }
                first_waiting = None;
                continue;
            }
            let count = if self.options.single_record {
                1
            } else {
                window.lines.len().min(self.options.batch_size)
            };
            let (verdict, refusal) = self.send(&client, window, count, deadline);
            match verdict {
                Verdict::Done => {
                    if backoff.failures() > 0 {
                        eprintln!(
                            "trainlog: http: delivering again after {} failed attempts",
                            backoff.failures()
                        );
                    }
                    backoff.reset();
                    self.ack(window, count);
                    last_sent = Instant::now();
                    if window.lines.is_empty() && window.read >= spooled {
                        first_waiting = None;
                    }
                }
                Verdict::Reject => {
                    if let (false, Some((status, text))) = (rejected_once, refusal) {
                        rejected_once = true;
                        eprintln!(
                            "trainlog: http: {} refused {count} messages with status {status}: \
                             {text}; they are kept in {} and not sent again (further refusals \
                             are counted, not printed)",
                            self.url,
                            self.dead_path.display()
                        );
                    }
                    self.dead_letter(window, count);
                    self.shared.lock().rejected += count as u64;
                    self.ack(window, count);
                }
                Verdict::Retry { after } => {
                    if backoff.failures() == 0 {
                        eprintln!(
                            "trainlog: http: delivery to {} failed; messages stay spooled in {} \
                             and are retried (further failures are counted, not printed)",
                            self.url,
                            self.spool_path.display()
                        );
                    }
                    let delay = after.unwrap_or_else(|| backoff.next_delay());
                    if after.is_some() {
                        backoff.next_delay();
                    }
                    self.sleep(delay);
                }
            }
        }
    }

    /// Reads complete lines from the spool until the window holds a few batches.
    fn fill(
        &self,
        window: &mut Window,
        reader: &mut Option<File>,
        spooled: u64,
    ) -> std::io::Result<()> {
        let want = self.options.batch_size * 4;
        if window.lines.len() >= want || window.read >= spooled {
            return Ok(());
        }
        let file = match reader {
            Some(f) => f,
            None => reader.insert(File::open(&self.spool_path)?),
        };
        file.seek(SeekFrom::Start(window.read))?;
        // About what the wanted lines take; the rest is read again next time.
        let mut len = (spooled - window.read).min(256 * 1024) as usize;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf)?;
        if !buf.contains(&b'\n') {
            // One message larger than the chunk: read up to `spooled`, a line boundary.
            len = (spooled - window.read) as usize;
            buf.resize(len, 0);
            file.seek(SeekFrom::Start(window.read))?;
            file.read_exact(&mut buf)?;
        }
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            window.lines.push_back(buf[start..start + nl].to_vec());
            start += nl + 1;
            if window.lines.len() >= want {
                break;
            }
        }
        window.read += start as u64;
        Ok(())
    }

    /// One request with the first `count` lines of the window.
    /// Returns the verdict, and for a refusal the status and the server's message.
    fn send(
        &self,
        client: &reqwest::blocking::Client,
        window: &Window,
        count: usize,
        deadline: Option<Instant>,
    ) -> (Verdict, Option<(u16, String)>) {
        let lines: Vec<&[u8]> = window
            .lines
            .iter()
            .take(count)
            .map(|l| l.as_slice())
            .collect();
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
        if self.options.single_record {
            body.extend_from_slice(lines[0]);
        } else {
            body.push(b'[');
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(line);
            }
            body.push(b']');
        }
        let mut timeout = self.options.request_timeout;
        if let Some(d) = deadline {
            timeout = timeout.min(
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            );
        }
        let mut request = client
            .post(self.url.clone())
            .timeout(timeout)
            .header("Content-Type", "application/json")
            .header(
                "Idempotency-Key",
                format!("{}+{}", message_id(lines[0]), count),
            );
        if let Some(Secret(token)) = &self.token {
            request = request.bearer_auth(token);
        }
        match request.body(body).send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let verdict = classify(status, retry_after.as_deref());
                let refusal = (verdict == Verdict::Reject).then(|| {
                    let text = response.text().unwrap_or_default();
                    (status, text.chars().take(300).collect())
                });
                (verdict, refusal)
            }
            Err(_) => (Verdict::Retry { after: None }, None),
        }
    }

    /// Drops the first `count` lines from the window and records the new offset.
    fn ack(&self, window: &mut Window, count: usize) {
        for line in window.lines.drain(..count) {
            window.acked += line.len() as u64 + 1;
        }
        // Write-then-rename, so a crash never leaves a half-written offset.
        let tmp = self.offset_path.with_extension("offset.tmp");
        if std::fs::write(&tmp, window.acked.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.offset_path);
        }
    }

    fn dead_letter(&self, window: &Window, count: usize) {
        let mut text = Vec::new();
        for line in window.lines.iter().take(count) {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &text));
        if let Err(e) = written {
            eprintln!(
                "trainlog: http: could not write {}: {e}",
                self.dead_path.display()
            );
        }
    }

    fn heartbeat(&self, client: &reqwest::blocking::Client) {
        let id = &self.identity;
        let mut timestamps = TimestampFormatter::default();
        let body = serde_json::json!({
            "project_name": id.project,
            "run_id": id.run_id,
            "event_type": "heartbeat",
            "timestamp": timestamps.format(SystemTime::now()),
            "rank": id.rank,
            "step": null,
            "data": {},
        });
        let body = if self.options.single_record {
            body
        } else {
            serde_json::json!([body])
        };
        let mut request = client
            .post(self.url.clone())
            .timeout(self.options.request_timeout)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(Secret(token)) = &self.token {
            request = request.bearer_auth(token);
        }
        // Best effort: a missed heartbeat is not worth a retry.
        let _ = request.send();
    }

    /// Sleeps, waking early when the run closes (and never past its deadline).
    fn sleep(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.shared.lock();
        loop {
            let mut left = until.saturating_duration_since(Instant::now());
            if let Some(d) = state.deadline {
                left = left.min(d.saturating_duration_since(Instant::now()));
            }
            if left.is_zero() {
                return;
            }
            state = self.shared.wait(state, left);
        }
    }
}

/// The `message_id` of a spooled line (for the batch's idempotency key).
fn message_id(line: &[u8]) -> String {
    // Lines start with {"message_id":"..." as written by `append`.
    let text = std::str::from_utf8(line).unwrap_or("");
    text.strip_prefix("{\"message_id\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_owned()
}
