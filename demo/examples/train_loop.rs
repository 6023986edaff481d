//! A simulated training loop logging metrics through trainlog.
//!
//! ```text
//! cargo run --release --example train_loop -- --output-dir runs/demo --steps 1000
//! RANK=3 cargo run --release --example train_loop -- --output-dir runs/demo
//! ```
//!
//! Flags: `--output-dir DIR` (default `runs/demo`), `--steps N` (default 1000),
//! `--backends LIST` (default `async`; e.g. `async,tensorboard`), `--log-every K`
//! (default 1), `--eval-every N` (default 100), `--quiet` (no console lines for metrics),
//! `--url URL` (the `http` backend's server; build with `--features http`, token from
//! `TRAINLOG_AUTH_TOKEN`), `--step-ms MS` (a simulated step time, default 0), `--fail-at
//! STEP` (panic at that step: runs end failed, the exit code is non-zero), `--lr LR` (the
//! peak learning rate, default 3e-4: larger trains faster) and `--seed N` (the noise). `mlflow`,
//! `otel`, `wandb` and `prometheus` in `--backends` need the feature of the same name and
//! take their settings from `MLFLOW_*`, `OTEL_*`, `WANDB_*`, `TRAINLOG_PROMETHEUS_ADDR`.
//!
//! Writes `DIR/metrics_rank<RANK>.jsonl`: one hyperparameter line, then one line per
//! logged step; every `--eval-every` steps that line also carries nested `eval.*` metrics.
//! With `tensorboard` it also writes `DIR/tensorboard/<time>_rank0/events.out.tfevents.*`
//! (view with `tensorboard --logdir DIR/tensorboard`).

use std::process::ExitCode;
use std::time::Instant;

use tracing::info;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::prelude::*;
use trainlog::{filter, format::DictFormat, progress::Progress};

struct Args {
    output_dir: String,
    steps: u64,
    backends: String,
    log_every: u64,
    eval_every: u64,
    quiet: bool,
    url: Option<String>,
    step_ms: u64,
    fail_at: Option<u64>,
    lr: f64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        output_dir: "runs/demo".into(),
        steps: 1000,
        backends: "async".into(),
        log_every: 1,
        eval_every: 100,
        quiet: false,
        url: None,
        step_ms: 0,
        fail_at: None,
        lr: 3e-4,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|e| format!("{flag}: `{v}` is not a whole number ({e})"))
        };
        match flag.as_str() {
            "--output-dir" => args.output_dir = value()?,
            "--steps" => args.steps = number(value()?)?,
            "--backends" => args.backends = value()?,
            "--log-every" => args.log_every = number(value()?)?.max(1),
            "--eval-every" => args.eval_every = number(value()?)?.max(1),
            "--quiet" => args.quiet = true,
            "--url" => args.url = Some(value()?),
            "--step-ms" => args.step_ms = number(value()?)?,
            "--fail-at" => args.fail_at = Some(number(value()?)?),
            "--lr" => {
                let v = value()?;
                args.lr = v
                    .parse::<f64>()
                    .ok()
                    .filter(|lr| *lr > 0.0 && lr.is_finite())
                    .ok_or(format!("--lr: `{v}` is not a positive number"))?;
            }
            "--seed" => args.seed = number(value()?)?,
            "-h" | "--help" => {
                println!(
                    "usage: train_loop [--output-dir DIR] [--steps N] [--backends LIST] \
                     [--log-every K] [--eval-every N] [--quiet] [--url URL] [--step-ms MS] [--fail-at STEP] \
                     [--lr LR] [--seed N]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag `{other}` (try --help)")),
        }
    }
    Ok(args)
}

/// `--url` configures the http backend (the token comes from `TRAINLOG_AUTH_TOKEN`).
#[cfg(feature = "http")]
fn with_url(
    builder: trainlog::MetricLoggerBuilder,
    url: Option<&str>,
) -> trainlog::MetricLoggerBuilder {
    match url {
        Some(url) => builder.http(trainlog::sink::HttpOptions::new().url(url)),
        None => builder,
    }
}

#[cfg(not(feature = "http"))]
fn with_url(
    builder: trainlog::MetricLoggerBuilder,
    url: Option<&str>,
) -> trainlog::MetricLoggerBuilder {
    if url.is_some() {
        eprintln!("train_loop: --url needs the `http` feature: add --features http");
    }
    builder
}

