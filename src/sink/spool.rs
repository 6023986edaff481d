//! The delivery machinery network sinks share: a spool file on disk, read in order by a
//! sender thread that hands batches to a [`Deliver`] implementation, with retries,
//! exponential backoff, `Retry-After`, dead letters and a bounded close.
//!
//! A sink appends one line per message to `<dir>/<stem>.jsonl` and publishes it; the
//! sender records in `<stem>.offset` how far delivery got (write, then rename). So training
//! never waits for the network, memory stays bounded while the far side is away, and
//! messages survive a crash: a sink opened later with the same stem delivers what is left.
//! Lines refused for good go to `<stem>.dead.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::file::RecordFile;
use super::net::without_password;
use crate::retry::{Backoff, Verdict};
use crate::{Error, Result};

/// The outcome of one delivery attempt.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// What to do next.
    pub(crate) verdict: Verdict,
    /// How many of the offered lines this attempt covered (at least 1).
    pub(crate) count: usize,
    /// For a refusal: the status and the far side's message, reported once.
    pub(crate) refusal: Option<(u16, String)>,
}

/// Sends spooled lines somewhere. Runs on the sender thread.
pub(crate) trait Deliver: Send + 'static {
    /// Where lines go now, for messages (never containing credentials).
    fn target(&self) -> String;

    /// A session line starts the lines one logger spooled: from here on, deliver to the
    /// destination and as the identity it names. An error (say, a destination this
    /// deliverer cannot reach) stops delivery; the lines stay spooled.
    fn session(&mut self, session: &serde_json::Value) -> std::result::Result<(), String>;

    /// Delivers a prefix of `lines` (oldest first, never a session line) within `timeout`.
    fn deliver(&mut self, lines: &[&[u8]], timeout: Duration) -> Delivery;

    /// Receives the spool's [`Pulse`], for deliverers that make several calls per batch.
    fn set_pulse(&mut self, pulse: Pulse) {
        let _ = pulse;
    }

    /// How many of the user's records `line` carries, for the `lost` and delivered counts:
    /// 0 for the sink's own messages (run start and end, continuation lines).
    fn records_in(&self, line: &[u8]) -> u64 {
        let _ = line;
        1
    }

    /// Sends a liveness message, best effort (only with a heartbeat interval).
    fn heartbeat(&mut self, timeout: Duration) {
        let _ = timeout;
    }
}

/// How much of the spool the sender reads at a time (more only for a larger message).
const READ_CHUNK: u64 = 256 * 1024;

/// What a session line starts with: `{"session":{...}}`.
const SESSION_PREFIX: &[u8] = b"{\"session\":";

/// Default overall cap on delivering at close while the far side makes progress.
pub(crate) const DEFAULT_CLOSE_CAP: Duration = Duration::from_secs(120);
/// Default time without progress after which close gives up.
pub(crate) const DEFAULT_STALL: Duration = Duration::from_secs(4);

/// Batching, retry and shutdown settings of a spool.
#[derive(Debug, Clone)]
pub(crate) struct SpoolOptions {
    pub(crate) batch_size: usize,
    pub(crate) batch_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    /// Close gives up when nothing was delivered for this long.
    pub(crate) stall_timeout: Duration,
    /// Close never waits longer than this in all.
    pub(crate) close_cap: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
}

/// State shared by the sink (producer), its sender thread and the closing thread.
#[derive(Debug, Default)]
struct State {
    /// Bytes of the spool file that are complete on disk.
    spooled: u64,
    /// Lines complete on disk and not acknowledged when the spool was opened, plus the
    /// lines written since; and the lines acknowledged (delivered or refused) since.
    lines: u64,
    acked_lines: u64,
    /// When the far side last acknowledged a batch (or answered a call, see [`Pulse`]).
    last_ack: Option<Instant>,
    /// Close began: send what is spooled without waiting for batches to fill.
    closing: bool,
    /// Set when close gives up (or the spool is dropped): stop now.
    deadline: Option<Instant>,
    /// The sender thread has stopped.
    stopped: bool,
    /// The spool was delivered completely when the sender stopped.
    drained: bool,
    /// Records in the messages the server refused for good (now in the dead-letter file).
    rejected: u64,
    /// Where lines go now, and records delivered per destination.
    target: String,
    delivered: Vec<(String, u64)>,
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

/// Tells a closing spool that the far side answered: a deliverer that needs several
/// calls per batch (MLflow creates the experiment and the run first) beats it on each
/// answered call, so a slow but working server is not taken for a stalled one.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "mlflow"), allow(dead_code))]
pub(crate) struct Pulse(Arc<Shared>);

#[cfg_attr(not(feature = "mlflow"), allow(dead_code))]
impl Pulse {
    pub(crate) fn beat(&self) {
        self.0.lock().last_ack = Some(Instant::now());
    }
}

/// What a closed spool delivered, and what it left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Closed {
    /// Records delivered per destination.
    pub(crate) delivered: Vec<(String, u64)>,
    /// Lines refused for good (in the dead-letter file).
    pub(crate) rejected: u64,
    /// Lines still spooled (0 when the spool was delivered and deleted).
    pub(crate) pending: u64,
}

