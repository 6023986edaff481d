//! Experiment runs: a directory per run with its status, parameters, logs and files, and
//! metrics that go through the ordinary metrics events (so every backend sees them).
//!
//! ```
//! use serde_json::json;
//! use trainlog::run::{Agg, Run};
//!
//! let root = tempfile::tempdir()?;
//! let run = Run::builder().root(root.path()).namespace("alice").workspace("mnist").prefix("exp-1").create()?;
//! run.scope(|run| -> trainlog::Result<()> {
//!     run.params().set(&json!({"lr": 1e-3, "model": {"layers": 4}}))?;
//!     run.params().update("model.layers", json!(6))?;
//!     let train = run.metrics("train");
//!     for step in 0..3 {
//!         train.collect(&json!({"loss": 1.0 / (step + 1) as f64}));
//!     }
//!     train.flush(Some(0), Agg::Mean);
//!     run.files().save_text("notes/summary.txt", "done")?;
//!     Ok(())
//! })?;
//! assert_eq!(run.params().read()?["model"]["layers"], 6);
//! assert_eq!(run.info()?.status, trainlog::run::Status::Completed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Layout of `<root>/<namespace>/<workspace>/<prefix>/`:
//!
//! | file | content |
//! |---|---|
//! | `run.json` | status, start and end times, host, pid, git commit (rewritten atomically) |
//! | `parameters.jsonl` | one line per change (`set`, `extend`, `update`); the current view is rebuilt from it |
//! | `logs.jsonl` | `run.log(..)` lines |
//! | `files/` | artifacts |
//! | `metrics_rank<r>.jsonl` | metrics, when the logger writes JSONL here ([`Run::logger`]) |
//!
//! All `.jsonl` files are append-only; [`read_jsonl`] tolerates a torn last line after a crash.

mod files;
mod jsonl;
mod metrics;
mod params;
mod tags;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use self::files::Files;
pub use self::jsonl::{append_jsonl, read_jsonl};
pub use self::metrics::{Agg, Metrics};
pub use self::params::{read_params, Params};
pub use self::tags::{RunResult, Tags};
use crate::{Error, MetricLogger, MetricLoggerBuilder, Result};

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Created, not started.
    Created,
    /// Started, not ended.
    Running,
    /// Ended normally.
    Completed,
    /// Ended with an error or a panic.
    Failed,
}

/// The content of `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `<namespace>/<workspace>/<prefix>`.
    pub name: String,
    /// Current status.
    pub status: Status,
    /// Why the run failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Start, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<f64>,
    /// End, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// Host the run started on.
    pub host: String,
    /// Process that started it.
    pub pid: u32,
    /// `git rev-parse HEAD` of the working directory, when it is a git checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// Tags (see [`Run::tags`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Final results by name (see [`Run::result`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, RunResult>,
}

/// Builds a [`Run`]: `Run::builder().root(..).namespace(..).workspace(..).prefix(..).create()`.
#[derive(Debug, Clone)]
pub struct RunBuilder {
    root: PathBuf,
    namespace: String,
    workspace: String,
    prefix: String,
    /// A directory given as is (`dir`), instead of root/namespace/workspace/prefix.
    exact: Option<PathBuf>,
}

impl Default for RunBuilder {
    fn default() -> Self {
        RunBuilder {
            root: PathBuf::from("runs"),
            namespace: "default".into(),
            workspace: "default".into(),
            prefix: format!("run_{}", now_secs() as u64),
            exact: None,
        }
    }
}

fn check_part(what: &str, part: &str) -> Result<()> {
    let bad = part.is_empty()
        || part == "."
        || part == ".."
        || part.contains(['/', '\\'])
        || part.contains('\0');
    if bad {
        return Err(Error::Config(format!(
            "run {what} `{part}` must be a plain, non-empty directory name"
        )));
    }
    Ok(())
}

