//! Finding the spool files a network backend wrote under an output directory.

#![allow(dead_code)] // each test binary uses what it needs

use std::path::{Path, PathBuf};

/// The spool files (not dead letters, not offsets) under `<dir>/<spool_dir>`.
pub fn spool_files(dir: &Path, spool_dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join(spool_dir))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.ends_with(".jsonl") && !name.ends_with(".dead.jsonl")
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The exact name of the spool file for `destination` and `rank`, as the design gives it:
/// `<host>_<port>-<hash>_rank<r>.jsonl`, the hash being 32 bits of FNV-1a over the
/// destination URL without its password (no time in it, the rank once).
pub fn spool_name(destination: &str, rank: u32) -> String {
    let mut url = reqwest::Url::parse(destination).unwrap();
    let _ = url.set_password(None);
    let hash = url
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!(
        "{}_{}-{:08x}_rank{rank}.jsonl",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap(),
        hash as u32
    )
}

/// Asserts that the only spool file under `<dir>/<spool_dir>` is the one named for
/// `destination` and rank 0, and returns it.
pub fn the_spool_of(dir: &Path, spool_dir: &str, destination: &str) -> PathBuf {
    let files = spool_files(dir, spool_dir);
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [spool_name(destination, 0)], "{files:?}");
    files[0].clone()
}

/// The one dead-letter file of rank 0 under `<dir>/<spool_dir>`.
pub fn dead_file(dir: &Path, spool_dir: &str) -> PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir.join(spool_dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".dead.jsonl"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// The dead-letter file beside the spool of `destination`, rank 0: the spool's name with
/// `.dead.jsonl` for `.jsonl`. Asserts it is the only one.
pub fn the_dead_letters_of(dir: &Path, spool_dir: &str, destination: &str) -> PathBuf {
    let dead = dead_file(dir, spool_dir);
    let name = spool_name(destination, 0).replace(".jsonl", ".dead.jsonl");
    assert_eq!(dead.file_name().unwrap().to_string_lossy(), name);
    dead
}

/// The one spool file of rank 0 under `<dir>/<spool_dir>`.
pub fn spool_file(dir: &Path, spool_dir: &str) -> PathBuf {
    let files = spool_files(dir, spool_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// What a crash in the middle of a write leaves at the end of a spool or dead-letter
/// file: half a line, without its newline. Returns the half line.
pub fn tear(path: &Path) -> &'static str {
    const HALF: &str = "{\"event_type\":\"log\",\"run_id\":\"torn\",\"step\":99999,\"da";
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, HALF.as_bytes()).unwrap();
    HALF
}

/// Every line of a spool or dead-letter file, each parsed (panics on a broken line).
pub fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {l}", path.display(), i + 1))
        })
        .collect()
}
