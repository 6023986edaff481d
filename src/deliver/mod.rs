//! What network sinks share, in one place: the spool (a file per destination and rank,
//! read by a sender thread, with session lines, dead letters and a close that waits for
//! progress), the retry policy (what a status means, `Retry-After`, backoff with jitter),
//! and the HTTP client with its TLS roots, redirect policy, response reading, secrets and
//! redacted URLs. A network sink keeps only its message format and its endpoints.

#[cfg(feature = "network")]
use std::time::Duration;

pub(crate) mod net;
#[cfg(feature = "network")]
pub(crate) mod retry;
#[cfg(feature = "network")]
pub(crate) mod spool;
#[cfg(feature = "network")]
#[macro_use]
pub(crate) mod spooled;
#[cfg(feature = "network")]
mod sync;
#[cfg(feature = "network")]
pub use sync::{sync_spools, Delivered, SyncReport};

/// What every network backend's options share: how closing waits for the server, and how
/// retries back off. Set through `close_cap`, `stall_timeout` and `retry_backoff`.
#[cfg(feature = "network")]
#[derive(Clone, Debug)]
pub(crate) struct DeliveryOptions {
    pub(crate) close_cap: Duration,
    pub(crate) stall: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
}

/// What a network backend's options say about delivery (`close_cap`, `stall_timeout`,
/// `retry_backoff`); what they leave unset comes from the defaults the
/// [`BuildContext`](crate::sink::BuildContext) read once.
#[cfg(feature = "network")]
#[derive(Clone, Debug, Default)]
pub(crate) struct DeliverySettings {
    pub(crate) close_cap: Option<Duration>,
    pub(crate) stall: Option<Duration>,
    pub(crate) retry: Option<(Duration, Duration)>,
}

#[cfg(feature = "network")]
impl DeliveryOptions {
    /// These defaults with what `settings` sets instead.
    pub(crate) fn with(&self, settings: &DeliverySettings) -> DeliveryOptions {
        let (retry_base, retry_max) = settings.retry.unwrap_or((self.retry_base, self.retry_max));
        DeliveryOptions {
            close_cap: settings.close_cap.unwrap_or(self.close_cap),
            stall: settings.stall.unwrap_or(self.stall),
            retry_base,
            retry_max,
        }
    }
}

#[cfg(feature = "network")]
impl Default for DeliveryOptions {
    /// 120 s cap, 4 s stall (or `TRAINLOG_STALL_TIMEOUT`, seconds or `30s`-style, for jobs
    /// configured by their environment), retries from 200 ms to 30 s.
    fn default() -> Self {
        let stall =
            crate::env::duration_env("TRAINLOG_STALL_TIMEOUT").unwrap_or(spool::DEFAULT_STALL);
        DeliveryOptions {
            close_cap: spool::DEFAULT_CLOSE_CAP,
            stall,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}
