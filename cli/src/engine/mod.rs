//! The one reading engine behind `ls`, `show`, `compare` and `plot`: it streams a metrics
//! file once, line by line, and keeps per metric its summary and, when asked, its points
//! as (x, y) pairs, never the JSON of the whole file.
//!
//! A line is parsed straight into what is kept (serde's visitor over the JSON object: no
//! `serde_json::Value` per line, metric names looked up without allocating), with the
//! rules of `trainlog::jsonl`: metadata keys (`timestamp`, `rank`, `step`, `hparams`,
//! `message`) are not metrics; numbers, and the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, are values; a histogram (an object with `edges` and `counts`) becomes
//! `<name>.count`, `.min`, `.max`, `.mean` and `.nonfinite`; a key given twice in a line
//! counts once, with its last value; a resumed run's orphaned lines (before a resume line,
//! at or past its step) and the resume lines themselves are left out; a torn last line
//! (no newline, not JSON) is ignored; any other line that is not a JSON object (invalid
//! UTF-8 included) is skipped and counted, with its line number.
//!
//! `lines` reads a file's lines by those rules (`export` uses it too); `parse` is the visitor
//! that turns one line into numbers by metric.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeSeed;
use serde_json::Value as Json;

use crate::runs::Summary;

mod lines;
mod parse;

pub use lines::{reason, report_skipped, Lines};
use parse::{LineSeed, Parsed};

/// Which points to keep, besides every metric's summary.
#[derive(Clone, Copy)]
pub struct Keep<'a> {
    /// The points' x: the step, or the record's time in Unix seconds (lines without one
    /// give no point).
    pub x: X,
    /// The metrics whose points are kept (none: summaries only).
    pub metrics: &'a [String],
    /// Keep every metric's points while they number at most this many in all; past it,
    /// none (then [`FileScan::points_dropped`] says so). For a caller that picks its
    /// metrics after reading and would rather not read twice.
    pub all_up_to: usize,
    /// Keep each point's record time too ([`Metric::times`]), for a reader that draws
    /// either axis (`serve`).
    pub times: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X {
    Step,
    Time,
}

impl Keep<'_> {
    /// Summaries only.
    pub const NONE: Keep<'static> = Keep {
        x: X::Step,
        metrics: &[],
        all_up_to: 0,
        times: false,
    };

    /// The points of `metrics` on `x`.
    pub fn points(x: X, metrics: &[String]) -> Keep<'_> {
        Keep {
            x,
            metrics,
            all_up_to: 0,
            times: false,
        }
    }

    /// Every metric's points by step, with their times: what `serve` keeps.
    pub const EVERYTHING: Keep<'static> = Keep {
        x: X::Step,
        metrics: &[],
        all_up_to: usize::MAX,
        times: true,
    };
}

/// One metric of a file.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub summary: Summary,
    /// (x, y) in file order, when [`Keep`] asked for this metric.
    pub points: Vec<(f64, f64)>,
    /// Each point's record time (Unix seconds, NaN for a line without one), when
    /// [`Keep::times`] asked for them.
    pub times: Vec<f64>,
    keep: bool,
}

/// What one metrics file holds, read once.
#[derive(Debug, Default, Clone)]
pub struct FileScan {
    /// Metrics in the order they first appear.
    pub metrics: Vec<Metric>,
    index: HashMap<String, usize>,
    /// The first and last record times (Unix seconds) in file order.
    pub first_time: Option<f64>,
    pub last_time: Option<f64>,
    /// The largest step of any line kept (hyperparameter lines included).
    pub max_step: Option<u64>,
    /// The hyperparameter lines (`"hparams": true`), whole, in order.
    pub hparams: Vec<Json>,
    /// Every metric's points were being kept ([`Keep::all_up_to`]) and there were more:
    /// none are kept.
    pub points_dropped: bool,
    /// Points kept of metrics not asked for by name ([`Keep::all_up_to`]).
    kept_points: usize,
    /// The last valid timestamp's text, when times are not parsed on every line.
    last_text: String,
    /// Lines skipped because they are not JSON objects, and the first few of them (line
    /// number from 1, why).
    pub bad_lines: usize,
    pub first_bad: Vec<(usize, String)>,
    /// Bytes read through the last whole line, and its number: where reading what is
    /// appended starts ([`FileScan::read_appended`]).
    read_to: u64,
    lines_read: usize,
    /// The last line read had no newline (it may grow): it is read again with the rest.
    tail_taken: bool,
    /// The metric of each name of the last line, in order, and how many names this line
    /// has given so far (see [`FileScan::metric`]).
    order: Vec<usize>,
    nth: usize,
    pub(crate) clock: Clock,
}

