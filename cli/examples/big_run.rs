//! Writes a run of N steps (default 1,000,000) with three metrics through trainlog's own
//! JSONL backend (and any others in BACKENDS, e.g. `async,tensorboard`), for measuring how the command line reads runs of the size people train:
//! `loss` (a decaying curve), `lr` (a schedule) and `grad.norm` (uniform noise in [0, 1),
//! the worst case for a chart: every pixel column holds its whole range).
//!
//! ```text
//! cargo run --release -p trainlog-cli --example big_run -- DIR [STEPS] [BACKENDS]
//! ```

use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: big_run DIR [STEPS] [BACKENDS]")?;
    let steps: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let backends = args.next().unwrap_or_else(|| "async".into());
    let (layer, guard) = trainlog::MetricLogger::builder()
        .backends(&backends)?
        .output_dir(&dir)
        .rank(0)
        .console(false)
        .build()?;
    // xorshift64*: reproducible noise without a dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for step in 0..steps {
            let t = step as f64 / steps.max(1) as f64;
            tracing::info!(
                target: "metrics",
                step,
                loss = 2.5 * (-3.0 * t).exp() + 0.1 * noise(),
                lr = 3e-4 * (1.0 - t),
                "grad.norm" = noise(),
            );
        }
    });
    let stats = guard.shutdown(trainlog::sink::RunOutcome::Completed)?;
    println!("{dir}: {steps} steps, {} records written", stats.written);
    Ok(())
}
