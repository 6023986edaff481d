//! A live progress display fed by metrics events: step/total, rate, ETA and the latest
//! values of chosen metrics, like tqdm with a postfix (indicatif, on stderr).
//!
//! ```
//! use tracing_subscriber::prelude::*;
//! use trainlog::progress::Progress;
//!
//! let progress = Progress::new(1000).with_metrics(&["loss", "lr"]);
//! let subscriber = tracing_subscriber::registry()
//!     // Console lines go through the bar's writer, so they never cut through it.
//!     .with(tracing_subscriber::fmt::layer().with_writer(progress.writer(std::io::stderr)))
//!     .with(progress.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::info!(target: "metrics", step = 9, loss = 0.5, lr = 3e-4);
//! });
//! assert_eq!(progress.position(), 10);
//! assert_eq!(progress.message(), "loss=0.500 lr=3.00e-4");
//! progress.finish();
//! ```
//!
//! The bar is drawn on stderr and hidden when stderr is not a terminal (CI logs, files,
//! pipes); it still counts, so [`Progress::position`] is right either way. It follows the
//! rank-0 rule: on other ranks it shows nothing.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::{filter, Record};

/// The progress display; cheap to clone (clones share the bar).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    metrics: Vec<String>,
    latest: Mutex<BTreeMap<String, String>>,
}

impl Progress {
    /// A bar for `total` steps on stderr (hidden when stderr is not a terminal).
    pub fn new(total: u64) -> Self {
        Self::with_target(total, ProgressDrawTarget::stderr())
    }

    /// A bar that never draws (counting still works), e.g. for tests.
    pub fn hidden(total: u64) -> Self {
        Self::with_target(total, ProgressDrawTarget::hidden())
    }

    fn with_target(total: u64, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template(
            "{percent:>3}%|{bar:25}| {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ");
        bar.set_style(style);
        Progress {
            bar,
            shared: Arc::new(Shared::default()),
        }
    }

    /// Shows the latest values of these metrics after the bar, in this order.
    pub fn with_metrics(mut self, names: &[&str]) -> Self {
        let shared = Shared {
            metrics: names.iter().map(|n| n.to_string()).collect(),
            latest: Mutex::new(BTreeMap::new()),
        };
        self.shared = Arc::new(shared);
        self
    }

    /// The layer that moves the bar: metrics events with a step set the position to
    /// step + 1 (steps count from 0) and refresh the chosen metrics. Rank 0 only.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ProgressLayer {
            progress: self.clone(),
        }
        .with_filter(
            filter::metrics()
                .and(filter::is_mapping())
                .and(filter::rank0()),
        )
    }

    /// Wraps a writer so that each line is written with the bar cleared and redrawn
    /// after it: give it to `fmt::layer().with_writer(..)` for console output.
    pub fn writer<M>(&self, make: M) -> SuspendingWriter<M> {
        SuspendingWriter {
            bar: self.bar.clone(),
            make,
        }
    }

    /// Steps done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// The metrics postfix, e.g. `loss=0.500 lr=3.00e-4`.
    pub fn message(&self) -> String {
        self.bar.message()
    }

    /// Whether the bar is not drawn (stderr is not a terminal, or [`hidden`](Self::hidden)).
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Leaves the bar drawn in its final state.
    pub fn finish(&self) {
        self.bar.finish();
    }

    fn observe(&self, record: &Record) {
        if let Some(step) = record.step {
            self.bar.set_position(step.saturating_add(1));
        }
        if self.shared.metrics.is_empty() {
            return;
        }
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (k, v) in record.unique_fields() {
            if self.shared.metrics.iter().any(|m| m == k) {
                let text = match v {
                    crate::Value::F64(f) => crate::format::format_float(*f),
                    other => other.to_string(),
                };
                latest.insert(k.to_owned(), text);
                changed = true;
            }
        }
        if changed {
            let message = self
                .shared
                .metrics
                .iter()
                .filter_map(|m| latest.get(m).map(|v| format!("{m}={v}")))
                .collect::<Vec<_>>()
                .join(" ");
            self.bar.set_message(message);
        }
    }
}

struct ProgressLayer {
    progress: Progress,
}

impl<S: Subscriber> Layer<S> for ProgressLayer {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        self.progress.observe(&Record::from_event(event, 0));
    }
}

/// A [`MakeWriter`] whose writers print with the progress bar suspended. See
/// [`Progress::writer`].
#[derive(Debug, Clone)]
pub struct SuspendingWriter<M> {
    bar: ProgressBar,
    make: M,
}

/// One buffered write, flushed with the bar suspended when dropped.
pub struct SuspendedWrite<W: Write> {
    bar: ProgressBar,
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Write for SuspendedWrite<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (inner, buf) = (&mut self.inner, &mut self.buf);
        let result = self
            .bar
            .suspend(|| inner.write_all(buf).and_then(|()| inner.flush()));
        buf.clear();
        result
    }
}

impl<W: Write> Drop for SuspendedWrite<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for SuspendingWriter<M> {
    type Writer = SuspendedWrite<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        SuspendedWrite {
            bar: self.bar.clone(),
            inner: self.make.make_writer(),
            buf: Vec::new(),
        }
    }
}