/// How many skipped lines are named; the rest are counted.
const NAMED_BAD: usize = 5;

impl FileScan {
    /// Reads `path`, keeping what `keep` asks for.
    pub fn read(path: &Path, keep: Keep<'_>) -> Result<FileScan, String> {
        let mut scan = FileScan::default();
        scan.take_lines(Lines::open(path)?, path, keep)?;
        Ok(scan)
    }

    /// Adds the lines appended to `path` since it was read with `keep`, reading from where
    /// the last read stopped; bytes before it are not read again. It reads the file whole
    /// again when that cannot be right: the file is shorter than what was read (truncated
    /// or replaced), a resume line was appended (its orphans are earlier lines), or the last
    /// line read had no newline. (Metrics are in the order they first appear, except that a
    /// name first seen in a hyperparameter line and later as a metric may come where it first
    /// came as a metric.)
    pub fn read_appended(&mut self, path: &Path, keep: Keep<'_>) -> Result<(), String> {
        let len = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        if len < self.read_to || self.tail_taken {
            *self = FileScan::read(path, keep)?;
            return Ok(());
        }
        let lines = Lines::open_at(path, self.read_to, self.lines_read)?;
        if self.take_lines(lines, path, keep)? {
            *self = FileScan::read(path, keep)?;
        }
        Ok(())
    }

    /// Takes every line `lines` gives; true when it stopped at an appended resume line.
    fn take_lines(
        &mut self,
        mut lines: Lines,
        path: &Path,
        keep: Keep<'_>,
    ) -> Result<bool, String> {
        let mut parsed = Parsed::default();
        self.tail_taken = false;
        self.last_text.clear();
        while let Some(line) = lines.next_line()? {
            parsed.clear();
            self.nth = 0;
            let result = LineSeed {
                scan: self,
                parsed: &mut parsed,
                keep,
            }
            .deserialize(&mut serde_json::Deserializer::from_slice(line.text));
            if let Err(e) = result {
                if line.complete {
                    self.bad(line.number, reason(&e));
                }
                // A torn last line (a crash mid-write) is not a bad line.
                continue;
            }
            if line.orphaned(parsed.step) {
                continue;
            }
            self.tail_taken = !line.complete;
            self.take(&parsed, line.text, keep);
        }
        self.read_to = lines.offset();
        self.lines_read = lines.whole_lines();
        if !self.last_text.is_empty() {
            self.last_time = match parse_time(&self.last_text) {
                Some(t) => Some(t),
                // The last timestamp is not a time: the last one that is, read again.
                None => last_time_of(path)?,
            };
        }
        // Names seen only in hyperparameter lines are not metrics.
        self.metrics.retain(|m| m.summary.count > 0);
        self.order.clear();
        self.index.clear();
        for (i, m) in self.metrics.iter().enumerate() {
            self.index.insert(m.name.clone(), i);
        }
        Ok(lines.saw_resume())
    }

    fn bad(&mut self, line: usize, why: String) {
        self.bad_lines += 1;
        if self.first_bad.len() < NAMED_BAD {
            self.first_bad.push((line, why));
        }
    }

