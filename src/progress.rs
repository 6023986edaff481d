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
//! Where stderr is not a terminal (Slurm, `nohup`, CI logs, notebooks) there is no bar:
//! one plain line is printed every 10 seconds instead (and one at [`Progress::finish`]):
//!
//! ```text
//! progress: 500/1000 steps (50%), 125.3 steps/s, elapsed 4.0s, ETA 4.0s, loss=0.500 lr=3.00e-4
//! ```
//!
//! `TRAINLOG_PROGRESS=bar|plain|off` chooses ([`ProgressMode::from_env`]), and
//! `TRAINLOG_PROGRESS_EVERY=30s` sets the interval of plain lines ([`Progress::every`]).
//! Counting works in every mode, so [`Progress::position`] is right either way. The display
//! follows the rank-0 rule: on other ranks it shows nothing.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::{filter, Record};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressMode {
    /// A live bar on stderr (drawn only when stderr is a terminal).
    Bar,
    /// A plain line on stderr every few seconds, for logs that are files.
    Plain,
    /// Nothing shown; counting still works.
    Off,
}

impl ProgressMode {
    /// `TRAINLOG_PROGRESS` (`bar`, `plain` or `off`), else a bar when stderr is a terminal
    /// and plain lines when it is not. An unknown value is reported on stderr and ignored.
    pub fn from_env() -> Self {
        match crate::env::first_env(&["TRAINLOG_PROGRESS"])
            .as_deref()
            .map(str::trim)
        {
            Some("bar") => return ProgressMode::Bar,
            Some("plain") => return ProgressMode::Plain,
            Some("off") => return ProgressMode::Off,
            Some(other) => eprintln!(
                "trainlog: TRAINLOG_PROGRESS={other} is not one of bar, plain, off; ignored"
            ),
            None => {}
        }
        if io::IsTerminal::is_terminal(&io::stderr()) {
            ProgressMode::Bar
        } else {
            ProgressMode::Plain
        }
    }
}

/// The default interval between plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The progress display; cheap to clone (clones share the bar).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    shared: Arc<Shared>,
    /// Plain lines: when the last one was printed, and how often; None for other modes.
    plain: Option<Arc<Plain>>,
}

#[derive(Debug, Default)]
struct Shared {
    metrics: Vec<String>,
    latest: Mutex<BTreeMap<String, String>>,
}

#[derive(Debug)]
struct Plain {
    every: Duration,
    /// When the last line was printed, and the position it showed (None before the first).
    last: Mutex<(Instant, Option<u64>)>,
}

impl Plain {
    fn new(every: Duration) -> Arc<Plain> {
        Arc::new(Plain {
            every,
            last: Mutex::new((Instant::now(), None)),
        })
    }
}

impl Progress {
    /// A display for `total` steps on stderr, in the mode [`ProgressMode::from_env`]
    /// chooses: a bar on a terminal, plain lines elsewhere.
    pub fn new(total: u64) -> Self {
        Self::with_mode(total, ProgressMode::from_env())
    }

    /// A display for `total` steps in the given mode.
    pub fn with_mode(total: u64, mode: ProgressMode) -> Self {
        let target = match mode {
            ProgressMode::Bar => ProgressDrawTarget::stderr(),
            ProgressMode::Plain | ProgressMode::Off => ProgressDrawTarget::hidden(),
        };
        let mut progress = Self::with_target(total, target);
        // The bar of another rank never moves (its layer passes rank 0 only); plain lines
        // would still print at finish, so other ranks print none.
        if mode == ProgressMode::Plain && filter::rank0().passes() {
            let every = crate::env::duration_env("TRAINLOG_PROGRESS_EVERY").unwrap_or(PLAIN_EVERY);
            progress.plain = Some(Plain::new(every));
        }
        progress
    }

    /// A bar that never draws (counting still works), e.g. for tests.
    pub fn hidden(total: u64) -> Self {
        Self::with_mode(total, ProgressMode::Off)
    }

    /// How often plain lines are printed (default 10 s, or `TRAINLOG_PROGRESS_EVERY`); no
    /// effect in the other modes.
    pub fn every(mut self, interval: Duration) -> Self {
        if self.plain.is_some() {
            self.plain = Some(Plain::new(interval));
        }
        self
    }

