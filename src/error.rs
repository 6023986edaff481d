//! The crate's error type: every failure says what was being done and to which path or name.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while configuring, flushing or closing the metric logger.
///
/// Errors while *writing* records never reach the training code as an `Error`: they are
/// reported on stderr and counted in [`Stats`](crate::Stats), and the sink retries.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be created, opened or written.
    Io {
        /// What was being done, e.g. `"create output directory"`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A backend name in a `backends("...")` list that trainlog does not know.
    UnknownBackend {
        /// The name as written.
        name: String,
        /// The names this build knows, as the message lists them.
        known: String,
    },
    /// A known backend that this build of trainlog cannot provide.
    BackendUnavailable {
        /// The backend's name.
        name: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// The configuration is incomplete or contradictory.
    Config(String),
    /// A global subscriber or the metric logger was already installed.
    AlreadyInitialized(String),
    /// A flush or shutdown did not finish within its deadline.
    Timeout {
        /// What was waited for.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The logger shut down, but some records never reached their destination (a disk
    /// still full at exit, a server that refused them): they are counted in `stats.lost`.
    Lost {
        /// The final counters, summed over all sinks.
        stats: crate::Stats,
        /// Which sinks lost how many records.
        detail: String,
    },
    /// A line of a JSON-lines file is not JSON (and is not a torn last line).
    Parse {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A value could not be turned into metric fields (a map with non-scalar keys,
    /// nesting deeper than 512 levels).
    Fields {
        /// Why.
        message: String,
    },
    /// A thread trainlog needs (a sink's worker, a spool's sender) could not start.
    Thread {
        /// Which thread, e.g. `"the jsonl worker"`.
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A value could not be turned into JSON, or JSON into the expected value.
    Json {
        /// What was being converted, e.g. `"run parameters"` or a file path.
        what: String,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A sink could not write to a file (the cause is kept as the source).
    SinkIo {
        /// The sink's name.
        sink: String,
        /// What happened, with the path and what was kept for a retry.
        message: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another logger (in this process or another) is appending to the same file: two
    /// jobs given the same output directory and rank, or one started twice. Refused, so
    /// their records never mix; give each its own output directory or rank.
    InUse {
        /// The file (a JSONL file or a spool).
        path: PathBuf,
        /// Who holds it: pid, host and since when.
        holder: String,
    },
    /// A sink failed to write, flush or close.
    Sink {
        /// The sink's name.
        sink: String,
        /// The failure, as text.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "could not {action} {}: {source}", path.display()),
            Error::UnknownBackend { name, known } => write!(
                f,
                "unknown metrics backend `{name}`; known backends: {known}"
            ),
            Error::BackendUnavailable { name, reason } => {
                write!(f, "metrics backend `{name}` is not available: {reason}")
            }
            Error::Config(msg) => write!(f, "invalid metric logger configuration: {msg}"),
            Error::AlreadyInitialized(msg) => f.write_str(msg),
            Error::Timeout { what, after } => {
                write!(f, "{what} did not finish within {after:?}")
            }
            Error::Lost { stats, detail } => write!(
                f,
                "{} of {} records were not written ({detail})",
                stats.lost, stats.queued
            ),
            Error::Parse { path, line, source } => {
                write!(f, "{}:{line}: not valid JSON ({source})", path.display())
            }
            Error::Fields { message } => {
                write!(
                    f,
                    "the value cannot be turned into metric fields: {message}"
                )
            }
            Error::Thread { what, source } => write!(f, "could not start {what} thread: {source}"),
            Error::Json { what, source } => write!(f, "{what}: {source}"),
            Error::SinkIo { sink, message, .. } => write!(f, "{sink} sink: {message}"),
            Error::Sink { sink, message } => write!(f, "{sink} sink: {message}"),
            Error::InUse { path, holder } => write!(
                f,
                "{} is being written by another trainlog logger ({holder}); two loggers \
                 appending to one file would mix their records, so this one is refused: give \
                 each job its own output directory or rank (RANK), or stop the other",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::Thread { source, .. } | Error::SinkIo { source, .. } => Some(source),
            Error::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}
