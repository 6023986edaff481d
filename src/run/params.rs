//! Run parameters: changes appended to `parameters.jsonl`, the current view rebuilt from them.

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::{append_jsonl, read_jsonl, timestamp, Run};
use crate::{Error, Result};

/// A run's parameters. Every change is a line in `parameters.jsonl` and an `hparams`
/// record on the metrics target; [`read`](Params::read) replays the lines.
///
/// - [`set`](Params::set): top-level keys replaced by the given values.
/// - [`extend`](Params::extend): nested maps merged deeply (other values replaced).
/// - [`update`](Params::update): one value at a dotted path, maps created on the way.
#[derive(Debug)]
pub struct Params<'a> {
    run: &'a Run,
}

fn object(values: &impl Serialize) -> Result<Map<String, Json>> {
    match serde_json::to_value(values) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(Error::Config(format!(
            "parameters must be a JSON object (a map or a struct), not {other}"
        ))),
        Err(source) => Err(Error::Json {
            what: "parameters".into(),
            source,
        }),
    }
}

/// Merges `from` into `into`: maps recursively, everything else replaced.
pub(crate) fn deep_merge(into: &mut Map<String, Json>, from: Map<String, Json>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Json::Object(old)), Json::Object(new)) => deep_merge(old, new),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Sets `value` at a dotted `path`, replacing non-maps met on the way with maps.
pub(crate) fn set_path(into: &mut Map<String, Json>, path: &str, value: Json) {
    let mut parts = path.split('.').peekable();
    let mut map = into;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        let slot = map
            .entry(part.to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
        if !slot.is_object() {
            *slot = Json::Object(Map::new());
        }
        let Json::Object(next) = slot else { return };
        map = next;
    }
}

impl<'a> Params<'a> {
    pub(crate) fn new(run: &'a Run) -> Self {
        Params { run }
    }

    fn record(&self, op: &str, path: Option<&str>, value: Json) -> Result<()> {
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp().into());
        line.insert("op".into(), op.into());
        if let Some(p) = path {
            line.insert("path".into(), p.into());
        }
        line.insert("value".into(), value.clone());
        append_jsonl(&self.run.dir.join("parameters.jsonl"), &Json::Object(line))?;
        let hparams = match path {
            Some(p) => {
                let mut m = Map::new();
                set_path(&mut m, p, value);
                Json::Object(m)
            }
            None => value,
        };
        crate::log_hparams(&hparams);
        Ok(())
    }

    /// Replaces the given top-level keys.
    pub fn set(&self, values: &impl Serialize) -> Result<()> {
        self.record("set", None, Json::Object(object(values)?))
    }

    /// Merges nested maps deeply into the current parameters.
    pub fn extend(&self, values: &impl Serialize) -> Result<()> {
        self.record("extend", None, Json::Object(object(values)?))
    }

    /// Sets one value at a dotted path such as `model.layers`.
    pub fn update(&self, path: &str, value: impl Serialize) -> Result<()> {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(Error::Config(format!(
                "parameter path `{path}` has an empty part"
            )));
        }
        let value = serde_json::to_value(value).map_err(|source| Error::Json {
            what: format!("parameter `{path}`"),
            source,
        })?;
        self.record("update", Some(path), value)
    }

    /// The current parameters, rebuilt from `parameters.jsonl`.
    pub fn read(&self) -> Result<Json> {
        read_params(&self.run.dir)
    }
}

/// The current parameters of the run in `dir`, rebuilt from its `parameters.jsonl`
/// (an empty object when there is none).
pub fn read_params(dir: &std::path::Path) -> Result<Json> {
    let path = dir.join("parameters.jsonl");
    let mut current = Map::new();
    if !path.exists() {
        return Ok(Json::Object(current));
    }
    for line in read_jsonl(&path)? {
        apply(&mut current, line);
    }
    Ok(Json::Object(current))
}

/// Applies one `parameters.jsonl` line to the current view.
pub(crate) fn apply(current: &mut Map<String, Json>, line: Json) {
    let op = line["op"].as_str().unwrap_or("").to_owned();
    let path = line["path"].as_str().map(str::to_owned);
    let value = line.get("value").cloned().unwrap_or(Json::Null);
    match (op.as_str(), path, value) {
        ("set", _, Json::Object(map)) => current.extend(map),
        ("extend", _, Json::Object(map)) => deep_merge(current, map),
        ("update", Some(path), value) => set_path(current, &path, value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Json) -> Map<String, Json> {
        match v {
            Json::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn deep_merge_cases() {
        let mut a = map(json!({"model": {"layers": 4, "act": "relu"}, "lr": 1, "tags": [1]}));
        deep_merge(
            &mut a,
            map(json!({"model": {"layers": 6, "norm": {"eps": 1e-5}}, "tags": [2], "new": true})),
        );
        assert_eq!(
            Json::Object(a.clone()),
            json!({"model": {"layers": 6, "act": "relu", "norm": {"eps": 1e-5}}, "lr": 1, "tags": [2], "new": true})
        );
        // A map replaces a scalar and a scalar replaces a map.
        deep_merge(&mut a, map(json!({"lr": {"base": 1}, "model": 3})));
        assert_eq!(a["lr"], json!({"base": 1}));
        assert_eq!(a["model"], json!(3));
    }

    #[test]
    fn dotted_update_cases() {
        let mut a = map(json!({"model": {"layers": 4}, "lr": 1}));
        set_path(&mut a, "model.layers", json!(6));
        set_path(&mut a, "model.head.dim", json!(64));
        set_path(&mut a, "lr.warmup", json!(10)); // through a scalar: becomes a map
        set_path(&mut a, "top", json!("x"));
        assert_eq!(
            Json::Object(a),
            json!({"model": {"layers": 6, "head": {"dim": 64}}, "lr": {"warmup": 10}, "top": "x"})
        );
    }
}
