//! A metrics file's lines as every command reads them (see [`Lines`]).

use std::io::BufRead;
use std::path::Path;

/// The lines of a metrics file as every command reads them: numbered from 1, blank lines
/// and resume lines left out, with what tells a torn last line (no newline) and an
/// orphaned one (before a resume line, at or past its step) apart. `FileScan::read` and
/// `export` read through it.
pub struct Lines {
    path: std::path::PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    buf: Vec<u8>,
    number: usize,
    /// Resume lines (line number, step), in order.
    resumes: Vec<(usize, u64)>,
    /// Per resume line, the smallest step of it and every later one.
    floor: Vec<(usize, u64)>,
    /// The first resume line after the current line.
    next_resume: usize,
    /// Bytes read through the last line that ended with a newline.
    offset: u64,
    /// The number of the last line that ended with a newline.
    whole: usize,
    /// Reading only what was appended after an offset ([`Lines::open_at`]): a resume line
    /// there stops the reading ([`Lines::saw_resume`]), since its orphans are earlier.
    appended: bool,
    saw_resume: bool,
}

/// One line of a metrics file (see [`Lines`]).
pub struct Line<'a> {
    pub number: usize,
    /// The line without its newline and surrounding whitespace; never empty.
    pub text: &'a [u8],
    /// Whether it ended with a newline (a last line without one may be torn).
    pub complete: bool,
    /// The smallest step of the resume lines after it: a step at or past it is orphaned.
    floor: Option<u64>,
}

impl Line<'_> {
    /// Whether this line, at `step`, is orphaned by a later resume line.
    pub fn orphaned(&self, step: Option<u64>) -> bool {
        matches!((step, self.floor), (Some(step), Some(floor)) if step >= floor)
    }
}

impl Lines {
    pub fn open(path: &Path) -> Result<Lines, String> {
        let resumes = trainlog::jsonl::resumes(path).map_err(|e| e.to_string())?;
        let mut floor = resumes.clone();
        for i in (0..floor.len().saturating_sub(1)).rev() {
            floor[i].1 = floor[i].1.min(floor[i + 1].1);
        }
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Lines {
            path: path.to_path_buf(),
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            buf: Vec::with_capacity(512),
            number: 0,
            resumes,
            floor,
            next_resume: 0,
            offset: 0,
            whole: 0,
            appended: false,
            saw_resume: false,
        })
    }

    /// The lines appended after byte `offset`, which ends line `number`: only whole lines
    /// (one without a newline may still be being written), stopping at a resume line.
    pub fn open_at(path: &Path, offset: u64, number: usize) -> Result<Lines, String> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Lines {
            path: path.to_path_buf(),
            reader: std::io::BufReader::with_capacity(1 << 16, file),
            buf: Vec::with_capacity(512),
            number,
            resumes: Vec::new(),
            floor: Vec::new(),
            next_resume: 0,
            offset,
            whole: number,
            appended: true,
            saw_resume: false,
        })
    }

    /// Bytes read through the last whole line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The number of the last whole line read.
    pub fn whole_lines(&self) -> usize {
        self.whole
    }

    /// Whether reading appended lines stopped at a resume line (see [`Lines::open_at`]).
    pub fn saw_resume(&self) -> bool {
        self.saw_resume
    }

    /// The next line that is not blank and not a resume line; `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, String> {
        loop {
            self.buf.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            if read == 0 {
                return Ok(None);
            }
            let complete = self.buf.last() == Some(&b'\n');
            if self.appended {
                if !complete {
                    return Ok(None);
                }
                if trainlog::jsonl::resume_step(&self.buf).is_some() {
                    self.saw_resume = true;
                    return Ok(None);
                }
            }
            self.number += 1;
            if complete {
                self.offset += read as u64;
                self.whole = self.number;
            }
            while self.next_resume < self.floor.len()
                && self.floor[self.next_resume].0 <= self.number
            {
                self.next_resume += 1;
            }
            let number = self.number;
            if self.buf.trim_ascii().is_empty()
                || self.resumes.binary_search_by_key(&number, |r| r.0).is_ok()
            {
                continue;
            }
            return Ok(Some(Line {
                number,
                text: self.buf.trim_ascii(),
                complete,
                floor: self.floor.get(self.next_resume).map(|f| f.1),
            }));
        }
    }
}

/// Why a line is not a JSON object, for people: serde's position is within the line, so
/// its column is what helps.
pub fn reason(e: &serde_json::Error) -> String {
    e.to_string().replace(" at line 1 column ", " at column ")
}

/// Names a skipped line on stderr: `trainlog: FILE:LINE: skipped a line that is not a JSON
/// object (WHY)`, the same words from every command.
pub fn report_skipped(path: &Path, line: usize, why: &str) {
    eprintln!(
        "trainlog: {}:{line}: skipped a line that is not a JSON object ({why})",
        path.display()
    );
}