/// The producer's side: append lines, publish them, close.
#[derive(Debug)]
pub(crate) struct Spool {
    name: &'static str,
    file: RecordFile,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    stall_timeout: Duration,
    close_cap: Duration,
    offset_path: PathBuf,
    dead_path: PathBuf,
}

/// The spool file for a destination and rank under a spool directory:
/// `<host>_<port>-<hash>_rank<r>.jsonl`. One file per destination and rank, named the
/// same by every logger that sends there (no time in it), so a logger delivers what an
/// earlier one left for the same destination before its own lines, and a spool left for
/// another destination never blocks it.
pub(crate) fn spool_path(dir: &Path, destination: &reqwest::Url, rank: u32) -> PathBuf {
    let shown = without_password(destination);
    let host: String = format!(
        "{}_{}",
        destination.host_str().unwrap_or("host"),
        destination.port_or_known_default().unwrap_or(0)
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        }
    })
    .take(60)
    .collect();
    // FNV-1a: a stable hash (std's is not guaranteed to stay the same across releases).
    let hash = shown.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir.join(format!("{host}-{:08x}_rank{rank}.jsonl", hash as u32))
}

impl Spool {
    /// Opens (or resumes) the spool file of `destination` and `rank` under `dir` (see
    /// [`spool_path`]), appends `session` as the line that starts this logger's messages,
    /// and starts the sender thread. What an earlier logger left in the file is delivered
    /// first, as the identity its own session line names.
    pub(crate) fn open(
        name: &'static str,
        dir: &Path,
        destination: &reqwest::Url,
        rank: u32,
        options: SpoolOptions,
        deliver: impl Deliver,
        session: &serde_json::Value,
    ) -> Result<Spool> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create spool directory", dir, e))?;
        let path = spool_path(dir, destination, rank);
        let mut spool = Self::start(name, &path, options, deliver, true)?;
        let out = spool.file.buffer();
        out.extend_from_slice(SESSION_PREFIX);
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, session);
        out.extend_from_slice(b"}\n");
        spool.file.end_record();
        spool.publish()?;
        Ok(spool)
    }

    /// Opens an existing spool file to deliver what it holds (`trainlog sync`).
    pub(crate) fn resume(
        name: &'static str,
        path: &Path,
        options: SpoolOptions,
        deliver: impl Deliver,
    ) -> Result<Spool> {
        Self::start(name, path, options, deliver, false)
    }

    fn start(
        name: &'static str,
        spool_path: &Path,
        options: SpoolOptions,
        mut deliver: impl Deliver,
        knows_destination: bool,
    ) -> Result<Spool> {
        let offset_path = spool_path.with_extension("offset");
        let dead_path = spool_path.with_extension("dead.jsonl");
        let file = RecordFile::append_lines(name, spool_path.to_path_buf())?;
        let spooled = file.file_len();
        let (sent, session_at) = read_offset(&offset_path);
        let sent = sent.min(spooled);
        // The lines after `sent` belong to the session that began before them.
        let session = session_at
            .filter(|&at| at < sent)
            .and_then(|at| session_line_at(spool_path, at).map(|s| (at, s)));
        let unsent_lines =
            count_lines(spool_path, sent).map_err(|e| Error::io("read", spool_path, e))?;
        if sent < spooled && knows_destination {
            // (`trainlog sync` reports for itself.)
            eprintln!(
                "trainlog: {name}: sending {} messages left earlier in {} first",
                group(unsent_lines),
                spool_path.display()
            );
        }
        let shared = Arc::new(Shared::default());
        {
            let mut state = shared.lock();
            state.spooled = spooled;
            state.lines = unsent_lines;
            state.target = deliver.target();
        }
        let (stall_timeout, close_cap) = (options.stall_timeout, options.close_cap);
        deliver.set_pulse(Pulse(shared.clone()));
        let sender = Sender {
            name,
            knows_destination,
            deliver,
            options,
            shared: shared.clone(),
            spool_path: spool_path.to_path_buf(),
            offset_path: offset_path.clone(),
            dead_path: dead_path.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("trainlog-{name}-send"))
            .spawn(move || sender.run(sent, session, knows_destination))
            .map_err(|e| Error::Config(format!("could not start the {name} sender thread: {e}")))?;
        Ok(Spool {
            name,
            file,
            shared,
            sender: Some(handle),
            stall_timeout,
            close_cap,
            offset_path,
            dead_path,
        })
    }

    /// The buffer to append one message line (with its newline) to.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        self.file.buffer()
    }

    /// Marks the end of the line just appended.
    pub(crate) fn end_record(&mut self) {
        self.file.end_record();
    }

    /// Writes buffered lines to the spool file and hands them to the sender.
    pub(crate) fn publish(&mut self) -> Result<()> {
        let before = self.file.records_written();
        let result = self.file.write_out();
        let mut state = self.shared.lock();
        state.spooled = self.file.file_len();
        state.lines += self.file.records_written() - before;
        drop(state);
        self.shared.wake.notify_all();
        result
    }

    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    pub(crate) fn dead_letter_path(&self) -> &Path {
        &self.dead_path
    }

    /// Records in the lines refused for good so far (now in the dead-letter file), plus
    /// the lines that could not even be written to the spool file.
    pub(crate) fn rejected(&self) -> u64 {
        self.shared.lock().rejected + self.file.lost()
    }

    /// The longest close may take: the overall cap, plus a second to stop.
    pub(crate) fn close_budget(&self) -> Duration {
        self.close_cap + Duration::from_secs(1)
    }

    /// Publishes, then lets the sender deliver for as long as the far side makes
    /// progress: it gives up after the stall timeout without an acknowledged batch, or
    /// at the overall cap. After a second it shows what is pending on stderr. A fully
    /// delivered spool is deleted; otherwise the error says how many messages wait where,
    /// and `resume_hint` how to send them.
    pub(crate) fn close(&mut self, resume_hint: &str) -> (Closed, Result<()>) {
        let published = self.publish();
        if published.is_err() {
            // Not even on disk (a full disk at exit): these lines are lost.
            self.file.abandon_pending();
        }
        let start = Instant::now();
        let mut progress = Progress::new(self.name);
        let mut state = self.shared.lock();
        state.closing = true;
        self.shared.wake.notify_all();
        let mut gave_up = None;
        while !state.stopped {
            let now = Instant::now();
            let last = state.last_ack.map_or(start, |t| t.max(start));
            let stalled = now.duration_since(last) >= self.stall_timeout;
            if stalled || now.duration_since(start) >= self.close_cap {
                gave_up = Some(if stalled {
                    format!("nothing was delivered for {:?}", self.stall_timeout)
                } else {
                    format!("still sending after {:?}", self.close_cap)
                });
                state.deadline = Some(now);
                self.shared.wake.notify_all();
                break;
            }
            let pending = state.lines.saturating_sub(state.acked_lines);
            progress.show(now.duration_since(start), pending, &state.target);
            state = self.shared.wait(state, Duration::from_millis(100));
        }
        // A sender stopped by the deadline ends at its next check; one stuck in a request
        // is left to its timeout rather than holding the exit.
        let until = Instant::now() + Duration::from_millis(500);
        while !state.stopped && Instant::now() < until {
            state = self.shared.wait(state, Duration::from_millis(50));
        }
        let (stopped, drained) = (state.stopped, state.drained);
        let pending = state.lines.saturating_sub(state.acked_lines);
        let closed = Closed {
            delivered: state.delivered.clone(),
            rejected: state.rejected,
            pending: if drained { 0 } else { pending },
        };
        let target = state.target.clone();
        drop(state);
        progress.finish(drained, &target);
        if stopped {
            if let Some(sender) = self.sender.take() {
                let _ = sender.join();
            }
        }
        if let Err(e) = published {
            return (closed, Err(e));
        }
        if drained {
            let _ = std::fs::remove_file(self.file.path());
            let _ = std::fs::remove_file(&self.offset_path);
            return (closed, Ok(()));
        }
        let why = gave_up.unwrap_or_else(|| "the sender stopped".into());
        let message = format!(
            "{why}; {} messages stay in {}; {resume_hint}",
            group(closed.pending),
            self.file.path().display()
        );
        // The worker reports the error (once, with the sink's name).
        let error = Error::Sink {
            sink: self.name.into(),
            message,
        };
        (closed, Err(error))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Dropped without close (the worker gave up): let the sender thread end.
        self.shared.lock().deadline.get_or_insert_with(Instant::now);
        self.shared.wake.notify_all();
    }
}

