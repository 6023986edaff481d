//! The webhook deliverer: one message per POST, to the URL whose hash the session names.

use std::path::Path;
use std::time::Duration;

use super::{shown_url, url_hash, WEBHOOK_URL_VAR};
use crate::deliver::net::{answer, LazyClient, Tls};
use crate::deliver::retry::Verdict;
use crate::deliver::spool::{Deliver, Delivery, Spool, SpoolOptions};
use crate::env::first_env;
use crate::Result;

/// POSTs one message per request (runs on the spool's sender thread).
pub(super) struct WebhookDeliver {
    pub(super) client: LazyClient,
    /// The logger's own URL; `None` for `trainlog sync`.
    pub(super) own: Option<reqwest::Url>,
    /// Where the current session's messages go.
    pub(super) url: Option<reqwest::Url>,
}

impl Deliver for WebhookDeliver {
    fn target(&self) -> String {
        self.url
            .as_ref()
            .map_or_else(|| "the webhook".into(), |u| shown_url(u.as_str()))
    }

    /// The session records a hash of the URL: messages go to the logger's own URL or
    /// `TRAINLOG_WEBHOOK_URL`, whichever has that hash.
    fn session(&mut self, session: &serde_json::Value) -> std::result::Result<(), String> {
        let want = session["url_hash"]
            .as_str()
            .ok_or("the session names no webhook")?;
        let candidates = self
            .own
            .iter()
            .map(|u| u.as_str().to_owned())
            .chain(first_env(&[WEBHOOK_URL_VAR]));
        for candidate in candidates {
            if let Ok(url) = reqwest::Url::parse(&candidate) {
                if url_hash(url.as_str()) == want {
                    self.url = Some(url);
                    return Ok(());
                }
            }
        }
        Err(format!(
            "these alerts were for another webhook URL: set {WEBHOOK_URL_VAR} to it to send them"
        ))
    }

    fn deliver(&mut self, lines: &[&[u8]], timeout: Duration) -> Delivery {
        let retry = Delivery {
            verdict: Verdict::Retry { after: None },
            count: 1,
            refusal: None,
        };
        let (Some(url), Some(client)) = (self.url.clone(), self.client.get()) else {
            return retry;
        };
        let sent = client
            .post(url)
            .timeout(timeout)
            .header("Content-Type", "application/json")
            .body(lines[0].to_vec())
            .send();
        match sent {
            Ok(response) => answer(response).delivery(1),
            Err(_) => retry,
        }
    }
}

/// Opens a spool a webhook logger left (`trainlog sync`); the URL comes from
/// `TRAINLOG_WEBHOOK_URL`.
pub(crate) fn resume_spool(path: &Path, options: SpoolOptions) -> Result<Spool> {
    let deliver = WebhookDeliver {
        client: LazyClient::new("webhook", Tls::load(&[], false)?),
        own: None,
        url: None,
    };
    Spool::resume("webhook", path, options, deliver)
}
