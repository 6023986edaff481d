//! [`WandbOptions`]: the `wandb` backend's settings.

use std::path::PathBuf;

use super::{WandbResume, WandbSink};
use crate::env::first_env;
use crate::sink::{Backend, BackendConfig, BuildContext, Sink};
use crate::Result;

/// Settings of the `wandb` backend; unset values come from `WANDB_PROJECT`,
/// `WANDB_ENTITY`, `WANDB_NAME`, `WANDB_DIR` and `WANDB_RUN_ID`.
#[derive(Clone, Debug, Default)]
pub struct WandbOptions {
    pub(super) project: Option<String>,
    pub(super) entity: Option<String>,
    pub(super) name: Option<String>,
    pub(super) dir: Option<PathBuf>,
    pub(super) run_id: Option<String>,
    pub(super) resume: Option<WandbResume>,
    pub(crate) all_ranks: bool,
}

impl WandbOptions {
    /// Everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Project (`WANDB_PROJECT`, else `uncategorized`).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Entity, i.e. user or team (`WANDB_ENTITY`, else your default entity at sync time).
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.entity = Some(entity.into());
        self
    }

    /// Display name, a run-name template with trainlog's placeholders (`WANDB_NAME`, else
    /// the builder's `run_name`, else the run id).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.name = Some(template.into());
        self
    }

    /// Directory offline runs go into (`$WANDB_DIR/wandb`, else `<output_dir>/wandb`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Run id (`WANDB_RUN_ID`, else 8 random characters).
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Whether to continue an earlier offline run with the same run id (`WANDB_RESUME`:
    /// `allow`, `must`, `never`; default: `allow` when the builder has
    /// [`resume_from`](crate::MetricLoggerBuilder::resume_from), else a new run directory
    /// every time). Continuing rewrites the run's `.wandb` file without its history at or
    /// past the resume step (and without its exit record), then appends to it: W&B's
    /// reader sees every step once. Needs the run id (`WANDB_RUN_ID` or
    /// [`run_id`](Self::run_id)).
    pub fn resume(mut self, resume: WandbResume) -> Self {
        self.resume = Some(resume);
        self
    }
}

all_ranks_setter!(WandbOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `wandb` backend; setting them turns it on (as does
    /// `WANDB_PROJECT` in the environment).
    pub fn wandb(self, options: WandbOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for WandbOptions {
    fn backend(&self) -> Backend {
        Backend::Wandb
    }

    /// `WANDB_PROJECT`.
    fn from_env() -> Option<Self> {
        first_env(&["WANDB_PROJECT"]).map(|_| Self::default())
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || WandbSink::new(self.clone(), cx))
    }
}
