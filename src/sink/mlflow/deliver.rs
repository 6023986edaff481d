//! The MLflow deliverer: REST calls to the tracking server on the spool's sender thread,
//! the experiment and run created on first delivery, sessions, and `log-batch` requests
//! within MLflow's limits.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value as Json};

use super::runs::{RunIds, RunKey};
use super::{parse_uri, Auth, MAX_METRICS, MAX_PARAMS_TAGS};
use crate::deliver::net::{answer, redact_url, without_password, Answer, LazyClient, Secret, Tls};
use crate::deliver::retry::Verdict;
use crate::deliver::spool::{Deliver, Delivery, Pulse};

/// Talks to the tracking server (runs on the spool's sender thread).
pub(super) struct MlflowDeliver {
    client: LazyClient,
    /// The logger's own tracking server and credentials; `None` for `trainlog sync`.
    own: Option<(reqwest::Url, Auth)>,
    /// The current session: its server, credentials and run.
    base: reqwest::Url,
    auth: Auth,
    key: RunKey,
    run_id: Option<String>,
    runs: RunIds,
    /// Params already logged in the current run, to send each once and never a changed
    /// value.
    params: HashMap<String, String>,
    warned_param_change: bool,
    pulse: Option<Pulse>,
}

impl MlflowDeliver {
    pub(super) fn new(
        dir: &Path,
        own: Option<(reqwest::Url, Auth)>,
        base: reqwest::Url,
        tls: Tls,
    ) -> Self {
        MlflowDeliver {
            client: LazyClient::new("mlflow", tls),
            own,
            auth: Auth::None,
            key: RunKey::default(),
            base,
            run_id: None,
            runs: RunIds {
                path: dir.join("runs.json"),
            },
            params: HashMap::new(),
            warned_param_change: false,
            pulse: None,
        }
    }
}

/// The result of one REST call: the verdict, and the body (or the refusal).
type Call = (Verdict, Result<Json, (u16, String)>);

impl MlflowDeliver {
    fn call(&mut self, method: &str, path: &str, body: Option<&Json>, timeout: Duration) -> Call {
        let Some(client) = self.client.get() else {
            return (Verdict::Retry { after: None }, Err((0, String::new())));
        };
        let url = format!(
            "{}/api/2.0/mlflow/{path}",
            self.base.as_str().trim_end_matches('/')
        );
        let mut request = match method {
            "GET" => client.get(url),
            _ => client.post(url),
        }
        .timeout(timeout);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(Secret(token)) => request.bearer_auth(token),
            Auth::Basic(user, Secret(pass)) => request.basic_auth(user, Some(pass)),
        };
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        match request.send() {
            Ok(response) => {
                let Answer {
                    verdict,
                    status,
                    text,
                } = answer(response);
                match verdict {
                    Verdict::Done => {
                        // A run is made of several calls: each answered one is progress.
                        if let Some(pulse) = &self.pulse {
                            pulse.beat();
                        }
                        (
                            verdict,
                            Ok(serde_json::from_str(&text).unwrap_or(Json::Null)),
                        )
                    }
                    _ => (verdict, Err((status, text))),
                }
            }
            Err(_) => (Verdict::Retry { after: None }, Err((0, String::new()))),
        }
    }

    /// Gets or creates the experiment and creates the run, once.
    fn ensure_run(&mut self, timeout: Duration) -> std::result::Result<String, Delivery> {
        if let Some(id) = &self.run_id {
            return Ok(id.clone());
        }
        let fail = |verdict, refusal: Option<(u16, String)>| Delivery {
            verdict,
            count: 1,
            refusal,
        };
        let query = format!(
            "experiments/get-by-name?experiment_name={}",
            urlencode(&self.key.experiment)
        );
        let experiment_id = match self.call("GET", &query, None, timeout) {
            (Verdict::Done, Ok(body)) => body["experiment"]["experiment_id"]
                .as_str()
                .map(str::to_owned),
            (_, Err((404, _))) => {
                let create = json!({"name": self.key.experiment});
                match self.call("POST", "experiments/create", Some(&create), timeout) {
                    (Verdict::Done, Ok(body)) => body["experiment_id"].as_str().map(str::to_owned),
                    // Another rank or process created it first: look it up again next time.
                    (_, Err((400, text))) if text.contains("RESOURCE_ALREADY_EXISTS") => {
                        return Err(fail(
                            Verdict::Retry {
                                after: Some(Duration::ZERO),
                            },
                            None,
                        ))
                    }
                    (verdict, Err(refusal)) => return Err(fail(verdict, Some(refusal))),
                    (verdict, Ok(_)) => return Err(fail(verdict, None)),
                }
            }
            (verdict, Err(refusal)) => return Err(fail(verdict, Some(refusal))),
            (verdict, Ok(_)) => return Err(fail(verdict, None)),
        };
        let Some(experiment_id) = experiment_id else {
            return Err(fail(Verdict::Retry { after: None }, None));
        };
        let start_time = crate::time::unix_millis(SystemTime::now());
        let create = json!({
            "experiment_id": experiment_id,
            "run_name": self.key.run_name,
            "start_time": start_time,
            "tags": [{"key": "mlflow.source.name", "value": "trainlog"}],
        });
        match self.call("POST", "runs/create", Some(&create), timeout) {
            (Verdict::Done, Ok(body)) => match body["run"]["info"]["run_id"].as_str() {
                Some(id) => {
                    self.runs.set(&self.key, Some(id));
                    self.run_id = Some(id.to_owned());
                    Ok(id.to_owned())
                }
                None => Err(fail(Verdict::Retry { after: None }, None)),
            },
            (verdict, Err(refusal)) => Err(fail(verdict, Some(refusal))),
            (verdict, Ok(_)) => Err(fail(verdict, None)),
        }
    }
}

