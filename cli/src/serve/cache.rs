//! The metrics files `serve` keeps in memory, and the watcher that reads what is appended to
//! them and tells the pages listening.
//!
//! A file is read when a request first needs it: its summaries for `/api/runs`, every
//! point (with its time) once a chart asks for one of its series. Points are kept for the
//! files charts use, up to [`POINTS_KEPT`] in all; past it, the files used least recently
//! keep only their summaries (a chart asking again reads them again). So memory follows
//! what is being looked at, not everything under DIR.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{FileScan, Keep};
use crate::runs::{find_runs, run_files};

/// How often the watcher looks for new lines and new runs: a point written is in the API
/// within this (plus its reading), well inside a second.
pub const POLL: Duration = Duration::from_millis(250);

/// The most points kept in memory for charts, over every file (24 bytes each: step,
/// value, time): about 1.2 GB, fifty runs of a million steps of one metric.
pub const POINTS_KEPT: usize = 50_000_000;

/// Metrics files as read. Each file has a lock of its own, held while it is read, so a
/// long reading holds up only the requests for that file.
#[derive(Default)]
pub struct Cache {
    files: Mutex<HashMap<PathBuf, Arc<Mutex<Entry>>>>,
}

struct Entry {
    stamp: Option<Stamp>,
    scan: Arc<FileScan>,
    /// Whether `scan` keeps every point ([`Keep::EVERYTHING`]) or summaries only.
    points: bool,
    /// When a request last used its points.
    used: Instant,
}

impl Entry {
    /// Brings the scan up to the file, now `stamp`; whether it read anything.
    fn update(&mut self, path: &Path, stamp: Stamp, points: bool) -> Result<bool, String> {
        let keep = |points| if points { Keep::EVERYTHING } else { Keep::NONE };
        if self.stamp.is_none() || (points && !self.points) {
            // First reading, or the points are wanted now: the file whole.
            let points = points || self.points;
            self.scan = Arc::new(FileScan::read(path, keep(points))?);
            self.points = points;
            Ok(true)
        } else if self.stamp != Some(stamp) {
            if self.stamp.map(|s| s.id) == Some(stamp.id) {
                // Clones only if a request still holds the old one.
                Arc::make_mut(&mut self.scan).read_appended(path, keep(self.points))?;
            } else {
                self.scan = Arc::new(FileScan::read(path, keep(self.points))?);
            }
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// What tells that a file changed, and how: its length, modification time and identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    id: (u64, u64),
}

impl Stamp {
    pub fn of(path: &Path) -> Result<Stamp, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let id = (0, 0);
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            id,
        })
    }
}

impl Cache {
    /// `path` as it is now, with every point when `points`, and whether it was read again.
    pub fn scan(&self, path: &Path, points: bool) -> Result<(Arc<FileScan>, bool), String> {
        let entry = lock(&self.files)
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Entry {
                    stamp: None,
                    scan: Arc::default(),
                    points: false,
                    used: Instant::now(),
                }))
            })
            .clone();
        let mut entry = lock(&entry);
        let stamp = Stamp::of(path)?;
        let read = match entry.update(path, stamp, points) {
            Ok(read) => read,
            Err(e) => {
                // Part of an appended stretch may be in: read the file whole next time.
                entry.stamp = None;
                return Err(e);
            }
        };
        entry.stamp = Some(stamp);
        if points {
            entry.used = Instant::now();
        }
        let scan = entry.scan.clone();
        let grew = read && entry.points;
        drop(entry);
        if grew {
            self.keep_within(POINTS_KEPT);
        }
        Ok((scan, read))
    }

    /// Re-reads `path` if it is kept and changed since; whether it did. A file no request
    /// has needed yet is not read.
    pub fn refresh(&self, path: &Path) -> Result<bool, String> {
        let kept = lock(&self.files).get(path).cloned();
        let Some(entry) = kept else { return Ok(false) };
        let points = {
            let entry = lock(&entry);
            if entry.stamp.is_none() {
                return Ok(false);
            }
            entry.points
        };
        Ok(self.scan(path, points)?.1)
    }

    /// Past `budget` points in all, the files whose points were used least recently keep
    /// their summaries only. Files being read are left alone.
    fn keep_within(&self, budget: usize) {
        let entries: Vec<Arc<Mutex<Entry>>> = lock(&self.files).values().cloned().collect();
        let mut kept: Vec<(Instant, usize, &Arc<Mutex<Entry>>)> = entries
            .iter()
            .filter_map(|e| {
                let entry = e.try_lock().ok()?;
                entry
                    .points
                    .then(|| (entry.used, entry.scan.points_kept(), e))
            })
            .collect();
        let mut total: usize = kept.iter().map(|k| k.1).sum();
        kept.sort_by_key(|k| k.0);
        for (_, n, e) in kept {
            if total <= budget {
                break;
            }
            if let Ok(mut entry) = e.try_lock() {
                Arc::make_mut(&mut entry.scan).drop_every_point();
                entry.points = false;
                total -= n;
            }
        }
    }

    /// Forgets the files not in `keep` (runs deleted since).
    fn retain(&self, keep: &BTreeSet<PathBuf>) {
        lock(&self.files).retain(|path, _| keep.contains(path));
    }
}

