//! `trainlog tail [-f] FILE|RUN`: records as dict lines; `-f` follows new ones.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use trainlog::jsonl::to_record;

use crate::runs::metric_files;
use crate::USAGE;

fn print_line(
    out: &mut impl Write,
    line: &str,
    prefix: &str,
    path: &Path,
    number: usize,
) -> Result<(), String> {
    if line.trim().is_empty() {
        return Ok(());
    }
    let json: Json = serde_json::from_str(line)
        .map_err(|e| format!("{}:{number}: not valid JSON ({e})", path.display()))?;
    let mut text = String::new();
    let _ = trainlog::format::write_dict(
        &mut text,
        &to_record(&json),
        trainlog::format::color_enabled(),
    );
    let _ = writeln!(out, "{prefix}{text}");
    Ok(())
}

pub fn tail(args: &[String]) -> Result<(), String> {
    let follow = args.iter().any(|a| a == "-f" || a == "--follow");
    let target = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .ok_or_else(|| format!("tail needs a file or a run directory\n{USAGE}"))?;
    let target = Path::new(target);
    let files: Vec<(String, PathBuf)> = if target.is_dir() {
        let files = metric_files(target);
        if files.is_empty() {
            return Err(format!(
                "{} has no metrics_rank*.jsonl files",
                target.display()
            ));
        }
        let many = files.len() > 1;
        files
            .into_iter()
            .map(|(rank, p)| {
                (
                    if many {
                        format!("[rank {rank}] ")
                    } else {
                        String::new()
                    },
                    p,
                )
            })
            .collect()
    } else {
        vec![(String::new(), target.to_path_buf())]
    };
    let mut readers = Vec::new();
    for (prefix, path) in files {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        readers.push((prefix, path, BufReader::new(file), 0));
    }
    let mut out = std::io::stdout().lock();
    loop {
        for (prefix, path, reader, number) in &mut readers {
            print_new_lines(&mut out, reader, prefix, path, number)?;
        }
        let _ = out.flush();
        if !follow {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints the complete lines `reader` has; a last line still being written is left for
/// the next call.
fn print_new_lines(
    out: &mut impl Write,
    reader: &mut BufReader<std::fs::File>,
    prefix: &str,
    path: &Path,
    number: &mut usize,
) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 || !line.ends_with('\n') {
            let _ = reader.seek(SeekFrom::Current(-(line.len() as i64)));
            return Ok(());
        }
        *number += 1;
        print_line(out, &line, prefix, path, *number)?;
    }
}
