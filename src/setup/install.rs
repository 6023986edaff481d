//! Installing the global subscriber: [`setup_metric_logger`], [`setup_root_logger`] and
//! [`MetricLoggerBuilder::init`].

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::prelude::*;

use super::{FilesLayer, MetricGuard, MetricLoggerBuilder};
use crate::filter::{self, MetricFilter, METRICS_TARGET};
use crate::format::{color_enabled, color_enabled_for, DictFormat};
use crate::layer::{SinkLayer, Sinks};
use crate::rank::RankInfo;
use crate::{Error, Result};

#[cfg(feature = "progress")]
use crate::progress::ProgressSlot;
#[cfg(not(feature = "progress"))]
use no_progress::ProgressSlot;

/// Ordinary logs: level from `RUST_LOG`, else `default_level`; never the metrics target.
pub(crate) fn logs_filter<S>(
    default_level: &str,
) -> Result<impl tracing_subscriber::layer::Filter<S>> {
    let env = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_level))
        .map_err(|e| Error::Config(format!("invalid log level `{default_level}`: {e}")))?;
    Ok(env.and(filter_fn(|meta| meta.target() != METRICS_TARGET)))
}

/// What the subscriber trainlog installed leaves to be set later: the sinks, and the
/// progress display (`total_steps`).
#[derive(Clone)]
struct Installed {
    sinks: Arc<OnceLock<Sinks>>,
    progress: ProgressSlot,
}

/// The subscriber trainlog installed, if it installed one.
static INSTALLED: Mutex<Option<Installed>> = Mutex::new(None);

/// Installs the global subscriber: ordinary logs on stderr (level from `RUST_LOG`,
/// else `default_level`), metrics as dict lines on stdout (rank 0), and the metric
/// sinks, which may be attached later.
fn install(
    default_level: &str,
    console: bool,
    rank: RankInfo,
    files: Option<FilesLayer>,
) -> Result<Installed> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if installed.is_some() {
        return Err(Error::AlreadyInitialized(
            "trainlog already installed the global subscriber".into(),
        ));
    }
    // Console lines clear a progress bar and redraw it after them, once one is shown.
    let progress = ProgressSlot::default();
    let (stderr, stdout) = (
        progress.writer(std::io::stderr),
        progress.writer(std::io::stdout),
    );
    let progress_layer = progress.layer(rank.rank);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(stderr)
        .with_ansi(color_enabled_for(&std::io::stderr()))
        .with_filter(logs_filter(default_level)?);
    let metrics_console = console.then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(DictFormat::new())
            .with_writer(stdout)
            .with_ansi(color_enabled())
            .with_filter(
                filter::metrics()
                    .and(filter::is_mapping())
                    .and(filter::rank0_for(rank.rank)),
            )
    });
    let (sinks, slot) = SinkLayer::deferred();
    let sinks = sinks.with_filter(MetricFilter {
        target: METRICS_TARGET.into(),
        active: true,
        // The sinks attach later: let ERROR events through for those that take them
        // (the layer drops them when none does), and spans for `span_fields` (the layer
        // keeps their fields only when asked).
        errors: true,
        spans: true,
        // This subscriber's filters are per layer: none can hide metrics from the sinks.
        arrivals: None,
    });
    tracing_subscriber::registry()
        .with(files)
        .with(logs)
        .with(metrics_console)
        .with(sinks)
        .with(progress_layer)
        .try_init()
        .map_err(|e| {
            Error::AlreadyInitialized(format!(
                "a global tracing subscriber is already set ({e}); add the layer from \
                 `MetricLogger::builder().build()` to it instead"
            ))
        })?;
    let done = Installed {
        sinks: slot,
        progress,
    };
    *installed = Some(done.clone());
    Ok(done)
}