impl RunBuilder {
    /// The directory all runs live under (default `runs`).
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = dir.into();
        self
    }

    /// First level, e.g. a user or team (default `default`).
    pub fn namespace(mut self, name: impl Into<String>) -> Self {
        self.namespace = name.into();
        self
    }

    /// Second level, e.g. a project (default `default`).
    pub fn workspace(mut self, name: impl Into<String>) -> Self {
        self.workspace = name.into();
        self
    }

    /// The run's own name (default `run_<unix seconds>`).
    pub fn prefix(mut self, name: impl Into<String>) -> Self {
        self.prefix = name.into();
        self
    }

    /// The run's directory, exactly (say a training script's `--output-dir`), instead of
    /// `<root>/<namespace>/<workspace>/<prefix>`; the run is named after its last part.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let run = trainlog::run::Run::builder().dir(dir.path().join("sft-3")).create()?;
    /// assert_eq!(run.name(), "sft-3");
    /// assert!(dir.path().join("sft-3/run.json").is_file());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.exact = Some(dir.into());
        self
    }

    /// Creates the run directory and `run.json` (status `created`), or opens the run if it
    /// exists (its files are appended to).
    pub fn create(self) -> Result<Run> {
        let (dir, name) = match self.exact {
            Some(dir) => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dir.display().to_string());
                (dir, name)
            }
            None => {
                check_part("namespace", &self.namespace)?;
                check_part("workspace", &self.workspace)?;
                check_part("prefix", &self.prefix)?;
                let dir = self
                    .root
                    .join(&self.namespace)
                    .join(&self.workspace)
                    .join(&self.prefix);
                let name = format!("{}/{}/{}", self.namespace, self.workspace, self.prefix);
                (dir, name)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create run directory", &dir, e))?;
        let info = match read_info(&dir) {
            Ok(info) => info,
            Err(_) => {
                let info = RunInfo {
                    name: name.clone(),
                    status: Status::Created,
                    error: None,
                    start_time: None,
                    end_time: None,
                    host: crate::naming::hostname(),
                    pid: std::process::id(),
                    git_commit: git_commit(),
                    tags: BTreeMap::new(),
                    results: BTreeMap::new(),
                };
                write_info(&dir, &info)?;
                info
            }
        };
        Ok(Run {
            dir,
            name,
            info: Mutex::new(info),
        })
    }
}

/// One experiment run. See the [module docs](self).
#[derive(Debug)]
pub struct Run {
    dir: PathBuf,
    name: String,
    info: Mutex<RunInfo>,
}

impl Run {
    /// A builder with the defaults (`runs/default/default/run_<unix seconds>`).
    pub fn builder() -> RunBuilder {
        RunBuilder::default()
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<namespace>/<workspace>/<prefix>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A metric logger builder writing JSONL into this run's directory; add backends as
    /// you like, then `build()` or `init()`.
    pub fn logger(&self) -> MetricLoggerBuilder {
        MetricLogger::builder().output_dir(&self.dir)
    }

    /// The largest step in this run's metrics files (`metrics_rank*.jsonl`, every rank),
    /// leaving out what a resumed attempt orphaned; `None` before any step was logged.
    ///
    /// After a restart it tells how far the killed attempt got; continue from your
    /// checkpoint's step with `run.logger().resume_from(step)`
    /// ([`MetricLoggerBuilder::resume_from`]) and every reader shows each step once.
    ///
    /// ```
    /// use trainlog::run::Run;
    /// let root = tempfile::tempdir()?;
    /// let run = Run::builder().root(root.path()).prefix("sft").create()?;
    /// assert_eq!(run.last_step()?, None);
    /// let lines = "{\"rank\":0,\"step\":7,\"loss\":0.5}\n{\"rank\":0,\"step\":5,\"event\":\"resume\"}\n";
    /// std::fs::write(run.dir().join("metrics_rank0.jsonl"), lines)?;
    /// assert_eq!(run.last_step()?, None, "step 7 was orphaned by the resume at 5");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn last_step(&self) -> Result<Option<u64>> {
        let mut last = None;
        for entry in std::fs::read_dir(&self.dir).map_err(|e| Error::io("read", &self.dir, e))? {
            let path = entry.map_err(|e| Error::io("read", &self.dir, e))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.as_deref().and_then(crate::jsonl::rank_of).is_none() {
                continue;
            }
            let lines = crate::jsonl::without_orphans(crate::jsonl::read(&path)?);
            last = lines
                .iter()
                .filter_map(|l| l["step"].as_u64())
                .chain(last)
                .max();
        }
        Ok(last)
    }

