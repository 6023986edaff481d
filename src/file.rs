//! Appending records to files: [`RecordFile`], an append-only file fed from an in-memory
//! buffer that survives write errors, and [`cut_torn_tail`], which every appender of line
//! files calls first.
//!
//! A process killed (or a disk that filled up) in the middle of a write leaves half a
//! line at the end of a JSON-lines file. Appending after it would glue the next record
//! onto that half and make both unreadable, so every appender of line files (the metrics
//! JSONL, the network spools and their dead letters, the run API's files) cuts a torn tail
//! before its first write.
//!
//! File sinks encode whole records into the buffer and mark where each ends. Writing out
//! copies the buffer to the file; bytes a failed write left behind stay buffered and go
//! first next time, so a transient failure (disk full, NFS hiccup) loses nothing and the
//! file never holds half a record followed by another. Past `max_pending` bytes, the
//! oldest whole records are discarded and counted as lost.

// Without a file sink or a spool (`--no-default-features`), only `cut_torn_tail` is used
// (by the run API).
#![cfg_attr(
    not(any(
        feature = "jsonl",
        feature = "tensorboard",
        feature = "wandb",
        feature = "http",
        feature = "mlflow"
    )),
    allow(dead_code)
)]

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Truncates `file` after its last newline when it does not end with one, and returns how
/// many bytes were cut. Files that are not regular files (`/dev/full`, pipes) are left
/// alone. `file` must be open for reading.
pub(crate) fn cut_torn_tail(file: &mut File) -> io::Result<u64> {
    let meta = file.metadata()?;
    let len = meta.len();
    if !meta.is_file() || len == 0 {
        return Ok(0);
    }
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    let keep = loop {
        if end == 0 {
            // No newline at all: the whole content is one torn line.
            break 0;
        }
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(at) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            break start + at as u64 + 1;
        }
        end = start;
    };
    if keep != len {
        file.set_len(keep)?;
    }
    Ok(len - keep)
}

/// How many unwritten bytes are kept for a retry before old records are discarded.
pub(crate) const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct RecordFile {
    sink: &'static str,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// End offsets (in `buf`) of the records buffered, oldest first.
    ends: VecDeque<usize>,
    /// Bytes of the first buffered record already in the file (a partial write).
    written_of_first: usize,
    max_pending: usize,
    lost: u64,
    /// Bytes in the file: its length when opened plus what was written since.
    file_len: u64,
    /// Whole records written to the file since it was opened.
    records_written: u64,
}

impl RecordFile {
    pub(crate) fn new(sink: &'static str, path: PathBuf, file: File) -> Self {
        let file_len = file.metadata().map_or(0, |m| m.len());
        RecordFile {
            file_len,
            sink,
            path,
            file,
            buf: Vec::with_capacity(64 * 1024),
            ends: VecDeque::new(),
            written_of_first: 0,
            max_pending: DEFAULT_MAX_PENDING,
            lost: 0,
            records_written: 0,
        }
    }

