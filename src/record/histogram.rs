//! [`Histogram`]: a distribution of values (weights, gradients, activations) logged at a
//! step, binned once on the worker for every sink.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// How many equal-width bins a histogram gets (what `wandb.Histogram` uses by default).
pub const HISTOGRAM_BINS: usize = 64;

/// The values of one histogram, as the caller gave them: copying them is all the caller
/// pays. The [`summary`](Self::summary) (statistics and bins) is computed the first time a
/// sink asks, on the worker thread, and shared by every sink. Cloning is cheap.
///
/// ```
/// let h = trainlog::Histogram::new(&[1.0f32, 2.0, 2.0, f32::NAN]);
/// let s = h.summary();
/// assert_eq!((s.count, s.finite, s.nan), (4, 3, 1));
/// assert_eq!((s.min, s.max), (1.0, 2.0));
/// assert_eq!(s.counts.iter().sum::<u64>(), 3);
/// ```
#[derive(Clone)]
pub struct Histogram(Arc<Inner>);

struct Inner {
    values: Values,
    summary: OnceLock<HistogramSummary>,
}

/// The copied values, kept in the caller's float width.
enum Values {
    F32(Box<[f32]>),
    F64(Box<[f64]>),
}

/// The element types [`Histogram::new`] and [`log_histogram`](crate::log_histogram) take:
/// `f32` and `f64`.
pub trait HistogramValue: Copy + Into<f64> + private::Sealed {
    #[doc(hidden)]
    fn copy_values(values: &[Self]) -> Histogram;
}

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

impl HistogramValue for f32 {
    fn copy_values(values: &[Self]) -> Histogram {
        Histogram::from_values(Values::F32(values.into()))
    }
}

impl HistogramValue for f64 {
    fn copy_values(values: &[Self]) -> Histogram {
        Histogram::from_values(Values::F64(values.into()))
    }
}

/// What a histogram's values add up to, with [`HISTOGRAM_BINS`] equal-width bins between
/// the smallest and largest finite value (as `numpy.histogram` makes them: every bin is
/// half-open `[lo, hi)` except the last, which holds its upper edge too; when all finite
/// values are equal the range is that value ± 0.5; with none it is 0 to 1).
///
/// NaN and ±∞ never enter the bins or the statistics (they would make every bin
/// meaningless); they are counted apart, and every sink shows those counts, so a
/// diverging layer cannot hide in a histogram.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistogramSummary {
    /// Every value logged, non-finite ones included.
    pub count: u64,
    /// The finite values: what the bins and statistics cover.
    pub finite: u64,
    /// NaN values.
    pub nan: u64,
    /// `+∞` values.
    pub pos_inf: u64,
    /// `-∞` values.
    pub neg_inf: u64,
    /// Smallest finite value (NaN when there is none).
    pub min: f64,
    /// Largest finite value (NaN when there is none).
    pub max: f64,
    /// Sum of the finite values.
    pub sum: f64,
    /// Sum of their squares.
    pub sum_squares: f64,
    /// Bin edges, one more than `counts`, increasing.
    pub edges: Vec<f64>,
    /// Values in each bin.
    pub counts: Vec<u64>,
}

impl HistogramSummary {
    /// Mean of the finite values (NaN when there is none).
    pub fn mean(&self) -> f64 {
        if self.finite == 0 {
            f64::NAN
        } else {
            self.sum / self.finite as f64
        }
    }

    /// NaN and infinite values together.
    pub fn nonfinite(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf
    }

    /// The scalars backends without a histogram type (MLflow, Prometheus) get, named
    /// `<name>.count`, `.min`, `.max`, `.mean` and `.nonfinite`.
    pub fn scalars(&self) -> [(&'static str, f64); 5] {
        [
            ("count", self.count as f64),
            ("min", self.min),
            ("max", self.max),
            ("mean", self.mean()),
            ("nonfinite", self.nonfinite() as f64),
        ]
    }

    fn of<T: Copy + Into<f64>>(values: &[T], bins: usize) -> Self {
        let mut s = HistogramSummary {
            count: values.len() as u64,
            finite: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            sum_squares: 0.0,
            edges: Vec::new(),
            counts: vec![0; bins],
        };
        for &v in values {
            let v: f64 = v.into();
            if v.is_finite() {
                s.finite += 1;
                s.min = s.min.min(v);
                s.max = s.max.max(v);
                s.sum += v;
                s.sum_squares += v * v;
            } else if v.is_nan() {
                s.nan += 1;
            } else if v > 0.0 {
                s.pos_inf += 1;
            } else {
                s.neg_inf += 1;
            }
        }
        let (lo, hi) = match s.finite {
            0 => {
                s.min = f64::NAN;
                s.max = f64::NAN;
                (0.0, 1.0)
            }
            _ if s.min == s.max => (s.min - 0.5, s.max + 0.5),
            _ => (s.min, s.max),
        };
        // Halves throughout, so that a range like -1e308..1e308 does not overflow.
        let half_width = hi * 0.5 - lo * 0.5;
        s.edges = (0..=bins)
            .map(|i| {
                let t = i as f64 / bins as f64;
                if i == 0 {
                    lo
                } else if i == bins {
                    hi
                } else {
                    // Halving a subnormal rounds: kept within the range, so the edges
                    // stay in order and the first and last are the values themselves.
                    ((lo * 0.5 + half_width * t) * 2.0).clamp(lo, hi)
                }
            })
            .collect();
        for &v in values {
            let v: f64 = v.into();
            if !v.is_finite() {
                continue;
            }
            let t = (v * 0.5 - lo * 0.5) / half_width;
            let mut i = ((t * bins as f64) as usize).min(bins - 1);
            // Rounding may put a value one bin off its edges: the edges decide.
            while i > 0 && v < s.edges[i] {
                i -= 1;
            }
            while i + 1 < bins && v >= s.edges[i + 1] {
                i += 1;
            }
            s.counts[i] += 1;
        }
        s
    }
}

impl Histogram {
    /// Copies `values` (a slice of `f32` or `f64`).
    pub fn new<T: HistogramValue>(values: &[T]) -> Self {
        T::copy_values(values)
    }