/// A small deterministic noise source so runs are reproducible without extra crates.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("train_loop: {e}");
            return ExitCode::from(2);
        }
    };
    let builder = match trainlog::MetricLogger::builder()
        .output_dir(&args.output_dir)
        .backends(&args.backends)
    {
        Ok(builder) => with_url(builder, args.url.as_deref()),
        Err(e) => {
            eprintln!("train_loop: {e}");
            return ExitCode::from(2);
        }
    };
    let (metrics, guard) = match builder.build() {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("train_loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The subscriber, composed by hand: ordinary logs on stderr, metrics as dict lines on
    // stdout (rank 0), the metric sinks, and a progress bar that console lines never cut.
    let progress = Progress::new(args.steps).with_metrics(&["loss", "lr", "eval.acc"]);
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(trainlog::format::color_enabled_for(&std::io::stderr()))
        .with_writer(progress.writer(std::io::stderr))
        .with_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info"))
                .and(filter_fn(|meta| meta.target() != "metrics")),
        );
    let console = (!args.quiet).then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(DictFormat::new())
            .with_ansi(trainlog::format::color_enabled())
            .with_writer(progress.writer(std::io::stdout))
            .with_filter(
                filter::metrics()
                    .and(filter::is_mapping())
                    .and(filter::rank0()),
            )
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(console)
        .with(metrics)
        .with(progress.layer())
        .init();
    let rank = guard.rank().rank;
    tracing::info!(rank, output_dir = %args.output_dir, steps = args.steps, "training starts");

    let (base_lr, warmup, batch_size) = (args.lr, 50u64, 32u64);
    info!(
        target: "metrics",
        hparams = true,
        lr = base_lr,
        warmup_steps = warmup,
        batch_size,
        model = "tiny-transformer",
        steps = args.steps,
        seed = args.seed,
    );

    // Rank 0 keeps the run's status in `run.json` beside the metrics (the run API), so
    // `trainlog ls` tells a failed run from a completed one.
    let run = if rank == 0 {
        match trainlog::run::Run::builder().dir(&args.output_dir).create() {
            Ok(run) => Some(run),
            Err(e) => {
                eprintln!("train_loop: no run status: {e}");
                None
            }
        }
    } else {
        None
    };
    let mark = |what: Result<(), trainlog::Error>| {
        if let Err(e) = what {
            eprintln!("train_loop: run status: {e}");
        }
    };
    if let Some(run) = &run {
        mark(run.start());
    }
    let started = Instant::now();
    let mut noise = Noise(
        0x9E37_79B9_7F4A_7C15 ^ (rank as u64 + 1) ^ args.seed.wrapping_mul(0x2545_F491_4F6C_DD1D),
    );
    // A larger learning rate trains faster (the default 3e-4 gives the original curve).
    let speed = (base_lr / 3e-4).sqrt();
    for step in 0..args.steps {
        if args.fail_at == Some(step) {
            // The failure path: the run is marked failed, the guard drops while panicking,
            // so every sink closes the run as failed, and the process exits with a non-zero
            // code.
            let why = format!("simulated failure at step {step} (--fail-at)");
            if let Some(run) = &run {
                mark(run.fail(why.clone()));
            }
            panic!("{why}");
        }
        if args.step_ms > 0 {
            // A simulated step time, to watch the progress bar, `trainlog tail -f` or the
            // Prometheus endpoint while it runs.
            std::thread::sleep(std::time::Duration::from_millis(args.step_ms));
        }
        // Linear warmup, then cosine decay.
        let lr = if step < warmup {
            base_lr * (step + 1) as f64 / warmup as f64
        } else {
            let t = (step - warmup) as f64 / (args.steps.saturating_sub(warmup).max(1)) as f64;
            base_lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        };
        let loss = 2.5 * (-(step as f64) * speed / 300.0).exp() + 0.3 + 0.05 * noise.next();
        if step % args.log_every != 0 {
            continue;
        }
        if step % args.eval_every == 0 {
            let eval_loss = loss + 0.1 + 0.02 * noise.next();
            // A layer's weights, spreading out as it trains, in the same record: binned on
            // the worker, shown by TensorBoard's Histograms dashboard and W&B as a histogram.
            let spread = 0.02 + 0.1 * (1.0 - (-(step as f64) / 500.0).exp());
            let weights: Vec<f32> = (0..1024)
                .map(|_| (spread * (noise.next() + noise.next() + noise.next())) as f32)
                .collect();
            let eval = serde_json::json!({
                "loss": loss,
                "lr": lr,
                "eval": {"loss": eval_loss, "acc": (1.0 - eval_loss / 3.0).clamp(0.0, 1.0)},
            });
            match trainlog::flatten("", &eval) {
                Ok(mut fields) => {
                    let histogram = trainlog::Histogram::new(&weights);
                    fields.push(("weights.layer0".into(), histogram.into()));
                    trainlog::log_fields(Some(step), false, fields);
                }
                Err(e) => eprintln!("train_loop: {e}"),
            }
        } else {
            info!(target: "metrics", step, loss, lr, "grad.norm" = 1.0 + noise.next());
        }
    }
    let elapsed = started.elapsed();
    for (sink, stats) in guard.sink_stats() {
        tracing::info!(
            sink,
            records = stats.queued,
            dropped = stats.dropped,
            seconds = (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "training done"
        );
    }
    progress.finish();
    if let Some(run) = &run {
        mark(run.complete());
    }
    drop(guard);
    ExitCode::SUCCESS
}
