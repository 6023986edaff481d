//! Resuming an offline run: finding its file by run id, reading back the records an
//! earlier attempt wrote (up to the last complete one: a killed process may leave a torn
//! chunk at the end), and continuing the file without the orphaned history.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use prost::Message as _;

use super::proto::{RecordType, RunRecord, WbRecord};
use super::{WandbSink, BLOCK, CHUNK_HEADER, FIRST, FULL, LAST, MIDDLE};
use crate::file::RecordFile;
use crate::{Error, Result};

/// W&B's `resume` setting (`WANDB_RESUME`), for offline runs with a known run id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WandbResume {
    /// Continue the run if it exists, else start it (`allow`; `auto` and `true` too).
    Allow,
    /// Continue the run; fail at build if it does not exist (`must`).
    Must,
    /// Fail at build if the run exists (`never`).
    Never,
}

impl WandbResume {
    /// W&B's words: `allow`, `auto`, `true`, `must`, `never`, `false` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "allow" | "auto" | "true" => Some(WandbResume::Allow),
            "must" => Some(WandbResume::Must),
            "never" | "false" => Some(WandbResume::Never),
            _ => None,
        }
    }
}

/// The newest `offline-run-*-<id>/run-<id>.wandb` under `base` (directory names sort by
/// their time stamp).
pub(super) fn find_run_file(base: &Path, run_id: &str) -> Option<PathBuf> {
    let suffix = format!("-{run_id}");
    let file = format!("run-{run_id}.wandb");
    let mut found: Vec<PathBuf> = std::fs::read_dir(base)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("offline-run-") && name.ends_with(&suffix)
        })
        .map(|e| e.path().join(&file))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The records of a `.wandb` file, in order, up to the first chunk that is torn, fails
/// its checksum or does not fit the FULL/FIRST/MIDDLE/LAST sequence; and whether the
/// whole file was read.
pub(super) fn read_records(bytes: &[u8]) -> (Vec<WbRecord>, bool) {
    let mut records = Vec::new();
    if bytes.len() < CHUNK_HEADER as usize || &bytes[..4] != b":W&B" {
        return (records, bytes.is_empty());
    }
    let mut pos = CHUNK_HEADER as usize;
    let mut partial: Option<Vec<u8>> = None;
    let complete = loop {
        let left = BLOCK as usize - pos % BLOCK as usize;
        if left < CHUNK_HEADER as usize {
            pos += left;
            continue;
        }
        if pos == bytes.len() {
            break partial.is_none();
        }
        let Some(header) = bytes.get(pos..pos + CHUNK_HEADER as usize) else {
            break false;
        };
        let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let len = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let kind = header[6];
        let start = pos + CHUNK_HEADER as usize;
        let Some(data) = bytes.get(start..start + len) else {
            break false;
        };
        let mut hasher = crc32fast::Hasher::new_with_initial(crc32fast::hash(&[kind]));
        hasher.update(data);
        if hasher.finalize() != crc {
            break false;
        }
        pos = start + len;
        let whole = match (kind, partial.take()) {
            (FULL, None) => data.to_vec(),
            (FIRST, None) => {
                partial = Some(data.to_vec());
                continue;
            }
            (MIDDLE, Some(mut p)) => {
                p.extend_from_slice(data);
                partial = Some(p);
                continue;
            }
            (LAST, Some(mut p)) => {
                p.extend_from_slice(data);
                p
            }
            _ => break false,
        };
        match WbRecord::decode(whole.as_slice()) {
            Ok(record) => records.push(record),
            Err(_) => break false,
        }
    };
    (records, complete)
}

/// What an earlier attempt leaves to a resumed one: its records without the history at or
/// past `cut`, without the exit and final records and the summary written at close just
/// before the exit (the run goes on, and its summary is written again at the next close),
/// and without the header (the rewritten file gets its own).
pub(super) fn kept_records(records: Vec<WbRecord>, cut: Option<i64>) -> Vec<RecordType> {
    let records: Vec<RecordType> = records.into_iter().filter_map(|r| r.record_type).collect();
    let closing_summary = |i: usize| {
        matches!(records[i], RecordType::Summary(_))
            && matches!(records.get(i + 1), Some(RecordType::Exit(_)))
    };
    let keep: Vec<bool> = (0..records.len())
        .map(|i| match &records[i] {
            RecordType::History(h) => {
                let step = h.step.as_ref().map_or(0, |s| s.num);
                cut.is_none_or(|cut| step < cut)
            }
            RecordType::Exit(_) | RecordType::Final(_) | RecordType::Header(_) => false,
            RecordType::Summary(_) => !closing_summary(i),
            _ => true,
        })
        .collect();
    records
        .into_iter()
        .zip(keep)
        .filter_map(|(r, keep)| keep.then_some(r))
        .collect()
}

impl WandbSink {
    /// Continues the offline run in `path`: its records are written again into a new file
    /// without the history at or past `cut` and without the exit record, that file
    /// replaces the old one (a rename, so a crash meanwhile leaves the old one whole), and
    /// the run record is sent again marked resumed. Project, name and start time stay
    /// the earlier attempt's.
    pub(super) fn resume(path: &Path, fresh: RunRecord, cut: Option<i64>) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read W&B run file", path, e))?;
        let (records, complete) = read_records(&bytes);
        if !complete {
            eprintln!(
                "trainlog: wandb: {} ends in a torn or damaged record (the earlier attempt \
                 was killed); continuing after its last complete record",
                path.display()
            );
        }
        let kept = kept_records(records, cut);
        let run_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let temp = path.with_extension("wandb.resume");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(|e| Error::io("create W&B run file", &temp, e))?;
        let earlier_run = kept.iter().rev().find_map(|r| match r {
            RecordType::Run(run) => Some(run.clone()),
            _ => None,
        });
        let mut run = earlier_run.unwrap_or(fresh);
        run.resumed = true;
        let mut sink = Self::start(RecordFile::new("wandb", temp.clone(), file), run_dir, run);
        for record in kept {
            match &record {
                RecordType::History(h) => {
                    let step = h.step.as_ref().map_or(0, |s| s.num);
                    sink.next_step = sink.next_step.max(step.saturating_add(1));
                    for item in h.item.iter().filter(|i| !i.key.starts_with('_')) {
                        sink.summary
                            .insert(item.key.clone(), item.value_json.clone());
                    }
                }
                RecordType::Summary(update) => {
                    for item in &update.update {
                        sink.summary
                            .insert(item.key.clone(), item.value_json.clone());
                    }
                }
                _ => {}
            }
            sink.push(record);
        }
        sink.run.starting_step = cut.unwrap_or(sink.next_step).min(sink.next_step);
        sink.next_step = sink.run.starting_step;
        sink.push(RecordType::Run(sink.run.clone()));
        sink.out.write_out()?;
        sink.out.sync()?;
        std::fs::rename(&temp, path).map_err(|e| Error::io("replace W&B run file", path, e))?;
        sink.out.set_path(path.to_path_buf());
        Ok(sink)
    }
}
