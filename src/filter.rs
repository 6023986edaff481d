//! Per-layer filters: [`metrics`] target, [`is_mapping`], [`rank0`].
//!
//! Each is a [`tracing_subscriber::layer::Filter`] whose answer depends only on the
//! callsite (its target and field names) or on the process rank, so `tracing` caches it
//! per callsite: an event every layer filters out costs about what a disabled
//! `tracing` event costs. Combine them with
//! [`FilterExt`](tracing_subscriber::filter::FilterExt):
//!
//! ```
//! use tracing_subscriber::{filter::FilterExt, prelude::*};
//! use trainlog::filter;
//!
//! // Print metrics records on rank 0 only, with any formatter.
//! let console = tracing_subscriber::fmt::layer()
//!     .with_filter(filter::metrics().and(filter::is_mapping()).and(filter::rank0()));
//! let _subscriber = tracing_subscriber::registry().with(console);
//! ```

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::layer::{Context, Filter};

use crate::rank::RankInfo;

/// The target metrics events use unless configured otherwise.
pub const METRICS_TARGET: &str = "metrics";

/// Makes a global [`EnvFilter`](tracing_subscriber::EnvFilter) let metrics events
/// through, whatever its level.
///
/// A filter added to the subscriber as a layer of its own (`registry().with(EnvFilter::new("warn"))`)
/// filters for *every* layer: `info!(target: "metrics", ..)` events never reach
/// trainlog's layer, and every metric is silently muted. Either give the filter to the
/// layer it is meant for (`fmt::layer().with_filter(EnvFilter::new("warn"))`, a
/// per-layer filter), or pass the global one through this function, which adds the
/// directive `metrics=trace`:
///
/// ```
/// use tracing_subscriber::{prelude::*, EnvFilter};
///
/// let filter = trainlog::filter::keep_metrics(EnvFilter::new("warn"));
/// let _subscriber = tracing_subscriber::registry()
///     .with(filter)
///     .with(tracing_subscriber::fmt::layer());
/// // ... .with(the metrics layer from MetricLogger::builder().build())
/// ```
///
/// Metrics events then also reach your other layers; filter them out there with
/// `filter::metrics()` negated if you do not want them on the console.
#[cfg(feature = "console")]
pub fn keep_metrics(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    // "metrics=trace" is a valid directive; keep the filter unchanged should it not parse.
    match format!("{METRICS_TARGET}=trace").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Whether a callsite carries structured values: at least one field besides `message`.
pub(crate) fn callsite_is_mapping(meta: &Metadata<'_>) -> bool {
    meta.fields().iter().any(|f| f.name() != "message")
}

fn interest(pass: bool) -> Interest {
    if pass {
        Interest::always()
    } else {
        Interest::never()
    }
}

/// Passes events whose target is the metrics target (spans pass too). See [`metrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsTarget {
    target: Cow<'static, str>,
}

/// Events on the `metrics` target, the default channel for training metrics.
///
/// ```
/// assert_eq!(trainlog::filter::metrics().target(), "metrics");
/// ```
pub fn metrics() -> MetricsTarget {
    MetricsTarget {
        target: Cow::Borrowed(METRICS_TARGET),
    }
}

/// Events on a custom target (exact match).
pub fn target(target: impl Into<Cow<'static, str>>) -> MetricsTarget {
    MetricsTarget {
        target: target.into(),
    }
}

impl MetricsTarget {
    /// The target this filter passes.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn pass(&self, meta: &Metadata<'_>) -> bool {
        meta.is_span() || meta.target() == self.target
    }
}

impl<S> Filter<S> for MetricsTarget {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.pass(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        interest(self.pass(meta))
    }
}

/// Passes events that carry structured values, rejecting bare messages. See [`is_mapping`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IsMapping {
    _private: (),
}

/// Events with at least one field besides the message, InstructLab's `IsMappingFilter`.
///
/// `info!(target: "metrics", loss = 0.5)` passes; `info!(target: "metrics", "hello")`
/// does not. Spans always pass (the filter is about events).
pub fn is_mapping() -> IsMapping {
    IsMapping::default()
}

impl IsMapping {
    fn pass(meta: &Metadata<'_>) -> bool {
        meta.is_span() || callsite_is_mapping(meta)
    }
}

impl<S> Filter<S> for IsMapping {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::pass(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        interest(Self::pass(meta))
    }
}

/// Passes everything on rank 0 and nothing elsewhere. See [`rank0`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rank0 {
    rank: u32,
}

/// Everything on rank 0, nothing on other ranks; rank from the environment
/// ([`RankInfo::from_env`]).
pub fn rank0() -> Rank0 {
    rank0_for(RankInfo::from_env().rank)
}

