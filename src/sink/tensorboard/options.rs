//! [`TensorBoardOptions`]: where TensorBoard runs go, how they are named, on which ranks,
//! and how they make the sink.

use super::TensorBoardSink;
use crate::sink::{Backend, BackendConfig, BuildContext, Sink};
use crate::{Error, Result};

/// Settings of the `tensorboard` backend; setting them with
/// [`MetricLoggerBuilder::tensorboard`](crate::MetricLoggerBuilder::tensorboard) turns it
/// on, as InstructLab does when a log directory is given.
///
/// ```
/// let options = trainlog::sink::TensorBoardOptions::new()
///     .dir("runs/tb")
///     .run_name("sft_{time}_rank{rank}");
/// let builder = trainlog::MetricLogger::builder().tensorboard(options);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TensorBoardOptions {
    pub(crate) dir: Option<std::path::PathBuf>,
    pub(crate) run_name: Option<String>,
    pub(crate) all_ranks: bool,
    pub(crate) experiment: bool,
}

impl TensorBoardOptions {
    /// Defaults: `<output_dir>/tensorboard`, the builder's run name, rank 0 only, no
    /// experiment record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where TensorBoard runs go (default `<output_dir>/tensorboard`).
    pub fn dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The run directory's name, a template with the placeholders of
    /// [`expand_run_name`](crate::naming::expand_run_name) (default: the builder's
    /// `run_name`, else `{time}_rank{rank}`).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// Write an HParams experiment record at close (off by default; see
    /// [`TensorBoardSink`](super::TensorBoardSink) for why).
    pub fn experiment(mut self, enabled: bool) -> Self {
        self.experiment = enabled;
        self
    }
}

all_ranks_setter!(TensorBoardOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `tensorboard` backend; setting them turns it on, as InstructLab
    /// does when a log directory is given.
    pub fn tensorboard(self, options: TensorBoardOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for TensorBoardOptions {
    fn backend(&self) -> Backend {
        Backend::TensorBoard
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || self.open(cx))
    }
}

impl TensorBoardOptions {
    /// The run directory's sink: `<dir>/<run name>`, continued from the resume step.
    fn open(&self, cx: &BuildContext) -> Result<TensorBoardSink> {
        let dir = match (&self.dir, cx.output_dir()) {
            (Some(dir), _) => dir.clone(),
            (None, Some(out)) => out.join("tensorboard"),
            (None, None) => {
                return Err(Error::Config(
                    "the `tensorboard` backend writes files: set `.output_dir(..)` on the \
                     builder or `TensorBoardOptions::dir`"
                        .into(),
                ))
            }
        };
        let template = cx
            .run_name_template(self.run_name.as_deref(), &[])
            .unwrap_or_else(|| crate::naming::DEFAULT_RUN_NAME.into());
        let name = cx.expand(&template)?;
        let sink = match cx.resume_from() {
            Some(step) => {
                if template.contains("{time}") || template.contains("{utc_time}") {
                    eprintln!(
                        "trainlog: tensorboard: resuming from step {step} in a new run \
                         directory, since the run name `{template}` has the time in it; give \
                         a fixed run name to continue the earlier run"
                    );
                }
                TensorBoardSink::resume(dir.join(name), step)?
            }
            None => TensorBoardSink::create(dir.join(name))?,
        };
        Ok(sink.with_experiment(self.experiment))
    }
}
