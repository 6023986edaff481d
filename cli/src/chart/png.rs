//! The PNG backend: tiny-skia draws the scene antialiased; text is DejaVu Sans drawn from
//! its glyph outlines (ttf-parser), so it is proportional and smooth at any size.

use tiny_skia::{FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

use super::font::fonts;
use super::scene::{Anchor, Rgb, Scene, Shape};

fn paint(color: Rgb, opacity: f32) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(color.0, color.1, color.2, (opacity * 255.0).round() as u8);
    paint.anti_alias = true;
    paint
}

/// Strokes `path`; `round` joins and caps for data lines, square ones for rules.
fn stroke(pixmap: &mut Pixmap, path: &tiny_skia::Path, paint: Paint, width: f32, round: bool) {
    let stroke = Stroke {
        width,
        line_cap: if round { LineCap::Round } else { LineCap::Butt },
        line_join: if round {
            LineJoin::Round
        } else {
            LineJoin::Miter
        },
        ..Stroke::default()
    };
    pixmap.stroke_path(path, &paint, &stroke, Transform::identity(), None);
}

/// A 1-pixel rule lands on pixel centres, so it stays crisp instead of a 2-pixel blur.
fn crisp(v: f32) -> f32 {
    v.floor() + 0.5
}

/// Glyph outlines into a path: font units scaled, y flipped, placed at the pen.
struct Outline<'a> {
    path: &'a mut PathBuilder,
    x: f32,
    y: f32,
    scale: f32,
}

impl Outline<'_> {
    fn at(&self, x: f32, y: f32) -> (f32, f32) {
        (self.x + x * self.scale, self.y - y * self.scale)
    }
}

impl ttf_parser::OutlineBuilder for Outline<'_> {
    fn move_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.path.move_to(x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        let (x, y) = self.at(x, y);
        self.path.line_to(x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x, y) = self.at(x, y);
        self.path.quad_to(x1, y1, x, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let (x1, y1) = self.at(x1, y1);
        let (x2, y2) = self.at(x2, y2);
        let (x, y) = self.at(x, y);
        self.path.cubic_to(x1, y1, x2, y2, x, y);
    }
    fn close(&mut self) {
        self.path.close();
    }
}

fn text(
    pixmap: &mut Pixmap,
    at: (f32, f32),
    s: &str,
    size: f32,
    bold: bool,
    anchor: Anchor,
    color: Rgb,
) {
    let fonts = fonts();
    let face = fonts.face(bold);
    let scale = size / face.units_per_em() as f32;
    let width = fonts.width(s, size, bold);
    let mut x = match anchor {
        Anchor::Start => at.0,
        Anchor::Middle => at.0 - width / 2.0,
        Anchor::End => at.0 - width,
    };
    let mut path = PathBuilder::new();
    for c in s.chars() {
        let glyph = fonts.glyph(bold, c);
        let mut outline = Outline {
            path: &mut path,
            x,
            y: at.1,
            scale,
        };
        face.outline_glyph(glyph, &mut outline);
        x += face.glyph_hor_advance(glyph).unwrap_or(0) as f32 * scale;
    }
    if let Some(path) = path.finish() {
        pixmap.fill_path(
            &path,
            &paint(color, 1.0),
            FillRule::Winding,
            Transform::identity(),
            None,
        );
    }
}

pub fn render(scene: &Scene) -> Result<Vec<u8>, String> {
    let mut pixmap = Pixmap::new(scene.width as u32, scene.height as u32)
        .ok_or_else(|| format!("a {}×{} image is too large", scene.width, scene.height))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    for shape in &scene.shapes {
        match shape {
            Shape::Frame { x, y, w, h, color } => {
                if let Some(rect) = Rect::from_xywh(crisp(*x), crisp(*y), w.round(), h.round()) {
                    let path = PathBuilder::from_rect(rect);
                    stroke(&mut pixmap, &path, paint(*color, 1.0), 1.0, false);
                }
            }
            Shape::Rule {
                from,
                to,
                color,
                width,
            } => {
                let (mut from, mut to) = (*from, *to);
                if *width <= 1.0 {
                    // Horizontal and vertical hairlines on pixel centres.
                    if from.0 == to.0 {
                        (from.0, to.0) = (crisp(from.0), crisp(to.0));
                    }
                    if from.1 == to.1 {
                        (from.1, to.1) = (crisp(from.1), crisp(to.1));
                    }
                }
                let mut path = PathBuilder::new();
                path.move_to(from.0, from.1);
                path.line_to(to.0, to.1);
                if let Some(path) = path.finish() {
                    stroke(&mut pixmap, &path, paint(*color, 1.0), *width, false);
                }
            }
            Shape::Line {
                points,
                color,
                width,
                opacity,
                ..
            } => {
                let mut path = PathBuilder::new();
                for (i, (x, y)) in points.iter().enumerate() {
                    if i == 0 {
                        path.move_to(*x, *y);
                    } else {
                        path.line_to(*x, *y);
                    }
                }
                if let Some(path) = path.finish() {
                    stroke(&mut pixmap, &path, paint(*color, *opacity), *width, true);
                }
            }
            Shape::Dot {
                at, radius, color, ..
            } => {
                if let Some(path) = PathBuilder::from_circle(at.0, at.1, *radius) {
                    pixmap.fill_path(
                        &path,
                        &paint(*color, 1.0),
                        FillRule::Winding,
                        Transform::identity(),
                        None,
                    );
                }
            }
            Shape::Text {
                at,
                text: s,
                size,
                bold,
                anchor,
                color,
            } => text(&mut pixmap, *at, s, *size, *bold, *anchor, *color),
        }
    }
    pixmap.encode_png().map_err(|e| e.to_string())
}
