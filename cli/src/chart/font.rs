//! The charts' font, DejaVu Sans (matplotlib's default), embedded: text is measured with
//! its metrics for the layout and drawn from its outlines in PNGs.

use std::sync::OnceLock;

use ttf_parser::Face;

pub struct Fonts {
    regular: Face<'static>,
    bold: Face<'static>,
}

/// The parsed faces (parsing is cheap, but once is enough).
pub fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts {
        // The crate's files are valid fonts; a failure here is a packaging bug.
        regular: Face::parse(dejavu::sans::regular(), 0).expect("DejaVu Sans parses"),
        bold: Face::parse(dejavu::sans::bold(), 0).expect("DejaVu Sans Bold parses"),
    })
}

impl Fonts {
    pub fn face(&self, bold: bool) -> &Face<'static> {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }

    /// The glyph for `c`, or the font's `?` for a character it lacks.
    pub fn glyph(&self, bold: bool, c: char) -> ttf_parser::GlyphId {
        let face = self.face(bold);
        face.glyph_index(c)
            .or_else(|| face.glyph_index('?'))
            .unwrap_or_default()
    }

    /// Advance width of `text` at `size` pixels.
    pub fn width(&self, text: &str, size: f32, bold: bool) -> f32 {
        let face = self.face(bold);
        let scale = size / face.units_per_em() as f32;
        text.chars()
            .map(|c| face.glyph_hor_advance(self.glyph(bold, c)).unwrap_or(0) as f32 * scale)
            .sum()
    }

    /// `text` with each character the font has no glyph for written as its escape
    /// (`\u{640d}`), so a PNG shows which character it was rather than a `?`.
    pub fn drawable<'t>(&self, text: &'t str, bold: bool) -> std::borrow::Cow<'t, str> {
        let face = self.face(bold);
        if text.chars().all(|c| face.glyph_index(c).is_some()) {
            return std::borrow::Cow::Borrowed(text);
        }
        text.chars()
            .map(|c| match face.glyph_index(c) {
                Some(_) => c.to_string(),
                None => c.escape_unicode().to_string(),
            })
            .collect::<String>()
            .into()
    }

    /// `text` shortened in the middle with `…` to fit `max` pixels.
    pub fn elide(&self, text: &str, size: f32, max: f32) -> String {
        self.elide_styled(text, size, false, max)
    }

    /// [`elide`](Self::elide), in bold or not.
    pub fn elide_styled(&self, text: &str, size: f32, bold: bool, max: f32) -> String {
        if self.width(text, size, bold) <= max {
            return text.to_owned();
        }
        let chars: Vec<char> = text.chars().collect();
        let mut keep = chars.len();
        while keep > 2 {
            keep -= 1;
            let head = keep.div_ceil(2);
            let tail = keep - head;
            let s: String = chars[..head]
                .iter()
                .chain(['…'].iter())
                .chain(chars[chars.len() - tail..].iter())
                .collect();
            if self.width(&s, size, bold) <= max {
                return s;
            }
        }
        "…".into()
    }
}
