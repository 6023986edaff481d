//! A run of the run API with a logger for one backend, for the tests that check how a
//! backend shows the run's tags and results.

use trainlog::run::Run;
use trainlog::MetricLoggerBuilder;

/// A run named `tagged` under `root` and a rank-0 logger writing into it with `backend`.
pub fn tagged_run(root: &std::path::Path, backend: &str) -> (Run, MetricLoggerBuilder) {
    let run = Run::builder().root(root).prefix("tagged").create().unwrap();
    let builder = run.logger().backends(backend).unwrap().rank(0);
    (run, builder)
}
