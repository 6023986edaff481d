//! [`FileLock`]: one logger per file. Two loggers appending to the same JSONL file or
//! spool (two jobs given the same output directory and rank, a job started twice) would
//! mix their records and, for a spool, send each other's messages; so a logger takes an
//! advisory lock on `<file>.lock` before it appends, and a second one is refused with
//! [`Error::InUse`] naming the holder.
//!
//! The lock is `flock(2)` (`LockFileEx` on Windows): the kernel releases it when the
//! holder closes the file or exits, however it exits (a crash or SIGKILL leaves no stale
//! lock behind). The lock file itself stays on disk, holding the last holder's pid, host
//! and start time; it is never removed, since removing it would let a third logger lock a
//! new file while a second still holds the old one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// An exclusive advisory lock on `<path>.lock`, held while this value lives.
#[derive(Debug)]
pub(crate) struct FileLock {
    /// `None` where no lock could be taken for another reason than a holder (see `take`).
    _file: Option<File>,
}

/// The lock file of `path`: `metrics_rank0.jsonl` → `metrics_rank0.jsonl.lock`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock of `path` without waiting, or says who holds it.
    ///
    /// Where no lock can be had for another reason (a file system without locks, such as
    /// some NFS mounts, or a lock file that cannot be created), logging goes on unlocked
    /// and stderr says once per file that a second logger would not be noticed: the lock
    /// guards against a mistake, and must not stop training that would otherwise work.
    pub(crate) fn take(path: &Path) -> Result<FileLock> {
        let lock = lock_path(path);
        let unlocked = |what: &str, e: std::io::Error| {
            eprintln!(
                "trainlog: could not {what} {} ({e}); writing {} without a lock, so a second \
                 logger on it would not be noticed",
                lock.display(),
                path.display()
            );
            FileLock { _file: None }
        };
        let mut file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock)
        {
            Ok(file) => file,
            // No directory: opening the file itself fails next, with the error to show.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileLock { _file: None })
            }
            Err(e) => return Ok(unlocked("create", e)),
        };
        match try_lock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::InUse {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another logger".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(e) => return Ok(unlocked("lock", e)),
        }
        // Who holds it now, for the message a second logger gets (best effort).
        let who = format!(
            "pid {} on {}, since {}",
            std::process::id(),
            crate::naming::hostname(),
            crate::time::rfc3339(std::time::SystemTime::now())
        );
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(who.as_bytes());
        Ok(FileLock { _file: Some(file) })
    }
}

/// An exclusive lock without waiting (`flock(LOCK_EX | LOCK_NB)` on Unix, `LockFileEx`
/// on Windows, through fs4's safe API): true when taken, false when another holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    // Called through the trait: Rust 1.89's `File::try_lock` would shadow it.
    match fs4::FileExt::try_lock(file) {
        Ok(()) => Ok(true),
        Err(fs4::TryLockError::WouldBlock) => Ok(false),
        Err(fs4::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_free_again_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics_rank0.jsonl");
        let first = FileLock::take(&path).unwrap();
        let err = FileLock::take(&path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InUse { .. }), "{err:?}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        FileLock::take(&path).unwrap();
    }
}
