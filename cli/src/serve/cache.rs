//! The metrics files `serve` keeps in memory, every point with its time, and the watcher
//! that reads what is appended to them and tells the pages listening.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::engine::{FileScan, Keep};
use crate::runs::{find_runs, run_files};

/// How often the watcher looks for new lines and new runs: a point written is in the API
/// within this (plus its reading), well inside a second.
pub const POLL: Duration = Duration::from_millis(250);

/// Metrics files as read, kept between requests. A file that grew is read from where the
/// last reading stopped ([`FileScan::read_appended`]); one that shrank or was replaced is
/// read whole again.
#[derive(Default)]
pub struct Cache {
    files: HashMap<PathBuf, (Stamp, Arc<FileScan>)>,
}

/// What tells that a file changed, and how: its length, modification time and identity.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    id: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, String> {
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
    /// `path` as it is now, and whether that differs from what was kept.
    pub fn scan(&mut self, path: &Path) -> Result<(Arc<FileScan>, bool), String> {
        let stamp = Stamp::of(path)?;
        if let Some((seen, scan)) = self.files.get_mut(path) {
            if *seen == stamp {
                return Ok((scan.clone(), false));
            }
            if seen.id == stamp.id {
                // Clones only if a request still holds the old one.
                Arc::make_mut(scan).read_appended(path, Keep::EVERYTHING)?;
                *seen = stamp;
                return Ok((scan.clone(), true));
            }
        }
        let scan = Arc::new(FileScan::read(path, Keep::EVERYTHING)?);
        self.files.insert(path.to_path_buf(), (stamp, scan.clone()));
        Ok((scan, true))
    }

    /// Forgets the files not in `keep` (runs deleted since).
    fn retain(&mut self, keep: &BTreeSet<PathBuf>) {
        self.files.retain(|path, _| keep.contains(path));
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

/// A lock whose holder panicked is still usable: the cache is only ever replaced whole.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every [`POLL`], reads what changed under `root` into `cache` (one file at a time, so
/// requests are not held up) and tells `listeners` which runs changed:
/// `{"changed": [names]}`, with every run name when runs appeared or went away.
pub fn watch(root: &Path, cache: &Mutex<Cache>, listeners: &Listeners) {
    let mut known: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let (runs, _) = find_runs(root);
        let mut changed = Vec::new();
        let mut files = BTreeSet::new();
        for run in &runs {
            let mut run_changed = !known.contains(run);
            for (_, path) in run_files(run).unwrap_or_default() {
                // A file that cannot be read now is reported by the request that needs it.
                if let Ok((_, true)) = lock(cache).scan(&path) {
                    run_changed = true;
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
        lock(cache).retain(&files);
        if !changed.is_empty() || gone > 0 {
            let message = serde_json::json!({ "changed": changed, "gone": gone });
            listeners.send(&message.to_string());
        }
        std::thread::sleep(POLL);
    }
}
