//! Console rendering of metrics records: [`DictFormat`] prints `step=10, loss=0.250, lr=3.00e-4`.
//!
//! Number rules (InstructLab's `FormatDictFilter`): floats whose magnitude is below 0.001
//! or above 999 in scientific notation with 2 decimals (`3.00e-4`, `1.23e5`), other floats
//! with 3 decimals (`0.250`); integers as integers; NaN and infinities as `NaN`, `inf`,
//! `-inf`; text as written. Hyperparameter records start with `hparams: `; an event's
//! message comes first, followed by `: `.

use std::fmt::{self, Write};
use std::io::IsTerminal;

use nu_ansi_term::{Color, Style};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::{Record, Value};

/// Whether console output should be coloured: never when `NO_COLOR` is set (non-empty),
/// always when `CLICOLOR_FORCE` is set to anything but `0`, else when stdout is a terminal.
pub fn color_enabled() -> bool {
    color_enabled_for(&std::io::stdout())
}

/// Like [`color_enabled`] for another stream, e.g. `&std::io::stderr()`.
pub fn color_enabled_for(stream: &impl IsTerminal) -> bool {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    stream.is_terminal()
}

/// Formats a float by the console rules: `0.250`, `3.00e-4`, `1.23e5`, `NaN`, `inf`, and
/// an exact zero as `0`.
///
/// ```
/// use trainlog::format::format_float;
/// assert_eq!(format_float(0.0), "0");
/// assert_eq!(format_float(0.25), "0.250");
/// assert_eq!(format_float(3e-4), "3.00e-4");
/// assert_eq!(format_float(123456.0), "1.23e5");
/// assert_eq!(format_float(999.0), "999.000");
/// ```
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    let _ = write_float(&mut s, v);
    s
}

/// Formats a duration for people: `4.2s`, `12m 03s`, `1h 02m`.
///
/// ```
/// use std::time::Duration;
/// use trainlog::format::format_duration;
/// assert_eq!(format_duration(Duration::from_millis(4200)), "4.2s");
/// assert_eq!(format_duration(Duration::from_secs(723)), "12m 03s");
/// assert_eq!(format_duration(Duration::from_secs(3720)), "1h 02m");
/// ```
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, secs / 60 % 60)
    }
}

fn write_float(out: &mut impl Write, v: f64) -> fmt::Result {
    if v.is_nan() {
        out.write_str("NaN")
    } else if v.is_infinite() {
        out.write_str(if v > 0.0 { "inf" } else { "-inf" })
    } else if v == 0.0 {
        // An exact zero is not a small number: `0`, not `0.00e0`.
        out.write_str("0")
    } else if v.abs() < 1e-3 || v.abs() > 999.0 {
        write!(out, "{v:.2e}")
    } else {
        write!(out, "{v:.3}")
    }
}

/// Writes a value by the console rules. Text goes through [`write_text`].
fn write_value(out: &mut impl Write, v: &Value) -> fmt::Result {
    match v {
        Value::F64(f) => write_float(out, *f),
        Value::Str(s) => write_text(out, s),
        Value::Json(j) => write_text(out, &j.to_string()),
        // The console runs on the caller's thread: no binning here.
        Value::Histogram(h) => write!(out, "histogram(count={})", h.len()),
        other => write!(out, "{other}"),
    }
}

/// `s` with control characters escaped as the console writes them (`\n`, `\t`,
/// `\u{1b}`): borrowed when it has none.
///
/// ```
/// use trainlog::format::escape_controls;
/// assert_eq!(escape_controls("loss"), "loss");
/// assert_eq!(escape_controls("red\u{1b}[31m\n"), "red\\u{1b}[31m\\n");
/// ```
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = write_text(&mut out, s);
    std::borrow::Cow::Owned(out)
}