/// Pages listening for changes: each gets every message sent.
#[derive(Default)]
pub struct Listeners {
    senders: Mutex<Vec<mpsc::Sender<Arc<str>>>>,
}

impl Listeners {
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<str>> {
        let (tx, rx) = mpsc::channel();
        lock(&self.senders).push(tx);
        rx
    }

    fn send(&self, message: &str) {
        let message: Arc<str> = message.into();
        lock(&self.senders).retain(|tx| tx.send(message.clone()).is_ok());
    }
}

/// A lock whose holder panicked is still usable: what it guards is only ever replaced
/// whole.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every [`POLL`], looks for changes under `root`: reads what was appended to the files
/// kept (so the next request has it at once) and tells `listeners` which runs changed,
/// `{"changed": [names], "gone": N}`. A file not kept yet is only looked at (its size and
/// time), not read.
pub fn watch(root: &Path, cache: &Cache, listeners: &Listeners) {
    let mut seen: HashMap<PathBuf, Stamp> = HashMap::new();
    let mut known: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let (runs, _) = find_runs(root);
        let mut changed = Vec::new();
        let mut files = BTreeSet::new();
        for run in &runs {
            let mut run_changed = !known.contains(run);
            for (_, path) in run_files(run).unwrap_or_default() {
                // A file that cannot be read now is reported by the request that needs it.
                let Ok(stamp) = Stamp::of(&path) else {
                    continue;
                };
                if seen.insert(path.clone(), stamp) != Some(stamp) {
                    run_changed = true;
                    let _ = cache.refresh(&path);
                }
                files.insert(path);
            }
            if run_changed {
                changed.push(super::api::relative(root, run));
            }
        }
        let now: BTreeSet<PathBuf> = runs.into_iter().collect();
        let gone = known.difference(&now).count();
        known = now;
        seen.retain(|path, _| files.contains(path));
        cache.retain(&files);
        if !changed.is_empty() || gone > 0 {
            let message = serde_json::json!({ "changed": changed, "gone": gone });
            listeners.send(&message.to_string());
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_read_when_asked_for_and_dropped_past_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        for path in [&a, &b] {
            let lines: String = (0..100)
                .map(|s| format!("{{\"step\":{s},\"loss\":{s}}}\n"))
                .collect();
            std::fs::write(path, lines).unwrap();
        }
        let cache = Cache::default();
        let (scan, read) = cache.scan(&a, false).unwrap();
        assert!(read && scan.metrics[0].points.is_empty(), "summaries only");
        assert_eq!(scan.metrics[0].summary.count, 100);
        let (scan, read) = cache.scan(&a, true).unwrap();
        assert!(
            read && scan.metrics[0].points.len() == 100,
            "read again for its points"
        );
        let (_, read) = cache.scan(&a, false).unwrap();
        assert!(!read, "kept, with its points");
        cache.scan(&b, true).unwrap();
        // Over a budget of 150 points, the file used least recently (a) keeps summaries.
        cache.keep_within(150);
        let (scan, read) = cache.scan(&a, false).unwrap();
        assert!(!read && scan.metrics[0].points.is_empty());
        assert_eq!(scan.metrics[0].summary.count, 100);
        assert_eq!(
            cache.scan(&b, false).unwrap().0.metrics[0].points.len(),
            100
        );
        // Appended lines reach summaries-only and every-point files alike.
        for path in [&a, &b] {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            std::io::Write::write_all(&mut f, b"{\"step\":100,\"loss\":7}\n").unwrap();
        }
        assert!(cache.refresh(&a).unwrap() && cache.refresh(&b).unwrap());
        let (a_scan, b_scan) = (
            cache.scan(&a, false).unwrap().0,
            cache.scan(&b, false).unwrap().0,
        );
        assert_eq!(a_scan.metrics[0].summary.count, 101);
        assert!(a_scan.metrics[0].points.is_empty());
        assert_eq!(b_scan.metrics[0].points.last(), Some(&(100.0, 7.0)));
        // A file never asked for is not read by the watcher's refresh.
        let c = dir.path().join("c.jsonl");
        std::fs::write(&c, "{\"step\":0,\"loss\":1}\n").unwrap();
        assert!(!cache.refresh(&c).unwrap());
    }
}
