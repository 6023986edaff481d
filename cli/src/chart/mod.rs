//! Line charts of metrics: one layout ([`layout`] → [`Scene`]) drawn by two backends,
//! SVG ([`svg::render`]) and PNG ([`png::render`]).
//!
//! A chart per metric, stacked; a line per run and rank in a colour-blind-safe palette
//! (Okabe–Ito); nice ticks; NaN and ±∞ are gaps; a point standing alone is a dot;
//! optional TensorBoard smoothing (raw line faint behind), log y axis, and step, relative
//! or wall-clock x axis. A line keeps at most four points per pixel column (first, last,
//! lowest, highest: [`downsample::m4`]), so a chart's size and drawing time follow its
//! pixels, not the run's length, and no spike is hidden.

mod downsample;
mod font;
pub mod png;
mod scene;
mod smooth;
pub mod svg;
mod ticks;

use scene::{Anchor, Rgb, Scene, Shape};
use ticks::Axis;

/// One line: its legend label and (x, y) points in x order; x is the step, seconds since
/// the run's first record, or unix seconds, as [`XKind`] says.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a metric and its lines.
pub struct Chart {
    pub title: String,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XKind {
    Step,
    Relative,
    Wall,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// TensorBoard smoothing weight, 0 for none.
    pub smooth: f64,
    pub log_y: bool,
    pub x: XKind,
    /// Text for a PNG: characters the embedded font cannot draw become a visible escape
    /// (`\u{640d}`) instead of a `?` (an SVG's viewer has fonts of its own for them).
    pub escape_undrawable: bool,
}

/// Okabe & Ito's palette, distinguishable with the common colour-vision deficiencies
/// (yellow, weak on white, last).
pub const PALETTE: [Rgb; 8] = [
    Rgb(0, 114, 178),
    Rgb(230, 159, 0),
    Rgb(0, 158, 115),
    Rgb(213, 94, 0),
    Rgb(204, 121, 167),
    Rgb(86, 180, 233),
    Rgb(0, 0, 0),
    Rgb(240, 228, 66),
];

pub const WIDTH: f32 = 960.0;
const TEXT: Rgb = Rgb(34, 34, 34);
const MUTED: Rgb = Rgb(85, 85, 85);
const GRID: Rgb = Rgb(229, 229, 229);
const AXIS: Rgb = Rgb(102, 102, 102);
const TICK_SIZE: f32 = 12.0;
const TITLE_SIZE: f32 = 15.0;
const LEGEND_SIZE: f32 = 12.0;
const PLOT_HEIGHT: f32 = 250.0;
const RIGHT: f32 = 28.0;
const LEGEND_ROW: f32 = 20.0;

/// Runs of finite points: a NaN or infinity breaks the line.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            current.push((x, y));
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The finite range of some values, if any.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Lays out every chart, stacked, into one scene.
pub fn layout(charts: &[Chart], options: &Options) -> Scene {
    let mut scene = Scene {
        width: WIDTH,
        height: 0.0,
        shapes: Vec::new(),
    };
    // One left margin for every chart, so stacked plots line up.
    let fonts = font::fonts();
    let label_width = charts
        .iter()
        .flat_map(|c| Prepared::new(c, options).y_axis.ticks)
        .map(|(_, l)| fonts.width(&l, TICK_SIZE, false))
        .fold(0.0, f32::max);
    let left = 18.0 + label_width + 10.0;
    for chart in charts {
        let top = scene.height;
        scene.height = top + layout_chart(&mut scene.shapes, chart, options, top, left);
    }
    scene.height = scene.height.max(1.0).ceil();
    scene
}

/// A chart's values as drawn (smoothed if asked, on the chosen axes) and its axes.
struct Prepared {
    x_unit: f64,
    x_title: String,
    x_axis: Axis,
    y_axis: Axis,
}

impl Prepared {
    fn new(chart: &Chart, options: &Options) -> Prepared {
        let drawn: Vec<Vec<(f64, f64)>> = chart
            .series
            .iter()
            .map(|s| values(s, options, false))
            .collect();
        let x_range = range(
            drawn
                .iter()
                .flatten()
                .filter(|p| p.1.is_finite())
                .map(|p| p.0),
        );
        let y_range = range(drawn.iter().flatten().map(|p| p.1));
        let (x0, x1) = x_range.unwrap_or((0.0, 1.0));
        let (y0, y1) = y_range.unwrap_or((0.0, 1.0));
        let (x_unit, x_title) = match options.x {
            XKind::Step => (1.0, "step".to_owned()),
            XKind::Relative => {
                let (unit, name) = ticks::time_unit(x1 - x0);
                (unit, format!("relative time ({name})"))
            }
            XKind::Wall => (1.0, "wall time (UTC)".to_owned()),
        };
        let x_axis = match options.x {
            XKind::Step => ticks::linear(x0, x1, 6, true),
            XKind::Relative => ticks::linear(x0 / x_unit, x1 / x_unit, 6, false),
            XKind::Wall => ticks::wall(x0, x1, 6),
        };
        let y_axis = if options.log_y {
            ticks::log10(10f64.powf(y0), 10f64.powf(y1))
        } else {
            ticks::linear(y0, y1, 5, false)
        };
        Prepared {
            x_unit,
            x_title,
            x_axis,
            y_axis,
        }
    }
}

/// A series' points as drawn: smoothed (if `smoothed`) and log10 on a log axis (values
/// ≤ 0 become gaps there).
fn values(s: &Series, options: &Options, smoothed: bool) -> Vec<(f64, f64)> {
    let raw: Vec<f64> = s.points.iter().map(|p| p.1).collect();
    let ys = if smoothed {
        smooth::ema(&raw, options.smooth)
    } else {
        raw
    };
    s.points
        .iter()
        .zip(ys)
        .map(|(&(x, _), y)| {
            let y = match options.log_y {
                true if y > 0.0 => y.log10(),
                true => f64::NAN,
                false => y,
            };
            (x, y)
        })
        .collect()
}

/// Lays out one chart starting at `top`, its plot starting at `left`; returns its height.
fn layout_chart(
    shapes: &mut Vec<Shape>,
    chart: &Chart,
    options: &Options,
    top: f32,
    left: f32,
) -> f32 {
    let fonts = font::fonts();
    let Prepared {
        x_unit,
        x_title,
        x_axis,
        y_axis,
    } = Prepared::new(chart, options);
    let right = WIDTH - RIGHT;
    let plot_top = top + 40.0;
    let plot_bottom = plot_top + PLOT_HEIGHT;
    let px = |x: f64| {
        let x = x / x_unit;
        left + ((x - x_axis.lo) / (x_axis.hi - x_axis.lo)) as f32 * (right - left)
    };
    let py = |y: f64| {
        plot_bottom - ((y - y_axis.lo) / (y_axis.hi - y_axis.lo)) as f32 * (plot_bottom - plot_top)
    };

    let shown = |text: &str| {
        if options.escape_undrawable {
            fonts.drawable(text, false).into_owned()
        } else {
            text.to_owned()
        }
    };
    let mut title = shown(&chart.title);
    if options.smooth > 0.0 {
        title.push_str(&format!("  (smoothed {})", options.smooth));
    }
    // A long title is shortened in the middle to fit above its plot.
    let title = fonts.elide_styled(&title, TITLE_SIZE, true, right - left);
    shapes.push(Shape::Text {
        at: (left, top + 26.0),
        text: title,
        size: TITLE_SIZE,
        bold: true,
        anchor: Anchor::Start,
        color: TEXT,
    });
    for (v, label) in &y_axis.ticks {
        let y = py(*v);
        shapes.push(Shape::Rule {
            from: (left, y),
            to: (right, y),
            color: GRID,
            width: 1.0,
        });
        shapes.push(Shape::Text {
            at: (left - 8.0, y + 4.0),
            text: label.clone(),
            size: TICK_SIZE,
            bold: false,
            anchor: Anchor::End,
            color: MUTED,
        });
    }
    for (v, label) in &x_axis.ticks {
        let x = px(*v * x_unit);
        shapes.push(Shape::Rule {
            from: (x, plot_top),
            to: (x, plot_bottom),
            color: GRID,
            width: 1.0,
        });
        shapes.push(Shape::Rule {
            from: (x, plot_bottom),
            to: (x, plot_bottom + 4.0),
            color: AXIS,
            width: 1.0,
        });
        shapes.push(Shape::Text {
            at: (x, plot_bottom + 18.0),
            text: label.clone(),
            size: TICK_SIZE,
            bold: false,
            anchor: Anchor::Middle,
            color: MUTED,
        });
    }
    shapes.push(Shape::Frame {
        x: left,
        y: plot_top,
        w: right - left,
        h: PLOT_HEIGHT,
        color: AXIS,
    });
    shapes.push(Shape::Text {
        at: ((left + right) / 2.0, plot_bottom + 38.0),
        text: x_title,
        size: TICK_SIZE,
        bold: false,
        anchor: Anchor::Middle,
        color: TEXT,
    });
    // Raw lines first (faint when smoothed lines go over them).
    let smoothing = options.smooth > 0.0;
    let mut passes = vec![(false, if smoothing { 0.25 } else { 1.0 })];
    if smoothing {
        passes.push((true, 1.0));
    }
    for (smoothed, opacity) in passes {
        for (j, series) in chart.series.iter().enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            let points = values(series, options, smoothed);
            for segment in segments(&points) {
                let pixels: Vec<(f32, f32)> =
                    segment.iter().map(|&(x, y)| (px(x), py(y))).collect();
                let pixels = downsample::m4(&pixels);
                if let [only] = pixels.as_slice() {
                    shapes.push(Shape::Dot {
                        label: series.label.clone(),
                        at: *only,
                        radius: 3.0,
                        color,
                    });
                } else {
                    shapes.push(Shape::Line {
                        label: series.label.clone(),
                        points: pixels,
                        color,
                        width: if smoothing && !smoothed { 1.5 } else { 2.0 },
                        opacity,
                    });
                }
            }
        }
    }
    // The legend below the axis, entries flowing left to right; long names are shortened
    // in the middle, where run names differ least.
    let legend_top = plot_bottom + 56.0;
    let (mut x, mut row) = (left, 0usize);
    let max_label = (right - left) * 0.6;
    for (j, series) in chart.series.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let label = fonts.elide(&shown(&series.label), LEGEND_SIZE, max_label);
        let w = 22.0 + fonts.width(&label, LEGEND_SIZE, false);
        if x > left && x + w > right {
            row += 1;
            x = left;
        }
        let y = legend_top + row as f32 * LEGEND_ROW;
        shapes.push(Shape::Rule {
            from: (x, y - 4.0),
            to: (x + 16.0, y - 4.0),
            color,
            width: 3.0,
        });
        shapes.push(Shape::Text {
            at: (x + 22.0, y),
            text: label,
            size: LEGEND_SIZE,
            bold: false,
            anchor: Anchor::Start,
            color: TEXT,
        });
        x += w + 20.0;
    }
    legend_top - top + row as f32 * LEGEND_ROW + 18.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(scene: &Scene) -> Vec<(String, f32, bool)> {
        scene
            .shapes
            .iter()
            .filter_map(|s| match s {
                Shape::Text {
                    text, size, bold, ..
                } => Some((text.clone(), *size, *bold)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn png_text_escapes_what_the_font_cannot_draw_and_long_titles_fit() {
        let title = format!("損失/{}", "long.metric.name.".repeat(20));
        let chart = Chart {
            title: title.clone(),
            series: vec![Series {
                label: "実験".into(),
                points: vec![(0.0, 1.0), (1.0, 0.5)],
            }],
        };
        let options = |escape| Options {
            escape_undrawable: escape,
            smooth: 0.0,
            log_y: false,
            x: XKind::Step,
        };
        let png = texts(&layout(std::slice::from_ref(&chart), &options(true)));
        let fonts = font::fonts();
        let (shown_title, size, bold) = &png[0];
        assert!(
            shown_title.starts_with("\\u{640d}\\u{5931}/"),
            "{shown_title}"
        );
        assert!(shown_title.contains('…'), "{shown_title}");
        assert!(
            fonts.width(shown_title, *size, *bold) <= WIDTH,
            "{shown_title}"
        );
        assert!(
            png.iter().any(|(t, ..)| t == "\\u{5b9f}\\u{9a13}"),
            "{png:?}"
        );
        // An SVG keeps the characters (its viewer has fonts for them).
        let svg = texts(&layout(&[chart], &options(false)));
        assert!(svg[0].0.starts_with("損失/"), "{:?}", svg[0]);
        assert!(svg.iter().any(|(t, ..)| t == "実験"), "{svg:?}");
    }
}
