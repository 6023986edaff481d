//! Round trips of the compact encoding.

use super::*;
use crate::Histogram;

fn roundtrip(words: &[u64]) -> Record {
    let mut record = Record::new(0);
    record.fields.clear();
    match unsafe { decode(words, &mut record) } {
        Decoded::Fields { .. } => record,
        Decoded::Record(r, _) => *r,
    }
}

#[test]
fn fields_texts_and_boxes_survive_the_trip_and_copies_own_their_boxes() {
    let mut e = Encoder::new();
    e.step(7);
    e.number("loss", Number::F64(f64::NAN));
    e.number("n", Number::I64(-3));
    e.number("big", Number::U64(u64::MAX));
    e.number("ok", Number::Bool(true));
    e.text(Some("phase"), "tráin with a longer text");
    e.text(None, "hello");
    e.text(Some("empty"), "");
    e.captured(
        &Cow::Borrowed("h"),
        &Value::Histogram(Histogram::new(&[1.0f32, 2.0])),
    );
    assert!(!e.bailed());
    let words = e.finish(5, 99).to_vec();
    let ring: Vec<AtomicU64> = words.iter().map(|_| AtomicU64::new(0)).collect();
    write_entry(&words, true, &ring);
    let copy: Vec<u64> = ring.iter().map(|w| w.load(Relaxed)).collect();
    for w in [&words, &copy] {
        let r = roundtrip(w);
        assert_eq!((r.rank, r.step, r.hparams), (5, Some(7), false));
        assert_eq!(r.message.as_deref(), Some("hello"));
        assert!(matches!(r.get("loss"), Some(Value::F64(v)) if v.is_nan()));
        assert_eq!(r.get("n"), Some(&Value::I64(-3)));
        assert_eq!(r.get("big"), Some(&Value::U64(u64::MAX)));
        assert_eq!(r.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(
            r.get("phase"),
            Some(&Value::Str("tráin with a longer text".into()))
        );
        assert_eq!(r.get("empty"), Some(&Value::Str(String::new())));
        assert!(matches!(r.get("h"), Some(Value::Histogram(h)) if h.summary().count == 2));
    }
}

/// One call on a [`Fields`]: a field of one of a few names, or the message.
#[derive(Debug, Clone)]
enum Call {
    Number(usize, Number),
    Text(Option<usize>, String),
    Step(u64),
    Hparams(bool),
}

const NAMES: [&str; 5] = [
    "loss",
    "lr",
    "train.acc",
    "a_rather_long_field_name_for_a_metric",
    "é",
];

fn apply(calls: &[Call], f: &mut dyn Fields) {
    for call in calls {
        match call {
            Call::Number(n, v) => f.number(NAMES[*n], *v),
            Call::Text(n, t) => f.text(n.map(|n| NAMES[n]), t),
            Call::Step(s) => f.step(*s),
            Call::Hparams(h) => f.hparams(*h),
        }
    }
}

fn call() -> impl proptest::strategy::Strategy<Value = Call> {
    use proptest::prelude::*;
    let number = prop_oneof![
        any::<i64>().prop_map(Number::I64),
        any::<u64>().prop_map(Number::U64),
        any::<f64>().prop_map(Number::F64),
        any::<bool>().prop_map(Number::Bool),
    ];
    prop_oneof![
        4 => (0..NAMES.len(), number).prop_map(|(n, v)| Call::Number(n, v)),
        2 => (proptest::option::of(0..NAMES.len()), ".{0,40}|.{0,600}")
            .prop_map(|(n, t)| Call::Text(n, t)),
        1 => any::<u64>().prop_map(Call::Step),
        1 => any::<bool>().prop_map(Call::Hparams),
    ]
}

/// Bitwise equality, so that NaN compares equal to itself.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

proptest::proptest! {
    /// Whatever a `Record` captures, an entry decodes to the same, or it bails (only
    /// when the event is larger than an entry holds).
    #[test]
    fn an_entry_decodes_to_what_a_record_captures(calls in proptest::collection::vec(call(), 0..60)) {
        let mut expected = Record::new(3);
        apply(&calls, &mut expected);
        let mut e = Encoder::new();
        apply(&calls, &mut e);
        if e.bailed() {
            let words: usize = calls.iter().map(|c| match c {
                Call::Number(..) => 2,
                Call::Text(_, t) => 2 + t.len().div_ceil(8),
                _ => 0,
            }).sum();
            proptest::prop_assert!(HEAD + words > MAX_WORDS);
            return Ok(());
        }
        let got = roundtrip(e.finish(3, 0));
        proptest::prop_assert_eq!((got.rank, got.step, got.hparams), (3, expected.step, expected.hparams));
        proptest::prop_assert_eq!(&got.message, &expected.message);
        proptest::prop_assert_eq!(got.fields.len(), expected.fields.len());
        for ((gk, gv), (ek, ev)) in got.fields.iter().zip(&expected.fields) {
            proptest::prop_assert_eq!(gk, ek);
            proptest::prop_assert!(same(gv, ev), "{gv:?} != {ev:?}");
        }
    }
}

#[test]
fn too_big_or_run_time_names_bail_and_free_what_they_boxed() {
    let mut e = Encoder::new();
    e.captured(&Cow::Borrowed("j"), &Value::Json(serde_json::json!([1])));
    e.text(Some("huge"), &"x".repeat(MAX_WORDS * 8));
    assert!(e.bailed());
    drop(e); // frees the boxed JSON value (checked by Miri/leak tools, not here)
    let mut e = Encoder::new();
    e.captured(&Cow::Owned("run.time".into()), &Value::I64(1));
    assert!(e.bailed());
    let words = record_entry(Record::new(2).with_field("k", 1i64), 1);
    let r = roundtrip(&words);
    assert_eq!((r.rank, r.get("k")), (2, Some(&Value::I64(1))));
}
