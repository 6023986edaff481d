//! Colour for people, plain text for pipes: `NO_COLOR` and `CLICOLOR_FORCE` are honoured
//! (see `trainlog::format::color_enabled`).

use nu_ansi_term::{Color, Style};

pub struct Paint {
    on: bool,
}

impl Paint {
    pub fn stdout() -> Paint {
        Paint {
            on: trainlog::format::color_enabled(),
        }
    }

    fn with(&self, style: Style, text: &str) -> String {
        if self.on {
            style.paint(text).to_string()
        } else {
            text.to_owned()
        }
    }

    /// A status word in its colour: completed green, failed red, running yellow.
    pub fn status(&self, status: &str) -> String {
        let style = match status {
            "completed" => Color::Green.normal(),
            "failed" => Color::Red.bold(),
            "running" => Color::Yellow.normal(),
            _ => Style::new(),
        };
        self.with(style, status)
    }

    /// A heading.
    pub fn head(&self, text: &str) -> String {
        self.with(Style::new().bold(), text)
    }

    /// A value singled out (the best of a row).
    pub fn best(&self, text: &str) -> String {
        self.with(Color::Green.bold(), text)
    }

    /// Something the reader should notice (NaN, an error).
    pub fn warn(&self, text: &str) -> String {
        self.with(Color::Red.normal(), text)
    }

    /// Pads `text` to `width` characters by its visible length, then paints it.
    pub fn pad(&self, text: &str, width: usize, paint: impl Fn(&Self, &str) -> String) -> String {
        let n = text.chars().count();
        format!(
            "{}{}",
            paint(self, text),
            " ".repeat(width.saturating_sub(n))
        )
    }
}
