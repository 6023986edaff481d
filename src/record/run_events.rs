//! The `tags` and `result` events of the run API, as sinks read them back.
//!
//! [`Run::tags`](crate::run::Run::tags) sends `{event: "tags", <tag>: "<value>", ..}` with
//! every tag; [`Run::result`](crate::run::Run::result) sends `{event: "result", <name>:
//! value, metadata.<key>: .., ..}`. Backends with their own notion of tags and final
//! results (MLflow, W&B, TensorBoard) map them here instead of treating them as metrics.

use super::{Record, Value};

/// The prefix of a result's metadata fields.
pub(crate) const METADATA_PREFIX: &str = "metadata.";

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

    /// The tags of a `tags` event: every text field but `event`.
    pub(crate) fn as_tags(&self) -> Option<Vec<(&str, &str)>> {
        if self.event() != Some("tags") || self.hparams {
            return None;
        }
        Some(
            self.unique_fields()
                .filter(|(k, _)| *k != "event")
                .filter_map(|(k, v)| match v {
                    Value::Str(s) => Some((k, s.as_str())),
                    _ => None,
                })
                .collect(),
        )
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

    /// A `result` event's name, value and metadata.
    pub(crate) fn as_result(&self) -> Option<ResultEvent<'_>> {
        if self.event() != Some("result") || self.hparams {
            return None;
        }
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
        assert_eq!(tags.as_tags().unwrap(), [("stage", "sft"), ("team", "nlp")]);
        assert!(tags.as_result().is_none());
        let result = Record::new(0)
            .with_field("event", "result")
            .with_field("final_accuracy", 0.945)
            .with_field("metadata.dataset", "test")
            .with_field("metadata.n", 10_000u64);
        let r = result.as_result().unwrap();
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
        assert!(Record::new(0).with_field("loss", 1.0).as_result().is_none());
        assert_eq!(Record::new(0).with_field("event", 3u64).event(), None);
    }
}
