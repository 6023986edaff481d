//! [`WebhookOptions`]: where alerts go and which ones are sent.

use std::path::PathBuf;

use super::shown_url;
use crate::deliver::DeliverySettings;
use crate::sink::{Backend, BackendConfig, BuildContext, Sink};
use crate::Result;

/// Settings of the `webhook` backend.
///
/// ```
/// let options = trainlog::sink::WebhookOptions::new()
///     .url("https://hooks.slack.com/services/T000/B000/XXXX")
///     .key_metrics(&["loss", "eval.acc"])
///     .on_start(true);
/// assert!(!format!("{options:?}").contains("XXXX"));
/// ```
#[derive(Clone)]
pub struct WebhookOptions {
    pub(super) url: Option<String>,
    pub(super) run_name: Option<String>,
    pub(super) key_metrics: Vec<String>,
    pub(super) on_start: bool,
    pub(super) on_finish: bool,
    pub(super) on_failure: bool,
    pub(super) on_non_finite: bool,
    pub(super) on_errors: bool,
    pub(super) errors_per_minute: u32,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) delivery: DeliverySettings,
    pub(crate) all_ranks: bool,
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("url", &self.url.as_deref().map(shown_url))
            .field("run_name", &self.run_name)
            .field("key_metrics", &self.key_metrics)
            .field("on_start", &self.on_start)
            .field("on_finish", &self.on_finish)
            .field("on_failure", &self.on_failure)
            .field("on_non_finite", &self.on_non_finite)
            .field("on_errors", &self.on_errors)
            .field("errors_per_minute", &self.errors_per_minute)
            .finish()
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            url: None,
            run_name: None,
            key_metrics: Vec::new(),
            on_start: false,
            on_finish: true,
            on_failure: true,
            on_non_finite: true,
            on_errors: true,
            errors_per_minute: 3,
            ca_file: None,
            delivery: DeliverySettings::default(),
            all_ranks: false,
        }
    }
}

impl WebhookOptions {
    /// Defaults: URL from `TRAINLOG_WEBHOOK_URL`; alerts when the run finishes or fails, a
    /// metric becomes NaN or infinite (once per metric), and ERROR events (at most 3 a
    /// minute, repeats folded); no "started" message; rank 0 only.
    pub fn new() -> Self {
        Self::default()
    }

    /// The incoming-webhook URL (`TRAINLOG_WEBHOOK_URL`). A secret: never printed whole.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The run's name in messages, a run-name template (default: the builder's
    /// `run_name`, else `{time}_rank{rank}`).
    pub fn run_name(mut self, template: impl Into<String>) -> Self {
        self.run_name = Some(template.into());
        self
    }

    /// The metrics whose last values the "finished" message shows, in this order
    /// (default: up to three, losses first).
    pub fn key_metrics(mut self, names: &[&str]) -> Self {
        self.key_metrics = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// A message when the logger starts (off by default).
    pub fn on_start(mut self, on: bool) -> Self {
        self.on_start = on;
        self
    }

    /// A message when the run finishes (on by default).
    pub fn on_finish(mut self, on: bool) -> Self {
        self.on_finish = on;
        self
    }

    /// A message when the run fails, with the panic or error message (on by default).
    pub fn on_failure(mut self, on: bool) -> Self {
        self.on_failure = on;
        self
    }

    /// A message the first time each metric is NaN or infinite (on by default).
    pub fn on_non_finite(mut self, on: bool) -> Self {
        self.on_non_finite = on;
        self
    }

    /// Messages for ERROR-level events from any target (on by default, at most
    /// [`errors_per_minute`](Self::errors_per_minute), repeats folded into one).
    pub fn on_errors(mut self, on: bool) -> Self {
        self.on_errors = on;
        self
    }

    /// At most this many ERROR messages a minute (default 3); the rest are counted and
    /// told in one message later.
    pub fn errors_per_minute(mut self, n: u32) -> Self {
        self.errors_per_minute = n.max(1);
        self
    }

    /// Also trusts the CA certificates in this PEM file, besides the system's trust store
    /// and `SSL_CERT_FILE`.
    pub fn ca_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(pem_file.into());
        self
    }
}

all_ranks_setter!(WebhookOptions);
delivery_setters!(WebhookOptions);

impl crate::MetricLoggerBuilder {
    /// Settings of the `webhook` backend; setting them turns it on (as does
    /// `TRAINLOG_WEBHOOK_URL` in the environment).
    pub fn webhook(self, options: WebhookOptions) -> Self {
        self.configure(options)
    }
}

impl BackendConfig for WebhookOptions {
    fn backend(&self) -> Backend {
        Backend::Webhook
    }

    /// `TRAINLOG_WEBHOOK_URL`.
    fn from_env() -> Option<Self> {
        crate::env::first_env(&[super::WEBHOOK_URL_VAR]).map(|_| Self::default())
    }

    fn build(&self, cx: &BuildContext) -> Result<Option<Box<dyn Sink>>> {
        cx.rank0_sink(self.all_ranks, || super::WebhookSink::new(self.clone(), cx))
    }
}
