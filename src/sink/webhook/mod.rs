//! `WebhookSink`: short alerts to Slack, Mattermost or any incoming webhook that takes
//! `{"text": "..."}`: the run finished or failed, a metric became NaN or infinite, an
//! ERROR was logged. Few messages by design: an alert channel that floods gets muted.
//!
//! Messages go through the shared [spool](crate::deliver::spool) like the other network
//! sinks (retries, bounded close, `trainlog sync`). The URL is a secret: messages show its
//! scheme and host only, and the spool records a hash of it, never the URL; `trainlog sync`
//! takes the URL from `TRAINLOG_WEBHOOK_URL`.

use std::collections::{BTreeMap, HashSet};

use std::time::{Duration, Instant};

mod deliver;
mod options;

pub(crate) use self::deliver::resume_spool;
use self::deliver::WebhookDeliver;
pub use self::options::WebhookOptions;
use super::{BuildContext, RunOutcome};
use crate::deliver::net::{LazyClient, Tls};
use crate::deliver::spool::Spool;
use crate::deliver::spooled::{Batching, Endpoint, Messages, Spooled};
use crate::env::first_env;
use crate::{Error, Record, Result, Value};

/// The environment variable with the webhook URL (it also turns the backend on).
pub const WEBHOOK_URL_VAR: &str = "TRAINLOG_WEBHOOK_URL";

/// A URL as messages show it: scheme and host, never the path (which holds the secret).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(an unparseable URL)".into(),
    }
}

/// A hash of the URL: what the spool records instead of the URL itself.
fn url_hash(url: &str) -> String {
    format!("{:016x}", crate::deliver::spool::stable_hash(url))
}

/// ERROR messages within the current minute, and those folded away.
#[derive(Debug, Default)]
struct ErrorBudget {
    window_start: Option<Instant>,
    sent: u32,
    folded: u64,
    last_folded: Option<String>,
    last_sent: Option<String>,
}

spooled_sink! {
    /// Posts alerts to an incoming webhook. See the [module docs](crate::sink) and
    /// [`WebhookOptions`].
    WebhookSink(Alerts)
}

/// The webhook backend's messages: the alerts, and what they are decided from.
#[derive(Debug)]
struct Alerts {
    run: String,
    started: Instant,
    key_metrics: Vec<String>,
    last: BTreeMap<String, f64>,
    last_step: Option<u64>,
    non_finite: HashSet<String>,
    last_error: Option<String>,
    options: Flags,
    errors: ErrorBudget,
    on_start: bool,
}

/// What to alert on.
#[derive(Debug, Clone, Copy)]
struct Flags {
    finish: bool,
    failure: bool,
    non_finite: bool,
    errors: bool,
    per_minute: u32,
}

impl WebhookSink {
    /// Opens (or resumes) the spool under `output_dir` and starts the sender thread.
    /// Fails without a URL, or with one that is not http(s).
    pub fn new(options: WebhookOptions, cx: &BuildContext) -> Result<Self> {
        // Said before the URL is looked at: without a directory there is no spool.
        cx.require_output_dir("webhook")?;
        let url = options
            .url
            .clone()
            .or_else(|| first_env(&[WEBHOOK_URL_VAR]))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the webhook backend needs a URL: set WebhookOptions::url or {WEBHOOK_URL_VAR}"
                ))
            })?;
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Config(format!(
                    "the webhook URL ({}) must be http:// or https://",
                    shown_url(&url)
                ))
            })?;
        let run = cx.run_name(options.run_name.as_deref(), &[])?;
        let tls = Tls::load(options.ca_file.as_slice(), false)?;
        let endpoint = Endpoint {
            backend: "webhook",
            destination: parsed.clone(),
            session: serde_json::json!({"backend": "webhook", "url_hash": url_hash(parsed.as_str())}),
            deliver: WebhookDeliver {
                client: LazyClient::new("webhook", tls),
                own: Some(parsed.clone()),
                url: Some(parsed),
            },
            sync_env: Some(WEBHOOK_URL_VAR),
        };
        let batching = Batching {
            size: 1,
            interval: Duration::ZERO,
            request_timeout: Duration::from_secs(10),
            heartbeat: None,
        };
        let alerts = Alerts {
            run,
            started: Instant::now(),
            key_metrics: options.key_metrics.clone(),
            last: BTreeMap::new(),
            last_step: None,
            non_finite: HashSet::new(),
            last_error: None,
            options: Flags {
                finish: options.on_finish,
                failure: options.on_failure,
                non_finite: options.on_non_finite,
                errors: options.on_errors,
                per_minute: options.errors_per_minute,
            },
            errors: ErrorBudget::default(),
            on_start: options.on_start,
        };
        Spooled::open(cx, endpoint, batching, &options.delivery, alerts).map(WebhookSink)
    }
}

impl Alerts {
    /// Appends one message to the spool.
    fn post(spool: &mut Spool, text: &str) {
        let out = spool.buffer();
        // Serializing a JSON object with a string cannot fail.
        let _ = serde_json::to_writer(&mut *out, &serde_json::json!({ "text": text }));
        out.push(b'\n');
        spool.end_record();
    }