impl Deliver for MlflowDeliver {
    fn target(&self) -> String {
        format!("MLflow at {}", redact_url(&self.base))
    }

    /// A session names the server and the run: an unfinished run this directory
    /// started is resumed, otherwise a new one is created on first delivery. The
    /// logger's own credentials go to its own server only; others come from the
    /// environment.
    fn session(&mut self, session: &Json) -> std::result::Result<(), String> {
        let uri = session["tracking_uri"]
            .as_str()
            .ok_or("the session names no tracking URI")?;
        let base = parse_uri(uri).map_err(|e| e.to_string())?;
        self.auth = match &self.own {
            Some((own, auth)) if without_password(own) == uri => auth.clone(),
            _ => Auth::from_env(),
        };
        self.key = RunKey {
            uri: uri.to_owned(),
            experiment: session["experiment"]
                .as_str()
                .unwrap_or("Default")
                .to_owned(),
            run_name: session["run_name"].as_str().unwrap_or_default().to_owned(),
        };
        self.base = base;
        self.run_id = self.runs.get(&self.key);
        self.params.clear();
        Ok(())
    }

    fn set_pulse(&mut self, pulse: Pulse) {
        self.pulse = Some(pulse);
    }

    /// Lines with `end` or `more` are the sink's own; read without building values (the
    /// sender reads every line it delivers).
    fn records_in(&self, line: &[u8]) -> u64 {
        #[derive(serde::Deserialize)]
        struct Own {
            #[serde(default)]
            end: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            more: Option<serde::de::IgnoredAny>,
        }
        match serde_json::from_slice::<Own>(line) {
            Ok(own) => u64::from(own.end.is_none() && own.more.is_none()),
            Err(_) => 1,
        }
    }

