//! Backends: the names a `backends("...")` list takes, the options type that configures
//! each one ([`BackendConfig`]), and what options build their sink from
//! ([`BuildContext`]).
//!
//! Every backend is one line of the `backends!` table below, next to the cargo feature
//! that builds it: adding a backend is its module (an options type implementing
//! [`BackendConfig`]) plus that line. The builder knows no backend by name.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use super::Sink;
use crate::{Error, RankInfo, Result};

/// A backend's options: which backend they configure, whether the environment asks for
/// it, and how its sink is made. The builder keeps a list of these
/// ([`MetricLoggerBuilder::configure`](crate::MetricLoggerBuilder::configure)); the typed
/// setters (`.tensorboard(options)`, `.http(options)`, …) call it.
///
/// ```
/// use trainlog::sink::{BackendConfig, BuildContext, Sink, MemorySink};
/// use trainlog::{Backend, RankInfo};
///
/// # #[cfg(feature = "jsonl")] {
/// let dir = tempfile::tempdir()?;
/// let cx = BuildContext::new(RankInfo::new(0)).with_output_dir(dir.path());
/// let sink = trainlog::sink::JsonlOptions::default().build(&cx)?.expect("every rank writes JSONL");
/// assert_eq!(sink.name(), "jsonl");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait BackendConfig: fmt::Debug + Send + 'static {
    /// The backend these options configure (its names and cargo feature come from it).
    fn backend(&self) -> Backend;

    /// Options the environment asks for when none were set on the builder and the
    /// backend is not in the backends list (`MLFLOW_TRACKING_URI` turns MLflow on, as
    /// InstructLab does); `None`, the default, when it does not.
    fn from_env() -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// Makes the sink for this process, or `Ok(None)` when the backend does not run on
    /// this rank (rank-0 backends without `all_ranks`).
    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>>;
}

/// What the builder resolved once for every backend: the output directory, the rank,
/// the run name (expanded here, with one clock reading for all backends), and the
/// resume step.
#[derive(Debug, Clone)]
pub struct BuildContext {
    output_dir: Option<PathBuf>,
    rank: RankInfo,
    run_name: Option<String>,
    now: SystemTime,
    resume_from: Option<u64>,
    /// What network backends' delivery settings default to (read from the environment).
    #[cfg(feature = "network")]
    delivery: crate::deliver::DeliveryOptions,
}

impl BuildContext {
    /// A context for `rank`, read from the clock now, without an output directory, run
    /// name or resume step.
    pub fn new(rank: RankInfo) -> Self {
        BuildContext {
            output_dir: None,
            rank,
            run_name: None,
            now: SystemTime::now(),
            resume_from: None,
            #[cfg(feature = "network")]
            delivery: crate::deliver::DeliveryOptions::default(),
        }
    }