    /// The metric called `name`, made on first sight.
    ///
    /// The lines of a file name their metrics in the same order, so the metric this line's
    /// n-th name was on the line before is tried first: a string compare instead of hashing
    /// (a tenth of the reading's time on a large run was in the hash map).
    fn metric(&mut self, name: &str, keep: Keep<'_>) -> usize {
        let nth = self.nth;
        self.nth += 1;
        if let Some(&i) = self.order.get(nth) {
            if self.metrics.get(i).is_some_and(|m| m.name == name) {
                return i;
            }
        }
        let i = self.lookup(name, keep);
        if nth < self.order.len() {
            self.order[nth] = i;
        } else {
            self.order.push(i);
        }
        i
    }

    fn lookup(&mut self, name: &str, keep: Keep<'_>) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.metrics.push(Metric {
            name: name.to_owned(),
            summary: Summary::new(),
            points: Vec::new(),
            times: Vec::new(),
            keep: (keep.all_up_to > 0 && !self.points_dropped)
                || keep.metrics.iter().any(|m| m == name),
        });
        self.index.insert(name.to_owned(), self.metrics.len() - 1);
        self.metrics.len() - 1
    }

    /// Adds one parsed line.
    fn take(&mut self, line: &Parsed, text: &[u8], keep: Keep<'_>) {
        if let Some(step) = line.step {
            self.max_step = Some(self.max_step.map_or(step, |m| m.max(step)));
        }
        if let Some(t) = &line.time {
            self.first_time.get_or_insert(*t);
            self.last_time = Some(*t);
        } else if !line.time_text.is_empty() {
            if self.first_time.is_none() {
                self.first_time = parse_time(&line.time_text);
            }
            // The last one is parsed at the end (see `read`).
            self.last_text.clear();
            self.last_text.push_str(&line.time_text);
        }
        if line.hparams {
            // Rare: the whole line, for its parameters of any type.
            if let Ok(value) = serde_json::from_slice(text) {
                self.hparams.push(value);
            }
            return;
        }
        let x = match keep.x {
            X::Step => line.step.map(|s| s as f64),
            X::Time => line.time,
        };
        for &(i, y, integer) in &line.values {
            let metric = &mut self.metrics[i];
            metric.summary.add(y, line.step, integer);
            if metric.keep {
                if let Some(x) = x {
                    metric.points.push((x, y));
                    if keep.times {
                        metric.times.push(line.time.unwrap_or(f64::NAN));
                    }
                    self.kept_points += 1;
                }
            }
        }
        if keep.all_up_to > 0 && self.kept_points > keep.all_up_to && !self.points_dropped {
            self.drop_points(keep);
        }
    }

    /// The points kept, over every metric.
    pub fn points_kept(&self) -> usize {
        self.metrics.iter().map(|m| m.points.len()).sum()
    }

    /// Lets go of every point, keeping the summaries; what is appended later adds to the
    /// summaries only.
    pub fn drop_every_point(&mut self) {
        for metric in &mut self.metrics {
            metric.keep = false;
            metric.points = Vec::new();
            metric.times = Vec::new();
        }
        self.kept_points = 0;
    }

    /// Stops keeping the points of every metric not asked for by name.
    #[cold]
    fn drop_points(&mut self, keep: Keep<'_>) {
        self.points_dropped = true;
        for metric in &mut self.metrics {
            if !keep.metrics.contains(&metric.name) {
                metric.keep = false;
                metric.points = Vec::new();
                metric.times = Vec::new();
            }
        }
    }
}

/// The last record time of `path` (Unix seconds), reading it again with every time parsed:
/// for a file whose last timestamp is not a valid time.
#[cold]
fn last_time_of(path: &Path) -> Result<Option<f64>, String> {
    Ok(FileScan::read(path, Keep::points(X::Time, &[]))?.last_time)
}

/// A record's time in Unix seconds, from its RFC 3339 text.
fn parse_time(text: &str) -> Option<f64> {
    trainlog::time::parse_rfc3339(text).map(trainlog::time::unix_seconds)
}

