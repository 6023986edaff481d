//! The delivery machinery network sinks share: a spool file on disk, read in order by a
//! sender thread that hands batches to a [`Deliver`] implementation, with retries,
//! exponential backoff, `Retry-After`, dead letters and a bounded close.
//!
//! A sink appends one line per message to `<dir>/<stem>.jsonl` and publishes it; the
//! sender records in `<stem>.offset` how far delivery got (write, then rename). So training
//! never waits for the network, memory stays bounded while the far side is away, and
//! messages survive a crash: a sink opened later with the same stem delivers what is left.
//! Lines refused for good go to `<stem>.dead.jsonl`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::file::RecordFile;
use crate::retry::{Backoff, Verdict};
use crate::{Error, Result};

/// A credential that never shows up in `Debug` output or messages.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The first of `vars` that is set to something other than blanks.
pub(crate) fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// The HTTP client every network sink uses. Redirects are not followed: a 301/302 would
/// turn the POST into a GET with an empty body (and could carry credentials to another
/// origin), so a 3xx is a refusal the user has to fix by giving the final URL.
pub(crate) fn http_client() -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The refusal text for a response: the server's reply, or for a redirect where it
/// pointed (redacted) and why it was not followed.
pub(crate) fn refusal_text(status: u16, location: Option<&str>, body: &str) -> String {
    if (300..400).contains(&status) {
        let to = location
            .map(|l| match reqwest::Url::parse(l) {
                Ok(url) => redact_url(&url),
                Err(_) => l.chars().take(200).collect(),
            })
            .unwrap_or_else(|| "nowhere".into());
        return format!(
            "redirected to {to}; trainlog does not follow redirects (a redirected POST \
             loses its body): configure the final URL"
        );
    }
    body.chars().take(300).collect()
}