/// The line on stderr that says what close is waiting for: shown after a second, updated
/// in place on a terminal, every ten seconds otherwise.
struct Progress {
    name: &'static str,
    terminal: bool,
    shown: Option<Instant>,
}

impl Progress {
    fn new(name: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress {
            name,
            terminal: std::io::stderr().is_terminal(),
            shown: None,
        }
    }

    fn show(&mut self, waited: Duration, pending: u64, target: &str) {
        if waited < Duration::from_secs(1) {
            return;
        }
        let every = if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        if self.shown.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.shown = Some(Instant::now());
        let line = format!(
            "trainlog: {}: sending {} pending messages to {target} …",
            self.name,
            group(pending)
        );
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the line: says that everything went when it did, else leaves the last count
    /// for the message that follows.
    fn finish(&self, drained: bool, target: &str) {
        if self.shown.is_none() {
            return;
        }
        let done = format!(
            "trainlog: {}: delivered every pending message to {target}",
            self.name
        );
        match (self.terminal, drained) {
            (true, true) => eprintln!("\r\x1b[2K{done}"),
            (true, false) => eprintln!(),
            (false, true) => eprintln!("{done}"),
            (false, false) => {}
        }
    }
}

/// `1602` as `1,602`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The offset file: how far delivery got, and where the session line of the lines
/// after that starts (`<acked> <session offset>`).
fn read_offset(path: &Path) -> (u64, Option<u64>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    (
        numbers.next().flatten().unwrap_or(0),
        numbers.next().flatten(),
    )
}

/// The line that starts at `offset` in `path`, if it is a session line.
fn session_line_at(path: &Path, offset: u64) -> Option<serde_json::Value> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut std::io::BufReader::new(file), b'\n', &mut line).ok()?;
    if !is_session(&line) {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .map(|v| v["session"].clone())
}