    /// The current `run.json`.
    pub fn info(&self) -> Result<RunInfo> {
        read_info(&self.dir)
    }

    fn set_status(&self, status: Status, error: Option<String>) -> Result<()> {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        info.status = status;
        match status {
            Status::Running => {
                // A restarted run keeps its first start.
                info.start_time = info.start_time.or(Some(now_secs()));
                info.end_time = None;
                info.error = None;
            }
            Status::Completed | Status::Failed => info.end_time = Some(now_secs()),
            Status::Created => {}
        }
        if error.is_some() {
            info.error = error;
        }
        write_info(&self.dir, &info)
    }

    /// Marks the run running and records the start time.
    pub fn start(&self) -> Result<()> {
        self.set_status(Status::Running, None)
    }

    /// Marks the run completed.
    pub fn complete(&self) -> Result<()> {
        self.set_status(Status::Completed, None)
    }

    /// Marks the run failed with a reason, and emits an `error` event.
    pub fn fail(&self, message: impl Into<String>) -> Result<()> {
        let message = message.into();
        self.error(&message);
        self.set_status(Status::Failed, Some(message))
    }

    /// Starts the run, runs `f`, and completes the run when `f` returns `Ok`, or fails it
    /// when `f` returns an error or panics (the panic then continues).
    pub fn scope<T, E>(
        &self,
        f: impl FnOnce(&Run) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: std::fmt::Display + From<Error>,
    {
        self.start()?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(Ok(value)) => {
                self.complete()?;
                Ok(value)
            }
            Ok(Err(e)) => {
                self.fail(e.to_string())?;
                Err(e)
            }
            Err(panic) => {
                let message =
                    crate::panic_note::payload_text(&*panic).unwrap_or_else(|| "panic".into());
                let _ = self.fail(format!("panicked: {message}"));
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Changes `run.json` under the run's lock and writes it.
    fn update_info(&self, change: impl FnOnce(&mut RunInfo)) -> Result<()> {
        let mut info = self.info.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut info);
        write_info(&self.dir, &info)
    }

    /// The run's tags: short text labels kept in `run.json` and sent to every backend as a
    /// `tags` event with every tag after each change: MLflow run tags, W&B run tags
    /// (`key:value`), a TensorBoard text table, the HTTP event type `tags`.
    pub fn tags(&self) -> Tags<'_> {
        Tags { run: self }
    }

    /// Records a final result (`run.result("final_accuracy", 0.945, &json!({"dataset":
    /// "test"}))`): kept in `run.json` (a later value of the same name replaces it), shown
    /// by `trainlog show`, `ls` and `export`, and sent to every backend as a `result` event
    /// whose field `name` holds the value and `metadata.*` the metadata: an MLflow metric
    /// at the run's last step with the metadata as tags `<name>.<key>`, a W&B summary value
    /// (metadata under `<name>/metadata`), a TensorBoard scalar at the last step (a metric
    /// column in the HParams dashboard), the HTTP event type `result`.
    ///
    /// The name may not be `event` or start with `metadata.`.
    pub fn result(&self, name: &str, value: f64, metadata: &impl Serialize) -> Result<()> {
        if name.is_empty()
            || name == "event"
            || name.starts_with(crate::sink::run_events::METADATA_PREFIX)
        {
            return Err(Error::Config(format!(
                "a result needs a name other than `event` and `metadata.*` (got `{name}`)"
            )));
        }
        let metadata = serde_json::to_value(metadata).map_err(|source| Error::Json {
            what: format!("the metadata of result `{name}`"),
            source,
        })?;
        let mut fields: Vec<(crate::Key, crate::Value)> = vec![
            ("event".into(), "result".into()),
            (name.to_owned().into(), crate::Value::F64(value)),
        ];
        if !metadata.is_null() {
            fields.extend(crate::flatten("metadata", &metadata)?);
        }
        self.update_info(|info| {
            info.results.insert(
                name.to_owned(),
                RunResult {
                    value,
                    metadata: metadata.clone(),
                },
            );
        })?;
        crate::log_fields(None, false, fields);
        Ok(())
    }

    /// The run's parameters.
    pub fn params(&self) -> Params<'_> {
        Params::new(self)
    }

