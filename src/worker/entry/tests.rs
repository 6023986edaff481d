//! Round trips of the compact encoding.

use super::*;
use crate::Histogram;

/// The rank the worker decoding entries writes for.
const RANK: u32 = 5;

/// Reads one entry as a lane's reader does: the sites listed before its head replace
/// `known` (the first is listed last), then the entry is decoded with them.
fn read(entry: &[Slot], known: &mut Known, names: &mut Names) -> Record {
    let mut slots = entry.iter().cloned().peekable();
    let mut listed = Sites::new();
    while let Some(Slot::Site(site)) = slots.peek() {
        listed.push(*site);
        slots.next();
    }
    if !listed.is_empty() {
        listed.reverse();
        known.set(listed);
    }
    let mut record = Record::new(0);
    record.fields.clear();
    let decoded =
        decode(&mut slots, &mut record, names, known, RANK).expect("an entry starts with its head");
    assert!(slots.next().is_none(), "an entry is decoded whole");
    match decoded {
        Decoded::Fields { .. } => record,
        Decoded::Record(r, _) => *r,
    }
}

/// An entry as a new lane's reader decodes it.
fn roundtrip(entry: &[Slot]) -> Record {
    read(entry, &mut Known::default(), &mut Names::default())
}

/// The fields of a real static callsite, named in this order.
macro_rules! site {
    ($($name:tt),*) => {{
        use tracing::callsite::Callsite as _;
        tracing::callsite!(name: "site", kind: tracing::metadata::Kind::EVENT, fields: $($name = 0),*)
            .metadata()
            .fields()
    }};
}

/// The field at `index` of `site`, as capture names it.
fn name(site: &'static FieldSet, index: usize) -> Name {
    let field = site.iter().nth(index).expect("the site has this field");
    Name {
        name: unraw(field.name()),
        index,
    }
}

#[test]
fn a_slot_is_16_bytes() {
    assert_eq!(std::mem::size_of::<Slot>(), 16);
}

#[test]
fn fields_texts_and_boxes_survive_the_trip_and_copies_own_their_boxes() {
    let site = site!(loss, n, big, ok, phase, empty);
    let span = site!(h);
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, MAX_SITES);
    e.site(span);
    e.captured(
        &Cow::Borrowed("h"),
        Some(0),
        &Value::Histogram(Histogram::new(&[1.0f32, 2.0])),
    );
    e.site(site);
    e.step(7);
    e.number(name(site, 0), Number::F64(f64::NAN));
    e.number(name(site, 1), Number::I64(-3));
    e.number(name(site, 2), Number::U64(u64::MAX));
    e.number(name(site, 3), Number::Bool(true));
    e.text(Some(name(site, 4)), "tráin with a longer text");
    e.text(None, "hello");
    e.text(Some(name(site, 5)), "");
    assert!(!e.bailed());
    let entry = e.finish(99).written(&Sites::new());
    let copy = entry.clone();
    for w in [&entry, &copy] {
        let r = roundtrip(w);
        assert_eq!((r.rank, r.step, r.hparams), (RANK, Some(7), false));
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

const NAMES: usize = 5;

fn names() -> &'static FieldSet {
    site!(
        loss,
        lr,
        "train.acc",
        a_rather_long_field_name_for_a_metric,
        "é"
    )
}

fn apply(calls: &[Call], f: &mut dyn Fields) {
    let site = names();
    f.site(site);
    for call in calls {
        match call {
            Call::Number(n, v) => f.number(name(site, *n), *v),
            Call::Text(n, t) => f.text(n.map(|n| name(site, n)), t),
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
        4 => (0..NAMES, number).prop_map(|(n, v)| Call::Number(n, v)),
        2 => (proptest::option::of(0..NAMES), ".{0,40}|.{0,600}")
            .prop_map(|(n, t)| Call::Text(n, t)),
        1 => prop_oneof![0..HEAD_STEP_LIMIT + 2, any::<u64>()].prop_map(Call::Step),
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
        let mut slots = Slots::new();
        let mut e = Encoder::new(&mut slots, MAX_SITES);
        apply(&calls, &mut e);
        if e.bailed() {
            let slots: usize = calls.iter().map(|c| match c {
                Call::Number(..) => 1,
                Call::Text(_, t) if t.len() <= SHORT_TEXT => 1,
                Call::Text(_, t) => 1 + t.len().div_ceil(TEXT_CHUNK),
                Call::Step(s) if *s >= HEAD_STEP_LIMIT => 1,
                _ => 0,
            }).sum();
            // After the slots reserved for the head, step and sites.
            proptest::prop_assert!(PREFIX + MAX_SITES + slots > MAX_SLOTS);
            return Ok(());
        }
        let got = roundtrip(&e.finish(0).written(&Sites::new()));
        proptest::prop_assert_eq!((got.rank, got.step, got.hparams), (RANK, expected.step, expected.hparams));
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
    let site = site!(j, huge);
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, MAX_SITES);
    e.site(site);
    e.captured(
        &Cow::Borrowed("j"),
        Some(0),
        &Value::Json(serde_json::json!([1])),
    );
    e.text(Some(name(site, 1)), &"x".repeat(MAX_SLOTS * TEXT_CHUNK));
    assert!(e.bailed());
    drop(e); // the boxed JSON value is dropped with its slot
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, MAX_SITES);
    e.site(site);
    e.captured(&Cow::Owned("run.time".into()), None, &Value::I64(1));
    assert!(e.bailed());
    // A span field its callsite does not list (never made by capture) bails too.
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, MAX_SITES);
    e.site(site);
    e.captured(&Cow::Borrowed("elsewhere"), None, &Value::I64(1));
    assert!(e.bailed());
    let mut slots = Slots::new();
    let entry = record_entry(Record::new(2).with_field("k", 1i64), 1, &mut slots);
    let r = roundtrip(&entry.written(&Sites::new()));
    assert_eq!((r.rank, r.get("k")), (2, Some(&Value::I64(1))));
}

