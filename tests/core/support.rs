//! Helpers shared by the core tests.

use std::path::Path;

use tracing_subscriber::prelude::*;
use trainlog::{MetricGuard, MetricLoggerBuilder};

/// Builds the logger, runs `f` with it as the thread's default subscriber, and returns
/// the guard (still alive) so the test decides when to flush or drop.
pub fn with_logger(builder: MetricLoggerBuilder, f: impl FnOnce()) -> MetricGuard {
    let (layer, guard) = builder.build().expect("logger builds");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    guard
}

/// Builds the logger into a `Dispatch` the test can enter as often as it likes, from
/// any thread, and returns it with the guard.
pub fn dispatch(builder: MetricLoggerBuilder) -> (tracing::Dispatch, MetricGuard) {
    let (layer, guard) = builder.build().expect("logger builds");
    (
        tracing::Dispatch::new(tracing_subscriber::registry().with(layer)),
        guard,
    )
}

/// Every line of a JSONL file, parsed; panics with the line number on invalid JSON.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{}: invalid JSON ({e}): {line}", path.display(), i + 1)
            })
        })
        .collect()
}

/// Checks the raw text of a line for duplicate top-level keys (serde_json would keep the last).
pub fn assert_no_duplicate_keys(line: &serde_json::Value, raw: &str) {
    let obj = line.as_object().expect("a JSON object");
    let mut seen = std::collections::HashSet::new();
    let mut de = serde_json::Deserializer::from_str(raw);
    let keys: Vec<String> = {
        use serde::de::{Deserializer, MapAccess, Visitor};
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(keys)
            }
        }
        (&mut de).deserialize_map(Keys).expect("a map")
    };
    for k in &keys {
        assert!(seen.insert(k.clone()), "duplicate key {k} in {raw}");
    }
    assert_eq!(keys.len(), obj.len());
}

/// A plain `tracing` layer (not trainlog's) that keeps each event's fields as text, to see
/// what other layers get.
pub struct FieldsLayer(
    pub std::sync::Arc<std::sync::Mutex<Vec<std::collections::HashMap<String, String>>>>,
);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FieldsLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Visit<'a>(&'a mut std::collections::HashMap<String, String>);
        impl tracing::field::Visit for Visit<'_> {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().into(), value.into());
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().into(), format!("{value:?}"));
            }
        }
        let mut fields = std::collections::HashMap::new();
        event.record(&mut Visit(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}
