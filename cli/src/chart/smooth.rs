//! TensorBoard's scalar smoothing: a debiased exponential moving average.

/// Smooths `ys` as TensorBoard's scalar charts do with weight `w` (0 ≤ w < 1):
/// `last = last·w + (1−w)·y`, divided by `1 − w^n` after n finite points so the start is
/// not pulled towards 0. Non-finite values pass through unchanged (they stay gaps), and
/// a constant series is left as it is.
pub fn ema(ys: &[f64], w: f64) -> Vec<f64> {
    let constant = ys.windows(2).all(|p| p[0] == p[1]);
    let mut last = 0.0;
    let mut n = 0;
    ys.iter()
        .map(|&y| {
            if constant || !y.is_finite() {
                return y;
            }
            last = last * w + (1.0 - w) * y;
            n += 1;
            let debias = if w == 1.0 { 1.0 } else { 1.0 - w.powi(n) };
            last / debias
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_tensorboards_formula_on_a_known_series() {
        // Worked by hand with w = 0.6:
        // n=1: last = 0.4·1 = 0.4, debias 0.4 → 1
        // n=2: last = 0.24 + 0.4·3 = 1.44, debias 1 − 0.36 = 0.64 → 2.25
        // n=3: last = 0.864 + 0.4·2 = 1.664, debias 1 − 0.216 = 0.784 → 2.1224489…
        let out = ema(&[1.0, 3.0, 2.0], 0.6);
        assert!((out[0] - 1.0).abs() < 1e-12);
        assert!((out[1] - 2.25).abs() < 1e-12);
        assert!((out[2] - 1.664 / 0.784).abs() < 1e-12);
    }

    #[test]
    fn zero_weight_is_the_raw_series_and_gaps_stay_gaps() {
        assert_eq!(ema(&[1.0, 5.0, 2.0], 0.0), [1.0, 5.0, 2.0]);
        let out = ema(&[1.0, f64::NAN, 3.0], 0.5);
        assert_eq!(out[0], 1.0);
        assert!(out[1].is_nan());
        // The NaN does not count: n=2 at the third point.
        assert!((out[2] - (0.25 + 1.5) / 0.75).abs() < 1e-12);
        assert_eq!(ema(&[2.0, 2.0, 2.0], 0.9), [2.0, 2.0, 2.0]);
    }
}
