//! The one spooled sink: what every backend that delivers through a [`Spool`] shares,
//! written once. A backend gives it its message format (a [`Messages`]) and its endpoint
//! (the destination, the deliverer, the session line); the spool directory and file, the
//! dead letters, the close budget, the lost count and the batching options live here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::spool::{Deliver, Spool, SpoolOptions};
use super::DeliverySettings;
use crate::sink::BuildContext;
use crate::sink::RunOutcome;
use crate::{Record, Result};

/// A spooled backend's message format: what it appends to the spool for each record, at
/// start and at close. Each message is one line appended to [`Spool::buffer`] and ended
/// with [`Spool::end_record`].
pub(crate) trait Messages: Send + 'static {
    /// The first messages, written when the sink opens (default: none).
    fn start(&mut self, _spool: &mut Spool) {}

    /// The messages for one record.
    fn record(&mut self, record: &Record, spool: &mut Spool);

    /// The last messages, written at close.
    fn close(&mut self, outcome: RunOutcome, spool: &mut Spool);

    /// See [`Sink::wants_errors`](crate::sink::Sink::wants_errors).
    fn wants_errors(&self) -> bool {
        false
    }

    /// See [`Sink::wants_panic_message`](crate::sink::Sink::wants_panic_message).
    fn wants_panic_message(&self) -> bool {
        false
    }
}

/// Where a spooled backend's messages go.
pub(crate) struct Endpoint<D> {
    /// The backend's name (`http`): the sink's name, and its spool directory
    /// `<output_dir>/<name>_spool`.
    pub(crate) backend: &'static str,
    /// Names the spool file (one per destination and rank).
    pub(crate) destination: reqwest::Url,
    /// Sends batches on the spool's sender thread.
    pub(crate) deliver: D,
    /// The session line: what `trainlog sync` needs to deliver what is left.
    pub(crate) session: serde_json::Value,
    /// The environment variable `trainlog sync` needs set to deliver what a close left
    /// (the webhook's secret URL, which the spool does not keep), named in the hint.
    pub(crate) sync_env: Option<&'static str>,
}

/// How a backend batches its requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batching {
    pub(crate) size: usize,
    pub(crate) interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
}

/// The name of `backend`'s spool directory: `<backend>_spool`.
pub(crate) fn spool_dir_name(backend: &str) -> String {
    format!("{backend}_spool")
}

/// `backend`'s spool directory under an output directory.
pub(crate) fn spool_dir(output_dir: &Path, backend: &str) -> std::path::PathBuf {
    output_dir.join(spool_dir_name(backend))
}

/// A sink that writes a backend's messages to its spool, from which the spool's sender
/// thread delivers them. See [`Messages`].
pub(crate) struct Spooled<M> {
    name: &'static str,
    spool: Spool,
    messages: M,
    resume_hint: String,
}

impl<M> std::fmt::Debug for Spooled<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spooled")
            .field("backend", &self.name)
            .field("spool", &self.spool.path())
            .finish()
    }
}

impl<M: Messages> Spooled<M> {
    /// Opens (or resumes) the spool of `endpoint` for this rank under the context's
    /// output directory, starts the sender thread, and writes the backend's first
    /// messages. Delivery settings left unset come from the context's defaults.
    pub(crate) fn open(
        cx: &BuildContext,
        endpoint: Endpoint<impl Deliver>,
        batching: Batching,
        delivery: &DeliverySettings,
        mut messages: M,
    ) -> Result<Self> {
        let output_dir = cx.require_output_dir(endpoint.backend)?;
        let options = SpoolOptions {
            batch_size: batching.size.max(1),
            batch_interval: batching.interval,
            request_timeout: batching.request_timeout,
            heartbeat: batching.heartbeat,
            delivery: cx.delivery_defaults().with(delivery),
        };
        let mut spool = Spool::open(
            endpoint.backend,
            &spool_dir(output_dir, endpoint.backend),
            &endpoint.destination,
            cx.rank().rank,
            options,
            endpoint.deliver,
            &endpoint.session,
        )?;
        messages.start(&mut spool);
        spool.publish()?;
        let resume_hint = match endpoint.sync_env {
            None => format!(
                "send them with `trainlog sync {}`, or start a logger with the same output \
                 directory",
                output_dir.display()
            ),
            Some(var) => format!(
                "send them with `{var}=… trainlog sync {}`",
                output_dir.display()
            ),
        };
        Ok(Spooled {
            name: endpoint.backend,
            spool,
            messages,
            resume_hint,
        })
    }

    /// The spool file (also a local copy of what is not yet delivered).
    pub(crate) fn spool_path(&self) -> &Path {
        self.spool.path()
    }

    /// Where messages the far side refused for good are kept.
    pub(crate) fn dead_letter_path(&self) -> &Path {
        self.spool.dead_letter_path()
    }

    pub(crate) fn name(&self) -> &str {
        self.name
    }

    pub(crate) fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<()> {
        for record in batch {
            self.messages.record(record, &mut self.spool);
        }
        self.spool.publish()
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        self.spool.publish()
    }

    pub(crate) fn close(&mut self, outcome: RunOutcome) -> Result<()> {
        self.messages.close(outcome, &mut self.spool);
        self.spool.close(&self.resume_hint).1
    }

    pub(crate) fn close_budget(&self) -> Option<Duration> {
        Some(self.spool.close_budget())
    }

    /// Records refused for good (they are in the dead-letter file), and lines that could
    /// not be written to the spool at all.
    pub(crate) fn lost(&self) -> u64 {
        self.spool.rejected()
    }

    pub(crate) fn wants_errors(&self) -> bool {
        self.messages.wants_errors()
    }

    pub(crate) fn wants_panic_message(&self) -> bool {
        self.messages.wants_panic_message()
    }
}

/// A public spooled sink type: `pub struct $sink(Spooled<$messages>)` with its
/// [`Sink`](crate::sink::Sink) impl and the spool's paths, so each backend keeps only
/// its messages and endpoint.
macro_rules! spooled_sink {
    ($(#[$doc:meta])* $sink:ident($messages:ty)) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $sink($crate::deliver::spooled::Spooled<$messages>);

        impl $sink {
            /// The spool file (also a local copy of what is not yet delivered).
            pub fn spool_path(&self) -> &std::path::Path {
                self.0.spool_path()
            }

            /// Where messages the far side refused for good are kept.
            pub fn dead_letter_path(&self) -> &std::path::Path {
                self.0.dead_letter_path()
            }
        }

        impl $crate::sink::Sink for $sink {
            fn name(&self) -> &str {
                self.0.name()
            }

            fn write_batch(
                &mut self,
                batch: &[std::sync::Arc<$crate::Record>],
            ) -> $crate::Result<()> {
                self.0.write_batch(batch)
            }

            fn flush(&mut self) -> $crate::Result<()> {
                self.0.flush()
            }

            fn close(&mut self, outcome: $crate::sink::RunOutcome) -> $crate::Result<()> {
                self.0.close(outcome)
            }

            fn close_budget(&self) -> Option<std::time::Duration> {
                self.0.close_budget()
            }

            /// Messages refused for good (in the dead-letter file).
            fn lost(&self) -> u64 {
                self.0.lost()
            }

            fn wants_errors(&self) -> bool {
                self.0.wants_errors()
            }

            fn wants_panic_message(&self) -> bool {
                self.0.wants_panic_message()
            }
        }
    };
}
