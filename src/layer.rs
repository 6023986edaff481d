//! The `Layer` that captures metrics events into records and hands them to sink workers.

use std::sync::{Arc, OnceLock};

use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Layer};

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
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        let Some(Sinks {
            feeders,
            rank,
            target,
            errors,
        }) = self.sinks.get()
        else {
            return;
        };
        let event_target = event.metadata().target();
        if *errors && event_target != target {
            // An ERROR event from another target: only for the sinks that take them.
            let mut record = Record::from_event(event, *rank);
            record.error_target = Some(event_target.to_owned());
            let record = Arc::new(record);
            for feeder in feeders.iter().filter(|f| f.errors) {
                feeder.send(record.clone());
            }
            return;
        }
        match feeders.as_slice() {
            [] => {}
            [only] => only.send(Arc::new(Record::from_event(event, *rank))),
            many => {
                let record = Arc::new(Record::from_event(event, *rank));
                for feeder in many {
                    feeder.send(record.clone());
                }
            }
        }
    }
}
