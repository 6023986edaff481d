//! `TensorBoardSink`: TensorBoard event files with scalars, text and hyperparameters.

mod frame;
mod options;
mod proto;
mod values;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message as _;

use self::frame::{frame_record, put_varint, varint_len};
pub use self::options::TensorBoardOptions;
use self::proto::*;
use self::values::{hparams_value, markdown_table, text_value};
use super::{RunOutcome, Sink};
use crate::file::RecordFile;
use crate::sink::run_events::RunEvent;
use crate::{Error, Record, Result, Value};

/// Bytes buffered before events are written out between flushes.
const WRITE_THRESHOLD: usize = 256 * 1024;

/// Tags of the HParams plugin's three records.
const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";

/// Distinguishes event files this process opens within the same second.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes one TensorBoard event file, readable by `tensorboard --logdir <parent of run dir>`.
///
/// - File `events.out.tfevents.<secs>.<host>.<pid>.<n>` in the run directory, TFRecord
///   framed (length, masked CRC32C of the length, data, masked CRC32C of the data); the
///   first event is `file_version = "brain.Event:2"`.
/// - Numeric and boolean fields become scalars (booleans as 0/1, stored as 32-bit floats
///   as TensorBoard does) at the record's step; dotted names become `/` paths (`eval.acc`
///   → `eval/acc`). Text fields, JSON arrays and a record's message go to the Text plugin.
/// - Histograms ([`log_histogram`](crate::log_histogram)) are histogram summaries (min,
///   max, count, sum, sum of squares, bucket limits and counts) for the Histograms and
///   Distributions dashboards; their NaN and ±∞ values, when there are any, are counted
///   in a scalar `<tag>/nonfinite` at the same step.
/// - A record without a step uses a counter per tag: the n-th value of a tag gets step n
///   (from 0).
/// - The run API's tags become a text table `tags`, its results scalars (the HParams
///   dashboard's metric columns) with their metadata as text `<result>/metadata`, both at
///   the last step written.
/// - Hyperparameter records (`hparams = true`) feed the HParams plugin: a session start
///   record with every hyperparameter (numbers, text, booleans; JSON as text), and a
///   session end record at close with status success, or failure when the run failed.
///   TensorBoard reads the first session start record of a run, so log hyperparameters
///   once, before metrics; later ones are merged and written again for other readers.
/// - With [`with_experiment`](Self::with_experiment), an experiment record listing the
///   hyperparameters and every scalar tag is written at close. It is off by default:
///   TensorBoard takes the first experiment record it finds in a log directory for all
///   runs, which hides other runs' hyperparameters; without it the dashboard builds the
///   experiment from every run's session.
/// - Write errors keep the unwritten events buffered and retry (see the crate docs);
///   a crash loses at most what came after the last flush, and the file stays readable up
///   to its last complete record.
///
/// The `tensorboard` backend builds one for you (see [`TensorBoardOptions`]); to place it
/// yourself:
///
/// ```
/// use trainlog::{sink::TensorBoardSink, MetricLogger};
///
/// let dir = tempfile::tempdir()?;
/// let (layer, guard) = MetricLogger::builder()
///     .rank0_sink(TensorBoardSink::create(dir.path().join("my_run"))?)
///     .build()?;
/// # let _: trainlog::MetricLayer<tracing_subscriber::Registry> = layer;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TensorBoardSink {
    out: RecordFile,
    event: Vec<u8>,
    counters: HashMap<String, i64>,
    hparams: BTreeMap<String, ProtoValue>,
    hparam_types: BTreeMap<String, i32>,
    session_started: bool,
    experiment: bool,
    scalar_tags: BTreeSet<String>,
    start_time: f64,
    /// The largest step written so far: where the run API's tags and results go.
    last_step: i64,
    /// Whether two field names mapping to one tag (`a.b`, `a/b`) were reported.
    warned_collision: bool,
}

impl TensorBoardSink {
    /// Creates `run_dir` if needed and a new event file in it.
    pub fn create(run_dir: impl AsRef<Path>) -> Result<Self> {
        Self::create_in(run_dir.as_ref(), 0)
    }

    /// Continues a run restarted from a checkpoint at `step` (tensorboardX's
    /// `purge_step`): a new event file in the earlier run's directory `run_dir`, named to
    /// sort after its files (TensorBoard reads them in name order), starting with a
    /// session-start event at `step`, on which TensorBoard drops the points of the earlier
    /// files at `step` or later.
    pub fn resume(run_dir: impl AsRef<Path>, step: u64) -> Result<Self> {
        let dir = run_dir.as_ref();
        // The time stamp in the name: after the newest earlier file's.
        let newest = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("events.out.tfevents.")?
                    .split('.')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let mut sink = Self::create_in(dir, newest.map_or(0, |secs| secs + 1))?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        sink.push_event(&Event {
            wall_time: crate::time::unix_seconds(SystemTime::now()),
            step,
            what: Some(What::SessionLog(SessionLog {
                status: SESSION_START,
            })),
        });
        sink.out.write_out()?;
        Ok(sink)
    }

