//! The run ids of MLflow runs a spool directory started and that have not ended
//! (`mlflow_spool/runs.json`).

use std::path::PathBuf;

use serde_json::{json, Value as Json};

/// The MLflow run ids of runs this spool directory started and that have not ended,
/// keyed by tracking URI, experiment and run name (`runs.json`). A logger that resumes
/// an unfinished run (after a crash) writes into the same MLflow run; once a run ends
/// its entry is removed, so a later run with the same name starts a new MLflow run.
#[derive(Debug)]
pub(super) struct RunIds {
    pub(super) path: PathBuf,
}

impl RunIds {
    fn read(&self) -> Vec<Json> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Json>>(&b).ok())
            .unwrap_or_default()
    }

    fn matches(entry: &Json, key: &RunKey) -> bool {
        entry["tracking_uri"] == key.uri
            && entry["experiment"] == key.experiment
            && entry["run_name"] == key.run_name
    }

    pub(super) fn get(&self, key: &RunKey) -> Option<String> {
        self.read()
            .iter()
            .find(|e| Self::matches(e, key))
            .and_then(|e| e["run_id"].as_str())
            .map(str::to_owned)
    }

    pub(super) fn set(&self, key: &RunKey, run_id: Option<&str>) {
        let mut entries: Vec<Json> = self
            .read()
            .into_iter()
            .filter(|e| !Self::matches(e, key))
            .collect();
        if let Some(id) = run_id {
            entries.push(json!({
                "tracking_uri": key.uri,
                "experiment": key.experiment,
                "run_name": key.run_name,
                "run_id": id,
            }));
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&entries).unwrap_or_default();
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

/// The run a session writes to.
#[derive(Debug, Clone, Default)]
pub(super) struct RunKey {
    pub(super) uri: String,
    pub(super) experiment: String,
    pub(super) run_name: String,
}
