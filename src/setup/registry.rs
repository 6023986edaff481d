//! The one list of backends: each backend's names, the cargo feature that builds it, what
//! turns it on besides a `backends("...")` list (builder options, the environment), and how
//! its sink is made. Adding a backend means one module under `sink/` and one entry here.

use std::fmt;
use std::str::FromStr;

use super::MetricLoggerBuilder;
use crate::rank::RankInfo;
use crate::sink::Sink;
use crate::{Error, Result};

/// A backend named in a `backends("...")` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Structured JSONL, one file per rank, written on every rank (`async` or `jsonl`).
    Jsonl,
    /// TensorBoard event files, rank 0 only by default (`tensorboard`).
    TensorBoard,
    /// JSON POSTs to a server, rank 0 only by default (`http`).
    Http,
    /// An MLflow tracking server, rank 0 only by default (`mlflow`).
    Mlflow,
    /// OpenTelemetry metrics over OTLP, rank 0 only by default (`otel`).
    Otel,
    /// A Weights & Biases offline run, rank 0 only by default (`wandb`).
    Wandb,
    /// A Prometheus scrape endpoint, rank 0 only by default (`prometheus`).
    Prometheus,
    /// Alerts to an incoming webhook (Slack and the like), rank 0 only by default (`webhook`).
    Webhook,
}

/// Makes a backend's sink for this rank, or `None` when it does not run on this rank.
type Maker = fn(&MetricLoggerBuilder, RankInfo) -> Result<Option<Box<dyn Sink>>>;

/// One backend.
struct Entry {
    backend: Backend,
    /// The name first, then aliases (lower case).
    names: &'static [&'static str],
    /// The cargo feature that builds it.
    feature: &'static str,
    /// `None` when this build lacks the feature.
    make: Option<Maker>,
    /// Whether builder options or the environment turn it on without a backends list.
    requested: fn(&MetricLoggerBuilder) -> bool,
}

/// `Some(maker)` when the feature is built, else `None` (the maker does not exist then).
macro_rules! maker {
    ($feature:literal, $make:ident) => {{
        #[cfg(feature = $feature)]
        let make: Option<Maker> = Some($make);
        #[cfg(not(feature = $feature))]
        let make: Option<Maker> = None;
        make
    }};
}

fn never(_: &MetricLoggerBuilder) -> bool {
    false
}

/// Every backend, in the order `requested` reports them.
fn registry() -> [Entry; 8] {
    [
        Entry {
            backend: Backend::Jsonl,
            names: &["async", "jsonl"],
            feature: "jsonl",
            make: maker!("jsonl", jsonl),
            // The default when an output directory is given and no list: see `start`.
            requested: never,
        },
        Entry {
            backend: Backend::TensorBoard,
            names: &["tensorboard"],
            feature: "tensorboard",
            make: maker!("tensorboard", tensorboard),
            requested: tensorboard_requested,
        },
        Entry {
            backend: Backend::Http,
            names: &["http"],
            feature: "http",
            make: maker!("http", http),
            requested: http_requested,
        },
        Entry {
            backend: Backend::Otel,
            names: &["otel"],
            feature: "otel",
            make: maker!("otel", otel),
            requested: otel_requested,
        },
        Entry {
            backend: Backend::Wandb,
            names: &["wandb"],
            feature: "wandb",
            make: maker!("wandb", wandb),
            requested: wandb_requested,
        },
        Entry {
            backend: Backend::Mlflow,
            names: &["mlflow"],
            feature: "mlflow",
            make: maker!("mlflow", mlflow),
            requested: mlflow_requested,
        },
        Entry {
            backend: Backend::Prometheus,
            names: &["prometheus"],
            feature: "prometheus",
            make: maker!("prometheus", prometheus),
            requested: prometheus_requested,
        },
        Entry {
            backend: Backend::Webhook,
            names: &["webhook"],
            feature: "webhook",
            make: maker!("webhook", webhook),
            requested: webhook_requested,
        },
    ]
}

/// The entry of `backend`: the match makes every variant have one.
fn entry(backend: Backend) -> Entry {
    let [jsonl, tensorboard, http, otel, wandb, mlflow, prometheus, webhook] = registry();
    match backend {
        Backend::Jsonl => jsonl,
        Backend::TensorBoard => tensorboard,
        Backend::Http => http,
        Backend::Otel => otel,
        Backend::Wandb => wandb,
        Backend::Mlflow => mlflow,
        Backend::Prometheus => prometheus,
        Backend::Webhook => webhook,
    }
}