    /// `create`, the time stamp in the file name at least `min_secs`.
    fn create_in(dir: &Path, min_secs: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("create TensorBoard run directory", dir, e))?;
        let now = SystemTime::now();
        let secs = crate::time::unix_duration(now).as_secs().max(min_secs);
        let host = crate::naming::hostname();
        let pid = std::process::id();
        let (path, file) = loop {
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create TensorBoard event file", path, e)),
            }
        };
        let mut sink = TensorBoardSink {
            out: RecordFile::new("tensorboard", path, file),
            event: Vec::with_capacity(256),
            counters: HashMap::new(),
            hparams: BTreeMap::new(),
            hparam_types: BTreeMap::new(),
            session_started: false,
            experiment: false,
            scalar_tags: BTreeSet::new(),
            start_time: crate::time::unix_seconds(now),
            last_step: 0,
            warned_collision: false,
        };
        sink.push_event(&Event {
            wall_time: sink.start_time,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        });
        // The version record goes out at once, so even an empty run is a valid file.
        sink.out.write_out()?;
        Ok(sink)
    }

    /// Also write an HParams experiment record at close (see the type's docs).
    pub fn with_experiment(mut self, enabled: bool) -> Self {
        self.experiment = enabled;
        self
    }

    /// The event file this sink writes.
    pub fn path(&self) -> &Path {
        self.out.path()
    }

    /// Encodes and frames one event into the buffer.
    fn push_event(&mut self, event: &Event) {
        self.event.clear();
        // Encoding into a Vec cannot run out of space.
        let _ = event.encode(&mut self.event);
        frame_record(self.out.buffer(), &self.event);
        self.out.end_record();
    }

    fn push_summary(&mut self, wall_time: f64, step: i64, value: Vec<SummaryValue>) {
        self.push_event(&Event {
            wall_time,
            step,
            what: Some(What::Summary(Summary { value })),
        });
    }

    /// Remembers a scalar tag for the experiment record, when one will be written.
    fn note_scalar_tag(&mut self, tag: &str) {
        if self.experiment && !self.scalar_tags.contains(tag) {
            self.scalar_tags.insert(tag.to_owned());
        }
    }

    /// The summary values for one field: one, or for a histogram with NaN or ±∞ among
    /// its values also a scalar `<tag>/nonfinite` with their count.
    fn summary_values(&mut self, tag: String, value: &Value, out: &mut Vec<SummaryValue>) {
        let Value::Histogram(h) = value else {
            return out.push(self.summary_value(tag, value));
        };
        let s = h.summary();
        if s.nonfinite() > 0 {
            let nonfinite = format!("{tag}/nonfinite");
            self.note_scalar_tag(&nonfinite);
            out.push(SummaryValue {
                tag: nonfinite,
                metadata: None,
                value: Some(Payload::SimpleValue(s.nonfinite() as f32)),
            });
        }
        // TensorBoard draws the first bucket from `min` and the last to `max`: with no
        // finite value, the (empty) bins' range stands in for them.
        let (min, max) = match s.finite {
            0 => (s.edges[0], s.edges[s.edges.len() - 1]),
            _ => (s.min, s.max),
        };
        out.push(SummaryValue {
            tag,
            metadata: None,
            value: Some(Payload::Histo(HistogramProto {
                min,
                max,
                num: s.finite as f64,
                sum: s.sum,
                sum_squares: s.sum_squares,
                bucket_limit: s.edges[1..].to_vec(),
                bucket: s.counts.iter().map(|&c| c as f64).collect(),
            })),
        });
    }

    fn summary_value(&mut self, tag: String, value: &Value) -> SummaryValue {
        match value.as_f64() {
            Some(number) => {
                self.note_scalar_tag(&tag);
                SummaryValue {
                    tag,
                    metadata: None,
                    value: Some(Payload::SimpleValue(number as f32)),
                }
            }
            None => text_value(tag, &value.to_string()),
        }
    }

    fn write_record(&mut self, r: &Record) {
        let wall_time = r.unix_seconds();
        if r.hparams {
            self.add_hparams(r, wall_time);
            return;
        }
        if let Some(step) = r.step {
            self.last_step = self.last_step.max(i64::try_from(step).unwrap_or(i64::MAX));
        }
        // The common case first: a run API event always has a text field, `event`.
        if let (Some(step), None) = (r.step, &r.message) {
            if r.fields.iter().all(|(_, v)| v.as_f64().is_some()) && !tags_collide(r) {
                self.push_scalar_event(wall_time, step, r);
                return;
            }
        }
        match r.run_event() {
            Some(RunEvent::Tags(tags)) => {
                let table = markdown_table(["tag", "value"], tags.into_iter());
                let value = text_value("tags".into(), &table);
                return self.push_summary(wall_time, self.last_step, vec![value]);
            }
            Some(RunEvent::Result(result)) => {
                // A scalar at the last step: the HParams dashboard lists every scalar of a
                // session's run as a metric column, with its latest value.
                let tag = result.name.replace('.', "/");
                let mut values = vec![self.summary_value(tag.clone(), result.value)];
                if !result.metadata.is_empty() {
                    let texts: Vec<(&str, String)> = result
                        .metadata
                        .iter()
                        .map(|(k, v)| (*k, v.to_string()))
                        .collect();
                    let rows = texts.iter().map(|(k, v)| (*k, v.as_str()));
                    let table = markdown_table(["metadata", "value"], rows);
                    values.push(text_value(format!("{tag}/metadata"), &table));
                }
                return self.push_summary(wall_time, self.last_step, values);
            }
            None => {}
        }
        let mut values = self.tags_of(r);
        let message = r.message.as_ref().map(|m| Value::Str(m.clone()));
        if let Some(m) = &message {
            values.push(("message".into(), m));
        }
        match r.step {
            Some(step) => {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                let mut summary = Vec::with_capacity(values.len());
                for (tag, v) in values {
                    self.summary_values(tag, v, &mut summary);
                }
                self.push_summary(wall_time, step, summary);
            }
            None => {
                for (tag, v) in values {
                    let counter = self.counters.entry(tag.clone()).or_insert(0);
                    let step = *counter;
                    *counter += 1;
                    let mut summary = Vec::with_capacity(1);
                    self.summary_values(tag, v, &mut summary);
                    self.push_summary(wall_time, step, summary);
                }
            }
        }
    }

    /// The record's fields with their tags (`.` becomes `/`), each tag once: when two
    /// names map to one tag (`a.b` and `a/b`), the later field gets `field/<tag>` (more
    /// `field/` while that is taken too), as JSONL and W&B give such keys free names,
    /// and the first time this happens it is said on stderr.
    fn tags_of<'r>(&mut self, r: &'r Record) -> Vec<(String, &'r Value)> {
        let mut values: Vec<(String, &Value)> = Vec::with_capacity(r.fields.len());
        // Tags taken so far: a scan for the usual dozen fields, a set for wide records.
        let mut wide: Option<std::collections::HashSet<String>> = None;
        for (k, v) in r.unique_fields() {
            if values.len() == 32 {
                wide = Some(values.iter().map(|(t, _)| t.clone()).collect());
            }
            let taken = |t: &str| match &wide {
                Some(set) => set.contains(t),
                None => values.iter().any(|(used, _)| used == t),
            };
            let tag = k.replace('.', "/");
            if !taken(&tag) {
                if let Some(set) = &mut wide {
                    set.insert(tag.clone());
                }
                values.push((tag, v));
                continue;
            }
            let free = crate::json::free_name_after("field/", &tag, taken);
            if let Some(set) = &mut wide {
                set.insert(free.clone());
            }
            if !self.warned_collision {
                self.warned_collision = true;
                eprintln!(
                    "trainlog: tensorboard: the field `{k}` maps to the tag `{tag}`, which \
                     another field of the same record has (`.` becomes `/`); it is written as \
                     `{free}` (said once)"
                );
            }
            values.push((free, v));
        }
        values
    }

    /// The common case, a record of numbers with a step, encoded straight into the
    /// buffer without building messages: `Event { wall_time, step, summary }` with one
    /// `Summary.Value { tag, simple_value }` per field.
    fn push_scalar_event(&mut self, wall_time: f64, step: u64, r: &Record) {
        let step = step.min(i64::MAX as u64);
        if self.experiment {
            for (k, _) in r.unique_fields() {
                self.note_scalar_tag(&k.replace('.', "/"));
            }
        }
        let value_len = |tag: &str| 1 + varint_len(tag.len() as u64) + tag.len() + 1 + 4;
        let summary_len: usize = r
            .unique_fields()
            .map(|(k, _)| {
                let n = value_len(k);
                1 + varint_len(n as u64) + n
            })
            .sum();
        let e = &mut self.event;
        e.clear();
        e.push(0x09); // wall_time: field 1, 64-bit
        e.extend_from_slice(&wall_time.to_le_bytes());
        if step != 0 {
            e.push(0x10); // step: field 2, varint
            put_varint(e, step);
        }
        e.push(0x2a); // summary: field 5, length-delimited
        put_varint(e, summary_len as u64);
        for (k, v) in r.unique_fields() {
            e.push(0x0a); // Summary.value: field 1, length-delimited
            put_varint(e, value_len(k) as u64);
            e.push(0x0a); // Value.tag: field 1, length-delimited
            put_varint(e, k.len() as u64);
            // '.' and '/' are single bytes in UTF-8: the swap keeps the text valid.
            e.extend(k.bytes().map(|b| if b == b'.' { b'/' } else { b }));
            e.push(0x15); // Value.simple_value: field 2, 32-bit
            let number = v.as_f64().unwrap_or(f64::NAN) as f32;
            e.extend_from_slice(&number.to_le_bytes());
        }
        frame_record(self.out.buffer(), &self.event);
        self.out.end_record();
    }

    fn add_hparams(&mut self, r: &Record, wall_time: f64) {
        for (k, v) in r.unique_fields() {
            let (kind, ty) = match v {
                Value::Bool(b) => (Kind::Bool(*b), DATA_TYPE_BOOL),
                Value::Str(s) => (Kind::String(s.clone()), DATA_TYPE_STRING),
                Value::Json(j) => (Kind::String(j.to_string()), DATA_TYPE_STRING),
                number => (
                    Kind::Number(number.as_f64().unwrap_or(f64::NAN)),
                    DATA_TYPE_FLOAT64,
                ),
            };
            self.hparams
                .insert(k.to_owned(), ProtoValue { kind: Some(kind) });
            self.hparam_types.insert(k.to_owned(), ty);
        }
        if self.session_started {
            eprintln!(
                "trainlog: tensorboard: hyperparameters logged again; TensorBoard's HParams \
                 dashboard shows the first set of a run only"
            );
        }
        self.session_started = true;
        let start = HParamsData::SessionStartInfo(SessionStartInfo {
            hparams: self.hparams.clone(),
            start_time_secs: self.start_time,
        });
        self.push_summary(wall_time, 0, vec![hparams_value(SESSION_START_TAG, start)]);
    }
}

