//! The JSONL format, both ways: what [`JsonlSink`](crate::sink) writes, and how the run
//! API, the command line and anyone else read it back.
//!
//! ```text
//! {"timestamp":"2026-11-24T07:40:31.123456Z","rank":0,"step":3,"loss":0.5,"eval.acc":0.9}
//! {"timestamp":"2026-11-24T07:40:31.123502Z","rank":0,"hparams":true,"lr":0.0003}
//! ```
//!
//! - File: `metrics_rank<rank>.jsonl` ([`file_name`]), one object per line, append-only;
//!   a torn last line (a crash mid-write) is cut before the next append ([`append`]) and
//!   skipped by [`read`].
//! - Metadata keys first ([`METADATA_KEYS`]): `timestamp` (RFC 3339 UTC, microseconds),
//!   `rank`, then `step`, `hparams: true` and `message` when the record has them; then
//!   every field under its own name.
//! - No duplicate keys: a field written twice keeps its last value; a field named like a
//!   metadata key present on the line is written as `field.<name>` (more `field.` prefixes
//!   while another field has that name).
//! - NaN and ±∞ are the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (the protobuf JSON
//!   convention); [`number`] and [`to_record`] read them back as floats, so a text field
//!   that says `"NaN"` reads back as NaN too.

use std::io::Write;
use std::path::Path;

use serde_json::Value as Json;

use crate::json::{write_fields, write_str};
use crate::time::TimestampFormatter;
use crate::{Error, Record, Result, Value};

/// The keys trainlog writes before the fields, in order.
pub const METADATA_KEYS: [&str; 5] = ["timestamp", "rank", "step", "hparams", "message"];

/// The file a rank writes: `metrics_rank<rank>.jsonl`.
///
/// ```
/// assert_eq!(trainlog::jsonl::file_name(3), "metrics_rank3.jsonl");
/// ```
pub fn file_name(rank: u32) -> String {
    format!("metrics_rank{rank}.jsonl")
}

/// Path of the JSONL file a rank writes under `output_dir`.
///
/// ```
/// let p = trainlog::jsonl_path("runs/a", 3);
/// assert!(p.ends_with("metrics_rank3.jsonl"));
/// ```
pub fn jsonl_path(output_dir: impl AsRef<std::path::Path>, rank: u32) -> std::path::PathBuf {
    output_dir.as_ref().join(file_name(rank))
}

/// The rank whose file this is, for a name [`file_name`] gives; `None` for other names.
///
/// ```
/// assert_eq!(trainlog::jsonl::rank_of("metrics_rank12.jsonl"), Some(12));
/// assert_eq!(trainlog::jsonl::rank_of("metrics.jsonl"), None);
/// ```
pub fn rank_of(file_name: &str) -> Option<u32> {
    file_name
        .strip_prefix("metrics_rank")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// Appends one record as a JSON line (with the trailing newline) to `out`.
#[cfg_attr(not(feature = "jsonl"), allow(dead_code))]
pub(crate) fn encode_line(out: &mut Vec<u8>, ts: &mut TimestampFormatter, r: &Record) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    out.extend_from_slice(ts.format_bytes(r.timestamp));
    out.extend_from_slice(b"\",\"rank\":");
    out.extend_from_slice(itoa::Buffer::new().format(r.rank).as_bytes());
    if let Some(step) = r.step {
        out.extend_from_slice(b",\"step\":");
        out.extend_from_slice(itoa::Buffer::new().format(step).as_bytes());
    }
    if r.hparams {
        out.extend_from_slice(b",\"hparams\":true");
    }
    if let Some(message) = &r.message {
        out.extend_from_slice(b",\"message\":");
        write_str(out, message);
    }
    let reserved = |k: &str| match k {
        "timestamp" | "rank" => true,
        "step" => r.step.is_some(),
        "hparams" => r.hparams,
        "message" => r.message.is_some(),
        _ => false,
    };
    write_fields(out, r, reserved, false, |_| false);
    out.extend_from_slice(b"}\n");
}

/// A line's fields: every key but the metadata keys, in the line's order.
pub fn fields(line: &Json) -> impl Iterator<Item = (&String, &Json)> {
    line.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !METADATA_KEYS.contains(&k.as_str()))
}