    fn deliver(&mut self, lines: &[&[u8]], timeout: Duration) -> Delivery {
        let run_id = match self.ensure_run(timeout) {
            Ok(id) => id,
            Err(failure) => return failure,
        };
        let parsed: Vec<Json> = lines
            .iter()
            .map(|l| serde_json::from_slice(l).unwrap_or(Json::Null))
            .collect();
        if let Some(status) = parsed[0]["end"].as_str() {
            let update = json!({"run_id": run_id, "status": status, "end_time": parsed[0]["t"]});
            let (verdict, result) = self.call("POST", "runs/update", Some(&update), timeout);
            if verdict == Verdict::Done {
                // The run is over: a later run with the same name is a new MLflow run.
                self.runs.set(&self.key, None);
                self.run_id = None;
            }
            return Delivery {
                verdict,
                count: 1,
                refusal: result.err(),
            };
        }
        // Gather whole lines while they fit in one log-batch request.
        let (mut metrics, mut params, mut tags) = (Vec::new(), Vec::new(), Vec::new());
        let mut count = 0;
        let mut changed = Vec::new();
        for line in &parsed {
            let (m, p, g) = (
                line["m"].as_array().map_or(0, Vec::len),
                line["p"].as_array().map_or(0, Vec::len),
                line["g"].as_array().map_or(0, Vec::len),
            );
            let fits = metrics.len() + m <= MAX_METRICS
                && params.len() + tags.len() + p + g <= MAX_PARAMS_TAGS
                && metrics.len() + params.len() + tags.len() + m + p + g <= MAX_METRICS;
            if line["end"].is_string() || (count > 0 && !fits) {
                break;
            }
            count += 1;
            let (t, s) = (&line["t"], &line["s"]);
            for kv in line["m"].as_array().into_iter().flatten() {
                metrics.push(json!({"key": kv[0], "value": kv[1], "timestamp": t, "step": s}));
            }
            for kv in line["p"].as_array().into_iter().flatten() {
                let (Some(k), Some(v)) = (kv[0].as_str(), kv[1].as_str()) else {
                    continue;
                };
                match self.params.get(k) {
                    Some(old) if old == v => {}
                    Some(_) => changed.push(k.to_owned()),
                    None => {
                        self.params.insert(k.to_owned(), v.to_owned());
                        params.push(json!({"key": k, "value": v}));
                    }
                }
            }
            for kv in line["g"].as_array().into_iter().flatten() {
                tags.push(json!({"key": kv[0], "value": kv[1]}));
            }
        }
        if !changed.is_empty() && !self.warned_param_change {
            self.warned_param_change = true;
            eprintln!(
                "trainlog: mlflow: params {} were logged again with other values; MLflow keeps \
                 a run's first value, so the new ones were not sent",
                changed.join(", ")
            );
        }
        let batch = json!({"run_id": run_id, "metrics": metrics, "params": params, "tags": tags});
        let (mut verdict, mut result) = self.call("POST", "runs/log-batch", Some(&batch), timeout);
        if verdict == Verdict::Reject && !params.is_empty() {
            // MLflow refuses the whole request when a param changed (a resumed run that
            // logs other values): send the metrics and tags without the params, and say
            // once which params were refused.
            let keys: Vec<&str> = params.iter().filter_map(|p| p["key"].as_str()).collect();
            let refusal = result.as_ref().err().map(|(_, text)| text.clone());
            let batch = json!({"run_id": run_id, "metrics": metrics, "params": [], "tags": tags});
            (verdict, result) = self.call("POST", "runs/log-batch", Some(&batch), timeout);
            if verdict == Verdict::Done && !self.warned_param_change {
                self.warned_param_change = true;
                eprintln!(
                    "trainlog: mlflow: MLflow refused params {} ({}); a run keeps a param's \
                     first value; the metrics were sent",
                    keys.join(", "),
                    refusal.unwrap_or_default()
                );
            }
            if verdict == Verdict::Done {
                return Delivery {
                    verdict,
                    count: count.max(1),
                    refusal: None,
                };
            }
        }
        if verdict != Verdict::Done {
            // Not logged after all: send these params again with the retry.
            for p in &params {
                if let Some(k) = p["key"].as_str() {
                    self.params.remove(k);
                }
            }
        }
        Delivery {
            verdict,
            count: count.max(1),
            refusal: result.err(),
        }
    }
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