    /// With the output directory file backends write under.
    pub fn with_output_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_dir = Some(dir.into());
        self
    }

    /// With the builder's run-name template (see
    /// [`MetricLoggerBuilder::run_name`](crate::MetricLoggerBuilder::run_name)).
    pub fn with_run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// With the step this process resumes from.
    pub fn with_resume_from(mut self, step: u64) -> Self {
        self.resume_from = Some(step);
        self
    }

    /// With the time `{time}` in run names stands for (default: when the context was made).
    pub fn with_time(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// The output directory, if one was given.
    pub fn output_dir(&self) -> Option<&Path> {
        self.output_dir.as_deref()
    }

    /// The output directory, which `backend` cannot do without.
    pub fn require_output_dir(&self, backend: &str) -> Result<&Path> {
        self.output_dir().ok_or_else(|| {
            Error::Config(format!(
                "the `{backend}` backend writes to disk: set `.output_dir(..)` on the builder"
            ))
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> RankInfo {
        self.rank
    }

    /// Whether a rank-0 backend runs here: on rank 0, or everywhere with `all_ranks`.
    pub fn runs_here(&self, all_ranks: bool) -> bool {
        all_ranks || self.rank.is_rank0()
    }

    /// A rank-0 backend's sink: made by `make` on rank 0 (or every rank with
    /// `all_ranks`), `None` on the other ranks.
    pub fn rank0_sink<S: Sink>(
        &self,
        all_ranks: bool,
        make: impl FnOnce() -> Result<S>,
    ) -> Result<Option<Box<dyn Sink>>> {
        if !self.runs_here(all_ranks) {
            return Ok(None);
        }
        Ok(Some(Box::new(make()?)))
    }

    /// The step this process resumes from, if it does.
    pub fn resume_from(&self) -> Option<u64> {
        self.resume_from
    }

    /// What network backends' delivery settings default to: a 120 s close cap, a 4 s
    /// stall timeout (or `TRAINLOG_STALL_TIMEOUT`), retries from 200 ms to 30 s.
    #[cfg(feature = "network")]
    pub(crate) fn delivery_defaults(&self) -> &crate::deliver::DeliveryOptions {
        &self.delivery
    }

    /// The time this context stands for (run names, run start times).
    pub fn now(&self) -> SystemTime {
        self.now
    }

    /// The run-name template a backend uses: its own option, else the first set
    /// environment variable of `env` (such as `MLFLOW_RUN_NAME`), else the builder's.
    /// `None` when none is set.
    pub fn run_name_template(&self, own: Option<&str>, env: &[&str]) -> Option<String> {
        own.map(str::to_owned)
            .or_else(|| crate::env::first_env(env))
            .or_else(|| self.run_name.clone())
    }

    /// The run name a backend uses: [`run_name_template`](Self::run_name_template), else
    /// [`DEFAULT_RUN_NAME`](crate::naming::DEFAULT_RUN_NAME), expanded.
    pub fn run_name(&self, own: Option<&str>, env: &[&str]) -> Result<String> {
        let template = self
            .run_name_template(own, env)
            .unwrap_or_else(|| crate::naming::DEFAULT_RUN_NAME.into());
        self.expand(&template)
    }

    /// Expands a run-name template for this rank at this context's time: the one place
    /// backends expand run names.
    pub fn expand(&self, template: &str) -> Result<String> {
        crate::naming::expand_run_name(template, self.rank, self.now)
    }
}

/// How a built backend's options are made: its defaults, and from the environment.
pub(crate) struct Built {
    pub(crate) default: fn() -> Box<dyn BackendConfig>,
    pub(crate) from_env: fn() -> Option<Box<dyn BackendConfig>>,
}

impl Built {
    // Unused only in a build without any backend feature.
    #[allow(dead_code)]
    fn of<T: BackendConfig + Default>() -> Built {
        Built {
            default: || Box::new(T::default()),
            from_env: || T::from_env().map(|o| Box::new(o) as Box<dyn BackendConfig>),
        }
    }
}

/// The table of backends: one line each (doc, variant, names in a backends list, the
/// cargo feature, the options type). Expands to the [`Backend`] enum and what the
/// builder asks of it, with each feature gate written once, here.
macro_rules! backends {
    ($($(#[$doc:meta])* $variant:ident = [$($name:literal),+], $feature:literal, $options:ty;)+) => {
        /// A backend named in a `backends("...")` list.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Backend {
            $($(#[$doc])* $variant,)+
        }

        impl Backend {
            /// Every backend, in the order the environment's requests are looked at.
            pub const ALL: &'static [Backend] = &[$(Backend::$variant),+];

            /// The names in a backends list: the name first, then aliases (lower case).
            pub fn names(self) -> &'static [&'static str] {
                match self {
                    $(Backend::$variant => &[$($name),+],)+
                }
            }

            /// The cargo feature that builds it.
            pub fn feature(self) -> &'static str {
                match self {
                    $(Backend::$variant => $feature,)+
                }
            }

            /// How its options are made, or `None` when this build lacks its feature.
            pub(crate) fn built(self) -> Option<Built> {
                match self {
                    $(Backend::$variant => {
                        #[cfg(feature = $feature)]
                        let built = Some(Built::of::<$options>());
                        #[cfg(not(feature = $feature))]
                        let built = None;
                        built
                    })+
                }
            }
        }
    };
}

backends! {
    /// Structured JSONL, one file per rank, written on every rank (`async` or `jsonl`).
    Jsonl = ["async", "jsonl"], "jsonl", super::JsonlOptions;
    /// TensorBoard event files, rank 0 only by default (`tensorboard`).
    TensorBoard = ["tensorboard"], "tensorboard", super::TensorBoardOptions;
    /// JSON POSTs to a server, rank 0 only by default (`http`).
    Http = ["http"], "http", super::HttpOptions;
    /// OpenTelemetry metrics over OTLP, rank 0 only by default (`otel`).
    Otel = ["otel"], "otel", super::OtelOptions;
    /// A Weights & Biases offline run, rank 0 only by default (`wandb`).
    Wandb = ["wandb"], "wandb", super::WandbOptions;
    /// An MLflow tracking server, rank 0 only by default (`mlflow`).
    Mlflow = ["mlflow"], "mlflow", super::MlflowOptions;
    /// A Prometheus scrape endpoint, rank 0 only by default (`prometheus`).
    Prometheus = ["prometheus"], "prometheus", super::PrometheusOptions;
    /// Alerts to an incoming webhook (Slack and the like), rank 0 only by default (`webhook`).
    Webhook = ["webhook"], "webhook", super::WebhookOptions;
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
        let backend = Backend::ALL
            .iter()
            .copied()
            .find(|b| b.names().contains(&lower.as_str()))
            .ok_or_else(|| Error::UnknownBackend {
                name: name.into(),
                known: known_names(),
            })?;
        match backend.built() {
            Some(_) => Ok(backend),
            None => Err(backend.unavailable(name)),
        }
    }

    /// The backend's name in a backends list (`async` for JSONL, as InstructLab spells it).
    pub fn name(self) -> &'static str {
        self.names()[0]
    }

    /// Its default options, or the error naming the cargo feature this build lacks.
    pub(crate) fn default_config(self) -> Result<Box<dyn BackendConfig>> {
        match self.built() {
            Some(built) => Ok((built.default)()),
            None => Err(self.unavailable(self.name())),
        }
    }

    /// Options the environment asks for (`None` also when this build lacks the feature).
    pub(crate) fn config_from_env(self) -> Option<Box<dyn BackendConfig>> {
        self.built().and_then(|built| (built.from_env)())
    }

    fn unavailable(self, name: &str) -> Error {
        Error::BackendUnavailable {
            name: name.into(),
            reason: format!(
                "this build of trainlog lacks the `{}` feature",
                self.feature()
            ),
        }
    }
}

/// The names `backends("...")` accepts, for messages.
fn known_names() -> String {
    Backend::ALL
        .iter()
        .map(|b| match b.names() {
            [name, alias] => format!("{name} (alias {alias})"),
            names => names.join(", "),
        })
        .collect::<Vec<_>>()
        .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_backend_or_names_the_feature() {
        for &backend in Backend::ALL {
            for name in backend.names() {
                match Backend::parse(name) {
                    Ok(b) => assert_eq!(b, backend),
                    Err(err) => {
                        assert!(backend.built().is_none(), "{name}: {err}");
                        assert!(err.to_string().contains(backend.feature()), "{err}");
                    }
                }
            }
            if let Ok(config) = backend.default_config() {
                assert_eq!(config.backend(), backend);
            }
        }
    }

    #[test]
    fn the_run_name_is_expanded_with_the_contexts_time() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_secs(1_795_505_431);
        let cx = BuildContext::new(RankInfo::new(2)).with_time(t);
        assert_eq!(cx.run_name(None, &[]).unwrap(), "20261124_073031_rank2");
        let cx = cx.with_run_name("exp_{rank}");
        assert_eq!(cx.run_name(None, &[]).unwrap(), "exp_2");
        assert_eq!(cx.run_name(Some("own"), &[]).unwrap(), "own");
        assert!(cx.run_name(Some("{nope}"), &[]).is_err());
        assert!(!cx.runs_here(false));
        assert!(cx.runs_here(true));
    }
}