/// Sets up human-readable logging for everything but metrics: stderr, level from
/// `RUST_LOG` when set, else `level` (an `EnvFilter` directive such as `"info"` or
/// `"warn,my_crate=debug"`). Installs the global subscriber, so call it once, before
/// [`setup_metric_logger`] if you use both (metrics then join this subscriber).
pub fn setup_root_logger(level: &str) -> Result<()> {
    install_root(level, None)
}

/// Installs the subscriber for ordinary logs (and `files`, if given), metrics to join later.
pub(crate) fn install_root(level: &str, files: Option<FilesLayer>) -> Result<()> {
    install(level, true, RankInfo::from_env(), files).map(|_| ())
}

/// One call for the common case: JSONL (or other `backends`) under `output_dir`,
/// metrics printed on the console (rank 0), ordinary logs on stderr, all installed
/// as the global subscriber. Keep the returned guard alive until training ends.
///
/// ```no_run
/// let _guard = trainlog::setup_metric_logger("async", "runs/exp1")?;
/// tracing::info!(target: "metrics", step = 0, loss = 2.3);
/// # Ok::<(), trainlog::Error>(())
/// ```
pub fn setup_metric_logger(backends: &str, output_dir: impl AsRef<Path>) -> Result<MetricGuard> {
    MetricLoggerBuilder::default()
        .backends(backends)?
        .output_dir(output_dir.as_ref())
        .init()
}

impl MetricLoggerBuilder {
    /// Like [`build`](Self::build), then installs the layer as (or into) the global
    /// subscriber with a metrics console on stdout and ordinary logs on stderr. If
    /// [`setup_root_logger`] ran before, the sinks join that subscriber. The target
    /// must be the default `metrics` here.
    pub fn init(mut self) -> Result<MetricGuard> {
        if self.target != METRICS_TARGET {
            return Err(Error::Config(
                "init() installs the default `metrics` target; use build() for a custom target"
                    .into(),
            ));
        }
        let existing = INSTALLED.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Said before any sink opens its files (a second JSONL sink would find the
        // first one's lock instead).
        if existing.as_ref().is_some_and(|i| i.sinks.get().is_some()) {
            return Err(Error::AlreadyInitialized(
                "the metric logger is already set up in this process".into(),
            ));
        }
        let console = self.console;
        let span_fields = self.span_fields;
        let total_steps = self.init.total_steps;
        let log_files = self.init.log_files.take();
        let (feeders, mut guard) = self.start()?;
        let installed = match existing {
            Some(installed) => installed,
            None => {
                let files = match log_files {
                    Some(make) => {
                        let (layer, writer_guard) = make()?;
                        guard._keep.push(writer_guard);
                        Some(layer)
                    }
                    None => None,
                };
                install("info", console, guard.rank(), files)?
            }
        };
        let rank = guard.rank().rank;
        let target = METRICS_TARGET.into();
        let arrivals = guard.watch_arrivals(METRICS_TARGET);
        installed
            .sinks
            .set(Sinks {
                feeders,
                rank,
                target,
                // The installed filter lets ERROR events and spans through (see `install`).
                errors: true,
                span_fields,
                arrivals,
            })
            .map_err(|_| {
                Error::AlreadyInitialized(
                    "the metric logger is already set up in this process".into(),
                )
            })?;
        // Shown on rank 0 only, as the console is.
        if let (Some(total), 0) = (total_steps, rank) {
            if let Some(finish) = installed.progress.show(total) {
                guard.before_close(finish);
            }
        }
        Ok(guard)
    }
}

/// What `install` uses of the progress display in a build without it: nothing.
#[cfg(not(feature = "progress"))]
mod no_progress {
    use tracing_subscriber::layer::Identity;

    #[derive(Debug, Clone, Default)]
    pub(super) struct ProgressSlot {}

    impl ProgressSlot {
        pub(super) fn writer<M>(&self, make: M) -> M {
            make
        }

        pub(super) fn layer(&self, _rank: u32) -> Identity {
            Identity::new()
        }

        pub(super) fn show(&self, _total: u64) -> Option<fn()> {
            None
        }
    }
}
