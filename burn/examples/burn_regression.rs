//! A burn Learner that logs through trainlog: a small MLP learns `y = sin(3x) + x/2` from
//! noisy samples it generates, on burn's CPU backend (flex: burn 0.22 deprecates ndarray
//! in its favour), with early stopping on the
//! validation loss. Every metric burn computes goes to trainlog's backends
//! (`async,tensorboard` by default): JSONL under DIR, TensorBoard under DIR/tensorboard.
//!
//! ```text
//! cargo run --release -p trainlog-burn --example burn_regression -- --output-dir runs/burn
//! trainlog show runs/burn          # or: trainlog serve runs
//! ```
//!
//! Flags: `--output-dir DIR` (default `runs/burn`), `--epochs N` (default 12), `--backends
//! LIST` (default `async,tensorboard`), `--no-trainlog` (the same training, metrics to
//! burn's in-memory logger only: for measuring what logging costs), `--burn-app-logger`
//! (leave burn's own application logger on: it then fails to install beside trainlog's
//! subscriber, and nothing is muted), `--samples N` (training samples, default 4096).

use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use burn::train::logger::InMemoryMetricLogger;
use burn::train::metric::store::{Aggregate, Direction, Split};
use burn::train::metric::{LearningRateMetric, LossMetric};
use burn::train::{
    InferenceStep, Learner, MetricEarlyStoppingStrategy, RegressionOutput, StoppingCondition,
    SupervisedTraining, TrainOutput, TrainStep,
};
use trainlog::Value;
use trainlog_burn::TrainlogMetricLogger;

const HIDDEN: usize = 64;
const BATCH: usize = 64;
const LR: f64 = 1e-2;

#[derive(Module, Debug)]
struct Mlp {
    input: Linear,
    hidden: Linear,
    output: Linear,
    act: Relu,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Mlp {
            input: LinearConfig::new(1, HIDDEN).init(device),
            hidden: LinearConfig::new(HIDDEN, HIDDEN).init(device),
            output: LinearConfig::new(HIDDEN, 1).init(device),
            act: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.act.forward(self.input.forward(x));
        let x = self.act.forward(self.hidden.forward(x));
        self.output.forward(x)
    }

    fn regression(&self, batch: Points) -> RegressionOutput {
        let output = self.forward(batch.x);
        let loss = output.clone().sub(batch.y.clone()).powi_scalar(2).mean();
        RegressionOutput::new(loss, output, batch.y)
    }
}

#[derive(Clone, Debug)]
struct Points {
    x: Tensor<2>,
    y: Tensor<2>,
}

struct PointBatcher;

impl Batcher<(f32, f32), Points> for PointBatcher {
    fn batch(&self, items: Vec<(f32, f32)>, device: &Device) -> Points {
        let n = items.len();
        let (x, y): (Vec<f32>, Vec<f32>) = items.into_iter().unzip();
        Points {
            x: Tensor::<1>::from_floats(x.as_slice(), device).reshape([n, 1]),
            y: Tensor::<1>::from_floats(y.as_slice(), device).reshape([n, 1]),
        }
    }
}

impl TrainStep for Mlp {
    type Input = Points;
    type Output = RegressionOutput;

    fn step(&self, batch: Points) -> TrainOutput<RegressionOutput> {
        let out = self.regression(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for Mlp {
    type Input = Points;
    type Output = RegressionOutput;

    fn step(&self, batch: Points) -> RegressionOutput {
        self.regression(batch)
    }
}

/// `n` noisy samples of the target function (xorshift: reproducible, no dependency).
fn samples(n: usize, seed: u64) -> Vec<(f32, f32)> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let x = uniform() * 2.0 - 1.0;
            let y = (3.0 * x).sin() + 0.5 * x + 0.05 * (uniform() - 0.5);
            (x as f32, y as f32)
        })
        .collect()
}

type Loader = Arc<dyn DataLoader<Points>>;

fn loaders(n: usize) -> (Loader, Loader) {
    let train = DataLoaderBuilder::new(PointBatcher)
        .batch_size(BATCH)
        .shuffle(7)
        .build(InMemDataset::new(samples(n, 1)));
    let valid = DataLoaderBuilder::new(PointBatcher)
        .batch_size(BATCH)
        .build(InMemDataset::new(samples(1024, 2)));
    (train, valid)
}

