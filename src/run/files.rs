//! Artifacts: files saved and loaded under a run's `files/` directory.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

/// A run's artifact store. Paths are relative to `files/`; absolute paths and `..` are refused.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Files { dir }
    }

    /// The `files/` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `relative` lives, or an error when it would leave `files/`: absolute paths,
    /// `..`, and symbolic links inside `files/` that point outside it are refused.
    pub fn path(&self, relative: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = relative.as_ref();
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || rel.as_os_str().is_empty() {
            return Err(outside(rel, "no `..`, no leading `/`"));
        }
        let path = self.dir.join(rel);
        self.check_resolved(rel, &path)?;
        Ok(path)
    }

    /// Refuses `path` when the part of it that exists resolves (through symbolic links)
    /// outside `files/`.
    fn check_resolved(&self, rel: &Path, path: &Path) -> Result<()> {
        let Ok(root) = self.dir.canonicalize() else {
            return Ok(()); // no files/ yet: nothing inside it can point elsewhere
        };
        // The longest existing prefix of `path`, resolved.
        let mut existing = path;
        let resolved = loop {
            match existing.canonicalize() {
                Ok(p) => break p,
                Err(_) => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => return Ok(()),
                },
            }
        };
        if resolved.starts_with(&root) {
            Ok(())
        } else {
            Err(outside(
                rel,
                "a symbolic link under files/ points outside it",
            ))
        }
    }

    /// Saves bytes (parent directories are created; an existing file is replaced atomically).
    pub fn save_bytes(&self, relative: impl AsRef<Path>, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path(&relative)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create directory", parent, e))?;
        }
        // Check again now that the directories exist (one may have been a link).
        self.check_resolved(relative.as_ref(), &path)?;
        write_atomic(&path, bytes)?;
        Ok(path)
    }

    /// Saves text.
    pub fn save_text(&self, relative: impl AsRef<Path>, text: &str) -> Result<PathBuf> {
        self.save_bytes(relative, text.as_bytes())
    }

    /// Saves a value as pretty JSON.
    pub fn save_json(&self, relative: impl AsRef<Path>, value: &impl Serialize) -> Result<PathBuf> {
        let text = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
            what: "artifact".into(),
            source,
        })?;
        self.save_bytes(relative, &text)
    }

    /// Loads bytes.
    pub fn load_bytes(&self, relative: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = self.path(relative)?;
        std::fs::read(&path).map_err(|e| Error::io("read", &path, e))
    }

    /// Loads text.
    pub fn load_text(&self, relative: impl AsRef<Path>) -> Result<String> {
        let path = self.path(relative)?;
        std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))
    }

    /// Loads JSON into any deserializable type.
    pub fn load_json<T: DeserializeOwned>(&self, relative: impl AsRef<Path>) -> Result<T> {
        let path = self.path(relative)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: path.display().to_string(),
            source,
        })
    }
}

fn outside(rel: &Path, why: &str) -> Error {
    Error::Config(format!(
        "artifact path `{}` must stay inside the run's files/ directory ({why})",
        rel.display()
    ))
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same directory with a
/// name no other writer uses (process id and a counter), then a rename. A symbolic link
/// at `path` is replaced, never written through.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("replace", path, e)
    })
}