/// The names `backends("...")` accepts, for messages.
fn known_names() -> String {
    registry()
        .iter()
        .map(|e| match e.names {
            [name, alias] => format!("{name} (alias {alias})"),
            names => names.join(", "),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Backends that builder options or the environment turn on.
pub(super) fn requested(builder: &MetricLoggerBuilder) -> Vec<Backend> {
    registry()
        .iter()
        .filter(|e| e.make.is_some() && (e.requested)(builder))
        .map(|e| e.backend)
        .collect()
}

/// Makes `backend`'s sink for `rank` (`None`: it does not run on this rank).
pub(super) fn make(
    backend: Backend,
    builder: &MetricLoggerBuilder,
    rank: RankInfo,
) -> Result<Option<Box<dyn Sink>>> {
    let e = entry(backend);
    match e.make {
        Some(make) => make(builder, rank),
        None => Err(unavailable(e.names[0], e.feature)),
    }
}

/// Rank-0 backends run on rank 0, or on every rank when their options say `all_ranks`.
#[cfg_attr(
    not(any(
        feature = "http",
        feature = "mlflow",
        feature = "otel",
        feature = "wandb"
    )),
    allow(dead_code)
)]
fn runs_on(all_ranks: bool, rank: RankInfo) -> bool {
    all_ranks || rank.is_rank0()
}

fn unavailable(name: &str, feature: &str) -> Error {
    Error::BackendUnavailable {
        name: name.into(),
        reason: format!("this build of trainlog lacks the `{feature}` feature"),
    }
}

impl Backend {
    /// Parses one name of a backends list (case-insensitive): an error names an unknown
    /// backend, or the cargo feature a known one needs.
    ///
    /// ```
    /// use trainlog::Backend;
    /// assert_eq!(Backend::parse(" ASYNC ")?, Backend::Jsonl);
    /// assert_eq!("tensorboard".parse::<Backend>()?, Backend::TensorBoard);
    /// assert_eq!(Backend::TensorBoard.to_string(), "tensorboard");
    /// # Ok::<(), trainlog::Error>(())
    /// ```
    pub fn parse(name: &str) -> Result<Backend> {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        let e = registry()
            .into_iter()
            .find(|e| e.names.contains(&lower.as_str()))
            .ok_or_else(|| Error::UnknownBackend {
                name: name.into(),
                known: known_names(),
            })?;
        match e.make {
            Some(_) => Ok(e.backend),
            None => Err(unavailable(name, e.feature)),
        }
    }

    /// The backend's name in a backends list (`async` for JSONL, as InstructLab spells it).
    pub fn name(self) -> &'static str {
        entry(self).names[0]
    }

    /// The cargo feature that builds it.
    pub fn feature(self) -> &'static str {
        entry(self).feature
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Backend> {
        Backend::parse(s)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "jsonl")]
fn jsonl(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let dir = b.output_dir_for("async")?;
    let mut sink = crate::sink::JsonlSink::in_dir(dir, rank.rank)?;
    if let Some(step) = b.resume_from {
        sink = sink.with_resume(step, rank.rank)?;
    }
    Ok(Some(Box::new(sink)))
}

#[cfg(feature = "tensorboard")]
fn tensorboard(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.tensorboard.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let dir = match (&options.dir, &b.output_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(out)) => out.join("tensorboard"),
        (None, None) => {
            return Err(Error::Config(
                "the `tensorboard` backend writes files: set `.output_dir(..)` on the builder \
                 or `TensorBoardOptions::dir`"
                    .into(),
            ))
        }
    };
    let template =
        crate::naming::run_name_template(options.run_name.as_deref(), &[], b.run_name.as_deref())
            .unwrap_or_else(|| crate::naming::DEFAULT_RUN_NAME.into());
    let name = crate::naming::expand_run_name(&template, rank, std::time::SystemTime::now())?;
    let resume = b.resume_from;
    let sink = match resume {
        Some(step) => crate::sink::TensorBoardSink::resume(dir.join(name), step)?,
        None => crate::sink::TensorBoardSink::create(dir.join(name))?,
    };
    if let Some(step) = resume {
        if template.contains("{time}") || template.contains("{utc_time}") {
            eprintln!(
                "trainlog: tensorboard: resuming from step {step} in a new run directory, since \
                 the run name `{template}` has the time in it; give a fixed run name to continue \
                 the earlier run"
            );
        }
    }
    Ok(Some(Box::new(sink.with_experiment(options.experiment))))
}