    /// The key metrics' names: as configured, else up to three, losses first.
    fn key_names(&self) -> Vec<String> {
        if !self.key_metrics.is_empty() {
            return self.key_metrics.clone();
        }
        let mut names: Vec<&String> = self.last.keys().collect();
        names.sort_by_key(|k| (!k.contains("loss"), k.len(), k.as_str()));
        names.into_iter().take(3).cloned().collect()
    }

    fn summary(&self) -> String {
        let values: Vec<String> = self
            .key_names()
            .iter()
            .filter_map(|k| {
                self.last
                    .get(k)
                    .map(|v| format!("{k}={}", crate::format::format_float(*v)))
            })
            .collect();
        let step = self
            .last_step
            .map(|s| format!(" at step {s}"))
            .unwrap_or_default();
        if values.is_empty() {
            step
        } else {
            format!("{step}: {}", values.join(", "))
        }
    }

    fn error_event(&mut self, r: &Record, spool: &mut Spool) {
        let target = r.error_target.as_deref().unwrap_or("?");
        let text = match &r.message {
            Some(m) => format!("{target}: {m}"),
            None => target.to_owned(),
        };
        self.last_error = Some(text.clone());
        if !self.options.errors {
            return;
        }
        let now = Instant::now();
        let per_minute = self.options.per_minute;
        let send = {
            let b = &mut self.errors;
            if b.window_start
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
            {
                b.window_start = Some(now);
                b.sent = 0;
            }
            let repeat = b.last_sent.as_deref() == Some(text.as_str());
            if repeat || b.sent >= per_minute {
                b.folded += 1;
                b.last_folded = Some(text.clone());
                None
            } else {
                b.sent += 1;
                b.last_sent = Some(text.clone());
                Some(std::mem::take(&mut b.folded))
            }
        };
        if let Some(folded) = send {
            let more = if folded > 0 {
                format!(" (and {folded} more errors before it)")
            } else {
                String::new()
            };
            Self::post(
                spool,
                &format!("🛑 run `{}` logged an error: {text}{more}", self.run),
            );
        }
    }
}

impl Messages for Alerts {
    fn start(&mut self, spool: &mut Spool) {
        if self.on_start {
            let host = crate::naming::hostname();
            Self::post(spool, &format!("▶️ run `{}` started on {host}", self.run));
        }
    }

    fn wants_errors(&self) -> bool {
        true
    }

    fn wants_panic_message(&self) -> bool {
        // The "failed" alert says why.
        true
    }

    fn record(&mut self, r: &Record, spool: &mut Spool) {
        if r.error_target.is_some() {
            self.error_event(r, spool);
            return;
        }
        if r.hparams {
            return;
        }
        if let Some(step) = r.step {
            self.last_step = Some(step);
        }
        for (k, v) in r.unique_fields() {
            if k == "error" {
                if let Value::Str(text) = v {
                    // The run API's `fail(message)` / `error(message)` events.
                    self.last_error = Some(text.clone());
                }
            }
            let Some(x) = v.as_f64() else { continue };
            self.last.insert(k.to_owned(), x);
            if !x.is_finite() && self.options.non_finite && self.non_finite.insert(k.to_owned()) {
                let step = r.step.map(|s| format!(" at step {s}")).unwrap_or_default();
                let what = if x.is_nan() {
                    "NaN"
                } else if x > 0.0 {
                    "+inf"
                } else {
                    "-inf"
                };
                Self::post(
                    spool,
                    &format!("⚠️ run `{}`: {k} became {what}{step}", self.run),
                );
            }
        }
    }

    fn close(&mut self, outcome: RunOutcome, spool: &mut Spool) {
        let folded = (self.errors.folded, self.errors.last_folded.clone());
        if let (n @ 1.., Some(last)) = folded {
            Self::post(
                spool,
                &format!(
                    "🛑 run `{}`: {n} more errors were not sent one by one (last: {last})",
                    self.run
                ),
            );
        }
        let took = crate::format::format_duration(self.started.elapsed());
        match outcome {
            RunOutcome::Failed if self.options.failure => {
                let why = crate::panic_note::last_panic()
                    .or_else(|| self.last_error.clone())
                    .unwrap_or_else(|| "no message".into());
                let text = format!(
                    "❌ run `{}` failed after {took}{}: {why}",
                    self.run,
                    self.summary()
                );
                Self::post(spool, &text);
            }
            RunOutcome::Completed if self.options.finish => {
                let text = format!("✅ run `{}` finished in {took}{}", self.run, self.summary());
                Self::post(spool, &text);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_never_shown_whole() {
        let url = "https://hooks.slack.com/services/T000/B000/s3cr3t";
        assert_eq!(shown_url(url), "https://hooks.slack.com/…");
        let options = WebhookOptions::new().url(url);
        assert!(!format!("{options:?}").contains("s3cr3t"));
        assert_ne!(
            url_hash(url),
            url_hash("https://hooks.slack.com/services/T000/B000/other")
        );
    }
}
