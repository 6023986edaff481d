//! Axis ticks people can read: equal steps of 1, 2, 2.5 or 5 × 10^k, labels without
//! floating-point noise (`0 200 400`, `0.5 1.0 1.5`, `1e-4 2e-4`), decades on a log axis,
//! and clock times on a wall-time axis.

/// An axis: its range (the outermost ticks for a linear axis) and labelled ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<(f64, String)>,
}

/// Linear ticks covering `lo..=hi` with about `target` steps; `integer` keeps the step at
/// least 1 (steps are whole numbers).
pub fn linear(lo: f64, hi: f64, target: usize, integer: bool) -> Axis {
    let (lo, hi) = widen(lo, hi);
    // The nice step whose tick count comes closest to the target (the larger on a tie).
    let raw = (hi - lo) / target.max(1) as f64;
    let base = raw.log10().floor() as i32;
    let intervals = |step: f64| ((hi / step - 1e-9).ceil() - (lo / step + 1e-9).floor()) as usize;
    let mut best: Option<(usize, f64, i32)> = None;
    for exponent in base - 1..=base + 1 {
        if integer && exponent < 0 {
            continue;
        }
        for m in [1.0, 2.0, 2.5, 5.0] {
            if integer && exponent == 0 && m == 2.5 {
                continue;
            }
            let miss = intervals(m * 10f64.powi(exponent)).abs_diff(target);
            if best.is_none_or(|(b, _, _)| miss <= b) {
                best = Some((miss, m, exponent));
            }
        }
    }
    let (_, multiple, exponent) = best.unwrap_or((0, 1.0, base.max(0)));
    let step = multiple * 10f64.powi(exponent);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    // Decimals a label needs: those of the step (one more for 2.5 × 10^k).
    let decimals = (-exponent + i32::from(multiple == 2.5)).max(0) as usize;
    let largest = (first.unsigned_abs().max(last.unsigned_abs()) as f64) * step;
    let scientific = !(1e-3..1e6).contains(&largest);
    let ticks = (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            let label = if scientific {
                scientific_label(v, step, multiple == 2.5)
            } else {
                format!("{v:.decimals$}")
            };
            // `-0.0` prints as `-0.0`.
            let label = if k == 0 {
                label.trim_start_matches('-').to_owned()
            } else {
                label
            };
            (v, label)
        })
        .collect();
    Axis {
        lo: first as f64 * step,
        hi: last as f64 * step,
        ticks,
    }
}

/// A range with room in it: a single value gets ±10 % (±1 around zero).
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (-1.0, 1.0)
    } else {
        let d = lo.abs() * 0.1;
        (lo - d, lo + d)
    }
}

/// `1e-4`, `1.5e-4`, `0`: the mantissa with the digits the step needs.
fn scientific_label(v: f64, step: f64, quarter: bool) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (v.abs().log10().floor() - step.log10().floor()) as i64 + i64::from(quarter);
    let text = format!("{v:.0$e}", digits.max(0) as usize);
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    format!("{mantissa}e{exp}")
}

/// Ticks for a log10 axis over values `lo..=hi` (both > 0), positions in log10 units:
/// decades, or linear ticks when the range spans less than about two decades.
pub fn log10(lo: f64, hi: f64) -> Axis {
    let (l, h) = (lo.log10(), hi.log10());
    let (first, last) = (l.floor() as i32, h.ceil() as i32);
    if last - first >= 2 {
        // Every decade, or every few when there are many.
        let every = ((last - first) as usize).div_ceil(8).max(1);
        let ticks = (first..=last)
            .filter(|e| (e - first) as usize % every == 0)
            .map(|e| (e as f64, decade_label(e)))
            .collect();
        return Axis {
            lo: first as f64,
            hi: last as f64,
            ticks,
        };
    }
    let linear = linear(lo, hi, 4, false);
    let ticks = linear
        .ticks
        .into_iter()
        .filter(|(v, _)| *v > 0.0)
        .map(|(v, label)| (v.log10(), label))
        .collect();
    Axis {
        lo: l,
        hi: h,
        ticks,
    }
}

fn decade_label(e: i32) -> String {
    match e {
        -3..=-1 => format!("{}", 10f64.powi(e)),
        0..=4 => format!("{}", 10i64.pow(e as u32)),
        _ => format!("1e{e}"),
    }
}

/// The unit for a relative-time axis spanning `span` seconds: (divisor, name).
pub fn time_unit(span: f64) -> (f64, &'static str) {
    if span <= 120.0 {
        (1.0, "s")
    } else if span <= 2.0 * 3600.0 {
        (60.0, "min")
    } else if span <= 3.0 * 86400.0 {
        (3600.0, "h")
    } else {
        (86400.0, "days")
    }
}

/// Wall-clock ticks (UTC) over unix seconds `lo..=hi`.
pub fn wall(lo: f64, hi: f64, target: usize) -> Axis {
    // Down to milliseconds, so a run shorter than a second still gets ticks.
    const STEPS: [f64; 29] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0,
        86400.0, 172800.0, 604800.0,
    ];
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 30.0, lo + 30.0)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| *s >= raw)
        .unwrap_or_else(|| (raw / 86400.0).ceil() * 86400.0);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let days_differ = (lo / 86400.0).floor() != (hi / 86400.0).floor();
    let ticks = (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // `YYYY-MM-DDTHH:MM:SS…`
            let text = trainlog::time::rfc3339(trainlog::time::from_unix_seconds(v));
            let label = if step >= 86400.0 {
                text[..10].to_owned()
            } else if days_differ {
                format!("{} {}", &text[5..10], &text[11..16])
            } else if step < 1.0 {
                subsecond_label(v, step)
            } else if step < 60.0 {
                text[11..19].to_owned()
            } else {
                text[11..16].to_owned()
            };
            (v, label)
        })
        .collect();
    Axis { lo, hi, ticks }
}