/// A value as a number: JSON numbers, and the strings written for NaN and ±∞.
///
/// ```
/// use serde_json::json;
/// assert!(trainlog::jsonl::number(&json!("NaN")).unwrap().is_nan());
/// assert_eq!(trainlog::jsonl::number(&json!(0.5)), Some(0.5));
/// assert_eq!(trainlog::jsonl::number(&json!("text")), None);
/// ```
pub fn number(v: &Json) -> Option<f64> {
    match v.as_str() {
        Some("NaN") => Some(f64::NAN),
        Some("Infinity") => Some(f64::INFINITY),
        Some("-Infinity") => Some(f64::NEG_INFINITY),
        _ => v.as_f64(),
    }
}

/// A value as a JSONL line holds it: NaN and ±∞ as the strings `"NaN"`, `"Infinity"`,
/// `"-Infinity"` (what [`number`] reads back), everything else as itself.
///
/// ```
/// use serde_json::json;
/// use trainlog::Value;
/// assert_eq!(trainlog::jsonl::value(&Value::F64(f64::NAN)), json!("NaN"));
/// assert_eq!(trainlog::jsonl::value(&Value::F64(0.5)), json!(0.5));
/// assert_eq!(trainlog::jsonl::value(&Value::Str("ok".into())), json!("ok"));
/// ```
pub fn value(v: &Value) -> Json {
    match v {
        Value::I64(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F64(f) => match crate::json::non_finite_text(*f) {
            None => Json::from(*f),
            Some(text) => Json::from(text),
        },
        Value::Bool(b) => Json::from(*b),
        Value::Str(s) => Json::from(s.as_str()),
        Value::Json(j) => j.clone(),
        Value::Histogram(_) => {
            let mut text = Vec::new();
            crate::json::write_value(&mut text, v);
            // write_value writes valid JSON.
            serde_json::from_slice(&text).unwrap_or(Json::Null)
        }
    }
}

/// A line read back into a [`Record`]: timestamp, rank, step, hparams flag, message, and
/// the fields (NaN and ±∞ strings as floats). A missing or unreadable timestamp is the
/// Unix epoch.
///
/// ```
/// use serde_json::json;
/// use trainlog::Value;
/// let line = json!({"timestamp": "2026-11-24T07:40:31.000001Z", "rank": 2, "step": 3,
///                   "loss": "NaN", "note": "ok"});
/// let r = trainlog::jsonl::to_record(&line);
/// assert_eq!((r.rank, r.step), (2, Some(3)));
/// assert!(matches!(r.get("loss"), Some(Value::F64(x)) if x.is_nan()));
/// assert_eq!(trainlog::time::rfc3339(r.timestamp), "2026-11-24T07:40:31.000001Z");
/// ```
pub fn to_record(line: &Json) -> Record {
    let mut r = Record::new(u32::try_from(line["rank"].as_u64().unwrap_or(0)).unwrap_or(u32::MAX));
    r.timestamp = line["timestamp"]
        .as_str()
        .and_then(crate::time::parse_rfc3339)
        .unwrap_or(std::time::UNIX_EPOCH);
    r.step = line["step"].as_u64();
    r.hparams = line["hparams"] == true;
    r.message = line["message"].as_str().map(str::to_owned);
    for (k, v) in fields(line) {
        let value = match (v, number(v)) {
            (Json::String(_), Some(non_finite)) => Value::F64(non_finite),
            _ => Value::from(v.clone()),
        };
        r.fields.push((k.clone().into(), value));
    }
    r
}

/// The `event` value of the line a resumed logger writes first (see
/// [`MetricLoggerBuilder::resume_from`](crate::MetricLoggerBuilder::resume_from)).
pub const RESUME_EVENT: &str = "resume";

/// The lines a reader should see when a run was resumed from a checkpoint: at each resume
/// line (`"event":"resume"` with a `step`), the earlier lines of the same rank at that step
/// or later are dropped, as TensorBoard drops orphaned points; the resume lines themselves
/// are dropped too. Lines without a step are kept.
///
/// ```
/// use serde_json::json;
/// let lines = vec![
///     json!({"rank": 0, "step": 1, "loss": 1.0}),
///     json!({"rank": 0, "step": 2, "loss": 0.9}), // logged, then the job died
///     json!({"rank": 0, "step": 2, "event": "resume"}), // restarted from step 2's checkpoint
///     json!({"rank": 0, "step": 2, "loss": 0.8}),
/// ];
/// let kept = trainlog::jsonl::without_orphans(lines);
/// assert_eq!(kept, vec![json!({"rank": 0, "step": 1, "loss": 1.0}),
///                       json!({"rank": 0, "step": 2, "loss": 0.8})]);
/// ```
pub fn without_orphans(lines: Vec<Json>) -> Vec<Json> {
    if !lines.iter().any(is_resume) {
        return lines;
    }
    let mut kept: Vec<Json> = Vec::with_capacity(lines.len());
    for line in lines {
        if is_resume(&line) {
            let (step, rank) = (line["step"].as_u64(), &line["rank"]);
            kept.retain(|l| match l["step"].as_u64() {
                Some(s) => &l["rank"] != rank || Some(s) < step,
                None => true,
            });
        } else {
            kept.push(line);
        }
    }
    kept
}

/// The resume lines of a file as (line number from 1, step), for readers that stream a
/// file instead of calling [`without_orphans`]: a line `n` with step `s` is orphaned when
/// a resume line `m > n` has a step `<= s`.
pub fn resumes(path: &Path) -> Result<Vec<(usize, u64)>> {
    resumes_by_blocks(path, 1 << 20)
}

fn resumes_by_blocks(path: &Path, block_size: usize) -> Result<Vec<(usize, u64)>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    // A pass over the whole file before reading it: by blocks, not lines, with SIMD
    // searches (memchr, already in the tree through serde_json) for `"resume"` and for the
    // newlines that number the lines it is on; only those lines are parsed. (Line by line,
    // this was an eighth of `trainlog show`'s time on a large run.)
    let finder = memchr::memmem::Finder::new(b"\"resume\"");
    let mut out = Vec::new();
    let mut block = vec![0u8; block_size];
    // Bytes of the current, unfinished line carried over from the previous block.
    let mut carry: Vec<u8> = Vec::new();
    let mut line = 1usize;
    loop {
        let read = file
            .read(&mut block)
            .map_err(|e| Error::io("read", path, e))?;
        let at_end = read == 0;
        let mut data = std::mem::take(&mut carry);
        data.extend_from_slice(&block[..read]);
        // Whole lines only, unless at the end.
        let whole = if at_end {
            data.len()
        } else {
            memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1)
        };
        let mut counted = 0;
        for hit in finder.find_iter(&data[..whole]) {
            if hit < counted {
                continue; // a second hit on a line already parsed
            }
            line += memchr::memchr_iter(b'\n', &data[counted..hit]).count();
            let start = memchr::memrchr(b'\n', &data[..hit]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &data[hit..whole]).map_or(whole, |i| hit + i);
            if let Some(step) = resume_step(&data[start..end]) {
                out.push((line, step));
            }
            // The newline ending this line is counted with the next stretch.
            counted = end;
        }
        line += memchr::memchr_iter(b'\n', &data[counted..whole]).count();
        if at_end {
            break;
        }
        carry = data[whole..].to_vec();
    }
    Ok(out)
}

