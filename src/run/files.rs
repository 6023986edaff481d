//! Artifacts: files saved and loaded under a run's `files/` directory.

use std::path::{Component, Path, PathBuf};

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

    /// Where `relative` lives, or an error when it would leave `files/`.
    pub fn path(&self, relative: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = relative.as_ref();
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || rel.as_os_str().is_empty() {
            return Err(Error::Config(format!(
                "artifact path `{}` must be relative and stay inside the run's files/ \
                 directory (no `..`, no leading `/`)",
                rel.display()
            )));
        }
        Ok(self.dir.join(rel))
    }

    /// Saves bytes (parent directories are created; an existing file is replaced atomically).
    pub fn save_bytes(&self, relative: impl AsRef<Path>, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path(relative)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create directory", parent, e))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("replace", &path, e))?;
        Ok(path)
    }

    /// Saves text.
    pub fn save_text(&self, relative: impl AsRef<Path>, text: &str) -> Result<PathBuf> {
        self.save_bytes(relative, text.as_bytes())
    }

    /// Saves a value as pretty JSON.
    pub fn save_json(&self, relative: impl AsRef<Path>, value: &impl Serialize) -> Result<PathBuf> {
        let text = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::Config(format!("artifact is not JSON: {e}")))?;
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
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Config(format!("{}: not the expected JSON: {e}", path.display())))
    }
}