/// `HH:MM:SS.f…` for a tick at Unix time `v` on an axis of steps under a second, with as
/// many decimals as the step has (counted in whole milliseconds, so `0.1 × k` never reads
/// `…0.0999`).
fn subsecond_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()) as u32;
    let ms = (v * 1000.0).round() as i64;
    let (secs, ms) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let day = secs.rem_euclid(86400);
    let fraction = format!("{ms:03}");
    format!(
        "{:02}:{:02}:{:02}.{}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        &fraction[..decimals.clamp(1, 3) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_under_a_second_gets_wall_clock_ticks() {
        let t0 = 1_767_225_600.0; // 2026-01-01T00:00:00Z
        let axis = wall(t0, t0 + 0.45, 6);
        assert_eq!(
            labels(&axis),
            [
                "00:00:00.0",
                "00:00:00.1",
                "00:00:00.2",
                "00:00:00.3",
                "00:00:00.4"
            ]
        );
        let axis = wall(t0 + 0.0105, t0 + 0.0395, 6);
        assert_eq!(
            labels(&axis),
            [
                "00:00:00.015",
                "00:00:00.020",
                "00:00:00.025",
                "00:00:00.030",
                "00:00:00.035"
            ]
        );
    }

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.ticks.iter().map(|(_, l)| l.as_str()).collect()
    }

    /// Consecutive ticks are equal steps of 1, 2, 2.5 or 5 × 10^k.
    fn assert_nice(axis: &Axis) {
        let values: Vec<f64> = axis.ticks.iter().map(|t| t.0).collect();
        let step = values[1] - values[0];
        for pair in values.windows(2) {
            assert!(
                ((pair[1] - pair[0]) - step).abs() < step * 1e-9,
                "{values:?}"
            );
        }
        let mantissa = step / 10f64.powf(step.log10().floor());
        assert!(
            [1.0, 2.0, 2.5, 5.0]
                .iter()
                .any(|m| (m - mantissa).abs() < 1e-9),
            "step {step}"
        );
    }

    #[test]
    fn steps_0_to_999() {
        let axis = linear(0.0, 999.0, 5, true);
        assert_eq!(labels(&axis), ["0", "200", "400", "600", "800", "1000"]);
        assert_nice(&axis);
        assert_eq!((axis.lo, axis.hi), (0.0, 1000.0));
    }

    #[test]
    fn losses_between_a_quarter_and_three() {
        let axis = linear(0.251, 2.94, 5, false);
        assert_eq!(
            labels(&axis),
            ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
        );
        assert_nice(&axis);
    }

    #[test]
    fn tiny_learning_rates_are_scientific() {
        let axis = linear(1e-9, 3e-4, 3, false);
        assert_eq!(labels(&axis), ["0", "1e-4", "2e-4", "3e-4"]);
        let axis = linear(1e-9, 3e-4, 5, false);
        assert_eq!(
            labels(&axis),
            ["0", "5e-5", "1e-4", "1.5e-4", "2e-4", "2.5e-4", "3e-4"]
        );
        assert_nice(&axis);
        let axis = linear(1e-4, 2.2e-4, 5, false);
        assert!(labels(&axis).contains(&"1.5e-4"), "{:?}", labels(&axis));
        assert_nice(&axis);
    }

    #[test]
    fn a_single_point_and_negative_values() {
        let axis = linear(5.0, 5.0, 5, false);
        assert!(axis.lo < 5.0 && axis.hi > 5.0);
        assert_nice(&axis);
        let axis = linear(0.0, 0.0, 5, true);
        assert!(axis.lo < 0.0 && axis.hi > 0.0);
        let axis = linear(-3.2, 1.7, 5, false);
        assert_eq!(labels(&axis), ["-4", "-3", "-2", "-1", "0", "1", "2"]);
        assert_nice(&axis);
        let axis = linear(-0.3, 0.0, 5, false);
        assert_eq!(labels(&axis)[0], "-0.30");
        assert_eq!(*labels(&axis).last().unwrap(), "0.00");
    }

    #[test]
    fn quarter_steps_get_two_decimals_and_few_steps_stay_integers() {
        let axis = linear(0.0, 1.0, 4, false);
        assert_eq!(labels(&axis), ["0.00", "0.25", "0.50", "0.75", "1.00"]);
        let axis = linear(0.0, 2.0, 6, true);
        assert_eq!(labels(&axis), ["0", "1", "2"]);
        let axis = linear(0.0, 2_500_000.0, 5, true);
        assert_eq!(labels(&axis)[1], "5e5");
    }

    #[test]
    fn log_axes_use_decades() {
        let axis = log10(1e-5, 0.3);
        assert_eq!(labels(&axis), ["1e-5", "1e-4", "0.001", "0.01", "0.1", "1"]);
        let axis = log10(2.0, 9.0);
        assert!(axis.ticks.len() >= 3, "{:?}", axis.ticks);
    }

    #[test]
    fn wall_clock_ticks_are_round_times() {
        // 2026-11-25 14:00:00 UTC
        let t0 = 1_795_615_200.0;
        let axis = wall(t0 + 10.0, t0 + 3600.0, 6);
        assert_eq!(labels(&axis)[0], "14:10");
        assert!(axis.ticks.windows(2).all(|w| w[1].0 - w[0].0 == 600.0));
        assert_eq!(time_unit(90.0), (1.0, "s"));
        assert_eq!(time_unit(3000.0), (60.0, "min"));
    }
}
