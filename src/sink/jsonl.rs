//! `JsonlSink`: one JSON object per line, one file per rank (the `async` backend).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{RunOutcome, Sink};
use crate::record::TimestampFormatter;
use crate::{Error, Record, Result, Value};

/// Bytes buffered before a batch is written out.
const WRITE_THRESHOLD: usize = 256 * 1024;

/// Appends records as JSON lines to a file: the `async` backend.
///
/// # Line format
///
/// ```text
/// {"timestamp":"2026-11-24T07:40:31.123456Z","rank":0,"step":3,"loss":0.5,"eval.acc":0.9}
/// {"timestamp":"2026-11-24T07:40:31.123502Z","rank":0,"hparams":true,"lr":0.0003,"batch_size":32}
/// ```
///
/// - `timestamp`: RFC 3339, UTC, microseconds. `rank`: the writing process.
/// - `step`: present when the event had one (step 0 included).
/// - `hparams: true` marks hyperparameter records; `message` holds an event's message.
/// - Every field under its own name, dotted names kept as written.
/// - Non-finite floats are the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (the
///   protobuf JSON convention), so every line is valid JSON.
/// - No duplicate keys: a field written twice keeps its last value; a field whose name
///   equals one of the keys above that is present in the line is written as `field.<name>`.
///
/// # Failure
///
/// Bytes that could not be written (disk full, I/O error) stay in memory and are written
/// first on the next batch or flush, so a transient failure loses nothing. Up to
/// [`JsonlSink::DEFAULT_MAX_PENDING`] bytes are kept; past that the oldest whole lines are
/// discarded and counted as lost.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    timestamps: TimestampFormatter,
    max_pending: usize,
    lost: u64,
}

impl JsonlSink {
    /// How many unwritten bytes are kept for a retry before old lines are discarded.
    pub const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;

    /// The file name a rank writes to: `metrics_rank<rank>.jsonl`.
    pub fn file_name(rank: u32) -> String {
        format!("metrics_rank{rank}.jsonl")
    }

    /// Opens `<dir>/metrics_rank<rank>.jsonl` for appending, creating `dir` if needed.
    pub fn in_dir(dir: impl AsRef<Path>, rank: u32) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create output directory", dir, e))?;
        Self::open(dir.join(Self::file_name(rank)))
    }

    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open metrics file", &path, e))?;
        Ok(JsonlSink {
            path,
            file,
            buf: Vec::with_capacity(WRITE_THRESHOLD + 4096),
            timestamps: TimestampFormatter::default(),
            max_pending: Self::DEFAULT_MAX_PENDING,
            lost: 0,
        })
    }

    /// Sets how many unwritten bytes are kept for retrying after a write error.
    pub fn with_max_pending(mut self, bytes: usize) -> Self {
        self.max_pending = bytes;
        self
    }

    /// The file this sink appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes out the buffer. On error the unwritten bytes stay buffered.
    fn write_out(&mut self) -> Result<()> {
        let mut done = 0;
        let result = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..done);
        result.map_err(|e| {
            self.trim_pending();
            Error::Sink {
                sink: "jsonl".into(),
                message: format!(
                    "could not write {}: {e}; {} bytes kept for the next attempt",
                    self.path.display(),
                    self.buf.len()
                ),
            }
        })
    }

    /// Discards the oldest whole lines while more than `max_pending` bytes wait.
    fn trim_pending(&mut self) {
        if self.buf.len() <= self.max_pending {
            return;
        }
        let excess = self.buf.len() - self.max_pending;
        // Cut after the first newline at or past `excess` so only whole lines go, but keep
        // any partial line at the front: part of it may already be in the file.
        let start = self
            .buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let from = (start + excess).saturating_sub(1).min(self.buf.len());
        let cut = match self.buf[from..].iter().position(|&b| b == b'\n') {
            Some(p) => from + p + 1,
            None => self.buf.len(),
        };
        if cut <= start {
            return;
        }
        self.lost += self.buf[start..cut].iter().filter(|&&b| b == b'\n').count() as u64;
        self.buf.drain(start..cut);
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            encode_line(&mut self.buf, &mut self.timestamps, record);
        }
        if self.buf.len() >= WRITE_THRESHOLD {
            self.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn close(&mut self, _outcome: RunOutcome) -> Result<()> {
        self.write_out()?;
        match self.file.sync_data() {
            // Character devices and pipes cannot be synced; that is not a data loss.
            Err(e) if e.kind() != io::ErrorKind::InvalidInput => {
                Err(Error::io("sync metrics file", &self.path, e).into_sink())
            }
            _ => Ok(()),
        }
    }

    fn lost(&self) -> u64 {
        self.lost
    }
}

