//! What network sinks share, in one place: the spool (a file per destination and rank,
//! read by a sender thread, with session lines, dead letters and a close that waits for
//! progress), the retry policy (what a status means, `Retry-After`, backoff with jitter),
//! and the HTTP client with its TLS roots, redirect policy, response reading, secrets and
//! redacted URLs. A network sink keeps only its message format and its endpoints.

pub(crate) mod net;
#[cfg(any(feature = "http", feature = "mlflow"))]
pub(crate) mod retry;
#[cfg(any(feature = "http", feature = "mlflow"))]
pub(crate) mod spool;
