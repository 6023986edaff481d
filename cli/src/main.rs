//! `trainlog`: list, inspect, compare, follow, export and plot training runs.
//!
//! Layout (after ripgrep's): `args.rs` defines the arguments (clap), `runs.rs` finds and
//! reads runs, one file per command, `chart/` draws the plots.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

mod args;
mod chart;
mod compare;
mod engine;
mod export;
mod ls;
mod plot;
mod runs;
mod serve;
mod show;
mod style;
mod sync;
mod tail;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls(a) => ls::ls(&a),
        Command::Show(a) => show::show(&a),
        Command::Compare(a) => compare::compare(&a),
        Command::Tail(a) => tail::tail(&a),
        Command::Export(a) => export::export(&a),
        Command::Plot(a) => plot::plot(&a),
        Command::Sync(a) => sync::sync(&a),
        Command::Serve(a) => serve::serve(&a),
        Command::Completions(a) => {
            clap_complete::generate(
                a.shell,
                &mut Cli::command(),
                "trainlog",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("trainlog: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints JSON on stdout (pretty on a terminal? no: one line per value, for jq and scripts).
pub fn print_json(value: &serde_json::Value) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())
}