/// Writes text with control characters escaped (`\n`, `\t`, `\u{1b}`), so a value can
/// neither forge a console line nor send escape sequences to the terminal.
fn write_text(out: &mut impl Write, s: &str) -> fmt::Result {
    if !s.chars().any(char::is_control) {
        return out.write_str(s);
    }
    for c in s.chars() {
        if c.is_control() {
            write!(out, "{}", c.escape_default())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

/// Renders a record as one line of `key=value` pairs joined by `, ` (no newline).
///
/// ```
/// use trainlog::{format::write_dict, Record};
/// let r = Record::new(0).with_step(10).with_field("loss", 0.25).with_field("lr", 3e-4);
/// let mut line = String::new();
/// write_dict(&mut line, &r, false).unwrap();
/// assert_eq!(line, "step=10, loss=0.250, lr=3.00e-4");
/// ```
pub fn write_dict<W: Write>(out: &mut W, record: &Record, ansi: bool) -> fmt::Result {
    let (key_style, value_style, tag_style) = if ansi {
        (
            Style::new().dimmed(),
            Style::new().bold(),
            Color::Cyan.bold(),
        )
    } else {
        (Style::new(), Style::new(), Style::new())
    };
    if record.hparams {
        write!(out, "{}", tag_style.paint("hparams: "))?;
    }
    if let Some(message) = &record.message {
        write_text(out, message)?;
        if !record.fields.is_empty() || record.step.is_some() {
            out.write_str(": ")?;
        }
    }
    let mut sep = "";
    let mut pair = |out: &mut W, key: &str, value: &Value| -> fmt::Result {
        write!(out, "{sep}{}", key_style.prefix())?;
        write_text(out, key)?;
        write!(out, "={}", key_style.suffix())?;
        write!(out, "{}", value_style.prefix())?;
        write_value(out, value)?;
        sep = ", ";
        write!(out, "{}", value_style.suffix())
    };
    if let Some(step) = record.step {
        pair(out, "step", &Value::U64(step))?;
    }
    for (k, v) in record.unique_fields() {
        pair(out, k, v)?;
    }
    Ok(())
}

/// A [`FormatEvent`] that prints metrics events as `step=10, loss=0.250, lr=3.00e-4`.
///
/// Colour needs both the writer's ANSI setting (`fmt::layer().with_ansi(..)`) and this
/// formatter's (on by default; [`DictFormat::plain`] turns it off).
///
/// ```
/// use tracing_subscriber::{filter::FilterExt, prelude::*};
/// use trainlog::{filter, format::DictFormat};
///
/// let console = tracing_subscriber::fmt::layer()
///     .event_format(DictFormat::new())
///     .with_ansi(trainlog::format::color_enabled())
///     .with_filter(filter::metrics().and(filter::is_mapping()).and(filter::rank0()));
/// let _subscriber = tracing_subscriber::registry().with(console);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DictFormat {
    ansi: bool,
}

impl DictFormat {
    /// Coloured when the writer allows it.
    pub fn new() -> Self {
        DictFormat { ansi: true }
    }

    /// Never coloured.
    pub fn plain() -> Self {
        DictFormat { ansi: false }
    }
}

impl Default for DictFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl<S, N> FormatEvent<S, N> for DictFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let record = Record::from_event(event, 0);
        let ansi = self.ansi && writer.has_ansi_escapes();
        write_dict(&mut writer, &record, ansi)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_rules() {
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(1e-300), "1.00e-300");
        assert_eq!(format_float(0.001), "0.001");
        assert_eq!(format_float(0.0009), "9.00e-4");
        assert_eq!(format_float(-1234.5), "-1.23e3");
        assert_eq!(format_float(1.0), "1.000");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn message_hparams_and_types() {
        let r = Record::new(0)
            .with_hparams()
            .with_field("lr", 3e-4)
            .with_field("batch_size", 32u64)
            .with_field("name", "bert")
            .with_field("warm", true);
        let mut s = String::new();
        write_dict(&mut s, &r, false).unwrap();
        assert_eq!(
            s,
            "hparams: lr=3.00e-4, batch_size=32, name=bert, warm=true"
        );

        let mut r = Record::new(0).with_step(1).with_field("loss", 2.0);
        r.message = Some("epoch done".into());
        let mut s = String::new();
        write_dict(&mut s, &r, false).unwrap();
        assert_eq!(s, "epoch done: step=1, loss=2.000");
    }

    #[test]
    fn control_characters_are_escaped_not_sent_to_the_terminal() {
        let mut r = Record::new(0)
            .with_field("note", "red\u{1b}[31m bell\u{7}\nstep=99, loss=0.000")
            .with_field("k\r", 1u64);
        r.message = Some("two\nlines".into());
        let mut s = String::new();
        write_dict(&mut s, &r, false).unwrap();
        assert_eq!(
            s,
            "two\\nlines: note=red\\u{1b}[31m bell\\u{7}\\nstep=99, loss=0.000, k\\r=1"
        );
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }

    #[test]
    fn colour_adds_escapes_only_when_asked() {
        let r = Record::new(0).with_step(1);
        let mut s = String::new();
        write_dict(&mut s, &r, true).unwrap();
        assert!(s.contains('\u{1b}'));
        assert!(s.contains("step="));
    }
}
