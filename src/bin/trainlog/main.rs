//! `trainlog`: list, inspect, follow and export training runs.
//!
//! ```text
//! trainlog ls [ROOT]                              runs under ROOT (default: runs)
//! trainlog show RUN                               status, params, metric summary
//! trainlog tail [-f] FILE|RUN                     records, dict-formatted; -f follows
//! trainlog export RUN [--format csv|jsonl] [-o F] one table, all ranks, a `rank` column
//! trainlog plot RUN... [--metric NAME]... -o OUT.png|OUT.svg
//!                                                 a chart per metric, a line per run and rank
//! trainlog sync [DIR]                             send what http/mlflow left spooled under DIR
//! ```
//!
//! A run is a directory holding `run.json` (the run API) or `metrics_rank*.jsonl` files
//! (any metric logger's JSONL output).

use std::path::Path;
use std::process::ExitCode;

mod chart;
mod export;
mod ls;
mod plot;
mod runs;
mod show;
mod sync;
mod tail;

pub const USAGE: &str = "usage:
  trainlog ls [ROOT]
  trainlog show RUN
  trainlog tail [-f] FILE|RUN
  trainlog export RUN [--format csv|jsonl] [-o FILE]
  trainlog plot RUN... [--metric NAME]... -o OUT.png|OUT.svg
  trainlog sync [DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ls") => ls::ls(args.get(1).map_or("runs", String::as_str)),
        Some("show") => match args.get(1) {
            Some(run) => show::show(Path::new(run)),
            None => Err(format!("show needs a run directory\n{USAGE}")),
        },
        Some("tail") => tail::tail(&args[1..]),
        Some("export") => export::export(&args[1..]),
        Some("plot") => plot::plot(&args[1..]),
        Some("sync") => sync::sync(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("trainlog: {message}");
            ExitCode::FAILURE
        }
    }
}
