//! Line charts of metrics over steps, rendered to SVG (text as text) or PNG (an 8×8
//! bitmap font), one chart per metric stacked vertically, one line per run and rank.

use std::fmt::Write as _;

use font8x8::UnicodeFonts;

/// One line: its legend label and (step, value) points in step order.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a metric and its lines.
pub struct Chart {
    pub title: String,
    pub series: Vec<Series>,
}

const WIDTH: u32 = 960;
const CHART_HEIGHT: u32 = 360;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;
/// Tableau 10: distinct, readable line colours.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Where a chart's data and its pixels meet.
struct Frame {
    top: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn new(index: usize, chart: &Chart) -> Frame {
        let finite = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in finite {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        let pad = (y1 - y0) * 0.05;
        Frame {
            top: index as f64 * CHART_HEIGHT as f64,
            x: (x0, x1),
            y: (y0 - pad, y1 + pad),
        }
    }

    fn left(&self) -> f64 {
        LEFT
    }
    fn right(&self) -> f64 {
        WIDTH as f64 - RIGHT
    }
    fn plot_top(&self) -> f64 {
        self.top + TOP
    }
    fn plot_bottom(&self) -> f64 {
        self.top + CHART_HEIGHT as f64 - BOTTOM
    }

    fn px(&self, x: f64) -> f64 {
        self.left() + (x - self.x.0) / (self.x.1 - self.x.0) * (self.right() - self.left())
    }

    fn py(&self, y: f64) -> f64 {
        self.plot_bottom()
            - (y - self.y.0) / (self.y.1 - self.y.0) * (self.plot_bottom() - self.plot_top())
    }

    /// Five ticks per axis: (value, label).
    fn ticks(range: (f64, f64), integer: bool) -> Vec<(f64, String)> {
        (0..=4)
            .map(|i| {
                let v = range.0 + (range.1 - range.0) * i as f64 / 4.0;
                let label = if integer {
                    format!("{}", v.round() as i64)
                } else {
                    trainlog::format::format_float(v)
                };
                (v, label)
            })
            .collect()
    }
}

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

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The charts as an SVG document; every line is a `<g class="series">` of polylines
/// (one per run of finite points) and dots (for points standing alone).
pub fn svg(charts: &[Chart]) -> String {
    let height = CHART_HEIGHT * charts.len().max(1) as u32;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        let f = Frame::new(i, chart);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="16" font-weight="bold">{}</text>"#,
            f.left(),
            f.top + 24.0,
            escape(&chart.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
            f.left(),
            f.plot_top(),
            f.right() - f.left(),
            f.plot_bottom() - f.plot_top()
        );
        for (v, label) in Frame::ticks(f.x, true) {
            let x = f.px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#ddd"/>"##,
                f.plot_top(),
                f.plot_bottom()
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
                f.plot_bottom() + 16.0
            );
        }
        for (v, label) in Frame::ticks(f.y, false) {
            let y = f.py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
                f.left(),
                f.right()
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
                f.left() - 6.0,
                y + 4.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">step</text>"#,
            (f.left() + f.right()) / 2.0,
            f.plot_bottom() + 34.0
        );
        for (j, series) in chart.series.iter().enumerate() {
            let (r, g, b) = PALETTE[j % PALETTE.len()];
            // One group per series; inside, one polyline per run of finite points (a NaN
            // or ∞ is a gap, as in the PNG) and a dot for a point standing alone.
            let _ = writeln!(
                s,
                r#"<g class="series" data-label="{}" fill="none" stroke="rgb({r},{g},{b})" stroke-width="2">"#,
                escape(&series.label)
            );
            for segment in segments(&series.points) {
                let points: Vec<String> = segment
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
                    .collect();
                if let [(x, y)] = segment.as_slice() {
                    let _ = writeln!(
                        s,
                        r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="rgb({r},{g},{b})"/>"#,
                        f.px(*x),
                        f.py(*y)
                    );
                } else {
                    let _ = writeln!(s, r#"<polyline points="{}"/>"#, points.join(" "));
                }
            }
            s.push_str("</g>\n");
            let ly = f.plot_top() + 14.0 + j as f64 * 18.0;
            let lx = f.right() + 14.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="rgb({r},{g},{b})" stroke-width="3"/>"#,
                lx + 20.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">{}</text>"#,
                lx + 26.0,
                ly + 4.0,
                escape(&series.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// An RGB canvas with the few drawing operations a chart needs.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![255; (width * height * 3) as usize],
        }
    }

    fn dot(&mut self, x: i64, y: i64, c: (u8, u8, u8)) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            let i = ((y as u32 * self.width + x as u32) * 3) as usize;
            self.pixels[i..i + 3].copy_from_slice(&[c.0, c.1, c.2]);
        }
    }

    /// A line `thick` pixels wide (Bresenham, thickened with a square brush).
    fn line(&mut self, from: (f64, f64), to: (f64, f64), c: (u8, u8, u8), thick: i64) {
        let (mut x0, mut y0) = (from.0.round() as i64, from.1.round() as i64);
        let (x1, y1) = (to.0.round() as i64, to.1.round() as i64);
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            for ox in 0..thick {
                for oy in 0..thick {
                    self.dot(x0 + ox - thick / 2, y0 + oy - thick / 2, c);
                }
            }
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// Text in the 8×8 font, `scale` pixels per font pixel; `anchor` 0 left, 1 middle, 2 end.
    fn text(&mut self, x: f64, y: f64, text: &str, scale: i64, anchor: u8) {
        let width = text.chars().count() as i64 * 8 * scale;
        let mut left = x.round() as i64 - [0, width / 2, width][anchor as usize % 3];
        let top = y.round() as i64 - 7 * scale;
        for ch in text.chars() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .unwrap_or(font8x8::BASIC_FONTS.get('?').unwrap_or([0; 8]));
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        for sx in 0..scale {
                            for sy in 0..scale {
                                self.dot(
                                    left + col * scale + sx,
                                    top + row as i64 * scale + sy,
                                    (0, 0, 0),
                                );
                            }
                        }
                    }
                }
            }
            left += 8 * scale;
        }
    }
}