/// A URL fit for messages: user name and password, and query values whose names look
/// like credentials (`api_key`, `token`, `sig`, ...), replaced by `***`.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_password(None);
        let _ = u.set_username("***");
    }
    if u.query().is_some() {
        let secret = |k: &str| {
            let k = k.to_ascii_lowercase();
            [
                "key",
                "token",
                "secret",
                "pass",
                "auth",
                "sig",
                "credential",
            ]
            .iter()
            .any(|s| k.contains(s))
        };
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

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
    /// Where lines go, for messages (never containing credentials).
    fn target(&self) -> String;

    /// Delivers a prefix of `lines` (oldest first) within `timeout`.
    fn deliver(&mut self, lines: &[&[u8]], timeout: Duration) -> Delivery;

    /// How many of the user's records `line` carries, for the `lost` count when it is
    /// refused: 0 for the sink's own messages (run start and end, continuation lines).
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

/// How long a spool delivers at close when built without a logger (sinks made by hand).
pub(crate) const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(3);

/// Batching, retry and shutdown settings of a spool.
#[derive(Debug, Clone)]
pub(crate) struct SpoolOptions {
    pub(crate) batch_size: usize,
    pub(crate) batch_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
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
    /// Records in the messages the server refused for good (now in the dead-letter file).
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

/// The producer's side: append lines, publish them, close.
#[derive(Debug)]
pub(crate) struct Spool {
    name: &'static str,
    file: RecordFile,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
    offset_path: PathBuf,
    dead_path: PathBuf,
}

impl Spool {
    /// Opens (or resumes) `<dir>/<stem>.jsonl` and starts the sender thread.
    pub(crate) fn open(
        name: &'static str,
        dir: &Path,
        stem: &str,
        options: SpoolOptions,
        deliver: impl Deliver,
    ) -> Result<Spool> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create spool directory", dir, e))?;
        let spool_path = dir.join(format!("{stem}.jsonl"));
        let offset_path = dir.join(format!("{stem}.offset"));
        let dead_path = dir.join(format!("{stem}.dead.jsonl"));
        let file = RecordFile::append_lines(name, spool_path.clone())?;
        let spooled = file.file_len();
        let sent = read_offset(&offset_path).min(spooled);
        if sent < spooled {
            eprintln!(
                "trainlog: {name}: resuming {} unsent bytes spooled earlier in {}",
                spooled - sent,
                spool_path.display()
            );
        }
        let shared = Arc::new(Shared::default());
        shared.lock().spooled = spooled;
        let shutdown_timeout = options.shutdown_timeout;
        let sender = Sender {
            name,
            deliver,
            options,
            shared: shared.clone(),
            spool_path,
            offset_path: offset_path.clone(),
            dead_path: dead_path.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("trainlog-{name}-send"))
            .spawn(move || sender.run(sent))
            .map_err(|e| Error::Config(format!("could not start the {name} sender thread: {e}")))?;
        Ok(Spool {
            name,
            file,
            shared,
            sender: Some(handle),
            shutdown_timeout,
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
        self.file.write_out()?;
        self.shared.lock().spooled = self.file.file_len();
        self.shared.wake.notify_all();
        Ok(())
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

    /// Publishes, then lets the sender deliver for at most the shutdown timeout. A fully
    /// delivered spool is deleted; otherwise the error says where the rest waits.
    pub(crate) fn close(&mut self, resume_hint: &str) -> Result<()> {
        let published = self.publish();
        if published.is_err() {
            // Not even on disk (a full disk at exit): these lines are lost.
            self.file.abandon_pending();
        }
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
            let _ = std::fs::remove_file(self.file.path());
            let _ = std::fs::remove_file(&self.offset_path);
            Ok(())
        } else {
            Err(Error::Sink {
                sink: self.name.into(),
                message: format!(
                    "messages not yet delivered stay in {}; {resume_hint}",
                    self.file.path().display()
                ),
            })
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Dropped without close (the worker gave up): let the sender thread end.
        self.shared.lock().deadline.get_or_insert_with(Instant::now);
        self.shared.wake.notify_all();
    }
}

fn read_offset(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The sender thread: reads the spool in order and delivers it.
struct Sender<D> {
    name: &'static str,
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
}

impl<D: Deliver> Sender<D> {
    fn run(mut self, start: u64) {
        let mut window = Window {
            acked: start,
            read: start,
            ..Window::default()
        };
        let drained = self.deliver_all(&mut window);
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
                eprintln!("trainlog: {name}: could not read the spool: {e}");
                return false;
            }
            if window.lines.is_empty() {
                if deadline.is_some() {
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
            // A batch that was attempted keeps its members on retry (its idempotency key
            // names them), even if more lines arrived meanwhile.
            let offered = window
                .lines
                .len()
                .min(attempted.unwrap_or(self.options.batch_size));
            attempted = Some(offered);
            let lines: Vec<&[u8]> = window
                .lines
                .iter()
                .take(offered)
                .map(|l| l.as_slice())
                .collect();
            let mut timeout = self.options.request_timeout;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                timeout = timeout.min(left.max(Duration::from_millis(1)));
            }
            let Delivery {
                verdict,
                count,
                refusal,
            } = self.deliver.deliver(&lines, timeout);
            let count = count.clamp(1, offered);
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
                    self.ack(window, count);
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
                    let records: u64 = window
                        .lines
                        .iter()
                        .take(count)
                        .map(|l| self.deliver.records_in(l))
                        .sum();
                    self.shared.lock().rejected += records;
                    self.ack(window, count);
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

    #[test]
    fn urls_are_redacted_for_messages() {
        let url = reqwest::Url::parse(
            "https://alice:pa55@host:8443/p?api_key=k3y&run=7&X-Amz-Signature=s1g",
        )
        .unwrap();
        let shown = redact_url(&url);
        assert!(
            !shown.contains("pa55") && !shown.contains("k3y") && !shown.contains("s1g"),
            "{shown}"
        );
        assert!(
            shown.contains("host:8443/p") && shown.contains("run=7"),
            "{shown}"
        );
        let text = refusal_text(302, Some("https://u:pw@other/x?token=t0k"), "");
        assert!(text.contains("does not follow redirects"), "{text}");
        assert!(!text.contains("pw") && !text.contains("t0k"), "{text}");
    }

    struct Nowhere;

    impl Deliver for Nowhere {
        fn target(&self) -> String {
            "nowhere".into()
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
            deliver: Nowhere,
            options: SpoolOptions {
                batch_size: 1,
                batch_interval: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
                heartbeat: None,
                shutdown_timeout: Duration::from_secs(1),
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
