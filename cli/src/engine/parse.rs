//! One line parsed straight into what the engine keeps: serde visitors over the JSON
//! object, metric names looked up without allocating, histograms into their statistics.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;

use super::{FileScan, Keep, X};
use crate::runs::HISTOGRAM_FIELDS;

/// One line as parsed: its step, time, whether it holds hyperparameters, and its numeric
/// values by metric.
#[derive(Default)]
pub(super) struct Parsed {
    pub(super) step: Option<u64>,
    pub(super) time: Option<f64>,
    pub(super) hparams: bool,
    /// (metric, value, whether it was a JSON integer).
    pub(super) values: Vec<(usize, f64, bool)>,
    /// The timestamp's text, when its time was not parsed (see `LineSeed`).
    pub(super) time_text: String,
    /// The keys that held histograms (for a key given twice: usually empty).
    histograms: Vec<String>,
}

impl Parsed {
    pub(super) fn clear(&mut self) {
        self.step = None;
        self.time = None;
        self.hparams = false;
        self.values.clear();
        self.histograms.clear();
        self.time_text.clear();
    }

    /// Drops the value of metric `i` (a key given again, whose last value is what counts).
    fn forget(&mut self, i: usize) {
        self.values.retain(|(j, ..)| *j != i);
    }

    /// A value of metric `i`: a key given twice keeps its last value, as a JSON map does.
    fn push(&mut self, i: usize, y: f64, integer: bool) {
        match self.values.iter_mut().find(|(j, ..)| *j == i) {
            Some(slot) => *slot = (i, y, integer),
            None => self.values.push((i, y, integer)),
        }
    }
}

pub(super) struct LineSeed<'a, 'k> {
    pub(super) scan: &'a mut FileScan,
    pub(super) parsed: &'a mut Parsed,
    pub(super) keep: Keep<'k>,
}

impl<'de> DeserializeSeed<'de> for LineSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl LineSeed<'_, '_> {
    /// Forgets what an earlier occurrence of `key` in this line gave: its value, or its
    /// histogram's fields. (JSON keeps a key's last value; keys given twice are rare.)
    fn forget_key(&mut self, key: &str) {
        if let Some(&i) = self.scan.index.get(key) {
            self.parsed.forget(i);
        }
        if let Some(at) = self.parsed.histograms.iter().position(|h| h == key) {
            self.parsed.histograms.remove(at);
            for suffix in HISTOGRAM_FIELDS {
                if let Some(&i) = self.scan.index.get(&format!("{key}.{suffix}")) {
                    self.parsed.forget(i);
                }
            }
        }
    }
}

impl<'de> Visitor<'de> for LineSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let key: &str = &key;
            match key {
                "timestamp" => {
                    let text = map.next_value_seed(TextSeed)?;
                    // Every line's time only for points on a time axis; otherwise only
                    // the first and last are needed: the text is kept, parsed later.
                    self.parsed.time_text.clear();
                    match text.as_deref() {
                        Some(text) if self.keep.x == X::Time || self.keep.times => {
                            self.parsed.time = self.scan.clock.parse(text);
                        }
                        Some(text) => self.parsed.time_text.push_str(text),
                        None => {}
                    }
                }
                "step" => self.parsed.step = map.next_value_seed(StepSeed)?,
                "hparams" => {
                    self.parsed.hparams = map.next_value::<Json>()? == Json::Bool(true);
                }
                "rank" | "message" => {
                    map.next_value::<IgnoredAny>()?;
                }
                name => match map.next_value_seed(ValueSeed)? {
                    Number::Histogram(stats) => {
                        self.forget_key(name);
                        self.parsed.histograms.push(name.to_owned());
                        for (suffix, y, integer) in stats.fields() {
                            let Some(y) = y else { continue };
                            let i = self.scan.metric(&format!("{name}.{suffix}"), self.keep);
                            self.parsed.push(i, y, integer);
                        }
                    }
                    value => match value.value() {
                        Some(y) => {
                            let i = self.scan.metric(name, self.keep);
                            if !self.parsed.histograms.is_empty() {
                                self.forget_key(name);
                            }
                            self.parsed.push(i, y, value.integer());
                        }
                        // Not a number: an earlier value of the same key no longer counts.
                        None => self.forget_key(name),
                    },
                },
            }
        }
        Ok(())
    }
}

