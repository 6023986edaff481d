//! Append-only JSON-lines files, read back with tolerance for one torn last line.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Appends `value` as one line to `path` (created if missing) with a single write. A torn
/// last line left by a crash is cut off first, so the file stays valid.
pub fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut line = serde_json::to_vec(value)
        .map_err(|e| Error::Config(format!("{}: value is not JSON: {e}", path.display())))?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("append to", path, e))?;
    crate::file::cut_torn_tail(&mut file).map_err(|e| Error::io("repair", path, e))?;
    file.write_all(&line)
        .map_err(|e| Error::io("append to", path, e))
}

/// Reads every line of a JSON-lines file. A last line without its newline that does not
/// parse is a write cut short by a crash and is skipped; any other bad line is an error
/// that names the file and the line number.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("m.jsonl");
/// std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n{\"a\":")?; // torn by a crash
/// let lines = trainlog::run::read_jsonl(&path)?;
/// assert_eq!(lines.len(), 2);
/// std::fs::write(&path, "{\"a\":1}\nnot json\n{\"a\":2}\n")?;
/// let err = trainlog::run::read_jsonl(&path).unwrap_err().to_string();
/// assert!(err.contains("m.jsonl:2"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(value) => out.push(value),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(e) => {
                return Err(Error::Config(format!(
                    "{}:{}: not valid JSON ({e})",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    Ok(out)
}
