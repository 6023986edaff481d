//! The SVG backend: text stays text (DejaVu Sans, with fallbacks), each series is a
//! `<g class="series" data-label="…">` of polylines and dots.

use std::fmt::Write as _;

use super::scene::{Anchor, Scene, Shape};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn render(scene: &Scene) -> String {
    let (w, h) = (scene.width, scene.height);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="DejaVu Sans, Verdana, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    // The series whose group is open: consecutive data shapes of one label and one
    // style share a group (a smoothed line is a group of its own over the faint raw one).
    let mut open: Option<(&str, u32)> = None;
    for shape in &scene.shapes {
        let label = match shape {
            Shape::Line { label, opacity, .. } => Some((label.as_str(), opacity.to_bits())),
            Shape::Dot { label, .. } => open.filter(|o| o.0 == label).or(Some((label, 0))),
            _ => None,
        };
        if open.is_some() && open != label {
            s.push_str("</g>\n");
            open = None;
        }
        match shape {
            Shape::Frame { x, y, w, h, color } => {
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="{}"/>"#,
                    color.hex()
                );
            }
            Shape::Rule {
                from,
                to,
                color,
                width,
            } => {
                let _ = writeln!(
                    s,
                    r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{width}"/>"#,
                    from.0,
                    from.1,
                    to.0,
                    to.1,
                    color.hex()
                );
            }
            Shape::Line {
                label,
                points,
                color,
                width,
                opacity,
            } => {
                if open.is_none() {
                    let _ = writeln!(
                        s,
                        r#"<g class="series" data-label="{}" fill="none" stroke="{}" stroke-width="{width}" stroke-opacity="{opacity}" stroke-linejoin="round" stroke-linecap="round">"#,
                        escape(label),
                        color.hex()
                    );
                    open = Some((label, opacity.to_bits()));
                }
                let points: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(s, r#"<polyline points="{}"/>"#, points.join(" "));
            }
            Shape::Dot {
                label,
                at,
                radius,
                color,
            } => {
                if open.is_none() {
                    let _ = writeln!(
                        s,
                        r#"<g class="series" data-label="{}" fill="none" stroke="{}">"#,
                        escape(label),
                        color.hex()
                    );
                    open = Some((label, 0));
                }
                let _ = writeln!(
                    s,
                    r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="{radius}" fill="{}" stroke="none"/>"#,
                    at.0,
                    at.1,
                    color.hex()
                );
            }
            Shape::Text {
                at,
                text,
                size,
                bold,
                anchor,
                color,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                let weight = if *bold { r#" font-weight="bold""# } else { "" };
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" font-size="{size}" text-anchor="{anchor}" fill="{}"{weight}>{}</text>"#,
                    at.0,
                    at.1,
                    color.hex(),
                    escape(text)
                );
            }
        }
    }
    if open.is_some() {
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}