/// A key, borrowed from the line when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl std::ops::Deref for Key<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(v.to_owned()))
    }
}

/// A string value (the timestamp), or `None` for anything else.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Option<Key<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextSeed {
    type Value = Option<Key<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Key::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Key::Owned(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// The step: a non-negative integer (`as_u64`), else none.
struct StepSeed;

impl<'de> DeserializeSeed<'de> for StepSeed {
    type Value = Option<u64>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        Ok(match d.deserialize_any(ValueSeed)? {
            Number::Unsigned(v) => Some(v),
            _ => None,
        })
    }
}

/// What a metric's value is.
enum Number {
    /// A non-negative integer (kept apart for `as_u64`'s sake: steps and counts).
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    One(f64),
    /// Boxed: rare, and far larger than a number.
    Histogram(Box<Histogram>),
    None,
}

impl Number {
    /// Whether it was a JSON integer.
    fn integer(&self) -> bool {
        matches!(self, Number::Unsigned(_) | Number::Signed(_))
    }

    /// As `trainlog::jsonl::number` reads it.
    fn value(&self) -> Option<f64> {
        match *self {
            Number::Unsigned(v) => Some(v as f64),
            Number::Signed(v) => Some(v as f64),
            Number::One(y) => Some(y),
            Number::Histogram(_) | Number::None => None,
        }
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Number;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Number, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Number;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
        Ok(Number::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
        Ok(Number::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
        Ok(Number::One(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
        Ok(match v {
            "NaN" => Number::One(f64::NAN),
            "Infinity" => Number::One(f64::INFINITY),
            "-Infinity" => Number::One(f64::NEG_INFINITY),
            _ => Number::None,
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Number, E> {
        Ok(Number::None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Number, E> {
        Ok(Number::None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Number, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Number::None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Number, A::Error> {
        let mut h = Histogram::default();
        let (mut edges, mut counts) = (false, false);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let slot = match &*key {
                "edges" => {
                    edges = true;
                    None
                }
                "counts" => {
                    counts = true;
                    None
                }
                "count" => Some(&mut h.count),
                "min" => Some(&mut h.min),
                "max" => Some(&mut h.max),
                "mean" => Some(&mut h.mean),
                "nan" => Some(&mut h.nan),
                "pos_inf" => Some(&mut h.pos_inf),
                "neg_inf" => Some(&mut h.neg_inf),
                _ => None,
            };
            match slot {
                Some(slot) => {
                    let value = map.next_value_seed(ValueSeed)?;
                    let unsigned = match value {
                        Number::Unsigned(v) => Some(v),
                        _ => None,
                    };
                    *slot = Some((value.value(), unsigned, value.integer()));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(if edges && counts {
            Number::Histogram(Box::new(h))
        } else {
            Number::None
        })
    }
}

/// A histogram's statistics as JSONL writes them: each (its value as a number, the value
/// if it was a non-negative integer), when present.
#[derive(Default)]
struct Histogram {
    count: Option<Stat>,
    min: Option<Stat>,
    max: Option<Stat>,
    mean: Option<Stat>,
    nan: Option<Stat>,
    pos_inf: Option<Stat>,
    neg_inf: Option<Stat>,
}

/// One statistic of a histogram: its value as a number, the value if it was a
/// non-negative integer, and whether it was an integer.
type Stat = (Option<f64>, Option<u64>, bool);

impl Histogram {
    /// The fields the commands show (as `runs::histogram_stats` names them), and whether
    /// each is an integer.
    fn fields(&self) -> [(&'static str, Option<f64>, bool); 5] {
        let number = |v: &Option<Stat>| v.and_then(|(y, _, _)| y);
        let integer = |v: &Option<Stat>| v.is_some_and(|(_, _, i)| i);
        let unsigned = |v: &Option<Stat>| v.and_then(|(_, u, _)| u);
        let nonfinite: u64 = [&self.nan, &self.pos_inf, &self.neg_inf]
            .into_iter()
            .filter_map(unsigned)
            .sum();
        let [count, min, max, mean, nonfinite_name] = HISTOGRAM_FIELDS;
        [
            (count, number(&self.count), integer(&self.count)),
            (min, number(&self.min), integer(&self.min)),
            (max, number(&self.max), integer(&self.max)),
            (mean, number(&self.mean), integer(&self.mean)),
            (nonfinite_name, Some(nonfinite as f64), true),
        ]
    }
}