#[test]
fn the_test_sites_have_their_fields_in_order() {
    let names: Vec<&str> = names().iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        [
            "loss",
            "lr",
            "train.acc",
            "a_rather_long_field_name_for_a_metric",
            "é"
        ]
    );
}

/// Queues `entry` on a lane whose reader has the sites `lane` and decodes it as that
/// reader (its sites `reader`): the number of slots queued, and the record.
fn through_lane(
    entry: &Entry<'_>,
    lane: &mut Sites,
    reader: &mut Known,
    names: &mut Names,
) -> (usize, Record) {
    let (start, listed) = entry.start_for(lane);
    let slots = entry.written(lane);
    assert_eq!(slots.len(), entry.slots.vec.len() - start);
    if listed {
        lane.clone_from(entry.sites());
    }
    let record = read(&slots, reader, names);
    assert!(
        same_sites(lane, reader.sites()),
        "the reader knows what the writer does"
    );
    (slots.len(), record)
}

#[test]
fn a_lane_leaves_out_the_sites_its_reader_knows_and_decodes_the_same() {
    let site = site!(loss, lr);
    let other = site!(acc);
    fn event<'s>(
        slots: &'s mut Slots,
        step: Option<u64>,
        site: &'static FieldSet,
        v: f64,
    ) -> Entry<'s> {
        let mut e = Encoder::new(slots, MAX_SITES);
        e.site(site);
        if let Some(step) = step {
            e.step(step);
        }
        e.number(name(site, 0), Number::F64(v));
        assert!(!e.bailed());
        e.finish(0);
        e.entry
    }
    let big = HEAD_STEP_LIMIT + 1;
    let [a, b, c, d, e] = &mut std::array::from_fn(|_| Slots::new());
    let entries = [
        event(a, Some(3), site, 0.5),
        event(b, None, site, 0.25),
        event(c, Some(4), other, 0.75),
        event(d, Some(HEAD_STEP_LIMIT - 1), other, 1.0),
        event(e, Some(big), site, 2.0),
    ];
    let (mut lane, mut reader) = (Sites::new(), Known::default());
    let mut names = Names::default();
    for (i, entry) in entries.iter().enumerate() {
        let whole = roundtrip(&entry.written(&Sites::new()));
        let (len, record) = through_lane(entry, &mut lane, &mut reader, &mut names);
        // The site (when new to the lane), the head (with the step), one field, and a
        // step too big for the head.
        assert_eq!(len, [3, 2, 3, 2, 4][i], "entry {i}");
        assert_eq!((record.step, &record.fields), (whole.step, &whole.fields));
        let step = [Some(3), None, Some(4), Some(HEAD_STEP_LIMIT - 1), Some(big)][i];
        assert_eq!(record.step, step, "entry {i}");
    }
}

#[test]
fn a_later_step_replaces_an_earlier_one_whichever_holds_it() {
    let site = site!(loss);
    let big = u64::MAX;
    for (first, second) in [(1, big), (big, 2), (big, big - 1), (3, 4)] {
        let mut slots = Slots::new();
        let mut e = Encoder::new(&mut slots, MAX_SITES);
        e.site(site);
        e.step(first);
        e.number(name(site, 0), Number::I64(1));
        e.step(second);
        let r = roundtrip(&e.finish(0).written(&Sites::new()));
        assert_eq!(r.step, Some(second), "{first} then {second}");
    }
}

