//! trainlog for [burn](https://burn.dev): a burn-train [`MetricLogger`] that turns a
//! Learner's metric updates into trainlog records, so one training run goes to every
//! trainlog backend (JSONL, TensorBoard, MLflow, W&B offline, ...).
//!
//! Pinned to **burn 0.22.1** (`burn-train/src/logger/metric.rs` at that release).
//!
//! ```no_run
//! # fn learner_config<B>(training: burn_train::SupervisedTraining<B>) -> burn_train::SupervisedTraining<B>
//! # where B: burn_train::LearnerModel {
//! // Before `launch`: trainlog's layer on the global subscriber (burn reports metrics
//! // from a thread of its own), e.g. `setup_metric_logger("async,tensorboard", dir)`.
//! training
//!     .with_metric_logger(trainlog_burn::TrainlogMetricLogger::new())
//!     // burn's own application logger would try to install a second global subscriber.
//!     .with_application_logger(None)
//! # }
//! ```
//!
//! What it does with burn's updates:
//!
//! - **Names**: `<split>/<metric>`, the metric's name in lower case with spaces as `_`:
//!   `train/loss`, `valid/loss`, `train/learning_rate`, `test/accuracy` (a tagged test
//!   split: `test/<tag>/accuracy`). Grouped by split in TensorBoard and `trainlog serve`.
//! - **Steps**: burn's updates carry no global step, so each split counts its own updates
//!   from 0 across epochs (`train/*` at the train iteration, `valid/*` at the validation
//!   one); every record also has an `epoch` field.
//! - **Values**: a batch's value ([`NumericEntry::Value`]) and the mean an aggregated entry
//!   stands for, at the iteration's step. An epoch's final value (burn sends it after the
//!   epoch's last iteration) goes to the epoch summary. Text metrics are left out.
//! - **Epoch summaries**: at the end of each epoch and split, `<split>/epoch/<metric>` at
//!   step = epoch: the value burn itself uses for that epoch (the final value when there
//!   is one, else the mean over the epoch), like the summary burn's TUI shows.
//! - **Reading back**: burn asks its loggers for an epoch's values (early stopping,
//!   choosing the best checkpoint) and panics when none can answer. Registering any logger
//!   replaces burn's file logger, so this one answers [`MetricLogger::read_numeric`] from
//!   memory: per metric, split and epoch, the sum and count of its entries and its final
//!   value, a constant size per epoch however many iterations it had.
//!
//! **With burn's `tracing` subscriber**: by default `launch` installs a global subscriber
//! for burn's application log (`experiment.log`). Only one global subscriber can exist:
//! install trainlog's first (then burn's fails, with a `log` warning nobody sees and
//! nothing muted), or better, pass `.with_application_logger(None)` and add a file or
//! console layer of your own to the subscriber trainlog's layer is on. The metrics are
//! `tracing` events on the `metrics` target, so they reach whatever layers that
//! subscriber has: keep a console formatter off them (or use trainlog's rank-0 filters)
//! and nothing is printed twice. `tests/learner.rs` trains a model both ways.

use std::collections::HashMap;

use burn_train::logger::MetricLogger;
use burn_train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn_train::metric::{MetricDefinition, MetricId, NumericEntry};
use trainlog::Value;

/// A burn-train metric logger that sends every numeric update through trainlog (see the
/// crate docs).
#[derive(Default)]
pub struct TrainlogMetricLogger {
    definitions: HashMap<MetricId, Named>,
    /// Updates so far per split: the split's step.
    steps: HashMap<String, u64>,
    /// What `read_numeric` answers, per (burn's metric name, split, epoch).
    epochs: HashMap<(String, String, usize), Epoch>,
}

/// A metric's burn name and the name its records get (without the split).
struct Named {
    burn: String,
    field: String,
}

/// One metric's entries in one epoch and split, as burn aggregates them.
#[derive(Default, Clone, Copy, Debug)]
struct Epoch {
    /// Sum of value × count, and the count (a plain value counts once).
    sum: f64,
    count: usize,
    /// The last final value: when there is one, it is the epoch's value.
    last_final: Option<f64>,
    /// Whether the last entry was final (burn uses a final value only when it is last).
    final_last: bool,
}

impl Epoch {
    fn add(&mut self, entry: &NumericEntry) {
        match *entry {
            NumericEntry::Value(v) => {
                self.sum += v;
                self.count += 1;
                self.final_last = false;
            }
            NumericEntry::Aggregated {
                aggregated_value,
                count,
            } => {
                self.sum += aggregated_value * count as f64;
                self.count += count;
                self.final_last = false;
            }
            NumericEntry::Final(v) => {
                self.last_final = Some(v);
                self.final_last = true;
            }
        }
    }

    /// The entries burn would aggregate to the same value: the final value when it came
    /// last, else one aggregated entry of the mean.
    fn entries(&self) -> Vec<NumericEntry> {
        match self.last_final {
            Some(v) if self.final_last => vec![NumericEntry::Final(v)],
            _ if self.count == 0 => Vec::new(),
            _ => vec![NumericEntry::Aggregated {
                aggregated_value: self.sum / self.count as f64,
                count: self.count,
            }],
        }
    }