/// The charts as a PNG image.
pub fn png(charts: &[Chart]) -> Result<Vec<u8>, String> {
    let height = CHART_HEIGHT * charts.len().max(1) as u32;
    let mut c = Canvas::new(WIDTH, height);
    let grid = (221, 221, 221);
    let frame = (68, 68, 68);
    for (i, chart) in charts.iter().enumerate() {
        let f = Frame::new(i, chart);
        c.text(f.left(), f.top + 26.0, &chart.title, 2, 0);
        for (v, label) in Frame::ticks(f.x, true) {
            let x = f.px(v);
            c.line((x, f.plot_top()), (x, f.plot_bottom()), grid, 1);
            c.text(x, f.plot_bottom() + 18.0, &label, 1, 1);
        }
        for (v, label) in Frame::ticks(f.y, false) {
            let y = f.py(v);
            c.line((f.left(), y), (f.right(), y), grid, 1);
            c.text(f.left() - 6.0, y + 4.0, &label, 1, 2);
        }
        c.text(
            (f.left() + f.right()) / 2.0,
            f.plot_bottom() + 36.0,
            "step",
            1,
            1,
        );
        let corners = [
            (f.left(), f.plot_top()),
            (f.right(), f.plot_top()),
            (f.right(), f.plot_bottom()),
            (f.left(), f.plot_bottom()),
        ];
        for k in 0..4 {
            c.line(corners[k], corners[(k + 1) % 4], frame, 1);
        }
        for (j, series) in chart.series.iter().enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            for segment in segments(&series.points) {
                let pts: Vec<(f64, f64)> =
                    segment.iter().map(|&(x, y)| (f.px(x), f.py(y))).collect();
                for pair in pts.windows(2) {
                    c.line(pair[0], pair[1], color, 2);
                }
                if let [only] = pts.as_slice() {
                    c.line(*only, *only, color, 4);
                }
            }
            let ly = f.plot_top() + 14.0 + j as f64 * 18.0;
            let lx = f.right() + 14.0;
            c.line((lx, ly), (lx + 20.0, ly), color, 3);
            c.text(lx + 26.0, ly + 4.0, &series.label, 1, 0);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut out, WIDTH, height);
        encoder.set_color(::png::ColorType::Rgb);
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&c.pixels)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}