    /// Opens (creating if needed) a file of lines for appending. A torn last line that a
    /// crash left behind is cut first (and reported), so the next line starts cleanly.
    #[cfg_attr(
        not(any(feature = "jsonl", feature = "http", feature = "mlflow")),
        allow(dead_code)
    )]
    pub(crate) fn append_lines(sink: &'static str, path: PathBuf) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("open for appending", &path, e))?;
        let cut = cut_torn_tail(&mut file)
            .map_err(|e| Error::io("repair the torn last line of", &path, e))?;
        if cut > 0 {
            eprintln!(
                "trainlog: {sink}: {} ended in a torn line ({cut} bytes, left by a crash or a \
                 full disk); it was cut so that new lines start cleanly",
                path.display()
            );
        }
        Ok(Self::new(sink, path, file))
    }

    /// The file was renamed (the handle stays the same).
    #[cfg_attr(not(feature = "wandb"), allow(dead_code))]
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    #[cfg_attr(not(any(feature = "jsonl", feature = "wandb")), allow(dead_code))]
    pub(crate) fn set_max_pending(&mut self, bytes: usize) {
        self.max_pending = bytes;
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The buffer to append one encoded record to; call [`end_record`](Self::end_record) after.
    pub(crate) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Marks the end of the record just appended to the buffer.
    pub(crate) fn end_record(&mut self) {
        self.ends.push_back(self.buf.len());
    }

    /// Bytes waiting to be written.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.written_of_first
    }

    /// Bytes in the file, assuming this is its only writer.
    #[cfg_attr(not(feature = "network"), allow(dead_code))]
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Whole records written to the file since it was opened.
    #[cfg_attr(not(feature = "network"), allow(dead_code))]
    pub(crate) fn records_written(&self) -> u64 {
        self.records_written
    }

    /// Records discarded so far: the buffer overflowed while writes failed, or the sink
    /// closed before they could be written.
    pub(crate) fn lost(&self) -> u64 {
        self.lost
    }

    /// Writes the buffer to the file. On error the unwritten bytes stay buffered.
    pub(crate) fn write_out(&mut self) -> Result<()> {
        let mut done = self.written_of_first;
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
        self.file_len += (done - self.written_of_first) as u64;
        // Forget the records that are now wholly in the file.
        let mut whole = 0;
        while self.ends.front().is_some_and(|&end| end <= done) {
            whole = self.ends.pop_front().unwrap_or(whole);
            self.records_written += 1;
        }
        self.buf.drain(..whole);
        for end in self.ends.iter_mut() {
            *end -= whole;
        }
        self.written_of_first = done - whole;
        result.map_err(|source| {
            self.trim();
            Error::SinkIo {
                sink: self.sink.into(),
                message: format!(
                    "could not write {}: {source}; {} bytes kept for the next attempt",
                    self.path.display(),
                    self.pending()
                ),
                source,
            }
        })
    }

    /// Discards the oldest whole records (never one partly written) while more than
    /// `max_pending` bytes wait.
    fn trim(&mut self) {
        let keep_from = if self.written_of_first > 0 { 1 } else { 0 };
        let mut cut_records = 0;
        let start = if keep_from == 1 { self.ends[0] } else { 0 };
        let mut cut_end = start;
        while self.buf.len() - (cut_end - start) > self.max_pending
            && keep_from + cut_records < self.ends.len()
        {
            cut_end = self.ends[keep_from + cut_records];
            cut_records += 1;
        }
        if cut_records == 0 {
            return;
        }
        self.buf.drain(start..cut_end);
        let removed = cut_end - start;
        self.ends.drain(keep_from..keep_from + cut_records);
        for end in self.ends.iter_mut().skip(keep_from) {
            *end -= removed;
        }
        self.lost += cut_records as u64;
    }

    /// Writes everything out, then asks the OS to put it on disk.
    #[cfg_attr(not(any(feature = "jsonl", feature = "wandb")), allow(dead_code))]
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        match self.file.sync_data() {
            // Character devices and pipes cannot be synced; that is not a data loss.
            Err(source) if source.kind() != io::ErrorKind::InvalidInput => Err(Error::SinkIo {
                sink: self.sink.into(),
                message: format!("could not sync {}: {source}", self.path.display()),
                source,
            }),
            _ => Ok(()),
        }
    }

    /// Gives up on the records still waiting to be written (the sink is closing and the
    /// last attempt failed): they are counted as lost. Returns how many there were.
    pub(crate) fn abandon_pending(&mut self) -> u64 {
        if self.written_of_first > 0 {
            // Part of the first record reached the file: cut it, so the file ends on a
            // whole record (a regular file; devices and pipes cannot be cut).
            let whole = self.file_len - self.written_of_first as u64;
            if self.file.set_len(whole).is_ok() {
                self.file_len = whole;
            }
        }
        let n = self.ends.len() as u64;
        self.buf.clear();
        self.ends.clear();
        self.written_of_first = 0;
        self.lost += n;
        n
    }

    /// The last write at close: writes everything out and syncs. What still cannot be
    /// written is counted as lost, and the error says how many records that was.
    #[cfg_attr(not(any(feature = "jsonl", feature = "wandb")), allow(dead_code))]
    pub(crate) fn close(&mut self) -> Result<()> {
        self.sync().map_err(|e| {
            let n = self.abandon_pending();
            if n == 0 {
                return e;
            }
            Error::Sink {
                sink: self.sink.into(),
                message: format!(
                    "{n} records could not be written to {} at close and are lost ({e})",
                    self.path.display()
                ),
            }
        })
    }

    #[cfg(test)]
    pub(crate) fn replace_file(&mut self, file: File) -> File {
        std::mem::replace(&mut self.file, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn full() -> File {
        OpenOptions::new().append(true).open("/dev/full").unwrap()
    }

    fn push(f: &mut RecordFile, text: &str) {
        f.buffer().extend_from_slice(text.as_bytes());
        f.end_record();
    }

    #[test]
    fn failed_writes_are_kept_and_retried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = RecordFile::new("test", path.clone(), File::create(&path).unwrap());
        let real = f.replace_file(full());
        push(&mut f, "one\n");
        push(&mut f, "two\n");
        let err = f.write_out().unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{err}");
        f.replace_file(real);
        push(&mut f, "three\n");
        f.write_out().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
        assert_eq!(f.pending(), 0);
        assert_eq!(f.lost(), 0);
    }

    #[test]
    fn overflow_discards_oldest_whole_records_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = RecordFile::new("test", path.clone(), full());
        f.set_max_pending(10);
        for r in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n"] {
            push(&mut f, r);
        }
        assert!(f.write_out().is_err());
        assert_eq!(f.lost(), 2);
        assert_eq!(f.buf, b"cccc\ndddd\n");
        f.replace_file(File::create(&path).unwrap());
        f.write_out().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "cccc\ndddd\n");
    }

    #[test]
    fn a_partly_written_record_is_never_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = RecordFile::new("test", path, full());
        f.set_max_pending(4);
        push(&mut f, "aaaa\n");
        push(&mut f, "bbbb\n");
        push(&mut f, "cccc\n");
        // Pretend the first two bytes of the first record reached the file.
        f.written_of_first = 2;
        assert!(f.write_out().is_err());
        assert_eq!(&f.buf, b"aaaa\n");
        assert_eq!(f.written_of_first, 2);
        assert_eq!(f.lost(), 2);
    }

    fn cut(content: &[u8]) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let n = cut_torn_tail(&mut file).unwrap();
        (std::fs::read(&path).unwrap(), n)
    }

    #[test]
    fn cuts_only_an_unterminated_last_line() {
        assert_eq!(cut(b"a\nb\n"), (b"a\nb\n".to_vec(), 0));
        assert_eq!(cut(b"a\nb\n{\"x\":"), (b"a\nb\n".to_vec(), 5));
        assert_eq!(cut(b"torn"), (Vec::new(), 4));
        assert_eq!(cut(b""), (Vec::new(), 0));
        // A torn line longer than the read chunk.
        let mut long = b"ok\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 10_000));
        assert_eq!(cut(&long), (b"ok\n".to_vec(), 10_000));
    }

    #[test]
    fn leaves_devices_alone() {
        let mut full = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open("/dev/full")
            .unwrap();
        assert_eq!(cut_torn_tail(&mut full).unwrap(), 0);
    }
}
