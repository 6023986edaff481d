//! Putting it together, one job per file: the [builder](MetricLoggerBuilder), the
//! [guard](MetricGuard) with its [`Stats`], and the global installation
//! ([`setup_metric_logger`], [`setup_root_logger`]). No backend is named here: each one's
//! options build its sink ([`crate::sink::BackendConfig`]).

mod builder;
mod guard;
#[cfg(feature = "console")]
pub(crate) mod install;

pub use builder::{MetricLogger, MetricLoggerBuilder};
pub use guard::{MetricGuard, Stats};
#[cfg(feature = "console")]
pub use install::{setup_metric_logger, setup_root_logger};

/// A layer writing ordinary logs to files (see `LogFiles`), boxed: plain or JSON lines.
pub(crate) type FilesLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Makes the files layer when `init` installs the subscriber, with what must live until
/// the guard drops (the writer's guard, which flushes): set by `log_files`.
pub(crate) type MakeFilesLayer =
    Box<dyn FnOnce() -> crate::Result<(FilesLayer, Box<dyn Send + Sync>)> + Send + Sync>;