/// Like [`rank0`] with an explicit rank.
///
/// ```
/// assert!(trainlog::filter::rank0_for(0).passes());
/// assert!(!trainlog::filter::rank0_for(1).passes());
/// ```
pub fn rank0_for(rank: u32) -> Rank0 {
    Rank0 { rank }
}

impl Rank0 {
    /// Whether this process is rank 0, i.e. whether the filter lets anything through.
    pub fn passes(&self) -> bool {
        self.rank == 0
    }
}

impl<S> Filter<S> for Rank0 {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.passes()
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        interest(self.passes())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        if self.passes() {
            None
        } else {
            Some(LevelFilter::OFF)
        }
    }
}

/// The per-layer filter in front of a [`SinkLayer`](crate::SinkLayer): events on the
/// metrics target that carry structured values. Answers are cached per callsite.
///
/// Rank is not part of it: a rank-0-only sink is simply not built on other ranks, and a
/// layer left with no sink at all filters out everything.
#[derive(Debug, Clone)]
pub struct MetricFilter {
    pub(crate) target: Cow<'static, str>,
    /// False when the layer has no sink on this rank: then nothing passes.
    pub(crate) active: bool,
    /// Some sink takes ERROR events from every target too (see `Sink::wants_errors`).
    pub(crate) errors: bool,
    /// Spans of every target pass, so their fields can go on the records logged inside
    /// them (see `MetricLoggerBuilder::span_fields`).
    pub(crate) spans: bool,
    /// Notes that a metrics event was asked about, so the guard can tell a filter in
    /// front of the layer that swallows every event (see [`Arrivals`]).
    pub(crate) arrivals: Option<Arc<Arrivals>>,
}

/// What reached a logger, for the warning at close when a subscriber-wide filter muted
/// every metric: whether this filter was asked about a metrics callsite or event (one
/// was logged under a dispatcher that has the layer), and whether the layer then
/// received one. Each flag is stored once; afterwards an event only reads it. On cache
/// lines of its own: in a small allocation beside others that the workers write, reading
/// the flag on every event missed the cache (`perf annotate`: 95 % of `Arrivals::mark`).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Arrivals {
    pub(crate) asked: AtomicBool,
    pub(crate) received: AtomicBool,
}

impl Arrivals {
    /// Sets `flag` unless it is set (a read on the hot path, a write once).
    #[inline]
    pub(crate) fn mark(flag: &AtomicBool) {
        if !flag.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Why no metrics event reached the layer, if something says one was hidden: a
    /// metrics event was logged but another layer's filter refused it, or the
    /// subscriber's maximum level hides `info!` events. `None` when events did arrive or
    /// nothing suggests any was logged.
    pub(crate) fn muted(&self, target: &str) -> Option<String> {
        if self.received.load(Ordering::Relaxed) {
            return None;
        }
        let why = if self.asked.load(Ordering::Relaxed) {
            format!("events on target `{target}` were logged but a filter in front of the metrics layer refused them")
        } else if LevelFilter::current() < LevelFilter::INFO {
            format!(
                "the subscriber's maximum level is {}, which hides `info!(target: \"{target}\", ..)` events",
                LevelFilter::current()
            )
        } else {
            return None;
        };
        Some(format!(
            "no metrics event reached trainlog: {why}. A filter added with \
             `.with(filter)` (e.g. `EnvFilter::new(\"warn\")`) filters every layer: pass it \
             through `trainlog::filter::keep_metrics(filter)`, or give it to the layer it is \
             meant for with `.with_filter(..)`"
        ))
    }
}

impl MetricFilter {
    fn pass(&self, meta: &Metadata<'_>) -> bool {
        if !self.active {
            return false;
        }
        if meta.is_span() {
            return self.spans;
        }
        meta.is_event()
            && if meta.target() == self.target || crate::log_dict::is_emitted(meta) {
                callsite_is_mapping(meta)
            } else {
                self.errors && *meta.level() == tracing::Level::ERROR
            }
    }
}

impl<S> Filter<S> for MetricFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        let pass = self.pass(meta);
        if pass && meta.is_event() {
            if let Some(arrivals) = &self.arrivals {
                Arrivals::mark(&arrivals.asked);
            }
        }
        pass
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let pass = self.pass(meta);
        // A global filter that refuses the callsite (`EnvFilter::new("info,metrics=off")`)
        // stops the event before `enabled` is asked: note it here too.
        if pass && meta.is_event() {
            if let Some(arrivals) = &self.arrivals {
                Arrivals::mark(&arrivals.asked);
            }
        }
        interest(pass)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        if self.active {
            None
        } else {
            Some(LevelFilter::OFF)
        }
    }
}
