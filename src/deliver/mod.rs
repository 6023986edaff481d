//! What network sinks share, in one place: the spool (a file per destination and rank,
//! read by a sender thread, with session lines, dead letters and a close that waits for
//! progress), the retry policy (what a status means, `Retry-After`, backoff with jitter),
//! and the HTTP client with its TLS roots, redirect policy, response reading, secrets and
//! redacted URLs. A network sink keeps only its message format and its endpoints.

#[cfg(any(feature = "http", feature = "mlflow"))]
use std::time::Duration;

pub(crate) mod net;
#[cfg(any(feature = "http", feature = "mlflow"))]
pub(crate) mod retry;
#[cfg(any(feature = "http", feature = "mlflow"))]
pub(crate) mod spool;

/// What every network backend's options share: how closing waits for the server, and how
/// retries back off. Set through `shutdown_timeout`, `stall_timeout` and `retry_backoff`.
#[cfg(any(feature = "http", feature = "mlflow"))]
#[derive(Clone, Debug)]
pub(crate) struct DeliveryOptions {
    pub(crate) close_cap: Duration,
    pub(crate) stall: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
}

#[cfg(any(feature = "http", feature = "mlflow"))]
impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            close_cap: spool::DEFAULT_CLOSE_CAP,
            stall: spool::DEFAULT_STALL,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        }
    }
}