impl Sink for TensorBoardSink {
    fn name(&self) -> &str {
        "tensorboard"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            self.write_record(record);
        }
        if self.out.pending() >= WRITE_THRESHOLD {
            self.out.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.write_out()
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        let now = crate::time::unix_seconds(SystemTime::now());
        if self.experiment && self.session_started {
            let experiment = HParamsData::Experiment(Experiment {
                time_created_secs: self.start_time,
                hparam_infos: self
                    .hparam_types
                    .iter()
                    .map(|(name, ty)| HParamInfo {
                        name: name.clone(),
                        r#type: *ty,
                    })
                    .collect(),
                metric_infos: self
                    .scalar_tags
                    .iter()
                    .map(|tag| MetricInfo {
                        name: Some(MetricName {
                            group: String::new(),
                            tag: tag.clone(),
                        }),
                    })
                    .collect(),
            });
            self.push_summary(now, 0, vec![hparams_value(EXPERIMENT_TAG, experiment)]);
        }
        if self.session_started {
            let status = match outcome {
                RunOutcome::Completed => STATUS_SUCCESS,
                RunOutcome::Failed => STATUS_FAILURE,
            };
            let end = HParamsData::SessionEndInfo(SessionEndInfo {
                status,
                end_time_secs: now,
            });
            self.push_summary(now, 0, vec![hparams_value(SESSION_END_TAG, end)]);
        }
        self.out.close()
    }

