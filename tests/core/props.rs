//! Property: whatever the field names and values (NaN, ±∞, control characters, quotes,
//! names of metadata keys, duplicates), every JSONL line is valid JSON with unique keys
//! and reads back to the values logged.

use proptest::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};

use trainlog::MetricLogger;

use crate::support::{assert_no_duplicate_keys, with_logger};

#[derive(Debug, Clone)]
enum V {
    F(f64),
    I(i64),
    U(u64),
    B(bool),
    S(String),
}

/// Name/value pairs serialized as one map, duplicates included, in order.
#[derive(Debug, Clone)]
struct Pairs(Vec<(String, V)>);

impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            match v {
                V::F(x) => map.serialize_entry(k, x)?,
                V::I(x) => map.serialize_entry(k, x)?,
                V::U(x) => map.serialize_entry(k, x)?,
                V::B(x) => map.serialize_entry(k, x)?,
                V::S(x) => map.serialize_entry(k, x)?,
            }
        }
        map.end()
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("rank".to_string()),
        Just("field.rank".to_string()),
        Just("field.field.rank".to_string()),
        Just("timestamp".to_string()),
        Just("step".to_string()),
        Just("loss".to_string()),
        Just("r#type".to_string()),
        Just(String::new()),
        "[a-z._]{1,6}",
        "\\PC{0,8}",
        "[\\x00-\\x1f\"\\\\\u{7f}é€]{1,4}",
    ]
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        Just(V::F(f64::NAN)),
        Just(V::F(f64::INFINITY)),
        Just(V::F(f64::NEG_INFINITY)),
        any::<f64>().prop_map(V::F),
        any::<i64>().prop_map(V::I),
        any::<u64>().prop_map(V::U),
        any::<bool>().prop_map(V::B),
        Just(V::S("NaN".into())),
        "[\\x00-\\x1f\"\\\\\u{1b}a-z€]{0,12}".prop_map(V::S),
    ]
}