/// Record times with a shortcut: lines written within the same minute share their text up
/// to the seconds (`2026-01-01T00:00:`), so once that minute is known only `SS.ffffffZ` is
/// parsed. Hand-written for a measured hot path: parsing every timestamp whole was a tenth
/// of `serve`'s reading. Gives exactly what [`parse_time`] gives (tested).
#[derive(Debug, Default, Clone)]
pub(crate) struct Clock {
    /// `YYYY-MM-DDTHH:MM:` of the last time parsed whole, and that minute's Unix seconds.
    minute: Vec<u8>,
    base: u64,
}

impl Clock {
    pub(crate) fn parse(&mut self, text: &str) -> Option<f64> {
        const MINUTE: usize = "2026-01-01T00:00:".len();
        let bytes = text.as_bytes();
        if bytes.len() > MINUTE && !self.minute.is_empty() && bytes[..MINUTE] == self.minute[..] {
            if let Some((secs, nanos)) = seconds(&bytes[MINUTE..]) {
                return Some(std::time::Duration::new(self.base + secs, nanos).as_secs_f64());
            }
        }
        let time = trainlog::time::parse_rfc3339(text)?;
        if bytes.len() > MINUTE && bytes[MINUTE - 1] == b':' {
            if let (Some((secs, _)), Ok(since)) = (
                seconds(&bytes[MINUTE..]),
                time.duration_since(std::time::UNIX_EPOCH),
            ) {
                self.minute.clear();
                self.minute.extend_from_slice(&bytes[..MINUTE]);
                self.base = since.as_secs() - secs;
            }
        }
        Some(trainlog::time::unix_seconds(time))
    }
}

