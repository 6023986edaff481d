//! Time as trainlog writes it: RFC 3339 UTC with microseconds (JSONL, HTTP), compact
//! `YYYYMMDD_HHMMSS` names (run names), and Unix seconds and milliseconds (TensorBoard,
//! W&B, MLflow). One place for the calendar maths.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! let t = UNIX_EPOCH + Duration::from_micros(1_795_505_431_123_456);
//! assert_eq!(trainlog::time::rfc3339(t), "2026-11-24T07:30:31.123456Z");
//! assert_eq!(trainlog::time::compact(t), "20261124_073031");
//! assert_eq!(trainlog::time::unix_millis(t), 1_795_505_431_123);
//! assert_eq!(trainlog::time::unix_seconds(t), 1_795_505_431.123456);
//! assert_eq!(trainlog::time::parse_rfc3339("2026-11-24T07:30:31.123456Z"), Some(t));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T07:40:31.123456Z`. Times before
/// 1970 clamp to the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    TimestampFormatter::default().format(t).to_owned()
}

/// `YYYYMMDD_HHMMSS` in UTC, for names (the `{time}` run-name placeholder).
pub fn compact(t: SystemTime) -> String {
    let secs = unix_duration(t).as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(t: SystemTime) -> u64 {
    u64::try_from(unix_duration(t).as_millis()).unwrap_or(u64::MAX)
}

/// The time `secs` seconds after the Unix epoch; values that no `SystemTime` can hold
/// (NaN, negative, far future) give the epoch.
pub fn from_unix_seconds(secs: f64) -> SystemTime {
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
        .unwrap_or(UNIX_EPOCH)
}

/// Parses what [`rfc3339`] writes (`2026-11-24T07:40:31.123456Z`; any number of
/// fraction digits, or none; `Z` or `+00:00`). `None` for anything else.
///
/// ```
/// let t = trainlog::time::parse_rfc3339("2026-11-24T07:40:31.5Z").unwrap();
/// assert_eq!(trainlog::time::rfc3339(t), "2026-11-24T07:40:31.500000Z");
/// assert!(trainlog::time::parse_rfc3339("yesterday").is_none());
/// ```
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let body = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = body.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, m, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let (h, min, sec): (u64, u64, u64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&m)
        || day == 0
        || day > 31
        || h > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let nanos = match fraction {
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(9).collect();
            digits.parse::<u32>().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    let days = u64::try_from(days_from_civil(y, m, day)).ok()?;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// (year, month, day) to days since 1970-01-01, Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time since the Unix epoch (zero before it).
pub(crate) fn unix_duration(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Formats timestamps as RFC 3339 UTC with microseconds (`2026-11-24T07:40:31.123456Z`).
/// The date and time of day are reused while timestamps stay within the same second, so
/// a stream of records costs six digits each. Times before 1970 clamp to the epoch.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimestampFormatter {
    secs: Option<u64>,
    buf: [u8; 27],
}

impl TimestampFormatter {
    pub(crate) fn format(&mut self, t: SystemTime) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(self.format_bytes(t)).unwrap_or_default()
    }

    /// [`format`](Self::format) as bytes, without checking them again (the hot path).
    pub(crate) fn format_bytes(&mut self, t: SystemTime) -> &[u8] {
        fn put(buf: &mut [u8], mut value: u64) {
            for slot in buf.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        let d = unix_duration(t);
        let secs = d.as_secs();
        if self.secs != Some(secs) {
            let (days, rem) = (secs / 86_400, secs % 86_400);
            let (y, m, day) = civil_from_days(days as i64);
            self.buf = *b"0000-00-00T00:00:00.000000Z";
            put(&mut self.buf[0..4], y.clamp(0, 9999) as u64);
            put(&mut self.buf[5..7], m.into());
            put(&mut self.buf[8..10], day.into());
            put(&mut self.buf[11..13], rem / 3600);
            put(&mut self.buf[14..16], rem / 60 % 60);
            put(&mut self.buf[17..19], rem % 60);
            self.secs = Some(secs);
        }
        put(&mut self.buf[20..26], d.subsec_micros().into());
        &self.buf
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let mut f = TimestampFormatter::default();
        let mut at = |secs: u64, micros: u64| {
            f.format(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
                .to_owned()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(at(1_795_505_431, 123_456), "2026-11-24T07:30:31.123456Z");
        assert_eq!(at(1_795_505_431, 7), "2026-11-24T07:30:31.000007Z"); // same second, cached
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        assert_eq!(at(0, 1), "1970-01-01T00:00:00.000001Z");
    }

    #[test]
    fn compact_names_and_conversions() {
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(compact(t), "20000229_010203");
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(2)), -2.0);
        assert_eq!(from_unix_seconds(f64::NAN), UNIX_EPOCH);
        assert_eq!(from_unix_seconds(1e300), UNIX_EPOCH);
        for secs in [0u64, 951_782_400, 1_795_505_431, 4_102_444_799] {
            let t = UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + 123_456);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{secs}");
        }
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00+00:00"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-11-24T07:40:31",
            "2026-11-24T07:40:31.x1Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
