//! Logs N metrics events (default 1,000,000) into the JSONL sink and reports the time from
//! the first call until the guard is dropped, the lines on disk, and the peak memory.
//!
//! ```text
//! cargo run --release --example throughput -- [N] [--drop] [--queue CAPACITY]
//! ```

use std::time::Instant;

use tracing::info;
use tracing_subscriber::prelude::*;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: u64 = args
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .next()
        .map_or(Ok(1_000_000), |a| a.parse())?;
    let overflow = if args.iter().any(|a| a == "--drop") {
        trainlog::Overflow::Drop
    } else {
        trainlog::Overflow::Block
    };
    let queue: usize = args
        .iter()
        .position(|a| a == "--queue")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(65_536), |q| q.parse())?;
    let dir = tempfile_dir()?;
    let start = Instant::now();
    let (layer, guard) = trainlog::MetricLogger::builder()
        .output_dir(&dir)
        .rank(0)
        .overflow(overflow)
        .queue_capacity(queue)
        .build()?;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..n {
            info!(target: "metrics", step = i, loss = 1.0 / (i as f64 + 1.0), lr = 3e-4, "train.acc" = 0.5);
        }
    });
    let logged = start.elapsed();
    let stats = guard.shutdown(trainlog::sink::RunOutcome::Completed)?;
    let total = start.elapsed();
    let peak = peak_rss_kib();
    let path = trainlog::jsonl_path(&dir, 0);
    let lines =
        std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&path)?)).count();
    std::fs::remove_dir_all(&dir)?;
    println!(
        "{n} events: caller loop {:.3} s, until guard dropped {:.3} s ({:.2} M events/s), \
         {lines} lines on disk, dropped {}, peak RSS {} MiB",
        logged.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64() / 1e6,
        stats.dropped,
        peak.map_or("?".into(), |k| (k / 1024).to_string()),
    );
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("trainlog-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
