//! A candle training loop logging through trainlog: an MLP learns to tell two interleaved
//! half-moons apart from points it generates, on the CPU. Every step logs the loss, the
//! learning rate and the gradient norm; every `--eval-every` steps the held-out loss and
//! accuracy and a histogram of the first layer's weights. Hyperparameters come first,
//! system metrics every second, the run's params and final accuracy through the run API
//! (`run.json`), and a progress display on stderr.
//!
//! ```text
//! cargo run --release -p trainlog-candle-example --example candle_mlp -- --output-dir runs/candle
//! trainlog show runs/candle        # or: trainlog serve runs
//! ```
//!
//! Flags: `--output-dir DIR` (default `runs/candle`; JSONL there, TensorBoard under
//! DIR/tensorboard), `--steps N` (default 1500), `--eval-every N` (default 100),
//! `--backends LIST` (default `async,tensorboard`), `--no-trainlog` (the same loop with
//! logging off: for measuring what logging costs).

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use trainlog::run::Run;
use trainlog::Value;

const HIDDEN: usize = 64;
const BATCH: usize = 128;
const LR: f64 = 3e-3;
const WARMUP: u64 = 50;

struct Mlp {
    input: Linear,
    hidden: Linear,
    output: Linear,
}

impl Mlp {
    fn new(vb: VarBuilder) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            input: linear(2, HIDDEN, vb.pp("input"))?,
            hidden: linear(HIDDEN, HIDDEN, vb.pp("hidden"))?,
            output: linear(HIDDEN, 2, vb.pp("output"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.input.forward(x)?.relu()?;
        let x = self.hidden.forward(&x)?.relu()?;
        self.output.forward(&x)
    }
}

/// xorshift64*: reproducible numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal, mean 0, standard deviation 1 (sum of four uniforms).
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.uniform()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// `n` points of the two half-moons, with labels 0 and 1: (points [n, 2], labels [n]).
fn moons(n: usize, rng: &mut Rng, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let t = rng.uniform() * std::f64::consts::PI;
        let label = (i % 2) as u32;
        let (x, y) = if label == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        xs.push((x + 0.15 * rng.normal()) as f32);
        xs.push((y + 0.15 * rng.normal()) as f32);
        ys.push(label);
    }
    Ok((
        Tensor::from_vec(xs, (n, 2), device)?,
        Tensor::from_vec(ys, n, device)?,
    ))
}

/// Linear warmup, then cosine decay to a tenth.
fn learning_rate(step: u64, steps: u64) -> f64 {
    if step < WARMUP {
        return LR * (step + 1) as f64 / WARMUP as f64;
    }
    let t = (step - WARMUP) as f64 / (steps.saturating_sub(WARMUP).max(1)) as f64;
    LR * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

struct Args {
    output_dir: String,
    steps: u64,
    eval_every: u64,
    backends: String,
    trainlog: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        output_dir: "runs/candle".into(),
        steps: 1500,
        eval_every: 100,
        backends: "async,tensorboard".into(),
        trainlog: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{flag}: `{v}` is not a positive whole number"))
        };
        match flag.as_str() {
            "--output-dir" => args.output_dir = value()?,
            "--steps" => args.steps = number(value()?)?,
            "--eval-every" => args.eval_every = number(value()?)?,
            "--backends" => args.backends = value()?,
            "--no-trainlog" => args.trainlog = false,
            "-h" | "--help" => {
                println!(
                    "usage: candle_mlp [--output-dir DIR] [--steps N] [--eval-every N] \
                     [--backends LIST] [--no-trainlog]"
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
    let device = Device::Cpu;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (train_x, train_y) = moons(4096, &mut rng, &device)?;
    let (eval_x, eval_y) = moons(1024, &mut rng, &device)?;

    // The run (run.json: status, params, results) and its logger: JSONL in the run's
    // directory, TensorBoard beside it, system metrics, a progress display.
    let (run, guard) = if args.trainlog {
        let run = Run::builder().dir(&args.output_dir).create()?;
        let guard = run
            .logger()
            .backends(&args.backends)?
            .total_steps(args.steps)
            .system_metrics(Duration::from_secs(1))
            .init()?;
        run.start()?;
        let params = serde_json::json!({
            "model": {"hidden": HIDDEN, "layers": 3},
            "optimizer": {"name": "adamw", "lr": LR, "warmup_steps": WARMUP},
            "batch_size": BATCH,
            "steps": args.steps,
        });
        // Kept in the run (parameters.jsonl) and logged as the first, hyperparameter record.
        run.params().set(&params)?;
        (Some(run), Some(guard))
    } else {
        (None, None)
    };

    let varmap = VarMap::new();
    let model = Mlp::new(VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: LR,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let n = train_x.dim(0)?;
    let batches = n / BATCH;
    let mut order: Vec<u32> = (0..n as u32).collect();
    let started = Instant::now();
    let mut accuracy = 0.0;
    for step in 0..args.steps {
        let b = (step as usize) % batches;
        if b == 0 {
            // A new epoch: shuffle (Fisher–Yates).
            for i in (1..n).rev() {
                let j = (rng.uniform() * (i + 1) as f64) as usize;
                order.swap(i, j.min(i));
            }
        }
        let index = Tensor::from_slice(&order[b * BATCH..(b + 1) * BATCH], BATCH, &device)?;
        let (x, y) = (
            train_x.index_select(&index, 0)?,
            train_y.index_select(&index, 0)?,
        );
        let lr = learning_rate(step, args.steps);
        optimizer.set_learning_rate(lr);
        let loss = candle_nn::loss::cross_entropy(&model.forward(&x)?, &y)?;
        let grads = loss.backward()?;
        let mut squares = 0.0f64;
        for var in varmap.all_vars() {
            if let Some(g) = grads.get(var.as_tensor()) {
                squares += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        optimizer.step(&grads)?;
        let loss = loss.to_scalar::<f32>()? as f64;
        if args.trainlog {
            tracing::info!(target: "metrics", step, loss, lr, grad_norm = squares.sqrt());
        }
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let logits = model.forward(&eval_x)?;
            let eval_loss = candle_nn::loss::cross_entropy(&logits, &eval_y)?.to_scalar::<f32>()?;
            accuracy = logits
                .argmax(D::Minus1)?
                .eq(&eval_y)?
                .to_dtype(DType::F32)?
                .mean_all()?
                .to_scalar::<f32>()? as f64;
            if args.trainlog {
                let weights = model.input.weight().flatten_all()?.to_vec1::<f32>()?;
                trainlog::log_fields(
                    Some(step),
                    false,
                    vec![
                        ("eval.loss".into(), Value::F64(eval_loss as f64)),
                        ("eval.acc".into(), Value::F64(accuracy)),
                        (
                            "weights.input".into(),
                            trainlog::Histogram::new(&weights).into(),
                        ),
                    ],
                );
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "candle_mlp: {} steps in {seconds:.2} s, {:.0} steps/s (trainlog {}), eval accuracy {accuracy:.3}",
        args.steps,
        args.steps as f64 / seconds,
        if args.trainlog { "on" } else { "off" }
    );
    if let Some(run) = run {
        run.result(
            "eval.acc",
            accuracy,
            &serde_json::json!({"steps": args.steps}),
        )?;
        run.complete()?;
    }
    drop(guard);
    Ok(())
}
