//! The `Layer` that captures metrics events into records and hands them to sink workers.

use std::sync::{Arc, OnceLock};

use tracing::field::FieldSet;
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::clock;
use crate::filter::{Arrivals, MetricFilter};
use crate::record::capture::{Capture, Fields};
use crate::worker::entry::{record_entry, Encoder, Slots, MAX_SITES};
use crate::worker::{self, Feeder};
use crate::Record;

/// The layer [`MetricLoggerBuilder::build`](crate::MetricLoggerBuilder::build) returns:
/// the capture layer behind its per-layer filter (metrics target, mapping events only).
///
/// `S` is the subscriber it is added to; it is inferred from the `.with(layer)` call.
pub type MetricLayer<S> = Filtered<SinkLayer, MetricFilter, S>;

/// Captures each event it sees into one [`Record`] and queues it for every sink.
///
/// Capture does no I/O. The only wait is the queue's, when it is full and the overflow
/// policy is [`Overflow::Block`](crate::Overflow::Block).
#[derive(Debug)]
pub struct SinkLayer {
    sinks: Arc<OnceLock<Sinks>>,
}

/// What a layer feeds: one queue per sink, the rank records are stamped with, and the
/// metrics target. When `errors` is set the filter also passes ERROR events of other
/// targets, which go to the sinks that take them; otherwise every event is a metrics
/// event and its target need not be looked at.
#[derive(Debug)]
pub(crate) struct Sinks {
    pub(crate) feeders: Vec<Feeder>,
    pub(crate) rank: u32,
    pub(crate) target: std::borrow::Cow<'static, str>,
    pub(crate) errors: bool,
    /// Put the fields of enclosing spans on each record (`MetricLoggerBuilder::span_fields`).
    pub(crate) span_fields: bool,
    /// Told that an event arrived (for the guard's warning about muted metrics).
    pub(crate) arrivals: Arc<Arrivals>,
}

/// A span's fields as captured, kept in the span's extensions (`span_fields` only), the
/// step lifted out as for events; with the span's callsite fields and each captured
/// field's index among them, for the compact entry (`worker::entry`).
#[derive(Debug)]
struct SpanFields {
    captured: Record,
    site: &'static FieldSet,
    indices: Vec<Option<usize>>,
}

impl SpanFields {
    fn new(captured: Record, site: &'static FieldSet) -> Self {
        let mut fields = SpanFields {
            captured,
            site,
            indices: Vec::new(),
        };
        fields.index();
        fields
    }

    /// Finds the indices of the fields captured since the last call (done when a span
    /// opens or records, not per event).
    fn index(&mut self) {
        let site = self.site;
        let new = &self.captured.fields[self.indices.len()..];
        self.indices.extend(new.iter().map(|(name, _)| {
            site.iter()
                .position(|f| crate::record::capture::unraw(f.name()) == name)
        }));
    }
}

/// Captures `event` into `fields` after the fields of the spans it is in, outermost
/// first: the event's own fields come after them, so they win a name both have; a span's
/// step is used when the event has none (the innermost span's).
fn capture<S, F>(fields: &mut F, event: &Event<'_>, cx: &Context<'_, S>, span_fields: bool)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Fields,
{
    if span_fields {
        let mut step = None;
        if let Some(scope) = cx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span) = span.extensions().get::<SpanFields>() {
                    fields.site(span.site);
                    for ((name, value), index) in span.captured.fields.iter().zip(&span.indices) {
                        fields.captured(name, *index, value);
                    }
                    step = span.captured.step.or(step);
                }
            }
        }
        // The event's own step, if it has one, replaces this.
        if let Some(step) = step {
            fields.step(step);
        }
    }
    fields.site(event.metadata().fields());
    event.record(&mut Capture(fields));
}

impl SinkLayer {
    pub(crate) fn new(sinks: Sinks) -> Self {
        SinkLayer {
            sinks: Arc::new(OnceLock::from(sinks)),
        }
    }

    /// A layer whose sinks are attached later through the returned slot (used when
    /// `setup_root_logger` installs the subscriber before `setup_metric_logger` runs).
    #[cfg(feature = "console")]
    pub(crate) fn deferred() -> (Self, Arc<OnceLock<Sinks>>) {
        let slot = Arc::new(OnceLock::new());
        (
            SinkLayer {
                sinks: slot.clone(),
            },
            slot,
        )
    }

    fn span_fields(&self) -> bool {
        self.sinks.get().is_some_and(|s| s.span_fields)
    }
}

impl<S> Layer<S> for SinkLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        if !self.span_fields() {
            return;
        }
        let Some(span) = cx.span(id) else { return };
        span.extensions_mut().insert(SpanFields::new(
            Record::from_span(attrs),
            attrs.metadata().fields(),
        ));
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, cx: Context<'_, S>) {
        if !self.span_fields() {
            return;
        }
        let Some(span) = cx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            fields.captured.record_span(values);
            fields.index();
        }
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let Some(Sinks {
            feeders,
            rank,
            target,
            errors,
            span_fields,
            arrivals,
        }) = self.sinks.get()
        else {
            return;
        };
        Arrivals::mark(&arrivals.received);
        let event_target = event.metadata().target();
        if *errors && event_target != target && !crate::log_dict::is_emitted(event.metadata()) {
            // An ERROR event from another target: only for the sinks that take them.
            let mut record = Record::new(*rank);
            capture(&mut record, event, &cx, *span_fields);
            record.error_target = Some(event_target.to_owned());
            let takers = feeders.iter().filter(|f| f.errors);
            worker::publish(
                takers.clone().count(),
                takers,
                &mut record_entry(record, clock::now(), &mut Slots::new()),
            );
            return;
        }
        // The common case: the event encoded in a few slots on the stack, copied into
        // each sink's queue for this thread (see `worker::entry`). Nothing allocates.
        let ticks = clock::now();
        let mut slots = Slots::new();
        let mut encoder = if *span_fields {
            // The event's site and its spans' (and a `log_dict` event's names', below).
            Encoder::new(&mut slots, MAX_SITES)
        } else if crate::log_dict::is_emitted(event.metadata()) {
            // A `log_dict` event: its own site, and the run-time callsite that names its
            // fields when it has one (`log_dict::sites`; else it bails to a record).
            Encoder::new(&mut slots, 2)
        } else {
            Encoder::for_site(&mut slots, event.metadata().fields())
        };
        capture(&mut encoder, event, &cx, *span_fields);
        if !encoder.bailed() {
            worker::publish_all(feeders, encoder.finish(ticks));
            return;
        }
        drop(encoder);
        drop(slots);
        // Too big for that form, or a `log_dict` event whose names are made at run time:
        // a whole record.
        let mut record = Record::new(*rank);
        capture(&mut record, event, &cx, *span_fields);
        worker::publish(
            feeders.len(),
            feeders.iter(),
            &mut record_entry(record, ticks, &mut Slots::new()),
        );
    }
}