    fn lost(&self) -> u64 {
        self.out.lost()
    }
}

#[cfg(test)]
mod tests;

/// Whether two of the record's field names map to one tag (`a.b` and `a/b`). Most
/// records answer after one scan of their names; the pairwise check allocates nothing up
/// to 64 fields.
fn tags_collide(r: &Record) -> bool {
    let fields = &r.fields;
    // Two distinct names with one tag differ where one has `.` and the other `/`: without
    // both characters among the names (the usual record) there is nothing to compare.
    let (mut dot, mut slash) = (false, false);
    for (k, _) in fields {
        for &b in k.as_bytes() {
            dot |= b == b'.';
            slash |= b == b'/';
        }
    }
    if !(dot && slash) {
        return false;
    }
    let same_tag = |a: &str, b: &str| {
        let tag = |c: u8| if c == b'.' { b'/' } else { c };
        a != b && a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| tag(x) == tag(y))
    };
    if fields.len() <= 64 {
        return (1..fields.len())
            .any(|i| fields[..i].iter().any(|(k, _)| same_tag(k, &fields[i].0)));
    }
    let mut tags: Vec<String> = fields.iter().map(|(k, _)| k.replace('.', "/")).collect();
    let names: std::collections::HashSet<&str> = fields.iter().map(|(k, _)| k.as_ref()).collect();
    tags.sort_unstable();
    tags.dedup();
    tags.len() < names.len()
}
