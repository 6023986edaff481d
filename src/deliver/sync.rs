//! [`sync_spools`]: delivers what network sinks left spooled on disk (the server was down
//! at exit, the process crashed), the way `wandb sync` uploads offline runs. The
//! `trainlog sync` command calls it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spool::{Spool, SpoolOptions};
use super::spooled::spool_dir_name;
pub use crate::deliver::spool::Delivered;
use crate::{Error, Result};

/// What [`sync_spools`] did with one spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// The spool file (`.../http_spool/<host>_<port>-<hash>_rank0.jsonl`, or under
    /// `mlflow_spool`).
    pub spool: PathBuf,
    /// What was delivered, per destination (URLs shown without credentials): messages,
    /// as the far side counts them, and the user's records among them.
    pub delivered: Vec<Delivered>,
    /// Messages the destination refused for good; they are in the spool's dead-letter file.
    pub refused: u64,
    /// The user's records among the refused messages.
    pub refused_records: u64,
    /// Messages still spooled because delivery stopped (server unreachable, no progress).
    pub pending: u64,
    /// Why delivery stopped early, if it did.
    pub error: Option<String>,
}

/// How long a sync waits for a server that accepts nothing before it gives up.
const SYNC_STALL: Duration = Duration::from_secs(10);

/// Finds every spool under `dir` (directories `http_spool` and `mlflow_spool`, at any
/// depth; symbolic links are not followed) and delivers what it holds, in order, to the
/// destination recorded in its session lines: the server URL, or the MLflow tracking URI,
/// experiment and run. Credentials come from the same environment variables the backends
/// read (`TRAINLOG_AUTH_TOKEN`, `MLFLOW_TRACKING_TOKEN`, ...); they are never stored.
///
/// Delivered lines are acknowledged on disk as they go, and a fully delivered spool is
/// deleted, so running it again sends nothing twice. Do not run it while a logger is
/// writing the same output directory.
pub fn sync_spools(dir: impl AsRef<Path>) -> Result<Vec<SyncReport>> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(Error::io(
            "find spools in",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let mut spools = Vec::new();
    find_spools(dir, &mut spools);
    spools.sort();
    let mut reports = Vec::new();
    for path in spools {
        reports.push(sync_one(&path));
    }
    Ok(reports)
}

fn find_spools(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            find_spools(&path, out);
        } else if kind.is_file() && backend_of(&path).is_some() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") && !name.ends_with(".dead.jsonl") {
                out.push(path);
            }
        }
    }
}

/// Opens a spool a backend's logger left, to deliver what it holds.
type Resume = fn(&Path, SpoolOptions) -> Result<Spool>;

/// The spooled backends of this build, and how each resumes a spool.
fn spooled_backends() -> &'static [(&'static str, Resume)] {
    &[
        #[cfg(feature = "http")]
        ("http", crate::sink::http::resume_spool),
        #[cfg(feature = "mlflow")]
        ("mlflow", crate::sink::mlflow::resume_spool),
        #[cfg(feature = "webhook")]
        ("webhook", crate::sink::webhook::resume_spool),
    ]
}

/// The backend whose spool directory holds `path`, and how to resume its spool.
fn backend_of(path: &Path) -> Option<(&'static str, Resume)> {
    let dir = path.parent()?.file_name()?.to_str()?;
    spooled_backends()
        .iter()
        .copied()
        .find(|(backend, _)| spool_dir_name(backend) == dir)
}

fn sync_one(path: &Path) -> SyncReport {
    let options = SpoolOptions {
        batch_size: 100,
        batch_interval: Duration::ZERO,
        request_timeout: Duration::from_secs(30),
        heartbeat: None,
        delivery: crate::deliver::DeliveryOptions {
            stall: SYNC_STALL,
            close_cap: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
        },
    };
    let spool: Result<_> = match backend_of(path) {
        Some((_, resume)) => resume(path, options),
        None => Err(Error::Config(format!(
            "{}: not a spool of a backend this build has",
            path.display()
        ))),
    };
    let mut report = SyncReport {
        spool: path.to_path_buf(),
        delivered: Vec::new(),
        refused: 0,
        refused_records: 0,
        pending: 0,
        error: None,
    };
    match spool {
        Ok(mut spool) => {
            let (closed, result) = spool.close("run `trainlog sync` again later");
            report.delivered = closed.delivered;
            report.refused = closed.rejected_messages;
            report.refused_records = closed.rejected_records;
            report.pending = closed.pending;
            report.error = result.err().map(|e| e.to_string());
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}