/// `SS` (00 to 59), an optional fraction of 1 to 9 digits, and `Z`: (seconds, nanoseconds).
fn seconds(text: &[u8]) -> Option<(u64, u32)> {
    let text = text.strip_suffix(b"Z")?;
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let (ss, fraction) = match text {
        [a, b] => ((*a, *b), &[][..]),
        [a, b, b'.', rest @ ..] if (1..=9).contains(&rest.len()) => ((*a, *b), rest),
        _ => return None,
    };
    let secs = digit(ss.0)? * 10 + digit(ss.1)?;
    if secs > 59 {
        return None;
    }
    let mut nanos = 0u32;
    for &b in fraction {
        nanos = nanos * 10 + digit(b)?;
    }
    nanos *= 10u32.pow(9 - fraction.len() as u32);
    Some((u64::from(secs), nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{histogram_stats, summarize};
    use trainlog::jsonl::{read as read_jsonl, without_orphans};

    /// The engine's summaries, next to those of the old reader (whole lines as JSON values).
    fn both(text: &str) -> (FileScan, std::collections::BTreeMap<String, Summary>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        std::fs::write(&path, text).unwrap();
        let scan = FileScan::read(&path, Keep::NONE).unwrap();
        let lines: Vec<Json> = without_orphans(read_jsonl(&path).unwrap())
            .into_iter()
            .map(histogram_stats)
            .collect();
        (scan, summarize(&lines))
    }

    fn same(scan: &FileScan, old: &std::collections::BTreeMap<String, Summary>) {
        assert_eq!(scan.metrics.len(), old.len(), "{:?}", scan.metrics);
        for m in &scan.metrics {
            let o = &old[&m.name];
            let s = &m.summary;
            assert_eq!(
                (s.count, s.non_finite, s.min_step, s.max_step, s.integers),
                (o.count, o.non_finite, o.min_step, o.max_step, o.integers),
                "{}",
                m.name
            );
            for (a, b) in [(s.min, o.min), (s.max, o.max), (s.last, o.last)] {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{}: {a} != {b}",
                    m.name
                );
            }
        }
    }

    #[test]
    fn summaries_match_the_whole_line_reader() {
        let text = concat!(
            r#"{"timestamp":"2026-01-01T00:00:00.000000Z","rank":0,"step":0,"loss":2.5,"lr":0.001,"phase":"train"}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:01.000000Z","rank":0,"step":1,"loss":"NaN","acc":1,"ok":true}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:02.000000Z","rank":0,"step":2,"loss":1.5,"loss":1.25,"h":{"edges":[0,1],"counts":[2],"count":2,"min":0.0,"max":1.0,"mean":0.5,"nan":1,"pos_inf":0,"neg_inf":0}}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:03.000000Z","rank":0,"step":1,"hparams":true,"lr":0.1,"name":"x"}"#,
            "\n",
            r#"{"rank":0,"step":3,"loss":"-Infinity","n":-4,"nested":{"a":1},"list":[1,2]}"#,
            "\n",
            r#"{"rank":0,"step":2,"event":"resume"}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:04.000000Z","rank":0,"step":2,"loss":0.5,"e\u0301":3}"#,
            "\n",
        );
        let (scan, old) = both(text);
        same(&scan, &old);
        // The line at step 3 is orphaned by the resume at step 2.
        assert_eq!(scan.max_step, Some(2));
        assert_eq!(scan.hparams.len(), 1);
        assert_eq!(scan.bad_lines, 0);
        let t0 = trainlog::time::unix_seconds(
            trainlog::time::parse_rfc3339("2026-01-01T00:00:00.000000Z").unwrap(),
        );
        assert_eq!(
            (scan.first_time, scan.last_time),
            (Some(t0), Some(t0 + 4.0))
        );
    }

    /// A line of a metrics file: a few metric names with every kind of value, steps that
    /// go back (resumes), hyperparameter lines, keys given twice.
    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let value = prop_oneof![
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            any::<i64>().prop_map(Json::from),
            Just(Json::from("NaN")),
            Just(Json::from("Infinity")),
            Just(Json::from("-Infinity")),
            Just(Json::from("text")),
            any::<bool>().prop_map(Json::from),
            (0u64..5, -1e3f64..1e3).prop_map(|(n, x)| serde_json::json!({
                "edges": [0, 1], "counts": [n], "count": n, "min": x, "max": "NaN",
                "mean": x / 2.0, "nan": 1, "pos_inf": n, "neg_inf": 0
            })),
        ];
        let field = (prop::sample::select(vec!["loss", "lr", "acc", "h"]), value);
        (
            proptest::option::of(0u64..20),
            0u8..20,
            prop::collection::vec(field, 0..5),
        )
            .prop_map(|(step, kind, fields)| {
                let mut text = String::from("{");
                if let Some(step) = step {
                    text.push_str(&format!("\"step\":{step},"));
                }
                match kind {
                    0 => text.push_str("\"hparams\":true,"),
                    1 if step.is_some() => text.push_str("\"event\":\"resume\","),
                    _ => {}
                }
                for (k, v) in fields {
                    text.push_str(&format!("\"{k}\":{v},"));
                }
                text.push_str("\"rank\":0}");
                text
            })
    }

    proptest::proptest! {
        #[test]
        fn summaries_match_the_whole_line_reader_on_any_lines(
            lines in proptest::collection::vec(line(), 0..40)
        ) {
            let mut text = lines.join("\n");
            text.push('\n');
            let (scan, old) = both(&text);
            same(&scan, &old);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metrics_rank0.jsonl");
            std::fs::write(&path, &text).unwrap();
            let kept = without_orphans(read_jsonl(&path).unwrap());
            let max_step = kept.iter().filter_map(|l| l["step"].as_u64()).max();
            proptest::prop_assert_eq!(scan.max_step, max_step);
            let hparams = kept.iter().filter(|l| l["hparams"] == true).count();
            proptest::prop_assert_eq!(scan.hparams.len(), hparams);
        }
    }

    /// Everything a scan kept, to compare two scans.
    fn kept(scan: &FileScan) -> String {
        // Sorted: a name first seen in a hyperparameter line can be listed at its first
        // line or at its first value (see `read_appended`).
        let mut metrics: Vec<_> = scan
            .metrics
            .iter()
            .map(|m| {
                let s = &m.summary;
                format!(
                    "{} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                    m.name,
                    s.count,
                    s.non_finite,
                    s.min,
                    s.max,
                    s.last,
                    s.min_step,
                    s.max_step,
                    m.points,
                    m.times.iter().map(|t| t.to_bits()).collect::<Vec<_>>()
                )
            })
            .collect();
        metrics.sort();
        format!(
            "{metrics:#?} {:?} {:?} {:?} {:?} {} {:?}",
            scan.first_time,
            scan.last_time,
            scan.max_step,
            scan.hparams,
            scan.bad_lines,
            scan.first_bad
        )
    }

    proptest::proptest! {
        /// A file read while it is written, in pieces cut anywhere (mid-line too), ends up
        /// as read whole: appended lines are read from where the last reading stopped,
        /// and a resume line, a shrunk file or a line taken without its newline make a
        /// whole reading.
        #[test]
        fn reading_what_is_appended_ends_as_reading_the_whole_file(
            lines in proptest::collection::vec(line(), 1..30),
            cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
        ) {
            let mut text = String::new();
            for (i, l) in lines.iter().enumerate() {
                // Some timestamps, so times are kept.
                let l = l.replacen('{', &format!("{{\"timestamp\":\"2026-01-01T00:00:{:02}.000000Z\",", i % 60), 1);
                text.push_str(&l);
                text.push('\n');
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| (c * text.len() as f64) as usize).collect();
            cuts.push(text.len());
            cuts.sort();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("metrics_rank0.jsonl");
            std::fs::write(&path, &text[..cuts[0]]).unwrap();
            let mut live = FileScan::read(&path, Keep::EVERYTHING).unwrap();
            for &cut in &cuts[1..] {
                std::fs::write(&path, &text[..cut]).unwrap();
                live.read_appended(&path, Keep::EVERYTHING).unwrap();
            }
            let whole = FileScan::read(&path, Keep::EVERYTHING).unwrap();
            proptest::prop_assert_eq!(kept(&live), kept(&whole));
        }
    }

    #[test]
    fn appended_lines_are_read_from_the_offset_and_a_shorter_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        std::fs::write(&path, "{\"step\":0,\"loss\":1}\n{\"step\":1,\"lo").unwrap();
        let mut scan = FileScan::read(&path, Keep::EVERYTHING).unwrap();
        assert_eq!(scan.metrics[0].points, [(0.0, 1.0)]);
        assert_eq!(scan.read_to, 20);
        // The torn line completed, and a bad line, named with its line number.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"ss\":2}\nnot json\n{\"step\":2,\"loss\":3}\n").unwrap();
        scan.read_appended(&path, Keep::EVERYTHING).unwrap();
        assert_eq!(scan.metrics[0].points, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]);
        assert_eq!(scan.first_bad.iter().map(|b| b.0).collect::<Vec<_>>(), [3]);
        // Replaced by a shorter file: read whole.
        std::fs::write(&path, "{\"step\":0,\"loss\":5}\n").unwrap();
        scan.read_appended(&path, Keep::EVERYTHING).unwrap();
        assert_eq!(scan.metrics[0].points, [(0.0, 5.0)]);
        assert_eq!(scan.bad_lines, 0);
    }

    proptest::proptest! {
        /// The clock's shortcut gives exactly what parsing whole gives, for times in the
        /// same minute, the next, and texts that are not times.
        #[test]
        fn the_clock_gives_what_parsing_whole_gives(
            texts in proptest::collection::vec(
                proptest::prop_oneof![
                    "2026-0[1-2]-0[1-2]T00:0[0-1]:[0-6][0-9](\\.[0-9]{1,10})?Z",
                    "1969-12-31T23:59:[0-5][0-9]\\.[0-9]{1,6}Z",
                    "2026-01-01T00:00:[0-9a-z.]{0,8}Z?",
                    "2026-01-01 00:00:[0-9]{2}\\+00:00",
                ],
                1..20,
            )
        ) {
            let mut clock = Clock::default();
            for text in &texts {
                let (fast, whole) = (clock.parse(text), parse_time(text));
                proptest::prop_assert_eq!(fast.map(f64::to_bits), whole.map(f64::to_bits), "{}", text);
            }
        }
    }

    #[test]
    fn first_and_last_times_are_those_that_are_times() {
        let text = concat!(
            r#"{"timestamp":"yesterday","loss":1}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:01.000000Z","loss":1}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:02.000000Z","loss":1}"#,
            "\n",
            r#"{"timestamp":"later","loss":1}"#,
            "\n",
            r#"{"loss":1}"#,
            "\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        std::fs::write(&path, text).unwrap();
        let t = |s| parse_time(s).unwrap();
        for keep in [Keep::NONE, Keep::points(X::Time, &[])] {
            let scan = FileScan::read(&path, keep).unwrap();
            assert_eq!(
                (scan.first_time, scan.last_time),
                (
                    Some(t("2026-01-01T00:00:01.000000Z")),
                    Some(t("2026-01-01T00:00:02.000000Z"))
                )
            );
        }
    }

    #[test]
    fn a_bad_line_is_skipped_and_named_and_a_torn_tail_ignored() {
        let mut bytes = b"{\"step\":0,\"loss\":1.0}\n{\"step\":1,\"loss\":\xff}\nnot json\n{\"step\":2,\"loss\":3.0}\n{\"step\":3,\"lo".to_vec();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let scan = FileScan::read(&path, Keep::NONE).unwrap();
        assert_eq!(scan.bad_lines, 2);
        assert_eq!(
            scan.first_bad.iter().map(|b| b.0).collect::<Vec<_>>(),
            [2, 3]
        );
        let loss = &scan.metrics[0].summary;
        assert_eq!((loss.count, loss.last, loss.max_step), (2, 3.0, Some(2)));
        // Completed, the last line counts.
        bytes.extend_from_slice(b"ss\":4.0}\n");
        std::fs::write(&path, &bytes).unwrap();
        let scan = FileScan::read(&path, Keep::NONE).unwrap();
        assert_eq!(scan.metrics[0].summary.count, 3);
    }

    #[test]
    fn points_of_the_metrics_asked_for_on_either_axis() {
        let text = concat!(
            r#"{"timestamp":"2026-01-01T00:00:00.000000Z","step":0,"loss":2.5,"lr":0.1}"#,
            "\n",
            r#"{"step":1,"loss":2.0}"#,
            "\n",
            r#"{"timestamp":"2026-01-01T00:00:02.500000Z","loss":1.0}"#,
            "\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        std::fs::write(&path, text).unwrap();
        let metrics = ["loss".to_owned()];
        let by_step = FileScan::read(&path, Keep::points(X::Step, &metrics)).unwrap();
        assert_eq!(by_step.metrics[0].points, [(0.0, 2.5), (1.0, 2.0)]);
        assert!(by_step.metrics[1].points.is_empty(), "lr was not asked for");
        // Every metric's points, up to a number of them.
        let all = |up_to| Keep {
            x: X::Step,
            metrics: &[],
            all_up_to: up_to,
            times: false,
        };
        let scan = FileScan::read(&path, all(3)).unwrap();
        assert!(!scan.points_dropped);
        assert_eq!(scan.metrics[1].points, [(0.0, 0.1)]);
        let scan = FileScan::read(&path, all(2)).unwrap();
        assert!(scan.points_dropped);
        assert!(scan.metrics.iter().all(|m| m.points.is_empty()));
        assert_eq!(scan.metrics[0].summary.count, 3, "summaries are whole");
        let by_time = FileScan::read(&path, Keep::points(X::Time, &metrics)).unwrap();
        let t0 = by_time.first_time.unwrap();
        let xs: Vec<f64> = by_time.metrics[0].points.iter().map(|p| p.0 - t0).collect();
        assert_eq!(xs, [0.0, 2.5]);
    }
}