struct Args {
    output_dir: String,
    epochs: usize,
    backends: String,
    trainlog: bool,
    burn_app_logger: bool,
    samples: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        output_dir: "runs/burn".into(),
        epochs: 12,
        backends: "async,tensorboard".into(),
        trainlog: true,
        burn_app_logger: false,
        samples: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--output-dir" => args.output_dir = value()?,
            "--epochs" => {
                let v = value()?;
                args.epochs = v.parse().map_err(|e| format!("--epochs {v}: {e}"))?;
            }
            "--backends" => args.backends = value()?,
            "--no-trainlog" => args.trainlog = false,
            "--burn-app-logger" => args.burn_app_logger = true,
            "--samples" => {
                let v = value()?;
                args.samples = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--samples {v}: a number of training samples"))?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: burn_regression [--output-dir DIR] [--epochs N] [--backends LIST] \
                     [--no-trainlog] [--burn-app-logger] [--samples N]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag `{other}` (try --help)")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    // trainlog's layers on the global subscriber, before burn starts: burn reports metrics
    // from a thread of its own, which sees only the global subscriber.
    let guard = if args.trainlog {
        Some(trainlog::setup_metric_logger(
            &args.backends,
            &args.output_dir,
        )?)
    } else {
        None
    };
    trainlog::log_fields(
        None,
        true,
        vec![
            ("lr".into(), Value::F64(LR)),
            ("batch_size".into(), Value::U64(BATCH as u64)),
            ("hidden".into(), Value::U64(HIDDEN as u64)),
            ("epochs".into(), Value::U64(args.epochs as u64)),
            ("backend".into(), Value::Str("flex".into())),
        ],
    );

    let device = Device::flex().autodiff();
    let (train, valid) = loaders(args.samples);
    let steps = args.epochs * args.samples.div_ceil(BATCH);
    let scheduler = CosineAnnealingLrSchedulerConfig::new(LR, steps)
        .with_min_lr(LR / 50.0)
        .init()
        .map_err(|e| format!("lr scheduler: {e}"))?;
    let optim: ModuleOptimizer = AdamConfig::new().init();
    let learner = Learner::new(Mlp::new(&device), optim, scheduler);
    let training = SupervisedTraining::new(
        std::path::Path::new(&args.output_dir).join("burn"),
        train,
        valid,
    )
    .metric_train_numeric(LossMetric::new())
    .metric_valid_numeric(LossMetric::new())
    .metric_train_numeric(LearningRateMetric::new())
    // Stop when the validation loss has not improved for 3 epochs: burn reads the
    // epochs' values back from the metric logger.
    .early_stopping(MetricEarlyStoppingStrategy::new(
        &LossMetric::new(),
        Aggregate::Mean,
        Direction::Lowest,
        Split::Valid,
        StoppingCondition::NoImprovementSince { n_epochs: 3 },
    ))
    .num_epochs(args.epochs);
    // One global subscriber: trainlog's (burn's would fail to install beside it).
    let training = if args.burn_app_logger {
        training
    } else {
        training.with_application_logger(None)
    };
    let training = if args.trainlog {
        training.with_metric_logger(TrainlogMetricLogger::new())
    } else {
        training.with_metric_logger(InMemoryMetricLogger::new())
    };
    let started = Instant::now();
    let result = training.launch(learner);
    let seconds = started.elapsed().as_secs_f64();
    // Every epoch's steps (early stopping cannot stop before the fourth epoch).
    let train_steps = steps as f64;
    eprintln!(
        "burn_regression: {:.2} s, {:.0} train steps/s (trainlog {})",
        seconds,
        train_steps / seconds,
        if args.trainlog { "on" } else { "off" }
    );
    // The trained model on a few points, as a result to look at.
    let probe = result
        .model
        .forward(Tensor::<1>::from_floats([-0.5f32, 0.0, 0.5].as_slice(), &device).reshape([3, 1]));
    eprintln!("burn_regression: f(-0.5, 0, 0.5) = {}", probe.into_data());
    if let Some(guard) = guard {
        drop(guard);
    }
    Ok(())
}
