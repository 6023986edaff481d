//! Putting it together, one job per file: the [builder](MetricLoggerBuilder), the
//! [guard](MetricGuard) with its [`Stats`], the [registry](Backend) (the one place that
//! knows every backend), and the global installation ([`setup_metric_logger`],
//! [`setup_root_logger`]).

mod builder;
mod guard;
#[cfg(feature = "console")]
mod install;
#[cfg(feature = "logfiles")]
mod logfiles;
mod registry;
#[cfg(feature = "network")]
mod sync;

pub use builder::{MetricLogger, MetricLoggerBuilder};
pub use guard::{MetricGuard, Stats};
#[cfg(feature = "logfiles")]
pub use install::setup_root_logger_with_files;
#[cfg(feature = "console")]
pub use install::{setup_metric_logger, setup_root_logger};
#[cfg(feature = "logfiles")]
pub use logfiles::{LogFiles, LogFilesGuard, Rotation};
pub use registry::Backend;
#[cfg(feature = "network")]
pub use sync::{sync_spools, Delivered, SyncReport};

/// Path of the JSONL file a rank writes under `output_dir`.
///
/// ```
/// let p = trainlog::jsonl_path("runs/a", 3);
/// assert!(p.ends_with("metrics_rank3.jsonl"));
/// ```
#[cfg(feature = "jsonl")]
pub fn jsonl_path(output_dir: impl AsRef<std::path::Path>, rank: u32) -> std::path::PathBuf {
    output_dir
        .as_ref()
        .join(crate::sink::JsonlSink::file_name(rank))
}
