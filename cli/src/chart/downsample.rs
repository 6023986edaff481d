//! Fewer points for a line without hiding any: per pixel column, the first, lowest,
//! highest and last point (M4: Jugel et al., "M4: A Visualization-Oriented Time Series
//! Data Aggregation", VLDB 2014).
//!
//! A line drawn through those points covers the same pixels as the line through all of
//! them, so a spike of one step in a million is still drawn, and a chart of W pixels
//! holds at most 4·W points whatever the run's length (TensorBoard instead samples 1,000
//! points per tag at random, which can drop a spike). Smoothing is applied before this,
//! on every point, as TensorBoard does.

/// `points` (pixel coordinates, in drawing order) reduced to at most four per run of
/// consecutive points in the same pixel column (`x.floor()`): the run's first and last
/// point, and its lowest and highest, in their original order. Points are returned as
/// they were, never moved or invented.
pub fn m4(points: &[(f32, f32)]) -> Vec<(f32, f32)> {
    if points.len() <= 4 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len().min(4 * 2048));
    let mut start = 0;
    while start < points.len() {
        let column = points[start].0.floor();
        let mut end = start + 1;
        // (index, y) of the lowest and highest point of the run; the first one that
        // reached each.
        let (mut low, mut high) = ((start, points[start].1), (start, points[start].1));
        while end < points.len() && points[end].0.floor() == column {
            let y = points[end].1;
            if y < low.1 {
                low = (end, y);
            }
            if y > high.1 {
                high = (end, y);
            }
            end += 1;
        }
        let last = end - 1;
        let mut keep = [start, low.0, high.0, last];
        keep.sort_unstable();
        let mut previous = None;
        for i in keep {
            if previous != Some(i) {
                out.push(points[i]);
                previous = Some(i);
            }
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_spike_of_one_point_in_a_million_is_kept() {
        let n = 1_000_000;
        let points: Vec<(f32, f32)> = (0..n)
            .map(|i| {
                let x = i as f32 * 900.0 / n as f32;
                let y = if i == 543_210 { 500.0 } else { 100.0 };
                (x, y)
            })
            .collect();
        let out = m4(&points);
        assert!(out.len() <= 4 * 900, "{}", out.len());
        assert!(out.contains(&points[543_210]));
        assert_eq!((out[0], out[out.len() - 1]), (points[0], points[n - 1]));
    }

    #[test]
    fn short_lines_are_left_alone() {
        let points = [(0.5, 1.0), (0.6, 3.0), (0.7, 2.0)];
        assert_eq!(m4(&points), points);
    }

    /// Points in pixel space: x mostly increasing (steps), with repeats and jumps back
    /// (a resumed run's rank, a wall clock set back).
    fn line() -> impl Strategy<Value = Vec<(f32, f32)>> {
        prop::collection::vec((0.0f32..3.0, -1e4f32..1e4), 0..400).prop_map(|steps| {
            let mut x = 0.0;
            steps
                .into_iter()
                .enumerate()
                .map(|(i, (dx, y))| {
                    x = if i % 97 == 96 { x - dx * 10.0 } else { x + dx };
                    (x, y)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_columns_extremes_and_ends_are_kept_in_order(points in line()) {
            let out = m4(&points);
            // A subsequence of the input: same points, same order.
            let mut rest = points.iter();
            for p in &out {
                prop_assert!(rest.any(|q| q == p), "{p:?} not in order");
            }
            if let (Some(first), Some(last)) = (points.first(), points.last()) {
                prop_assert_eq!(out.first(), Some(first));
                prop_assert_eq!(out.last(), Some(last));
            }
            // Per run of one column: its first, last, lowest and highest y are drawn, and
            // at most four points.
            let mut runs: Vec<&[(f32, f32)]> = Vec::new();
            let mut start = 0;
            for i in 1..=points.len() {
                if i == points.len() || points[i].0.floor() != points[start].0.floor() {
                    runs.push(&points[start..i]);
                    start = i;
                }
            }
            prop_assert!(out.len() <= 4 * runs.len().max(1));
            let mut at = 0;
            for run in runs {
                let kept: Vec<_> = out[at..]
                    .iter()
                    .take_while(|p| p.0.floor() == run[0].0.floor())
                    .take(4)
                    .copied()
                    .collect();
                at += kept.len();
                let ys = |s: &[(f32, f32)]| {
                    let lo = s.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
                    let hi = s.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
                    (lo, hi)
                };
                prop_assert_eq!(ys(&kept), ys(run));
                prop_assert_eq!(kept.first(), run.first());
                prop_assert_eq!(kept.last(), run.last());
            }
            prop_assert_eq!(at, out.len());
        }
    }
}