/// Whether `got` (read back from JSON) is what `want` was logged as.
fn same(got: &serde_json::Value, want: &V) -> bool {
    match want {
        V::F(x) if x.is_nan() => got == "NaN",
        V::F(x) if x.is_infinite() => got == if *x > 0.0 { "Infinity" } else { "-Infinity" },
        // Integral floats may come back as integers; the value is what counts.
        V::F(x) => got.as_f64() == Some(*x),
        V::I(x) => got.as_i64() == Some(*x),
        V::U(x) => got.as_u64() == Some(*x),
        V::B(x) => got.as_bool() == Some(*x),
        V::S(x) => got.as_str() == Some(x.as_str()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_valid_json_with_unique_keys_that_reads_back(
        pairs in proptest::collection::vec((name(), value()), 1..12),
        step in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let guard = with_logger(
            MetricLogger::builder().output_dir(dir.path()).rank(0),
            || trainlog::log_dict(Some(step), &Pairs(pairs.clone())),
        );
        guard.shutdown(trainlog::sink::RunOutcome::Completed).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl")).unwrap();
        let raw = text.lines().next().unwrap();
        prop_assert_eq!(text.lines().count(), 1);
        let line: serde_json::Value = serde_json::from_str(raw).unwrap();
        assert_no_duplicate_keys(&line, raw);
        prop_assert_eq!(&line["step"], &serde_json::json!(step));
        prop_assert_eq!(&line["rank"], &serde_json::json!(0));
        // The last value of each name, in the place of its first occurrence.
        let mut unique: Vec<(String, V)> = Vec::new();
        for (k, v) in &pairs {
            match unique.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => unique.push((k.clone(), v.clone())),
            }
        }
        let obj = line.as_object().unwrap();
        prop_assert_eq!(obj.len(), 3 + unique.len(), "{}", raw);
        for (k, v) in &unique {
            if matches!(k.as_str(), "rank" | "timestamp" | "step") {
                // Renamed to a free `field.` name: some such key holds the value.
                let found = obj.iter().any(|(key, got)| {
                    key.starts_with("field.") && key.ends_with(k.as_str()) && same(got, v)
                });
                prop_assert!(found, "{} not found renamed in {}", k, raw);
            } else {
                prop_assert!(same(&line[k.as_str()], v), "{}: {:?} vs {}", k, v, raw);
            }
        }
    }
}

fn to_value(v: &V) -> trainlog::Value {
    match v {
        V::F(x) => trainlog::Value::F64(*x),
        V::I(x) => trainlog::Value::I64(*x),
        V::U(x) => trainlog::Value::U64(*x),
        V::B(x) => trainlog::Value::Bool(*x),
        V::S(x) => trainlog::Value::Str(x.clone()),
    }
}

/// One `log_fields` call: step, hparams, fields.
type Logged = (Option<u64>, bool, Vec<(trainlog::Key, trainlog::Value)>);

/// The JSONL lines `log_fields` writes for each of `records`, times taken out; with
/// `span_fields`, the fields of the span they are logged in too.
fn written(records: &[Logged], span_fields: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let builder = MetricLogger::builder()
        .output_dir(dir.path())
        .rank(0)
        .span_fields(span_fields);
    let guard = with_logger(builder, || {
        let _epoch = tracing::info_span!("epoch", in_span = 3u64).entered();
        for (step, hparams, fields) in records {
            trainlog::log_fields(*step, *hparams, fields.clone());
        }
    });
    guard
        .shutdown(trainlog::sink::RunOutcome::Completed)
        .unwrap();
    let text = std::fs::read_to_string(dir.path().join("metrics_rank0.jsonl")).unwrap();
    text.lines()
        .map(|raw| {
            let mut line: serde_json::Value = serde_json::from_str(raw).unwrap();
            line.as_object_mut().unwrap().remove("timestamp");
            line.to_string()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Names that are `&'static str` take the compact encoding (a run-time callsite per
    /// set of names); others a boxed record. Both write the same lines, whatever the
    /// names (duplicates, metadata keys) and values (NaN, long texts, histograms), with
    /// and without a span's fields on each record.
    #[test]
    fn static_names_and_owned_names_write_the_same_lines(
        records in proptest::collection::vec(
            (
                proptest::option::of(any::<u64>()),
                any::<bool>(),
                proptest::collection::vec((name(), value(), any::<bool>()), 0..10),
            ),
            1..6,
        ),
        histogram in proptest::collection::vec(any::<f64>(), 0..20),
        span_fields in any::<bool>(),
    ) {
        let owned: Vec<_> = records
            .iter()
            .map(|(step, hparams, fields)| {
                let mut fields: Vec<(trainlog::Key, trainlog::Value)> = fields
                    .iter()
                    .map(|(k, v, _)| (k.clone().into(), to_value(v)))
                    .collect();
                fields.push(("weights".to_string().into(), trainlog::Histogram::new(&histogram).into()));
                (*step, *hparams, fields)
            })
            .collect();
        // The same names leaked into `&'static str`s (one allocation per name, as the
        // Python package interns them; the flag shares some between records).
        let mut leaked: std::collections::HashMap<String, &'static str> = Default::default();
        let statics: Vec<_> = owned
            .iter()
            .map(|(step, hparams, fields)| {
                let fields = fields
                    .iter()
                    .map(|(k, v)| {
                        let name = *leaked
                            .entry(k.to_string())
                            .or_insert_with(|| Box::leak(k.to_string().into_boxed_str()));
                        (trainlog::Key::Borrowed(name), v.clone())
                    })
                    .collect();
                (*step, *hparams, fields)
            })
            .collect();
        let lines = written(&statics, span_fields);
        prop_assert_eq!(&lines, &written(&owned, span_fields));
        prop_assert_eq!(lines.iter().all(|l| l.contains("\"in_span\":3")), span_fields, "{:?}", lines);
    }
}