    /// A metrics handle whose names are prefixed with `namespace.` (empty: no prefix).
    pub fn metrics(&self, namespace: &str) -> Metrics {
        Metrics::new(namespace)
    }

    /// The run's artifact store under `files/`.
    pub fn files(&self) -> Files {
        Files::new(self.dir.join("files"))
    }

    /// Appends a line to `logs.jsonl`: timestamp, level, message and `fields` (a JSON
    /// object's entries; anything else under `value`).
    pub fn log(&self, level: tracing::Level, message: &str, fields: &impl Serialize) -> Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp().into());
        line.insert("level".into(), level.as_str().into());
        line.insert("message".into(), message.into());
        match serde_json::to_value(fields) {
            Ok(serde_json::Value::Object(map)) => line.extend(map),
            Ok(serde_json::Value::Null) => {}
            Ok(other) => {
                line.insert("value".into(), other);
            }
            Err(source) => {
                return Err(Error::Json {
                    what: "log fields".into(),
                    source,
                })
            }
        }
        append_jsonl(
            &self.dir.join("logs.jsonl"),
            &serde_json::Value::Object(line),
        )
    }

    fn event(&self, tag: &str, step: Option<u64>, epoch: Option<u64>) {
        let mut fields = serde_json::Map::new();
        if let Some(epoch) = epoch {
            fields.insert("epoch".into(), epoch.into());
        }
        fields.insert("event".into(), tag.into());
        crate::log_dict(step, &fields);
    }

    /// Emits a `step_begin` event record at `step`.
    pub fn step_begin(&self, step: u64) {
        self.event("step_begin", Some(step), None);
    }

    /// Emits a `step_end` event record at `step`.
    pub fn step_end(&self, step: u64) {
        self.event("step_end", Some(step), None);
    }

    /// Emits an `epoch_begin` event record with field `epoch`.
    pub fn epoch_begin(&self, epoch: u64) {
        self.event("epoch_begin", None, Some(epoch));
    }

    /// Emits an `epoch_end` event record with field `epoch`.
    pub fn epoch_end(&self, epoch: u64) {
        self.event("epoch_end", None, Some(epoch));
    }

    /// Emits an `error` event record with the message.
    pub fn error(&self, message: &str) {
        crate::log_dict(
            None,
            &serde_json::json!({"event": "error", "error": message}),
        );
    }
}

fn now_secs() -> f64 {
    crate::time::unix_seconds(SystemTime::now())
}

fn timestamp() -> String {
    crate::time::rfc3339(SystemTime::now())
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

/// Reads `<dir>/run.json`.
pub fn read_info(dir: &Path) -> Result<RunInfo> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        what: format!("{} (a run description)", path.display()),
        source,
    })
}

/// Writes `run.json` atomically: a temporary file, then a rename.
fn write_info(dir: &Path, info: &RunInfo) -> Result<()> {
    let text =
        serde_json::to_string_pretty(info).map_err(|e| Error::Config(format!("run.json: {e}")))?;
    files::write_atomic(&dir.join("run.json"), text.as_bytes())
}
