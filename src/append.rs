//! Appending to line files after a crash: a torn last line is cut before anything is added.
//!
//! A process killed (or a disk that filled up) in the middle of a write leaves half a line
//! at the end of a JSON-lines file. Appending after it would glue the next record onto that
//! half and make both unreadable, so every appender of line files (the metrics JSONL, the
//! network spools, the run API's files) calls [`cut_torn_tail`] on the file it opened
//! before its first write.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// Truncates `file` after its last newline when it does not end with one, and returns how
/// many bytes were cut. Files that are not regular files (`/dev/full`, pipes) are left
/// alone. `file` must be open for reading.
pub(crate) fn cut_torn_tail(file: &mut File) -> io::Result<u64> {
    let meta = file.metadata()?;
    let len = meta.len();
    if !meta.is_file() || len == 0 {
        return Ok(0);
    }
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    let keep = loop {
        if end == 0 {
            // No newline at all: the whole content is one torn line.
            break 0;
        }
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(at) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            break start + at as u64 + 1;
        }
        end = start;
    };
    if keep != len {
        file.set_len(keep)?;
    }
    Ok(len - keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(content: &[u8]) -> (Vec<u8>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, content).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let n = cut_torn_tail(&mut file).unwrap();
        (std::fs::read(&path).unwrap(), n)
    }

    #[test]
    fn cuts_only_an_unterminated_last_line() {
        assert_eq!(cut(b"a\nb\n"), (b"a\nb\n".to_vec(), 0));
        assert_eq!(cut(b"a\nb\n{\"x\":"), (b"a\nb\n".to_vec(), 5));
        assert_eq!(cut(b"torn"), (Vec::new(), 4));
        assert_eq!(cut(b""), (Vec::new(), 0));
        // A torn line longer than the read chunk.
        let mut long = b"ok\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 10_000));
        assert_eq!(cut(&long), (b"ok\n".to_vec(), 10_000));
    }

    #[test]
    fn leaves_devices_alone() {
        let mut full = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open("/dev/full")
            .unwrap();
        assert_eq!(cut_torn_tail(&mut full).unwrap(), 0);
    }
}