/// Complete lines in `path` after byte `from`.
fn count_lines(path: &Path, from: u64) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(lines),
            n => lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
        }
    }
}

/// The sender thread: reads the spool in order and delivers it.
struct Sender<D> {
    name: &'static str,
    /// Whether the lines before the next session line have a destination.
    knows_destination: bool,
    deliver: D,
    options: SpoolOptions,
    shared: Arc<Shared>,
    spool_path: PathBuf,
    offset_path: PathBuf,
    dead_path: PathBuf,
}

/// Lines read from the spool but not yet acknowledged.
#[derive(Default)]
struct Window {
    lines: std::collections::VecDeque<Vec<u8>>,
    /// Offset of the first line in `lines` (everything before it is acknowledged).
    acked: u64,
    /// Offset up to which the file has been read into `lines`.
    read: u64,
    /// Offset of the session line the acknowledged lines belong to.
    session_at: Option<u64>,
}

fn is_session(line: &[u8]) -> bool {
    line.starts_with(SESSION_PREFIX)
}

impl<D: Deliver> Sender<D> {
    /// Delivers from byte `start`, in `session` (its offset and content) when the lines
    /// there continue one that began earlier. Without a session, lines go to the
    /// deliverer's own destination, if it has one (`knows_destination`).
    fn run(
        mut self,
        start: u64,
        session: Option<(u64, serde_json::Value)>,
        knows_destination: bool,
    ) {
        let mut window = Window {
            acked: start,
            read: start,
            session_at: None,
            ..Window::default()
        };
        self.knows_destination = knows_destination;
        let mut usable = true;
        if let Some((at, session)) = session {
            window.session_at = Some(at);
            usable = self.begin_session(&session);
        }
        let drained = usable && self.deliver_all(&mut window);
        let mut state = self.shared.lock();
        state.stopped = true;
        state.drained = drained;
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Delivers until closed; returns whether everything spooled was acknowledged.
    fn deliver_all(&mut self, window: &mut Window) -> bool {
        let name = self.name;
        let mut reader = None;
        let mut backoff = Backoff::new(self.options.retry_base, self.options.retry_max);
        let mut rejected_once = false;
        let mut first_waiting: Option<Instant> = None;
        let mut last_sent = Instant::now();
        let mut attempted: Option<usize> = None;
        loop {
            // Wait until a batch is due, the run closes, or a heartbeat is due.
            let (spooled, closing, deadline) = {
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
                    if state.closing || state.deadline.is_some() || (unsent > 0 && (full || due)) {
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
                (state.spooled, state.closing, state.deadline)
            };
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return window.lines.is_empty() && window.read >= spooled;
            }
            if let Err(e) = self.fill(window, &mut reader, spooled) {
                eprintln!("trainlog: {name}: could not read the spool: {e}");
                return false;
            }
            if window.lines.is_empty() {
                if closing {
                    return true;
                }
                if self.options.heartbeat.is_some()
                    && last_sent.elapsed() >= self.options.heartbeat.unwrap_or_default()
                {
                    self.deliver.heartbeat(self.options.request_timeout);
                    last_sent = Instant::now();
                }
                first_waiting = None;
                continue;
            }
            if is_session(&window.lines[0]) {
                let session: serde_json::Value =
                    serde_json::from_slice(&window.lines[0]).unwrap_or_default();
                if !self.begin_session(&session["session"]) {
                    return false;
                }
                window.session_at = Some(window.acked);
                self.ack(window, 1, 0);
                continue;
            }
            if !self.knows_destination {
                eprintln!(
                    "trainlog: {name}: {} holds messages without a session line before them: \
                     cannot tell where they go",
                    self.spool_path.display()
                );
                return false;
            }
            // A batch never crosses into the next session. A batch that was attempted
            // keeps its members on retry (its idempotency key names them), even if more
            // lines arrived meanwhile.
            let in_session = window
                .lines
                .iter()
                .position(|l| is_session(l))
                .unwrap_or(window.lines.len());
            let offered = in_session.min(attempted.unwrap_or(self.options.batch_size));
            attempted = Some(offered);
            let lines: Vec<&[u8]> = window
                .lines
                .iter()
                .take(offered)
                .map(|l| l.as_slice())
                .collect();
            let mut timeout = self.options.request_timeout;
            if closing {
                // A request that hangs longer than the stall timeout would only hold the
                // exit: give the retry a chance instead.
                timeout = timeout.min(self.options.stall_timeout);
            }
            let Delivery {
                verdict,
                count,
                refusal,
            } = self.deliver.deliver(&lines, timeout);
            let count = count.clamp(1, offered);
            let records: u64 = lines[..count]
                .iter()
                .map(|l| self.deliver.records_in(l))
                .sum();
            match verdict {
                Verdict::Done => {
                    attempted = None;
                    if backoff.failures() > 0 {
                        eprintln!(
                            "trainlog: {name}: delivering again after {} failed attempts",
                            backoff.failures()
                        );
                    }
                    backoff.reset();
                    self.ack(window, count, records);
                    last_sent = Instant::now();
                    if window.lines.is_empty() && window.read >= spooled {
                        first_waiting = None;
                    }
                }
                Verdict::Reject => {
                    attempted = None;
                    if let (false, Some((status, text))) = (rejected_once, refusal) {
                        rejected_once = true;
                        eprintln!(
                            "trainlog: {name}: {} refused {count} messages with status {status}: \
                             {text}; they are kept in {} and not sent again (further refusals \
                             are counted, not printed)",
                            self.deliver.target(),
                            self.dead_path.display()
                        );
                    }
                    self.dead_letter(window, count);
                    self.shared.lock().rejected += records;
                    self.ack(window, count, 0);
                }
                Verdict::Retry { after } => {
                    if backoff.failures() == 0 {
                        eprintln!(
                            "trainlog: {name}: delivery to {} failed; messages stay spooled in {} \
                             and are retried (further failures are counted, not printed)",
                            self.deliver.target(),
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

    /// Switches the deliverer to a session's destination; false (reported) when it
    /// cannot deliver there.
    fn begin_session(&mut self, session: &serde_json::Value) -> bool {
        match self.deliver.session(session) {
            Ok(()) => {
                self.shared.lock().target = self.deliver.target();
                self.knows_destination = true;
                true
            }
            Err(e) => {
                eprintln!(
                    "trainlog: {}: cannot deliver the messages spooled in {}: {e}",
                    self.name,
                    self.spool_path.display()
                );
                false
            }
        }
    }

    /// Reads complete lines from the spool until the window holds a few batches, and
    /// returns how many bytes it read.
    fn fill(
        &self,
        window: &mut Window,
        reader: &mut Option<File>,
        spooled: u64,
    ) -> std::io::Result<usize> {
        let want = self.options.batch_size * 4;
        if window.lines.len() >= want || window.read >= spooled {
            return Ok(0);
        }
        let file = match reader {
            Some(f) => f,
            None => reader.insert(File::open(&self.spool_path)?),
        };
        file.seek(SeekFrom::Start(window.read))?;
        // About what the wanted lines take; the rest is read again next time. A message
        // larger than the chunk is read by doubling the chunk until its end is in, so
        // memory follows the largest message, never the backlog.
        let available = spooled - window.read;
        let mut len = available.min(READ_CHUNK) as usize;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf)?;
        while !buf.contains(&b'\n') && (len as u64) < available {
            let more = (len as u64).min(available - len as u64) as usize;
            buf.resize(len + more, 0);
            file.read_exact(&mut buf[len..])?;
            len += more;
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
        Ok(buf.len())
    }

    /// Drops the first `count` lines from the window, records the new offset, and counts
    /// the `records` they carried as delivered to the current destination.
    fn ack(&self, window: &mut Window, count: usize, records: u64) {
        for line in window.lines.drain(..count) {
            window.acked += line.len() as u64 + 1;
        }
        // Write-then-rename, so a crash never leaves a half-written offset.
        let tmp = self.offset_path.with_extension("offset.tmp");
        let text = match window.session_at {
            Some(at) => format!("{} {at}", window.acked),
            None => window.acked.to_string(),
        };
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.offset_path);
        }
        let mut state = self.shared.lock();
        state.acked_lines += count as u64;
        state.last_ack = Some(Instant::now());
        if records > 0 {
            let target = state.target.clone();
            match state.delivered.iter_mut().find(|(t, _)| *t == target) {
                Some((_, n)) => *n += records,
                None => state.delivered.push((target, records)),
            }
        }
    }

    fn dead_letter(&self, window: &Window, count: usize) {
        let mut text = Vec::new();
        for line in window.lines.iter().take(count) {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        // Like every appender: a torn last line (a crash mid-write) is cut first.
        let written = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.dead_path)
            .and_then(|mut f| {
                crate::append::cut_torn_tail(&mut f)?;
                std::io::Write::write_all(&mut f, &text)
            });
        if let Err(e) = written {
            eprintln!(
                "trainlog: {}: could not write {}: {e}",
                self.name,
                self.dead_path.display()
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Nowhere;

    impl Deliver for Nowhere {
        fn target(&self) -> String {
            "nowhere".into()
        }
        fn session(&mut self, _session: &serde_json::Value) -> std::result::Result<(), String> {
            Ok(())
        }
        fn deliver(&mut self, _lines: &[&[u8]], _timeout: Duration) -> Delivery {
            Delivery {
                verdict: Verdict::Retry { after: None },
                count: 1,
                refusal: None,
            }
        }
    }

    #[test]
    fn a_large_message_is_read_without_reading_the_backlog_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool_path = dir.path().join("s.jsonl");
        let mut text = "x".repeat(300 * 1024);
        text.push('\n');
        let small = format!("{}\n", "y".repeat(2000));
        for _ in 0..5000 {
            text.push_str(&small);
        }
        std::fs::write(&spool_path, &text).unwrap();
        let sender = Sender {
            name: "test",
            knows_destination: true,
            deliver: Nowhere,
            options: SpoolOptions {
                batch_size: 1,
                batch_interval: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                heartbeat: None,
                stall_timeout: Duration::from_secs(1),
                close_cap: Duration::from_secs(1),
                retry_base: Duration::from_secs(1),
                retry_max: Duration::from_secs(1),
            },
            shared: Arc::new(Shared::default()),
            spool_path,
            offset_path: dir.path().join("s.offset"),
            dead_path: dir.path().join("s.dead.jsonl"),
        };
        let mut window = Window::default();
        let read = sender
            .fill(&mut window, &mut None, text.len() as u64)
            .unwrap();
        assert_eq!(window.lines[0].len(), 300 * 1024);
        assert!(window.lines.len() >= 2);
        // About twice the message at most, not the 10 MB behind it.
        assert!(read <= 2 * 300 * 1024, "read {read} bytes");
    }
}
