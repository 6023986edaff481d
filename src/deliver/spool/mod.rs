//! The delivery machinery network sinks share: a spool file on disk, read in order by a
//! sender thread ([`sender`]) that hands batches to a [`Deliver`] implementation, with
//! retries, exponential backoff, `Retry-After`, dead letters and a close that waits for
//! progress ([`progress`] shows it on stderr).
//!
//! A sink appends one line per message to `<dir>/<host>_<port>-<hash>_rank<r>.jsonl` (one
//! file per destination and rank, see [`spool_path`]), after a session line that names
//! its destination and identity; the sender records in `….offset` how far delivery got
//! (write, then rename). So training never waits for the network, memory stays bounded
//! while the far side is away, and messages survive a crash: the next logger for the same
//! destination, or `trainlog sync`, delivers what is left, as the session it belongs to.
//! Lines refused for good go to `….dead.jsonl`.

mod progress;
mod sender;

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::progress::{group, Progress};
use self::sender::Sender;
use super::net::without_password;
use super::DeliveryOptions;
use crate::deliver::retry::Verdict;
use crate::file::RecordFile;
use crate::lock::FileLock;
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

/// Batching settings of a spool (the backend's), and the close and retry settings every
/// network backend's options carry ([`DeliveryOptions`], taken as they are).
#[derive(Debug, Clone)]
pub(crate) struct SpoolOptions {
    pub(crate) batch_size: usize,
    pub(crate) batch_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) delivery: DeliveryOptions,
}

/// State shared by the sink (producer), its sender thread and the closing thread.
#[derive(Debug, Default)]
struct State {
    /// Bytes of the spool file that are complete on disk.
    spooled: u64,
    /// Messages (lines but session lines, which only say where the next ones go: the far
    /// side never sees them) complete on disk and not acknowledged when the spool was
    /// opened, plus the messages written since; and those acknowledged (delivered or
    /// refused) since. Every count shown to a person is of messages, as the far side
    /// counts them (a run's start and end included).
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
    /// Records in the messages the server refused for good (now in the dead-letter file),
    /// and those messages.
    rejected_records: u64,
    rejected_messages: u64,
    /// Where lines go now, and what was delivered per destination.
    target: String,
    delivered: Vec<Delivered>,
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

/// Messages delivered to one destination, and the user's records among them (the rest
/// are the sink's own: a run's start and end, heartbeats, continuation lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Where they went (a URL without credentials).
    pub target: String,
    /// Messages delivered.
    pub messages: u64,
    /// Records of the user's among them.
    pub records: u64,
}

/// What a closed spool delivered, and what it left.
#[derive(Debug, Clone, Default)]
pub(crate) struct Closed {
    /// What was delivered, per destination.
    pub(crate) delivered: Vec<Delivered>,
    /// Messages refused for good (in the dead-letter file), and the records in them.
    pub(crate) rejected_messages: u64,
    pub(crate) rejected_records: u64,
    /// Messages still spooled (0 when the spool was delivered and deleted).
    pub(crate) pending: u64,
}

/// The producer's side: append lines, publish them, close.
#[derive(Debug)]
pub(crate) struct Spool {
    name: &'static str,
    file: RecordFile,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    /// Close gives up when nothing was delivered for this long, and never waits longer
    /// than `close_cap` in all.
    stall: Duration,
    close_cap: Duration,
    offset_path: PathBuf,
    dead_path: PathBuf,
    /// This spool is the file's only user (see `crate::lock`).
    _lock: FileLock,
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
    let hash = stable_hash(&shown);
    dir.join(format!("{host}-{:08x}_rank{rank}.jsonl", hash as u32))
}

/// FNV-1a of `text`: a hash that stays the same across Rust releases and processes
/// (std's does not promise to), for names on disk and what the spool records instead of
/// a secret.
pub(crate) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
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
        // A session line is not a message (see `State::lines`).
        let mut state = spool.shared.lock();
        state.lines = state.lines.saturating_sub(1);
        drop(state);
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
        // One logger (or `trainlog sync`) per spool: two would send each other's
        // messages and count them twice. Taken before the file is touched.
        let lock = FileLock::take(spool_path)?;
        let file = RecordFile::append_lines(name, spool_path.to_path_buf())?;
        let spooled = file.file_len();
        let (sent, session_at) = read_offset(&offset_path);
        let sent = sent.min(spooled);
        // The lines after `sent` belong to the session that began before them.
        let session = session_at
            .filter(|&at| at < sent)
            .and_then(|at| session_line_at(spool_path, at).map(|s| (at, s)));
        let unsent_lines =
            count_messages(spool_path, sent).map_err(|e| Error::io("read", spool_path, e))?;
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
        let (stall, close_cap) = (options.delivery.stall, options.delivery.close_cap);
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
            .spawn(move || sender.run(sent, session))
            .map_err(|source| Error::Thread {
                what: format!("the {name} sender"),
                source,
            })?;
        Ok(Spool {
            name,
            file,
            shared,
            sender: Some(handle),
            stall,
            close_cap,
            offset_path,
            dead_path,
            _lock: lock,
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
        self.shared.lock().rejected_records + self.file.lost()
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
            let stalled = now.duration_since(last) >= self.stall;
            if stalled || now.duration_since(start) >= self.close_cap {
                gave_up = Some(if stalled {
                    format!("nothing was delivered for {:?}", self.stall)
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
            rejected_messages: state.rejected_messages,
            rejected_records: state.rejected_records,
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

/// Complete lines in `path` after byte `from` that are messages (not session lines).
fn count_messages(path: &Path, from: u64) -> std::io::Result<u64> {
    let mut file = std::io::BufReader::with_capacity(64 * 1024, File::open(path)?);
    file.seek(SeekFrom::Start(from))?;
    let mut line = Vec::new();
    let mut messages = 0;
    loop {
        line.clear();
        if std::io::BufRead::read_until(&mut file, b'\n', &mut line)? == 0 {
            return Ok(messages);
        }
        if line.ends_with(b"\n") && !is_session(&line) {
            messages += 1;
        }
    }
}

/// Whether a spool line is a session line.
fn is_session(line: &[u8]) -> bool {
    line.starts_with(SESSION_PREFIX)
}