impl Error {
    fn into_sink(self) -> Error {
        Error::Sink {
            sink: "jsonl".into(),
            message: self.to_string(),
        }
    }
}

/// Appends one record as a JSON line (with the trailing newline) to `out`.
fn encode_line(out: &mut Vec<u8>, ts: &mut TimestampFormatter, r: &Record) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(ts.format(r.timestamp).as_bytes());
    out.extend_from_slice(b"\",\"rank\":");
    out.extend_from_slice(itoa::Buffer::new().format(r.rank).as_bytes());
    if let Some(step) = r.step {
        out.extend_from_slice(b",\"step\":");
        out.extend_from_slice(itoa::Buffer::new().format(step).as_bytes());
    }
    if r.hparams {
        out.extend_from_slice(b",\"hparams\":true");
    }
    if let Some(message) = &r.message {
        out.extend_from_slice(b",\"message\":");
        write_str(out, message);
    }
    let reserved = |k: &str| match k {
        "timestamp" | "rank" => true,
        "step" => r.step.is_some(),
        "hparams" => r.hparams,
        "message" => r.message.is_some(),
        _ => false,
    };
    let mut write_field = |k: &str, v: &Value| {
        out.push(b',');
        if reserved(k) {
            write_str(out, &format!("field.{k}"));
        } else {
            write_str(out, k);
        }
        out.push(b':');
        write_value(out, v);
    };
    for (k, v) in r.unique_fields() {
        write_field(k, v);
    }
    out.extend_from_slice(b"}\n");
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::F64(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes())
        }
        Value::F64(f) if f.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Value::F64(f) if *f > 0.0 => out.extend_from_slice(b"\"Infinity\""),
        Value::F64(_) => out.extend_from_slice(b"\"-Infinity\""),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Str(s) => write_str(out, s),
        // serde_json::Value holds no non-finite floats, so this cannot fail.
        Value::Json(j) => {
            let _ = serde_json::to_writer(&mut *out, j);
        }
    }
}

/// Writes `s` as a JSON string; plain ASCII-safe text is copied without the serializer.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec and serializing a str cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(r: &Record) -> serde_json::Value {
        let mut out = Vec::new();
        encode_line(&mut out, &mut TimestampFormatter::default(), r);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn reserved_names_are_renamed_not_duplicated() {
        let r = Record::new(2)
            .with_step(0)
            .with_field("rank", 9i64)
            .with_field("timestamp", "x")
            .with_field("loss", 1.0);
        let v = line(&r);
        assert_eq!(v["rank"], 2);
        assert_eq!(v["step"], 0);
        assert_eq!(v["field.rank"], 9);
        assert_eq!(v["field.timestamp"], "x");
        assert_eq!(v["loss"], 1.0);
    }

    #[test]
    fn non_finite_and_escapes() {
        let r = Record::new(0)
            .with_field("nan", f64::NAN)
            .with_field("inf", f64::INFINITY)
            .with_field("ninf", f64::NEG_INFINITY)
            .with_field("q\"uote", "line\nbreak \u{1}")
            .with_field("big", u64::MAX);
        let v = line(&r);
        assert_eq!(v["nan"], "NaN");
        assert_eq!(v["inf"], "Infinity");
        assert_eq!(v["ninf"], "-Infinity");
        assert_eq!(v["q\"uote"], "line\nbreak \u{1}");
        assert_eq!(v["big"], u64::MAX);
    }

    #[test]
    fn failed_writes_are_kept_and_retried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::in_dir(dir.path(), 0).unwrap();
        let real = std::mem::replace(
            &mut sink.file,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        let batch: Vec<Arc<Record>> = (0..3)
            .map(|i| Arc::new(Record::new(0).with_step(i)))
            .collect();
        sink.write_batch(&batch).unwrap(); // buffered: under the write threshold
        let err = sink.flush().unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{err}");
        assert!(err.contains("metrics_rank0.jsonl"), "{err}");
        // The disk has room again: the kept lines go out first, then the new ones.
        sink.file = real;
        sink.write_batch(&batch[..1]).unwrap();
        sink.flush().unwrap();
        let text = std::fs::read_to_string(sink.path()).unwrap();
        let steps: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(steps, [0, 1, 2, 0]);
        assert_eq!(sink.lost(), 0);
    }

    #[test]
    fn trim_keeps_partial_front_line_and_counts_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::in_dir(dir.path(), 0)
            .unwrap()
            .with_max_pending(20);
        sink.buf = b"tail\nline-one\nline-two\nline-3\n".to_vec();
        sink.trim_pending();
        assert_eq!(sink.buf, b"tail\nline-3\n");
        assert_eq!(sink.lost, 2);
    }
}
