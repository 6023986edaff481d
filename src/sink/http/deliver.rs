//! The HTTP deliverer: POSTs batches of spooled messages on the spool's sender thread, to
//! the server the current session names.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{check_url, Identity, TOKEN_VARS};
use crate::deliver::net::{answer, redact_url, without_password, LazyClient, Secret};
use crate::deliver::retry::Verdict;
use crate::deliver::spool::{Deliver, Delivery};
use crate::env::first_env;
use crate::time::TimestampFormatter;

/// POSTs batches of spooled messages (runs on the spool's sender thread).
pub(super) struct HttpDeliver {
    pub(super) client: LazyClient,
    /// The logger's own URL and token; `None` for `trainlog sync`.
    pub(super) own: Option<(reqwest::Url, Option<Secret>)>,
    /// Where the current session's messages go, with which token.
    pub(super) url: reqwest::Url,
    pub(super) token: Option<Secret>,
    pub(super) allow_insecure: bool,
    pub(super) single_record: bool,
    /// The logger's identity, for heartbeats; `None` for `trainlog sync`.
    pub(super) identity: Option<Arc<Identity>>,
}

impl HttpDeliver {
    /// One POST; `None` when no client could be built (retried like a network error).
    fn post(
        &mut self,
        body: Vec<u8>,
        timeout: Duration,
        key: Option<String>,
    ) -> Option<reqwest::Result<reqwest::blocking::Response>> {
        let url = self.url.clone();
        let token = self.token.clone();
        let client = self.client.get()?;
        let mut request = client
            .post(url)
            .timeout(timeout)
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(Secret(token)) = &token {
            request = request.bearer_auth(token);
        }
        Some(request.body(body).send())
    }
}

impl Deliver for HttpDeliver {
    fn target(&self) -> String {
        redact_url(&self.url)
    }

    /// Messages carry their own identity; a session only says where they go. The
    /// logger's own token goes to its own URL only; other URLs (an earlier logger's, or
    /// any for `trainlog sync`) get the token from the environment.
    fn session(&mut self, session: &serde_json::Value) -> std::result::Result<(), String> {
        let url = session["url"]
            .as_str()
            .ok_or("the session names no server URL")?;
        let token = match &self.own {
            Some((own, token)) if without_password(own) == url => token.clone(),
            _ => first_env(&TOKEN_VARS).map(Secret),
        };
        self.url =
            check_url(url, token.is_some(), self.allow_insecure).map_err(|e| e.to_string())?;
        self.token = token;
        self.single_record = session["single_record"] == true;
        Ok(())
    }

    fn deliver(&mut self, lines: &[&[u8]], timeout: Duration) -> Delivery {
        let count = if self.single_record { 1 } else { lines.len() };
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
        if self.single_record {
            body.extend_from_slice(lines[0]);
        } else {
            body.push(b'[');
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(line);
            }
            body.push(b']');
        }
        let key = format!("{}+{count}", message_id(lines[0]));
        match self.post(body, timeout, Some(key)) {
            Some(Ok(response)) => answer(response).delivery(count),
            Some(Err(_)) | None => Delivery {
                verdict: Verdict::Retry { after: None },
                count,
                refusal: None,
            },
        }
    }

    fn records_in(&self, line: &[u8]) -> u64 {
        match serde_json::from_slice::<Head<'_>>(line) {
            Ok(Head {
                event_type: Some(kind),
                ..
            }) if kind == "training_started" || kind == "training_finished" => 0,
            _ => 1,
        }
    }

    fn heartbeat(&mut self, timeout: Duration) {
        let Some(id) = self.identity.clone() else {
            return;
        };
        let body = serde_json::json!({
            "project_name": id.project,
            "run_id": id.run_id,
            "event_type": "heartbeat",
            "timestamp": TimestampFormatter::default().format(SystemTime::now()),
            "rank": id.rank,
            "step": null,
            "data": {},
        });
        let body = if self.single_record {
            body
        } else {
            serde_json::json!([body])
        };
        // Best effort: a missed heartbeat is not worth a retry.
        let _ = self.post(body.to_string().into_bytes(), timeout, None);
    }
}

/// The two fields of a spooled message the sender reads. Deserialized borrowing from the
/// line, the rest skipped without building values: the sender reads every line it
/// delivers, and parsing each into a `serde_json::Value` was a tenth of its time.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
}

/// The `message_id` of a spooled message (for the batch's idempotency key).
fn message_id(line: &[u8]) -> String {
    serde_json::from_slice::<Head<'_>>(line)
        .ok()
        .and_then(|m| m.message_id)
        .map(Cow::into_owned)
        .unwrap_or_default()
}
