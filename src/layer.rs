//! The `Layer` that captures metrics events into records and hands them to sink workers.

use std::sync::{Arc, OnceLock};

use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::filter::MetricFilter;
use crate::worker::Feeder;
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
}

/// A span's fields as captured, kept in the span's extensions (`span_fields` only), the
/// step lifted out as for events.
#[derive(Debug)]
struct SpanFields(Record);

/// Captures `event` into `record` after the fields of the spans it is in, outermost
/// first: the event's own fields come after them, so they win a name both have; a span's
/// step is used when the event has none (the innermost span's).
fn capture_with_span_fields<S>(record: &mut Record, event: &Event<'_>, cx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut step = None;
    if let Some(scope) = cx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(SpanFields(captured)) = span.extensions().get::<SpanFields>() {
                record.fields.extend(captured.fields.iter().cloned());
                step = captured.step.or(step);
            }
        }
    }
    record.capture_event(event);
    record.step = record.step.or(step);
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
        span.extensions_mut()
            .insert(SpanFields(Record::from_span(attrs)));
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, cx: Context<'_, S>) {
        if !self.span_fields() {
            return;
        }
        let Some(span) = cx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(captured)) = extensions.get_mut::<SpanFields>() {
            captured.record_span(values);
        }
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let Some(Sinks {
            feeders,
            rank,
            target,
            errors,
            span_fields,
        }) = self.sinks.get()
        else {
            return;
        };
        let fill = |record: &mut Record| {
            if *span_fields {
                capture_with_span_fields(record, event, &cx);
            } else {
                record.capture_event(event);
            }
        };
        let event_target = event.metadata().target();
        if *errors && event_target != target {
            // An ERROR event from another target: only for the sinks that take them.
            let mut record = Record::new(*rank);
            fill(&mut record);
            record.error_target = Some(event_target.to_owned());
            let record = Arc::new(record);
            for feeder in feeders.iter().filter(|f| f.errors) {
                feeder.send(record.clone());
            }
            return;
        }
        // Each sink gets a record of its own from its pool (see `record::pool`): the
        // first is filled from the event, the others copied from it.
        let Some((first, others)) = feeders.split_first() else {
            return;
        };
        // `take` hands out records nothing else references: `make_mut` never copies here.
        // The clock is read once, for all of them.
        let now = std::time::SystemTime::now();
        let mut record = first.take(*rank, now);
        fill(Arc::make_mut(&mut record));
        for feeder in others {
            let mut copy = feeder.take(*rank, now);
            Arc::make_mut(&mut copy).copy_from(&record);
            feeder.send(copy);
        }
        first.send(record);
    }
}
