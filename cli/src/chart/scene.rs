//! What a chart image is made of, independent of the format: the layout produces a
//! [`Scene`] once, and the SVG and PNG backends each draw it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

#[derive(Debug, Clone)]
pub enum Shape {
    /// A rectangle outline.
    Frame {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    /// A straight line (grid lines, ticks).
    Rule {
        from: (f32, f32),
        to: (f32, f32),
        color: Rgb,
        width: f32,
    },
    /// A data line: `label` names its series (SVG groups keep it), `opacity` < 1 for the
    /// raw line behind a smoothed one.
    Line {
        label: String,
        points: Vec<(f32, f32)>,
        color: Rgb,
        width: f32,
        opacity: f32,
    },
    /// A lone data point.
    Dot {
        label: String,
        at: (f32, f32),
        radius: f32,
        color: Rgb,
    },
    Text {
        at: (f32, f32),
        text: String,
        size: f32,
        bold: bool,
        anchor: Anchor,
        color: Rgb,
    },
}

/// A whole image: its size in pixels and the shapes in drawing order.
#[derive(Debug, Default)]
pub struct Scene {
    pub width: f32,
    pub height: f32,
    pub shapes: Vec<Shape>,
}
