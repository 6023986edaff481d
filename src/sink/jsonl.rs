//! `JsonlSink`: one JSON object per line, one file per rank (the `async` backend).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Backend, BackendConfig, BuildContext, RunOutcome, Sink};
use crate::file::{RecordFile, DEFAULT_MAX_PENDING};
use crate::lock::FileLock;
use crate::time::TimestampFormatter;
use crate::{Error, Record, Result};

/// Bytes buffered before a batch is written out.
const WRITE_THRESHOLD: usize = 256 * 1024;

/// Settings of the `async` (JSONL) backend: it has none yet; it writes
/// `<output_dir>/metrics_rank<r>.jsonl` on every rank, and continues a resumed run
/// ([`MetricLoggerBuilder::resume_from`](crate::MetricLoggerBuilder::resume_from)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct JsonlOptions {}

impl BackendConfig for JsonlOptions {
    fn backend(&self) -> Backend {
        Backend::Jsonl
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        let rank = cx.rank().rank;
        let mut sink = JsonlSink::in_dir(cx.require_output_dir("async")?, rank)?;
        if let Some(step) = cx.resume_from() {
            sink = sink.with_resume(step, rank)?;
        }
        Ok(Some(Box::new(sink)))
    }
}

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
///   equals one of the keys above that is present in the line is written as
///   `field.<name>` (with more `field.` prefixes if another field already has that name).
///
/// # Failure
///
/// Bytes that could not be written (disk full, I/O error) stay in memory and are written
/// first on the next batch or flush, so a transient failure loses nothing. Up to
/// [`JsonlSink::DEFAULT_MAX_PENDING`] bytes are kept; past that the oldest whole lines are
/// discarded and counted as lost.
#[derive(Debug)]
pub struct JsonlSink {
    out: RecordFile,
    timestamps: TimestampFormatter,
    /// This sink is the file's only writer (see `crate::lock`).
    _lock: FileLock,
}

impl JsonlSink {
    /// How many unwritten bytes are kept for a retry before old lines are discarded.
    pub const DEFAULT_MAX_PENDING: usize = DEFAULT_MAX_PENDING;

    /// The file name a rank writes to: `metrics_rank<rank>.jsonl`
    /// ([`jsonl::file_name`](crate::jsonl::file_name)).
    pub fn file_name(rank: u32) -> String {
        crate::jsonl::file_name(rank)
    }

    /// Opens `<dir>/metrics_rank<rank>.jsonl` for appending, creating `dir` if needed.
    pub fn in_dir(dir: impl AsRef<Path>, rank: u32) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create output directory", dir, e))?;
        Self::open(dir.join(Self::file_name(rank)))
    }

    /// Opens (creating if needed) `path` for appending. A torn last line left by a crash
    /// is cut first, so the file stays valid JSON lines.
    ///
    /// One writer per file: the sink holds an advisory lock on `<path>.lock` (`flock`,
    /// released when it closes or the process ends), and while another logger holds it
    /// this fails with [`Error::InUse`] naming the holder.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        // Before the file is touched: the torn-tail cut must never cut another writer's
        // line in progress.
        let lock = FileLock::take(&path)?;
        Ok(JsonlSink {
            out: RecordFile::append_lines("jsonl", path)?,
            timestamps: TimestampFormatter::default(),
            _lock: lock,
        })
    }

    /// Marks the file as resumed from a checkpoint at `step`: writes the line
    /// `{"timestamp":…,"rank":<rank>,"step":<step>,"event":"resume"}` at once, after which
    /// readers drop the earlier lines at or past `step`
    /// ([`jsonl::without_orphans`](crate::jsonl::without_orphans)).
    pub fn with_resume(mut self, step: u64, rank: u32) -> Result<Self> {
        let marker = Record::new(rank)
            .with_step(step)
            .with_field("event", crate::jsonl::RESUME_EVENT);
        crate::jsonl::encode_line(self.out.buffer(), &mut self.timestamps, &marker);
        self.out.end_record();
        self.out.write_out()?;
        Ok(self)
    }

    /// Sets how many unwritten bytes are kept for retrying after a write error.
    pub fn with_max_pending(mut self, bytes: usize) -> Self {
        self.out.set_max_pending(bytes);
        self
    }

    /// The file this sink appends to.
    pub fn path(&self) -> &Path {
        self.out.path()
    }
}

impl Sink for JsonlSink {
    fn name(&self) -> &str {
        "jsonl"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            crate::jsonl::encode_line(self.out.buffer(), &mut self.timestamps, record);
            self.out.end_record();
        }
        if self.out.pending() >= WRITE_THRESHOLD {
            self.out.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.write_out()
    }

    fn close(&mut self, _outcome: RunOutcome) -> Result<()> {
        self.out.close()
    }

    fn lost(&self) -> u64 {
        self.out.lost()
    }
}
