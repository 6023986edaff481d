//! Finding the spool files a network backend wrote under an output directory.

#![allow(dead_code)] // each test binary uses what it needs

use std::path::{Path, PathBuf};

/// The spool files (not dead letters) under `<dir>/<spool_dir>`.
pub fn spool_files(dir: &Path, spool_dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(spool_dir))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.ends_with("_rank0.jsonl")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The one dead-letter file of rank 0 under `<dir>/<spool_dir>`.
pub fn dead_file(dir: &Path, spool_dir: &str) -> PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir.join(spool_dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("_rank0.dead.jsonl"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The one spool file of rank 0 under `<dir>/<spool_dir>`.
pub fn spool_file(dir: &Path, spool_dir: &str) -> PathBuf {
    let files = spool_files(dir, spool_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}