    fn from_values(values: Values) -> Self {
        Histogram(Arc::new(Inner {
            values,
            summary: OnceLock::new(),
        }))
    }

    /// How many values were logged.
    pub fn len(&self) -> usize {
        match &self.0.values {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    /// Whether no value was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as `f64`.
    pub fn values(&self) -> Vec<f64> {
        match &self.0.values {
            Values::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::F64(v) => v.to_vec(),
        }
    }

    /// Statistics and bins, computed at the first call and kept.
    pub fn summary(&self) -> &HistogramSummary {
        self.0.summary.get_or_init(|| match &self.0.values {
            Values::F32(v) => HistogramSummary::of(v, HISTOGRAM_BINS),
            Values::F64(v) => HistogramSummary::of(v, HISTOGRAM_BINS),
        })
    }
}

impl PartialEq for Histogram {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.values() == other.values()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("len", &self.len())
            .finish()
    }
}

/// `histogram(count=…, min=…, max=…, mean=…)`, with `nonfinite=…` when there are any.
impl fmt::Display for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.summary();
        write!(
            f,
            "histogram(count={}, min={}, max={}, mean={}",
            s.count,
            s.min,
            s.max,
            s.mean()
        )?;
        if s.nonfinite() > 0 {
            write!(f, ", nonfinite={}", s.nonfinite())?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn like_numpy() {
        // numpy.histogram([0, 1, 2, 3, 4], bins=4) -> counts [1, 1, 1, 2], edges 0,1,2,3,4
        let s = HistogramSummary::of(&[0.0f64, 1.0, 2.0, 3.0, 4.0], 4);
        assert_eq!(s.counts, vec![1, 1, 1, 2]);
        assert_eq!(s.edges, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!((s.sum, s.sum_squares), (10.0, 30.0));
        // One distinct value: value ± 0.5.
        let s = HistogramSummary::of(&[2.0f64, 2.0], 2);
        assert_eq!(s.edges, vec![1.5, 2.0, 2.5]);
        assert_eq!(s.counts, vec![0, 2]);
        // Nothing finite: 0..1, empty bins, NaN statistics, the values counted apart.
        let s = HistogramSummary::of(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY], 2);
        assert_eq!(
            (s.count, s.finite, s.nan, s.pos_inf, s.neg_inf),
            (3, 0, 1, 1, 1)
        );
        assert!(s.min.is_nan() && s.max.is_nan() && s.mean().is_nan());
        assert_eq!(s.counts, vec![0, 0]);
        assert_eq!(s.edges, vec![0.0, 0.5, 1.0]);
        let s = HistogramSummary::of(&[] as &[f64], 3);
        assert_eq!((s.count, s.counts.iter().sum::<u64>()), (0, 0));
    }

    #[test]
    fn extreme_range_does_not_overflow() {
        let s = HistogramSummary::of(&[-f64::MAX, 0.0, f64::MAX], 4);
        assert_eq!(s.counts, vec![1, 0, 1, 1]);
        assert!(s.edges.iter().all(|e| e.is_finite()));
    }

    proptest! {
        #[test]
        fn bins_hold_every_finite_value_between_their_edges(
            values in prop::collection::vec(
                prop_oneof![
                    8 => -1e6f64..1e6,
                    1 => prop::num::f64::ANY,
                    1 => Just(0.0f64),
                ],
                0..300,
            ),
            bins in 1usize..80,
        ) {
            let s = HistogramSummary::of(&values, bins);
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            prop_assert_eq!(s.count, values.len() as u64);
            prop_assert_eq!(s.finite, finite.len() as u64);
            prop_assert_eq!(s.finite + s.nonfinite(), s.count);
            prop_assert_eq!(s.counts.len(), bins);
            prop_assert_eq!(s.edges.len(), bins + 1);
            prop_assert_eq!(s.counts.iter().sum::<u64>(), s.finite);
            prop_assert!(s.edges.windows(2).all(|w| w[0] <= w[1]));
            if let (Some(lo), Some(hi)) = (
                finite.iter().copied().reduce(f64::min),
                finite.iter().copied().reduce(f64::max),
            ) {
                prop_assert_eq!((s.min, s.max), (lo, hi));
                prop_assert!(s.edges[0] <= lo && hi <= s.edges[bins]);
                // Each bin's count is the number of values inside its edges.
                for i in 0..bins {
                    let (a, b) = (s.edges[i], s.edges[i + 1]);
                    let inside = finite
                        .iter()
                        .filter(|&&v| v >= a && (v < b || (i == bins - 1 && v <= b)))
                        .count() as u64;
                    prop_assert_eq!(s.counts[i], inside, "bin {} [{}, {})", i, a, b);
                }
            }
        }
    }
}