    fn with_target(total: u64, target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let style = ProgressStyle::with_template(
            "{percent:>3}%|{bar:25}| {pos}/{len} [{elapsed_precise}<{eta_precise}, {rate}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        // indicatif's `{per_sec}` prints four decimals (`29,520.3091/s`); one, as the
        // plain lines do.
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} steps/s", state.per_sec());
            },
        )
        .progress_chars("█▉▊▋▌▍▎▏ ");
        bar.set_style(style);
        Progress {
            bar,
            shared: Arc::new(Shared::default()),
            plain: None,
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

    /// The mode in effect: `Plain` when it prints lines, `Bar` when it draws a bar, `Off`
    /// otherwise (asked for, a bar stderr cannot show, or a rank other than 0 in plain mode).
    pub fn mode(&self) -> ProgressMode {
        match (&self.plain, self.bar.is_hidden()) {
            (Some(_), _) => ProgressMode::Plain,
            (None, true) => ProgressMode::Off,
            (None, false) => ProgressMode::Bar,
        }
    }

    /// Leaves the bar drawn in its final state; in plain mode, prints a last line unless
    /// the last one printed already showed this position.
    pub fn finish(&self) {
        self.bar.finish();
        if let Some(plain) = &self.plain {
            let mut last = plain.last.lock().unwrap_or_else(|e| e.into_inner());
            let position = self.bar.position();
            if last.1 != Some(position) {
                *last = (Instant::now(), Some(position));
                drop(last);
                self.print_plain();
            }
        }
    }

    /// `progress: 500/1000 steps (50%), 125.3 steps/s, elapsed 4.0s, ETA 4.0s, loss=0.500`
    pub fn plain_line(&self) -> String {
        let done = self.bar.position();
        let mut line = match self.bar.length() {
            Some(total) if total > 0 => format!(
                "progress: {done}/{total} steps ({}%)",
                done.saturating_mul(100) / total
            ),
            _ => format!("progress: {done} steps"),
        };
        let rate = self.bar.per_sec();
        if rate.is_finite() && rate > 0.0 {
            line.push_str(&format!(", {rate:.1} steps/s"));
        }
        line.push_str(&format!(
            ", elapsed {}",
            crate::format::format_duration(self.bar.elapsed())
        ));
        if self.bar.length().is_some_and(|total| done < total) && rate > 0.0 {
            line.push_str(&format!(
                ", ETA {}",
                crate::format::format_duration(self.bar.eta())
            ));
        }
        let message = self.bar.message();
        if !message.is_empty() {
            line.push_str(", ");
            line.push_str(&message);
        }
        line
    }

    fn print_plain(&self) {
        // One write of the whole line, so lines of other threads do not cut into it.
        let line = format!("{}\n", self.plain_line());
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }

    /// Prints a plain line when the interval has passed since the last one.
    fn tick_plain(&self, plain: &Plain) {
        let now = Instant::now();
        let mut last = plain.last.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(last.0) >= plain.every {
            *last = (now, Some(self.bar.position()));
            drop(last);
            self.print_plain();
        }
    }

    fn observe(&self, record: &Record) {
        if let Some(step) = record.step {
            self.bar.set_position(step.saturating_add(1));
        }
        self.update_message(record);
        if let Some(plain) = &self.plain {
            self.tick_plain(plain);
        }
    }

    fn update_message(&self, record: &Record) {
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

impl<W: Write> SuspendedWrite<W> {
    fn new(bar: &ProgressBar, inner: W) -> Self {
        SuspendedWrite {
            bar: bar.clone(),
            inner,
            buf: Vec::new(),
        }
    }
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
        SuspendedWrite::new(&self.bar, self.make.make_writer())
    }
}

impl crate::MetricLoggerBuilder {
    /// Shows progress over `steps` steps from [`init`](crate::MetricLoggerBuilder::init): a bar on a terminal,
    /// plain lines where stderr is a file (see [`progress`](crate::progress)), moved by the
    /// metrics events' `step` and showing the latest `loss` and `lr`; finished when the
    /// guard closes. Rank 0 only. With [`build`](crate::MetricLoggerBuilder::build), compose
    /// [`Progress`](crate::progress::Progress) yourself.
    pub fn total_steps(mut self, steps: u64) -> Self {
        self.init.total_steps = Some(steps);
        self
    }
}

/// A progress display installed with the global subscriber before it exists:
/// [`MetricLoggerBuilder::total_steps`](crate::MetricLoggerBuilder::total_steps) sets it
/// from `init()`, also when `setup_root_logger` installed the subscriber earlier.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProgressSlot(Arc<std::sync::OnceLock<Progress>>);

impl ProgressSlot {
    /// Sets the display; false if one was set already.
    pub(crate) fn set(&self, progress: Progress) -> bool {
        self.0.set(progress).is_ok()
    }

    /// Shows a display over `total` steps (with the latest `loss` and `lr`) unless one is
    /// shown already; what finishes it.
    pub(crate) fn show(&self, total: u64) -> Option<impl FnOnce() + Send + Sync + 'static> {
        let progress = Progress::new(total).with_metrics(&["loss", "lr"]);
        self.set(progress.clone())
            .then_some(move || progress.finish())
    }

    /// The layer that moves the display once it is set (metrics events, on rank 0).
    pub(crate) fn layer<S>(&self, rank: u32) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        SlotLayer(self.clone()).with_filter(
            filter::metrics()
                .and(filter::is_mapping())
                .and(filter::rank0_for(rank)),
        )
    }

    /// Like [`Progress::writer`], for a display that may be set later.
    pub(crate) fn writer<M>(&self, make: M) -> SlotWriter<M> {
        SlotWriter {
            slot: self.clone(),
            make,
        }
    }
}

struct SlotLayer(ProgressSlot);

impl<S: Subscriber> Layer<S> for SlotLayer {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if let Some(progress) = self.0 .0.get() {
            progress.observe(&Record::from_event(event, 0));
        }
    }
}

/// A [`MakeWriter`] that writes with the bar suspended once a display is set.
#[derive(Debug, Clone)]
pub(crate) struct SlotWriter<M> {
    slot: ProgressSlot,
    make: M,
}

/// A write straight through, or with the bar suspended.
pub(crate) enum SlotWrite<W: Write> {
    Direct(W),
    Suspended(SuspendedWrite<W>),
}

impl<W: Write> Write for SlotWrite<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            SlotWrite::Direct(w) => w.write(data),
            SlotWrite::Suspended(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SlotWrite::Direct(w) => w.flush(),
            SlotWrite::Suspended(w) => w.flush(),
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for SlotWriter<M> {
    type Writer = SlotWrite<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        match self.slot.0.get() {
            Some(progress) => {
                SlotWrite::Suspended(SuspendedWrite::new(&progress.bar, self.make.make_writer()))
            }
            None => SlotWrite::Direct(self.make.make_writer()),
        }
    }
}