    /// The epoch's value, as burn computes it (mean aggregate).
    fn value(&self) -> Option<f64> {
        match self.last_final {
            Some(v) if self.final_last => Some(v),
            _ if self.count == 0 => None,
            _ => Some(self.sum / self.count as f64),
        }
    }
}

impl TrainlogMetricLogger {
    pub fn new() -> Self {
        Self::default()
    }
}

/// `train`, `valid`, `test`, or `test/<tag>`.
fn split_name(split: &Split) -> String {
    match split {
        Split::Test(Some(tag)) => format!("test/{}", field_name(tag)),
        other => other.to_string(),
    }
}

/// A metric name as a record field: lower case, spaces as `_` (`Learning Rate` →
/// `learning_rate`).
fn field_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

impl MetricLogger for TrainlogMetricLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let split = split_name(split);
        let mut fields = vec![("epoch".into(), Value::U64(epoch as u64))];
        for numeric in &update.entries_numeric {
            let Some(named) = self.definitions.get(&numeric.entry.metric_id) else {
                continue;
            };
            // burn's own loggers keep the serialized entry; the typed one is the same.
            let Some(entry) = numeric.numeric_entry.clone().or_else(|| {
                NumericEntry::deserialize(&numeric.entry.serialized_entry.serialized).ok()
            }) else {
                continue;
            };
            self.epochs
                .entry((named.burn.clone(), split.clone(), epoch))
                .or_default()
                .add(&entry);
            let value = match entry {
                NumericEntry::Value(v) => v,
                NumericEntry::Aggregated {
                    aggregated_value, ..
                } => aggregated_value,
                // An epoch's final value comes after its last iteration: it is the epoch
                // summary's (`log_epoch_summary`), not an iteration's.
                NumericEntry::Final(_) => continue,
            };
            fields.push((format!("{split}/{}", named.field).into(), Value::F64(value)));
        }
        if fields.len() > 1 {
            let step = self.steps.entry(split).or_insert(0);
            trainlog::log_fields(Some(*step), false, fields);
            *step += 1;
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Ok(self
            .epochs
            .get(&(name.to_owned(), split_name(split), epoch))
            .map(Epoch::entries)
            .unwrap_or_default())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        let burn = definition.name.to_string();
        let field = field_name(&burn);
        self.definitions
            .insert(definition.metric_id, Named { burn, field });
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let split = split_name(&summary.split);
        let mut fields = Vec::new();
        for named in self.definitions.values() {
            let key = (named.burn.clone(), split.clone(), summary.epoch_number);
            if let Some(value) = self.epochs.get(&key).and_then(Epoch::value) {
                fields.push((
                    format!("{split}/epoch/{}", named.field).into(),
                    Value::F64(value),
                ));
            }
        }
        if !fields.is_empty() {
            fields.sort_by(|a: &(trainlog::Key, Value), b| a.0.cmp(&b.0));
            trainlog::log_fields(Some(summary.epoch_number as u64), false, fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// burn's own aggregate (`NumericMetricsAggregate::aggregate`, Mean) over entries.
    fn burn_mean(entries: &[NumericEntry]) -> Option<f64> {
        if let Some(NumericEntry::Final(v)) = entries.last() {
            return Some(*v);
        }
        let (sum, n) = entries
            .iter()
            .map(|e| match *e {
                NumericEntry::Value(v) => (v, 1),
                NumericEntry::Aggregated {
                    aggregated_value,
                    count,
                } => (aggregated_value * count as f64, count),
                NumericEntry::Final(_) => unreachable!("a final entry is last"),
            })
            .reduce(|a, b| (a.0 + b.0, a.1 + b.1))?;
        Some(sum / n as f64)
    }

    #[test]
    fn an_epoch_answers_what_burn_would_compute_from_every_entry() {
        let cases = [
            vec![
                NumericEntry::Value(1.0),
                NumericEntry::Value(2.0),
                NumericEntry::Value(4.5),
            ],
            vec![
                NumericEntry::Aggregated {
                    aggregated_value: 2.0,
                    count: 3,
                },
                NumericEntry::Aggregated {
                    aggregated_value: 5.0,
                    count: 1,
                },
                NumericEntry::Value(1.0),
            ],
            vec![NumericEntry::Value(1.0), NumericEntry::Final(0.25)],
            vec![],
        ];
        for entries in cases {
            let mut epoch = Epoch::default();
            for e in &entries {
                epoch.add(e);
            }
            let (ours, theirs) = (burn_mean(&epoch.entries()), burn_mean(&entries));
            match (ours, theirs) {
                (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} {b}"),
                (a, b) => assert_eq!(a, b),
            }
            assert_eq!(epoch.value(), ours);
        }
    }

    #[test]
    fn names_are_fields() {
        assert_eq!(field_name("Learning Rate"), "learning_rate");
        assert_eq!(field_name("Loss"), "loss");
        assert_eq!(split_name(&Split::Valid), "valid");
        assert_eq!(
            split_name(&Split::Test(Some(std::sync::Arc::new("Hold Out".into())))),
            "test/hold_out"
        );
    }
}