/// The step of a resume line, given as the line's bytes (a trailing newline is fine);
/// `None` for any other line. Only lines holding `"resume"` are parsed.
pub fn resume_step(line: &[u8]) -> Option<u64> {
    memchr::memmem::find(line, b"\"resume\"")?;
    let value: Json = serde_json::from_slice(line).ok()?;
    if is_resume(&value) {
        value["step"].as_u64()
    } else {
        None
    }
}

/// Whether a line is a resume line (see [`without_orphans`]).
pub fn is_resume(line: &Json) -> bool {
    line["event"] == RESUME_EVENT && line["step"].is_u64()
}

/// Appends `value` as one line to `path` (created if missing) with a single write. A torn
/// last line left by a crash is cut off first, so the file stays valid.
pub fn append(path: &Path, value: &serde_json::Value) -> Result<()> {
    // Writing a `serde_json::Value` cannot fail.
    let mut line = serde_json::to_vec(value).unwrap_or_default();
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
/// let lines = trainlog::jsonl::read(&path)?;
/// assert_eq!(lines.len(), 2);
/// std::fs::write(&path, "{\"a\":1}\nnot json\n{\"a\":2}\n")?;
/// let err = trainlog::jsonl::read(&path).unwrap_err().to_string();
/// assert!(err.contains("m.jsonl:2"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read(path: &Path) -> Result<Vec<serde_json::Value>> {
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
            Err(source) => {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Found by blocks of any size (lines cut anywhere, several hits per line, none at
        /// all), the resume lines are those a line-by-line reading finds.
        #[test]
        fn resume_lines_found_by_blocks_are_those_of_each_line(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("{\"step\":1,\"loss\":2}".to_owned()),
                    (0u64..50).prop_map(|s| format!("{{\"step\":{s},\"event\":\"resume\"}}")),
                    (0u64..50).prop_map(|s| format!("{{\"step\":{s},\"event\":\"resume\",\"note\":\"resume\"}}")),
                    proptest::strategy::Just("{\"note\":\"resume\"}".to_owned()),
                    proptest::strategy::Just("not json \"resume\"".to_owned()),
                    proptest::strategy::Just(String::new()),
                ],
                0..30,
            ),
            block in 1usize..64,
            newline_at_end in proptest::bool::ANY,
        ) {
            let mut text = lines.join("\n");
            if newline_at_end {
                text.push('\n');
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.jsonl");
            std::fs::write(&path, &text).unwrap();
            let expected: Vec<(usize, u64)> = text
                .split('\n')
                .enumerate()
                .filter_map(|(i, l)| {
                    let v: Json = serde_json::from_str(l).ok()?;
                    (is_resume(&v)).then(|| (i + 1, v["step"].as_u64().unwrap()))
                })
                .collect();
            proptest::prop_assert_eq!(resumes_by_blocks(&path, block).unwrap(), expected.clone());
            proptest::prop_assert_eq!(resumes(&path).unwrap(), expected);
        }
    }

    fn line(r: &Record) -> serde_json::Value {
        let mut out = Vec::new();
        encode_line(&mut out, &mut TimestampFormatter::default(), r);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).expect("valid JSON")
    }
    #[test]
    fn reserved_names_are_renamed_not_duplicated() {
        let r = Record::new(2)
            .with_step(0)
            .with_field("rank", 9i64)
            .with_field("timestamp", "x")
            .with_field("loss", 1.0);
        let v = line(&r);
        assert_eq!(v["rank"], 2);
        assert_eq!(v["step"], 0);
        assert_eq!(v["field.rank"], 9);
        assert_eq!(v["field.timestamp"], "x");
        assert_eq!(v["loss"], 1.0);
    }

    #[test]
    fn a_renamed_key_never_takes_another_fields_name() {
        let r = Record::new(0)
            .with_field("rank", 9i64)
            .with_field("field.rank", 8i64)
            .with_field("field.field.rank", 7i64);
        let mut out = Vec::new();
        encode_line(&mut out, &mut TimestampFormatter::default(), &r);
        let text = String::from_utf8(out).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 5, "{text}");
        assert_eq!(v["field.rank"], 8);
        assert_eq!(v["field.field.rank"], 7);
        assert_eq!(v["field.field.field.rank"], 9);
    }

    #[test]
    fn non_finite_and_escapes() {
        let r = Record::new(0)
            .with_field("nan", f64::NAN)
            .with_field("inf", f64::INFINITY)
            .with_field("ninf", f64::NEG_INFINITY)
            .with_field("q\"uote", "line\nbreak \u{1}")
            .with_field("big", u64::MAX);
        let v = line(&r);
        assert_eq!(v["nan"], "NaN");
        assert_eq!(v["inf"], "Infinity");
        assert_eq!(v["ninf"], "-Infinity");
        assert_eq!(v["q\"uote"], "line\nbreak \u{1}");
        assert_eq!(v["big"], u64::MAX);
    }
}