#[test]
fn span_and_event_sites_are_listed_once_per_lane_and_fields_name_theirs() {
    let span = site!(h, model);
    let event = site!(loss);
    fn entry<'s>(
        slots: &'s mut Slots,
        span: &'static FieldSet,
        event: &'static FieldSet,
        v: f64,
    ) -> Entry<'s> {
        let mut e = Encoder::new(slots, MAX_SITES);
        e.site(span);
        e.captured(&Cow::Borrowed("model"), Some(1), &Value::Str("tiny".into()));
        e.site(event);
        e.number(name(event, 0), Number::F64(v));
        // The span's site again (a span of the same callsite further in): no new site.
        e.site(span);
        e.captured(&Cow::Borrowed("h"), Some(0), &Value::I64(2));
        assert!(!e.bailed());
        e.finish(0);
        e.entry
    }
    let (mut lane, mut reader) = (Sites::new(), Known::default());
    let mut names = Names::default();
    let expected = |v: f64| -> Vec<(Key, Value)> {
        vec![
            ("model".into(), Value::Str("tiny".into())),
            ("loss".into(), Value::F64(v)),
            ("h".into(), Value::I64(2)),
        ]
    };
    // Two sites (the first last), head, the (short) text, two numbers; then without the
    // sites.
    let mut slots = Slots::new();
    let first = entry(&mut slots, span, event, 0.5);
    let written = first.written(&lane);
    assert!(
        matches!((&written[0], &written[1]), (Slot::Site(a), Slot::Site(b))
            if std::ptr::eq(*a, event) && std::ptr::eq(*b, span)),
        "{written:?}"
    );
    let (len, record) = through_lane(&first, &mut lane, &mut reader, &mut names);
    assert_eq!((len, record.fields), (6, expected(0.5)));
    let (len, second) = through_lane(
        &entry(&mut Slots::new(), span, event, 0.25),
        &mut lane,
        &mut reader,
        &mut names,
    );
    assert_eq!((len, second.fields), (4, expected(0.25)));
    // Another event's entry in between: listed, and the first pair listed again after.
    let mut other_slots = Slots::new();
    let mut o = Encoder::new(&mut other_slots, MAX_SITES);
    o.site(event);
    o.number(name(event, 0), Number::F64(1.0));
    let (len, _) = through_lane(o.finish(0), &mut lane, &mut reader, &mut names);
    assert_eq!(len, 3);
    let (len, third) = through_lane(
        &entry(&mut Slots::new(), span, event, 0.75),
        &mut lane,
        &mut reader,
        &mut names,
    );
    assert_eq!((len, third.fields), (6, expected(0.75)));
}

#[test]
fn an_encoder_that_never_had_a_site_bails() {
    let mut slots = Slots::new();
    let e = Encoder::new(&mut slots, 1);
    assert!(e.bailed());
}

#[test]
fn more_sites_than_an_entry_lists_bail() {
    let sites = [site!(a), site!(b), site!(c), site!(d), site!(e)];
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, MAX_SITES);
    for site in &sites[..MAX_SITES] {
        e.site(site);
        e.number(name(site, 0), Number::I64(1));
    }
    assert!(!e.bailed());
    e.site(sites[MAX_SITES]);
    assert!(e.bailed());
    // An encoder for one site (an event without span fields) bails at a second.
    let mut slots = Slots::new();
    let mut e = Encoder::new(&mut slots, 1);
    e.site(sites[0]);
    e.number(name(sites[0], 0), Number::I64(1));
    assert!(!e.bailed());
    e.site(sites[1]);
    assert!(e.bailed());
}

#[test]
fn the_names_cache_starting_over_keeps_an_entrys_places_valid() {
    let (filler, b, c) = (site!(x), site!(b), site!(c));
    // Nearly full: the two sites of the next entry do not both fit.
    let mut names = Names {
        sites: vec![(filler, vec!["x"]); Names::MAX - 1],
        generation: 0,
    };
    let sites: Sites = [b, c].into_iter().collect();
    let places = names.places(&sites);
    let at = |site| At { site, index: 0 };
    assert_eq!(names.name(&places, at(0)), Some("b"));
    assert_eq!(names.name(&places, at(1)), Some("c"));
    assert_eq!(names.sites.len(), 2, "started over before looking up");
    assert_eq!(names.generation, 1);
    // A lane's reader that found its places before looks them up again.
    let mut known = Known::default();
    known.set([b].into_iter().collect());
    let before = known.places(&mut names).to_vec();
    names.sites.clear();
    names.sites.push((c, vec!["c"]));
    names.generation += 1;
    let after = known.places(&mut names).to_vec();
    assert_eq!((before, after), (vec![0], vec![1]));
    let places = known.places(&mut names).to_vec();
    assert_eq!(names.name(&places, at(0)), Some("b"));
}
