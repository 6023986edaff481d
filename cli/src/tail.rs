//! `trainlog tail [-f] [-n N] FILE|RUN`: records as dict lines; `-f` follows new ones,
//! including rank files created after it started.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use trainlog::jsonl::to_record;

use crate::args::TailArgs;
use crate::runs::metric_files;

/// One followed file.
struct Source {
    /// The rank of a run's file; None for a file given by name.
    rank: Option<u32>,
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    /// Lines read so far, for error messages.
    number: usize,
}

impl Source {
    fn open(rank: Option<u32>, path: PathBuf) -> Result<Source, String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Source {
            rank,
            path,
            reader: BufReader::new(file),
            number: 0,
        })
    }

    /// The complete lines the file has now; a last line still being written is left for
    /// the next call.
    fn new_lines(&mut self) -> Result<Vec<(usize, String)>, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            if n == 0 || !line.ends_with('\n') {
                let _ = self.reader.seek(SeekFrom::Current(-(line.len() as i64)));
                return Ok(lines);
            }
            self.number += 1;
            if !line.trim().is_empty() {
                lines.push((self.number, line));
            }
        }
    }

    /// Prints one record; `many` prefixes it with its rank (a run with several rank files).
    fn print(
        &self,
        out: &mut impl Write,
        many: bool,
        number: usize,
        line: &str,
    ) -> Result<(), String> {
        let json: Json = serde_json::from_str(line)
            .map_err(|e| format!("{}:{number}: not valid JSON ({e})", self.path.display()))?;
        let mut text = String::new();
        let _ = trainlog::format::write_dict(
            &mut text,
            &to_record(&json),
            trainlog::format::color_enabled(),
        );
        match self.rank {
            Some(rank) if many => {
                let _ = writeln!(out, "[rank {rank}] {text}");
            }
            _ => {
                let _ = writeln!(out, "{text}");
            }
        }
        Ok(())
    }
}

pub fn tail(args: &TailArgs) -> Result<(), String> {
    let target = &args.target;
    let dir = target.is_dir();
    let mut sources = Vec::new();
    let mut known: Vec<PathBuf> = Vec::new();
    if dir {
        let files = metric_files(target);
        if files.is_empty() && !args.follow {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                target.display()
            ));
        }
        for (rank, path) in files {
            known.push(path.clone());
            sources.push(Source::open(Some(rank), path)?);
        }
    } else {
        sources.push(Source::open(None, target.to_path_buf())?);
    }
    let mut out = std::io::stdout().lock();
    // What is there now: everything, or the last N records of each file.
    let many = sources.len() > 1;
    for source in &mut sources {
        let lines = source.new_lines()?;
        let skip = args.lines.map_or(0, |n| lines.len().saturating_sub(n));
        for (number, line) in lines.into_iter().skip(skip) {
            source.print(&mut out, many, number, &line)?;
        }
    }
    let _ = out.flush();
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if dir {
            add_new_ranks(target, &mut known, &mut sources)?;
        }
        // Ranks are named once there is more than one file.
        let many = sources.len() > 1;
        for source in &mut sources {
            for (number, line) in source.new_lines()? {
                source.print(&mut out, many, number, &line)?;
            }
        }
        let _ = out.flush();
    }
}

/// Starts following rank files that appeared since the last look (from their start).
fn add_new_ranks(
    dir: &Path,
    known: &mut Vec<PathBuf>,
    sources: &mut Vec<Source>,
) -> Result<(), String> {
    for (rank, path) in metric_files(dir) {
        if !known.contains(&path) {
            known.push(path.clone());
            sources.push(Source::open(Some(rank), path)?);
        }
    }
    Ok(())
}
