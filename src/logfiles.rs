//! Ordinary logs to rotating files: [`LogFiles`] (daily, hourly or never by time, and by
//! size), written by tracing-appender's non-blocking writer over a `file-rotate` file
//! that keeps at most N old files.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use tracing_subscriber::Layer as _;

use crate::setup::FilesLayer;
use crate::{Error, Result};

/// Like [`setup_root_logger`](crate::setup_root_logger), and also writes ordinary logs (the same level) to rotating
/// files; keep the returned guard alive for as long as you log (it flushes them when
/// dropped).
pub fn setup_root_logger_with_files(level: &str, files: LogFiles) -> Result<LogFilesGuard> {
    let (layer, guard) = files_layer(&files, level)?;
    crate::setup::install::install_root(level, Some(layer))?;
    Ok(guard)
}

/// The layer writing ordinary logs to `files`, and its guard.
fn files_layer(files: &LogFiles, level: &str) -> Result<(FilesLayer, LogFilesGuard)> {
    let (writer, guard) = files.writer()?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let layer: FilesLayer = if files.is_json() {
        Box::new(
            layer
                .json()
                .with_filter(crate::setup::install::logs_filter(level)?),
        )
    } else {
        Box::new(layer.with_filter(crate::setup::install::logs_filter(level)?))
    };
    Ok((layer, guard))
}

impl crate::MetricLoggerBuilder {
    /// Ordinary logs also go to these rotating files when
    /// [`init`](crate::MetricLoggerBuilder::init) installs the subscriber (see
    /// [`LogFiles`]); the guard flushes them.
    pub fn log_files(mut self, files: LogFiles) -> Self {
        self.init.log_files = Some(Box::new(move || {
            let (layer, guard) = files_layer(&files, "info")?;
            Ok((layer, Box::new(guard) as Box<dyn Send + Sync>))
        }));
        self
    }
}

/// When log files are started anew besides their size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// A new file every day (UTC).
    Daily,
    /// A new file every hour.
    Hourly,
    /// Only by size. The default.
    #[default]
    Never,
}

/// Where and how ordinary logs are written to files: `<dir>/<prefix>.log`, the previous
/// ones as `<prefix>.log.1` (newest) … `<prefix>.log.N`. Defaults: prefix `trainlog`, a new
/// file past 100 MB, at most 10 old files, plain text lines.
///
/// ```no_run
/// use trainlog::{LogFiles, Rotation};
/// let _logs = trainlog::setup_root_logger_with_files(
///     "info",
///     LogFiles::new("runs/exp1/logs").rotation(Rotation::Daily).max_files(7),
/// )?;
/// tracing::info!("written to runs/exp1/logs/trainlog.log and stderr");
/// # Ok::<(), trainlog::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogFiles {
    dir: PathBuf,
    prefix: String,
    rotation: Rotation,
    max_size: u64,
    max_files: usize,
    json: bool,
}

impl LogFiles {
    /// Logs under `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogFiles {
            dir: dir.into(),
            prefix: "trainlog".into(),
            rotation: Rotation::Never,
            max_size: 100 * 1024 * 1024,
            max_files: 10,
            json: false,
        }
    }

    /// The file name before `.log` (default `trainlog`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Start a new file every day or hour too (default: by size only).
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// Start a new file once the current one passes this many bytes (default 100 MB;
    /// lines are never split).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes.max(1);
        self
    }

    /// Keep at most this many old files besides the current one (default 10).
    pub fn max_files(mut self, n: usize) -> Self {
        self.max_files = n;
        self
    }

    /// Write JSON lines instead of plain text.
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }

    /// Whether lines are JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The current file: `<dir>/<prefix>.log`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.prefix))
    }

    /// A non-blocking writer to the rotating files (lossless: a full buffer waits) and
    /// the guard that flushes it when dropped; for a `fmt` layer of your own.
    pub fn writer(&self) -> Result<(NonBlocking, LogFilesGuard)> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create log directory", &self.dir, e))?;
        let file = FileRotate::new(
            self.path(),
            AppendCount::new(self.max_files),
            ContentLimit::BytesSurpassed(usize::try_from(self.max_size).unwrap_or(usize::MAX)),
            Compression::None,
            None,
        );
        let period = match self.rotation {
            Rotation::Daily => Some(86_400),
            Rotation::Hourly => Some(3_600),
            Rotation::Never => None,
        };
        let rolling = Rolling {
            file,
            period,
            current: period.map(period_of),
        };
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("trainlog-logfiles")
            .finish(rolling);
        Ok((writer, LogFilesGuard(guard)))
    }
}

/// Flushes the log files when dropped; keep it for as long as you log.
#[must_use = "dropping the guard stops writing the log files"]
#[derive(Debug)]
pub struct LogFilesGuard(#[allow(dead_code)] WorkerGuard);

/// Which period (of `secs` seconds since the Unix epoch) now is in.
fn period_of(secs: u64) -> u64 {
    crate::time::unix_duration(SystemTime::now()).as_secs() / secs
}

/// `file-rotate` rotates by size; this adds the time rotation (file-rotate takes one
/// limit at a time): a new file when the day or hour changes.
struct Rolling {
    file: FileRotate<AppendCount>,
    period: Option<u64>,
    current: Option<u64>,
}

impl Write for Rolling {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(secs) = self.period {
            let now = period_of(secs);
            if self.current != Some(now) {
                self.current = Some(now);
                self.file.rotate()?;
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_period_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let mut rolling = Rolling {
            file: FileRotate::new(
                &path,
                AppendCount::new(5),
                ContentLimit::BytesSurpassed(1 << 20),
                Compression::None,
                None,
            ),
            period: Some(86_400),
            current: Some(period_of(86_400)),
        };
        rolling.write_all(b"today\n").unwrap();
        rolling.current = Some(0); // as if the day had changed since
        rolling.write_all(b"tomorrow\n").unwrap();
        rolling.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("t.log.1")).unwrap(),
            "today\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "tomorrow\n");
    }
}
