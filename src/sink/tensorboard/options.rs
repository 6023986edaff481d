//! [`TensorBoardOptions`]: where TensorBoard runs go, how they are named, on which ranks.

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