fn tensorboard_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "tensorboard")]
    return _b.tensorboard.is_some();
    #[cfg(not(feature = "tensorboard"))]
    false
}

#[cfg(feature = "http")]
fn http(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.http.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let dir = b.output_dir_for("http")?;
    Ok(Some(Box::new(crate::sink::HttpSink::new(
        options, dir, rank,
    )?)))
}

fn http_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "http")]
    return _b.http.is_some();
    #[cfg(not(feature = "http"))]
    false
}

#[cfg(feature = "mlflow")]
fn mlflow(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.mlflow.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let dir = b.output_dir_for("mlflow")?;
    let sink = crate::sink::MlflowSink::new(options, dir, rank, b.run_name.as_deref())?;
    Ok(Some(Box::new(sink)))
}

/// Options on the builder, or `MLFLOW_TRACKING_URI` / `MLFLOW_EXPERIMENT_NAME`
/// (InstructLab's auto-detection).
fn mlflow_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "mlflow")]
    return _b.mlflow.is_some()
        || crate::env::first_env(&["MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"]).is_some();
    #[cfg(not(feature = "mlflow"))]
    false
}

#[cfg(feature = "wandb")]
fn wandb(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let mut options = b.wandb.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    options.resume_from = b.resume_from;
    let sink = crate::sink::WandbSink::new(
        options,
        b.output_dir.as_deref(),
        rank,
        b.run_name.as_deref(),
    )?;
    Ok(Some(Box::new(sink)))
}

/// Options on the builder, or `WANDB_PROJECT`.
fn wandb_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "wandb")]
    return _b.wandb.is_some() || crate::env::first_env(&["WANDB_PROJECT"]).is_some();
    #[cfg(not(feature = "wandb"))]
    false
}

#[cfg(feature = "otel")]
fn otel(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.otel.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let sink = crate::sink::OtelSink::new(options, rank, b.run_name.as_deref())?;
    Ok(Some(Box::new(sink)))
}

fn otel_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "otel")]
    return _b.otel.is_some();
    #[cfg(not(feature = "otel"))]
    false
}

#[cfg(feature = "prometheus")]
fn prometheus(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.prometheus.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let sink = crate::sink::PrometheusSink::new(options, rank, b.run_name.as_deref())?;
    Ok(Some(Box::new(sink)))
}

/// Options on the builder, or `TRAINLOG_PROMETHEUS_ADDR`.
fn prometheus_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "prometheus")]
    return _b.prometheus.is_some()
        || crate::env::first_env(&[crate::sink::prometheus::ADDR_VAR]).is_some();
    #[cfg(not(feature = "prometheus"))]
    false
}

#[cfg(feature = "webhook")]
fn webhook(b: &MetricLoggerBuilder, rank: RankInfo) -> Result<Option<Box<dyn Sink>>> {
    let options = b.webhook.clone().unwrap_or_default();
    if !runs_on(options.all_ranks, rank) {
        return Ok(None);
    }
    let dir = b.output_dir_for("webhook")?;
    let sink = crate::sink::WebhookSink::new(options, dir, rank, b.run_name.as_deref())?;
    Ok(Some(Box::new(sink)))
}

/// Options on the builder, or `TRAINLOG_WEBHOOK_URL`.
fn webhook_requested(_b: &MetricLoggerBuilder) -> bool {
    #[cfg(feature = "webhook")]
    return _b.webhook.is_some()
        || crate::env::first_env(&[crate::sink::WEBHOOK_URL_VAR]).is_some();
    #[cfg(not(feature = "webhook"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_finds_its_own_entry_and_names_parse_back() {
        for e in registry() {
            assert_eq!(entry(e.backend).backend, e.backend, "{:?}", e.names);
            for name in e.names {
                match Backend::parse(name) {
                    Ok(b) => assert_eq!(b, e.backend),
                    Err(err) => assert!(e.make.is_none(), "{name}: {err}"),
                }
            }
        }
    }
}
