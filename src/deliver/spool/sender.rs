//! The sender thread: reads a spool in order and hands batches to a [`Deliver`], with
//! retries, backoff, session switches and dead letters.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{is_session, Deliver, Delivery, Shared, SpoolOptions, READ_CHUNK};
use crate::deliver::retry::{Backoff, Verdict};

/// The sender thread: reads the spool in order and delivers it.
pub(super) struct Sender<D> {
    pub(super) name: &'static str,
    /// Whether the lines before the next session line have a destination.
    pub(super) knows_destination: bool,
    pub(super) deliver: D,
    pub(super) options: SpoolOptions,
    pub(super) shared: Arc<Shared>,
    pub(super) spool_path: PathBuf,
    pub(super) offset_path: PathBuf,
    pub(super) dead_path: PathBuf,
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
    /// Whether `acked` moved since the offset file was last written, and when that was.
    offset_dirty: bool,
    offset_saved: Option<Instant>,
}

/// While batches go out back to back, the offset file is rewritten at most this often
/// (write-then-rename costs a file creation and a rename: a tenth of the sender's time
/// at one per batch). It is always written before the sender waits, sleeps or stops, so
/// only a crash in the middle of a burst leaves it behind, and then the batches of at
/// most this long are sent again, under the same idempotency keys.
const OFFSET_EVERY: Duration = Duration::from_millis(100);

impl<D: Deliver> Sender<D> {
    /// Delivers from byte `start`, in `session` (its offset and content) when the lines
    /// there continue one that began earlier. Without a session, lines go to the
    /// deliverer's own destination, if it has one (`knows_destination`).
    pub(super) fn run(mut self, start: u64, session: Option<(u64, serde_json::Value)>) {
        let mut window = Window {
            acked: start,
            read: start,
            session_at: None,
            ..Window::default()
        };
        let mut usable = true;
        if let Some((at, session)) = session {
            window.session_at = Some(at);
            usable = self.begin_session(&session);
        }
        let drained = usable && self.deliver_all(&mut window);
        self.save_offset(&mut window);
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
        let mut backoff = Backoff::new(
            self.options.delivery.retry_base,
            self.options.delivery.retry_max,
        );
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
                    if window.offset_dirty {
                        // Not under the lock: the logger's thread takes it to publish.
                        drop(state);
                        self.save_offset(window);
                        state = self.shared.lock();
                        continue;
                    }
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
                timeout = timeout.min(self.options.delivery.stall);
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
                    self.ack(window, count, count as u64);
                    self.credit(count as u64, records);
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
                    {
                        let mut state = self.shared.lock();
                        state.rejected_records += records;
                        state.rejected_messages += count as u64;
                    }
                    self.ack(window, count, count as u64);
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
                    self.save_offset(window);
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

    /// Drops the first `count` lines from the window (`messages` of them messages, the
    /// rest session lines) and records the new offset.
    fn ack(&self, window: &mut Window, count: usize, messages: u64) {
        for line in window.lines.drain(..count) {
            window.acked += line.len() as u64 + 1;
        }
        window.offset_dirty = true;
        if window
            .offset_saved
            .is_none_or(|at| at.elapsed() >= OFFSET_EVERY)
        {
            self.save_offset(window);
        }
        let mut state = self.shared.lock();
        state.acked_lines += messages;
        state.last_ack = Some(Instant::now());
    }

    /// Counts `messages` carrying `records` of the user's as delivered to the current
    /// destination.
    fn credit(&self, messages: u64, records: u64) {
        let mut state = self.shared.lock();
        let target = state.target.clone();
        match state.delivered.iter_mut().find(|d| d.target == target) {
            Some(d) => {
                d.messages += messages;
                d.records += records;
            }
            None => state.delivered.push(super::Delivered {
                target,
                messages,
                records,
            }),
        }
    }

    /// Writes the offset file if acknowledgements moved it: write-then-rename, so a crash
    /// never leaves a half-written offset.
    fn save_offset(&self, window: &mut Window) {
        if !window.offset_dirty {
            return;
        }
        let tmp = self.offset_path.with_extension("offset.tmp");
        let text = match window.session_at {
            Some(at) => format!("{} {at}", window.acked),
            None => window.acked.to_string(),
        };
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.offset_path);
        }
        window.offset_dirty = false;
        window.offset_saved = Some(Instant::now());
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
                crate::file::cut_torn_tail(&mut f)?;
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
                delivery: crate::deliver::DeliveryOptions {
                    stall: Duration::from_secs(1),
                    close_cap: Duration::from_secs(1),
                    retry_base: Duration::from_secs(1),
                    retry_max: Duration::from_secs(1),
                },
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
