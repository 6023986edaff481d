//! The `tags` and `result` events of the run API, as sinks read them back (here, with the
//! sinks, not in `record/`: a record is only fields; what an `event` field means to a
//! backend is the backends' business).
//!
//! [`Run::tags`](crate::run::Run::tags) sends `{event: "tags", <tag>: "<value>", ..}` with
//! every tag; [`Run::result`](crate::run::Run::result) sends `{event: "result", <name>:
//! value, metadata.<key>: .., ..}`. Backends with their own notion of tags and final
//! results (MLflow, W&B, TensorBoard) map them here instead of treating them as metrics.

// Read by the backends that map tags and results; a build without them has no reader.
#![cfg_attr(
    not(any(feature = "tensorboard", feature = "mlflow", feature = "wandb")),
    allow(dead_code)
)]

use crate::{Record, Value};

/// The prefix of a result's metadata fields.
pub(crate) const METADATA_PREFIX: &str = "metadata.";

/// A record of the run API, taken apart; see [`Record::run_event`].
#[derive(Debug)]
pub(crate) enum RunEvent<'a> {
    /// The run's tags (name, value), every one.
    Tags(Vec<(&'a str, &'a str)>),
    Result(ResultEvent<'a>),
}

/// A `result` event taken apart.
#[derive(Debug)]
pub(crate) struct ResultEvent<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a Value,
    /// Metadata fields, names without the `metadata.` prefix.
    pub(crate) metadata: Vec<(&'a str, &'a Value)>,
}

impl Record {
    /// The text of the record's `event` field, if it has one (`"tags"`, `"result"`,
    /// `"training_started"`, ..).
    pub fn event(&self) -> Option<&str> {
        match self.get("event") {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The run API's `tags` or `result` event this record is, if it is one (hyperparameter
    /// records never are). Looks up the `event` field once.
    pub(crate) fn run_event(&self) -> Option<RunEvent<'_>> {
        if self.hparams {
            return None;
        }
        match self.event()? {
            "tags" => Some(RunEvent::Tags(self.tags_fields())),
            "result" => self.result_fields().map(RunEvent::Result),
            _ => None,
        }
    }

    /// The tags of a `tags` event: every text field but `event`.
    fn tags_fields(&self) -> Vec<(&str, &str)> {
        self.unique_fields()
            .filter(|(k, _)| *k != "event")
            .filter_map(|(k, v)| match v {
                Value::Str(s) => Some((k, s.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The histogram fields.
    #[cfg(any(feature = "otel", feature = "prometheus", feature = "wandb"))]
    pub(crate) fn histograms(&self) -> impl Iterator<Item = (&str, &crate::Histogram)> {
        self.unique_fields().filter_map(|(k, v)| match v {
            Value::Histogram(h) => Some((k, h)),
            _ => None,
        })
    }

    /// The numeric fields (booleans as 0/1) that are metrics: all of them but a result's
    /// metadata. For backends that keep numbers only (OTel, Prometheus).
    #[cfg(any(feature = "otel", feature = "prometheus"))]
    pub(crate) fn numbers(&self) -> impl Iterator<Item = (&str, f64)> {
        let result = self.event() == Some("result");
        self.unique_fields()
            .filter(move |(k, _)| !(result && k.starts_with(METADATA_PREFIX)))
            .filter_map(|(k, v)| Some((k, v.as_f64()?)))
    }

    /// A `result` event's name (its first numeric field), value and metadata.
    fn result_fields(&self) -> Option<ResultEvent<'_>> {
        let mut result = None;
        let mut metadata = Vec::new();
        for (k, v) in self.unique_fields() {
            if k == "event" {
                continue;
            }
            match k.strip_prefix(METADATA_PREFIX) {
                Some(key) => metadata.push((key, v)),
                None if result.is_none() && v.as_f64().is_some() => result = Some((k, v)),
                None => {}
            }
        }
        let (name, value) = result?;
        Some(ResultEvent {
            name,
            value,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_results_are_recognised() {
        let tags = Record::new(0)
            .with_field("event", "tags")
            .with_field("stage", "sft")
            .with_field("team", "nlp");
        let Some(RunEvent::Tags(found)) = tags.run_event() else {
            panic!("not tags")
        };
        assert_eq!(found, [("stage", "sft"), ("team", "nlp")]);
        let result = Record::new(0)
            .with_field("event", "result")
            .with_field("final_accuracy", 0.945)
            .with_field("metadata.dataset", "test")
            .with_field("metadata.n", 10_000u64);
        let Some(RunEvent::Result(r)) = result.run_event() else {
            panic!("not a result")
        };
        assert_eq!((r.name, r.value), ("final_accuracy", &Value::F64(0.945)));
        assert_eq!(r.metadata.len(), 2);
        assert_eq!(r.metadata[0], ("dataset", &Value::Str("test".into())));
        #[cfg(any(feature = "otel", feature = "prometheus"))]
        {
            let numbers: Vec<_> = result.numbers().collect();
            assert_eq!(numbers, [("final_accuracy", 0.945)]);
            let plain = Record::new(0)
                .with_field("loss", 1.0)
                .with_field("metadata.n", 2u64);
            assert_eq!(plain.numbers().count(), 2);
        }
        assert!(Record::new(0).with_field("loss", 1.0).run_event().is_none());
        assert!(tags.clone().with_hparams().run_event().is_none());
        assert_eq!(Record::new(0).with_field("event", 3u64).event(), None);
    }
}
