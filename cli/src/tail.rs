//! `trainlog tail [-f] [-n N] FILE|RUN`: records as dict lines; `-f` follows new ones,
//! including rank files created after it started, and files truncated, or deleted and
//! created again, as `tail -F` does. A line that is not JSON (or not UTF-8) is named on
//! stderr and skipped; histograms print as their statistics, as in the other commands.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use trainlog::jsonl::to_record;

use crate::args::TailArgs;
use crate::engine::{reason, report_skipped};
use crate::runs::{histogram_stats, metric_files};

/// One followed file.
struct Source {
    /// The rank of a run's file; None for a file given by name.
    rank: Option<u32>,
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    /// Lines read so far, for error messages.
    number: usize,
    /// Which file is open (device and inode on Unix), to notice one created anew.
    identity: Option<(u64, u64)>,
}

/// A file's identity: another file at the same path (deleted and created again) has
/// another. Unix only; elsewhere only truncation is noticed.
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl Source {
    fn open(rank: Option<u32>, path: PathBuf) -> Result<Source, String> {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let identity = file.metadata().ok().as_ref().and_then(identity);
        Ok(Source {
            rank,
            path,
            reader: BufReader::new(file),
            number: 0,
            identity,
        })
    }

    /// Whether the path now holds another file, or this one was cut shorter than what was
    /// read: then it is read again from its start. A path with no file (deleted, not yet
    /// created again) is waited for.
    fn reopen_if_replaced(&mut self) -> Result<bool, String> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Ok(false);
        };
        let position = self.reader.stream_position().unwrap_or(0);
        let replaced = identity(&meta) != self.identity;
        if !replaced && meta.len() >= position {
            return Ok(false);
        }
        // Gone again before it could be opened: looked at on the next round.
        let Ok(source) = Source::open(self.rank, self.path.clone()) else {
            return Ok(false);
        };
        let what = if replaced { "replaced" } else { "truncated" };
        eprintln!(
            "trainlog: {}: file {what}, reading it from its start",
            self.path.display()
        );
        *self = source;
        Ok(true)
    }

    /// The complete lines the file has now; a last line still being written is left for
    /// the next call.
    fn new_lines(&mut self) -> Result<Vec<(usize, Vec<u8>)>, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            if n == 0 || line.last() != Some(&b'\n') {
                let _ = self.reader.seek(SeekFrom::Current(-(line.len() as i64)));
                return Ok(lines);
            }
            self.number += 1;
            if !line.trim_ascii().is_empty() {
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
        line: &[u8],
    ) -> Result<(), String> {
        let json: Json = match serde_json::from_slice(line) {
            Ok(json) => json,
            Err(e) => {
                report_skipped(&self.path, number, &reason(&e));
                return Ok(());
            }
        };
        let mut text = String::new();
        let _ = trainlog::format::write_dict(
            &mut text,
            &to_record(&histogram_stats(json)),
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
            source.reopen_if_replaced()?;
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
