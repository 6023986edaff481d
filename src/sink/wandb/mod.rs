//! `WandbSink`: Weights & Biases offline runs that `wandb sync` uploads later.
//!
//! Writes `<wandb_dir>/offline-run-<YYYYMMDD_HHMMSS>-<run id>/run-<run id>.wandb` in W&B's
//! transaction-log format: the 7-byte header (`:W&B`, magic `0xBEE1`, version 0), then
//! LevelDB-log blocks of 32 KiB whose chunks carry a zlib CRC-32 (seeded with the CRC of
//! the chunk type) and serialized `wandb.internal.Record` protobufs (prost structs in
//! `proto.rs`, field numbers checked against wandb 0.21's descriptors).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message as _;

use super::{BuildContext, RunOutcome, Sink};
use crate::env::first_env;
use crate::file::RecordFile;
use crate::sink::run_events::RunEvent;
use crate::{Error, Record, Result, Value};

const BLOCK: u64 = 32_768;
const CHUNK_HEADER: u64 = 7;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;
/// W&B refuses run tags longer than this (characters).
const MAX_TAG: usize = 64;

mod options;
mod proto;
mod resume;
mod values;

pub use options::WandbOptions;
use proto::*;
pub use resume::WandbResume;
use values::{json_number, value_json};

/// An id like W&B's: 8 characters of `[a-z0-9]`.
fn random_id() -> String {
    let mut x = crate::time::unix_duration(SystemTime::now()).as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

/// Writes one W&B offline run: the run, config from `hparams` records, a history row
/// per record (`_step`, `_timestamp`, `_runtime` and the values; nested names joined with
/// `/` as W&B does for dicts; records without a step take the next step; histograms as
/// `wandb.Histogram` writes them, `{"_type": "histogram", "values", "bins"}`, with a
/// `<name>/nonfinite` count beside when NaN or ±∞ were among the values), the summary
/// (last values) at close, and the exit record, code 0, or 1 when the guard drops during
/// a panic: the run always finishes. The run API's tags update the run's tags (`key:value`,
/// cut to W&B's 64 characters) and its results go to the summary (metadata under
/// `<result>/metadata`), not to the history. Write errors keep data buffered and retry; after a
/// crash the file reads cleanly up to its last flushed record.
#[derive(Debug)]
pub struct WandbSink {
    out: RecordFile,
    /// Offset in the file where the next chunk starts (buffered bytes included).
    offset: u64,
    num: i64,
    next_step: i64,
    start: f64,
    summary: BTreeMap<String, String>,
    run_dir: PathBuf,
    /// The run record, sent again with new tags.
    run: RunRecord,
    /// Where records are encoded before being cut into chunks, kept between records.
    encoded: Vec<u8>,
}

impl WandbSink {
    /// Creates the offline run directory and file, and writes the header, run and
    /// (empty) config records.
    ///
    /// The run goes under [`WandbOptions::dir`], else `$WANDB_DIR/wandb`, else the
    /// context's output directory's `wandb`; it continues an earlier run when the context
    /// resumes (see [`WandbOptions::resume`]).
    pub fn new(options: WandbOptions, cx: &BuildContext) -> Result<Self> {
        let output_dir = cx.output_dir();
        let base = match (&options.dir, first_env(&["WANDB_DIR"]), output_dir) {
            (Some(dir), _, _) => dir.clone(),
            (None, Some(dir), _) => PathBuf::from(dir).join("wandb"),
            (None, None, Some(out)) => out.join("wandb"),
            (None, None, None) => {
                return Err(Error::Config(
                    "the wandb backend writes an offline run: set `.output_dir(..)`, \
                     WandbOptions::dir or WANDB_DIR"
                        .into(),
                ))
            }
        };
        let now = cx.now();
        let given_id = options
            .run_id
            .clone()
            .or_else(|| first_env(&["WANDB_RUN_ID"]));
        let run_id = given_id.clone().unwrap_or_else(random_id);
        if run_id.contains(['/', '\\']) || run_id.is_empty() {
            return Err(Error::Config(format!(
                "W&B run id `{run_id}` must be a plain name"
            )));
        }
        let policy = match (options.resume, first_env(&["WANDB_RESUME"])) {
            (Some(policy), _) => Some(policy),
            (None, Some(text)) => Some(WandbResume::parse(&text).ok_or_else(|| {
                Error::Config(format!(
                    "WANDB_RESUME=`{text}`: expected allow, must, never or auto"
                ))
            })?),
            (None, None) => cx.resume_from().map(|_| WandbResume::Allow),
        };
        let earlier = match (policy, &given_id) {
            (Some(_), Some(_)) => resume::find_run_file(&base, &run_id),
            (Some(_), None) => {
                eprintln!(
                    "trainlog: wandb: resuming needs the run id (WANDB_RUN_ID or \
                     WandbOptions::run_id); starting a new run `{run_id}`"
                );
                None
            }
            (None, _) => None,
        };
        match (policy, &earlier) {
            (Some(WandbResume::Never), Some(path)) => {
                return Err(Error::Config(format!(
                    "W&B run `{run_id}` exists ({}) and resuming is set to never",
                    path.display()
                )))
            }
            (Some(WandbResume::Must), None) => {
                return Err(Error::Config(format!(
                    "W&B resume is set to must, but there is no offline run `{run_id}` under {}",
                    base.display()
                )))
            }
            _ => {}
        }
        let display = match cx.run_name_template(options.name.as_deref(), &["WANDB_NAME"]) {
            Some(template) => cx.expand(&template)?,
            None => run_id.clone(),
        };
        let start = crate::time::unix_duration(now);
        let run = RunRecord {
            run_id: run_id.clone(),
            entity: options
                .entity
                .clone()
                .or_else(|| first_env(&["WANDB_ENTITY"]))
                .unwrap_or_default(),
            project: options
                .project
                .clone()
                .or_else(|| first_env(&["WANDB_PROJECT"]))
                .unwrap_or_else(|| "uncategorized".into()),
            display_name: display,
            tags: Vec::new(),
            host: crate::naming::hostname(),
            start_time: Some(Timestamp {
                seconds: start.as_secs() as i64,
                nanos: start.subsec_nanos() as i32,
            }),
            starting_step: 0,
            resumed: false,
        };
        if let Some(path) = earlier {
            let cut = cx
                .resume_from()
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX));
            return Self::resume(&path, run, cut);
        }
        let stamp = cx.expand("{utc_time}")?;
        let run_dir = base.join(format!("offline-run-{stamp}-{run_id}"));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| Error::io("create W&B run directory", &run_dir, e))?;
        let path = run_dir.join(format!("run-{run_id}.wandb"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create W&B run file", &path, e))?;
        let mut sink = Self::start(RecordFile::new("wandb", path, file), run_dir, run.clone());
        sink.push(RecordType::Run(run));
        sink.out.write_out()?;
        Ok(sink)
    }

    /// A sink on `out` (an empty file) with the header and header record buffered.
    fn start(mut out: RecordFile, run_dir: PathBuf, run: RunRecord) -> Self {
        // Chunks are laid out by file offset: dropping buffered records after a long
        // write failure would shift every later block, so this file never drops any.
        out.set_max_pending(usize::MAX);
        let start = run
            .start_time
            .as_ref()
            .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9);
        let mut sink = WandbSink {
            out,
            offset: 0,
            num: 0,
            next_step: 0,
            start,
            summary: BTreeMap::new(),
            encoded: Vec::new(),
            run_dir,
            run,
        };
        let header = sink.out.buffer();
        header.extend_from_slice(b":W&B");
        header.extend_from_slice(&0xBEE1u16.to_le_bytes());
        header.push(0);
        sink.out.end_record();
        sink.offset = CHUNK_HEADER;
        sink.push(RecordType::Header(HeaderRecord {}));
        sink
    }

    /// The offline run directory (give it to `wandb sync`).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The `.wandb` file.
    pub fn path(&self) -> &Path {
        self.out.path()
    }

    /// Keeps an item's value for the closing summary (updated in place: the same keys
    /// come back in every row).
    fn remember(&mut self, item: &Item) {
        match self.summary.get_mut(&item.key) {
            Some(value) => value.clone_from(&item.value_json),
            None => {
                self.summary
                    .insert(item.key.clone(), item.value_json.clone());
            }
        }
    }

    /// Appends one record, split into chunks at block boundaries.
    fn push(&mut self, record_type: RecordType) {
        self.num += 1;
        let record = WbRecord {
            num: self.num,
            record_type: Some(record_type),
        };
        // Encoded into a buffer kept between records.
        let mut data = std::mem::take(&mut self.encoded);
        data.clear();
        if record.encode(&mut data).is_err() {
            // Unreachable: a Vec grows as needed.
            data = record.encode_to_vec();
        }
        self.write_chunks(&data);
        // Kept for the next record, unless one huge record made it large.
        if data.capacity() <= 1 << 20 {
            self.encoded = data;
        }
    }

    /// Appends one encoded record as LevelDB-log chunks (split across 32 KiB blocks).
    fn write_chunks(&mut self, data: &[u8]) {
        let mut rest = data;
        let mut first = true;
        loop {
            let in_block = self.offset % BLOCK;
            let left = BLOCK - in_block;
            if left < CHUNK_HEADER {
                // Too small for a chunk header: zero padding, next block.
                let out = self.out.buffer();
                out.resize(out.len() + left as usize, 0);
                self.offset += left;
                continue;
            }
            let room = (left - CHUNK_HEADER) as usize;
            let take = rest.len().min(room);
            let last = take == rest.len();
            let kind = match (first, last) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let chunk = &rest[..take];
            let mut crc = crc32fast::Hasher::new_with_initial(crc32fast::hash(&[kind]));
            crc.update(chunk);
            let out = self.out.buffer();
            out.extend_from_slice(&crc.finalize().to_le_bytes());
            out.extend_from_slice(&(take as u16).to_le_bytes());
            out.push(kind);
            out.extend_from_slice(chunk);
            self.offset += CHUNK_HEADER + take as u64;
            rest = &rest[take..];
            first = false;
            if last {
                break;
            }
        }
        // The whole record, all its chunks, is one unit for the retrying file.
        self.out.end_record();
    }

    /// Sends the run record again with the run API's tags, as `wandb` does when
    /// `run.tags` changes.
    fn set_tags(&mut self, tags: Vec<(&str, &str)>) {
        self.run.tags = tags
            .into_iter()
            .map(|(k, v)| {
                let tag = if v.is_empty() {
                    k.to_owned()
                } else {
                    format!("{k}:{v}")
                };
                super::clip(&tag, MAX_TAG).to_owned()
            })
            .collect();
        self.push(RecordType::Run(self.run.clone()));
    }

    /// A final result: a summary value (and its metadata beside it), no history row.
    fn set_result(&mut self, name: &str, value: &Value, metadata: &[(&str, &Value)]) {
        let mut update = vec![Item {
            key: name.to_owned(),
            value_json: value_json(value),
        }];
        if !metadata.is_empty() {
            let object: Vec<String> = metadata
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::from(*k), value_json(v)))
                .collect();
            update.push(Item {
                key: format!("{name}/metadata"),
                value_json: format!("{{{}}}", object.join(",")),
            });
        }
        for item in &update {
            self.remember(item);
        }
        self.push(RecordType::Summary(SummaryRecord { update }));
    }

    fn write_record(&mut self, r: &Record) {
        match r.run_event() {
            Some(RunEvent::Tags(tags)) => return self.set_tags(tags),
            Some(RunEvent::Result(result)) => {
                return self.set_result(result.name, result.value, &result.metadata)
            }
            None => {}
        }
        // Keys stay unique in the row: `a.b` and `a/b` both become `a/b`, and a field
        // may be called `_step`; the later one gets a free `field.` name.
        let reserved = |k: &str| !r.hparams && matches!(k, "_step" | "_timestamp" | "_runtime");
        // Names taken so far: a scan of the row for the usual dozen fields, a set (built
        // only then) for wide rows.
        let mut wide: Option<std::collections::HashSet<String>> = None;
        let mut items: Vec<Item> = Vec::with_capacity(r.fields.len() + 3);
        for (k, v) in r.unique_fields() {
            let mut key = if r.hparams || !k.contains('.') {
                k.to_owned()
            } else {
                k.replace('.', "/")
            };
            if items.len() == 32 {
                wide = Some(items.iter().map(|i| i.key.clone()).collect());
            }
            let used = |c: &str| match &wide {
                Some(set) => set.contains(c),
                None => items.iter().any(|i| i.key == c),
            };
            if reserved(&key) || used(&key) {
                key = crate::json::free_name(&key, |c| reserved(c) || used(c));
            }
            if let Some(set) = &mut wide {
                set.insert(key.clone());
            }
            items.push(Item {
                key,
                value_json: value_json(v),
            });
        }
        if r.hparams {
            self.push(RecordType::Config(ConfigRecord { update: items }));
            return;
        }
        // A histogram's NaN and ±∞ values (never binned) are counted beside it.
        for (k, h) in r.histograms() {
            let n = h.summary().nonfinite();
            let key = format!("{}/nonfinite", k.replace('.', "/"));
            if n > 0 && !items.iter().any(|i| i.key == key) {
                items.push(Item {
                    key,
                    value_json: n.to_string(),
                });
            }
        }
        let step = r
            .step
            .map_or(self.next_step, |s| i64::try_from(s).unwrap_or(i64::MAX));
        self.next_step = step.saturating_add(1).max(self.next_step);
        let time = r.unix_seconds();
        let mut row = vec![
            Item {
                key: "_step".into(),
                value_json: step.to_string(),
            },
            Item {
                key: "_timestamp".into(),
                value_json: json_number(time),
            },
            Item {
                key: "_runtime".into(),
                value_json: json_number((time - self.start).max(0.0)),
            },
        ];
        for item in &items {
            self.remember(item);
        }
        row.extend(items);
        self.push(RecordType::History(HistoryRecord {
            item: row,
            step: Some(HistoryStep { num: step }),
        }));
    }
}

impl Sink for WandbSink {
    fn name(&self) -> &str {
        "wandb"
    }

    fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            self.write_record(record);
        }
        if self.out.pending() >= 256 * 1024 {
            self.out.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.write_out()
    }

    fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        let update: Vec<Item> = std::mem::take(&mut self.summary)
            .into_iter()
            .map(|(key, value_json)| Item { key, value_json })
            .collect();
        self.push(RecordType::Summary(SummaryRecord { update }));
        let runtime = (crate::time::unix_seconds(SystemTime::now()) - self.start).max(0.0);
        self.push(RecordType::Exit(RunExitRecord {
            exit_code: match outcome {
                RunOutcome::Completed => 0,
                RunOutcome::Failed => 1,
            },
            runtime: runtime as i32,
        }));
        self.push(RecordType::Final(FinalRecord {}));
        self.out.close()
    }

    fn lost(&self) -> u64 {
        self.out.lost()
    }
}
