//! Environment variables as trainlog reads them: the first of several names that is set to
//! something other than blanks (an empty `MLFLOW_TRACKING_URI=` counts as unset).

/// The first of `vars` that is set to something other than blanks.
pub(crate) fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}

/// A duration from an environment variable: `10s`, `500ms`, `2m`, `1h`, or a bare number
/// of seconds (`1.5`). None when unset, blank or unreadable.
#[cfg_attr(not(any(feature = "network", feature = "progress")), allow(dead_code))]
pub(crate) fn duration_env(var: &str) -> Option<std::time::Duration> {
    parse_duration(&first_env(&[var])?)
}

#[cfg_attr(not(any(feature = "network", feature = "progress")), allow(dead_code))]
fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    std::time::Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_read_with_or_without_a_unit() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "s", "ten", "5 parsecs", "-1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
