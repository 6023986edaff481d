//! Retry policy for network sinks: what a response means, and how long to wait.

use std::time::{Duration, SystemTime};

/// What to do after one attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delivered.
    Done,
    /// Try again: connection errors, timeouts, 408, 429 and 5xx. `after` is the server's
    /// `Retry-After` (seconds or an HTTP date), when it gave one.
    Retry { after: Option<Duration> },
    /// The server refused the request for good (other 4xx): do not send it again.
    Reject,
}

/// Classifies an HTTP status (with its `Retry-After` header, if any).
pub(crate) fn classify(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        408 | 429 | 500..=599 => Verdict::Retry {
            after: retry_after.and_then(retry_delay),
        },
        _ => Verdict::Reject,
    }
}

/// A `Retry-After` value as a delay: seconds, or an HTTP date (a date in the past means
/// now). At most an hour: a server asking for more is treated as asking for an hour.
fn retry_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now()).unwrap_or_default()
        }
    };
    Some(delay.min(Duration::from_secs(3600)))
}

/// Exponential backoff with jitter: the n-th delay is drawn from [d/2, d] where
/// d = base · 2ⁿ, capped at `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        let seed = crate::time::unix_duration(SystemTime::now()).as_nanos() as u64;
        Backoff {
            base,
            max,
            attempt: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(20);
        self.attempt += 1;
        let full = self.base.saturating_mul(1 << exp).min(self.max);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        full.mul_f64(fraction)
    }

    /// Back to the first delay after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None), Verdict::Done);
        assert_eq!(classify(204, None), Verdict::Done);
        assert_eq!(
            classify(429, Some("2")),
            Verdict::Retry {
                after: Some(Duration::from_secs(2))
            }
        );
        // An HTTP date: in the past means now, in the future means until then.
        assert_eq!(
            classify(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Verdict::Retry {
                after: Some(Duration::ZERO)
            }
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        match classify(503, Some(&later)) {
            Verdict::Retry { after: Some(d) } => {
                assert!(
                    d > Duration::from_secs(110) && d <= Duration::from_secs(120),
                    "{d:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(429, Some("99999")),
            Verdict::Retry {
                after: Some(Duration::from_secs(3600))
            }
        );
        assert_eq!(classify(429, Some("soon")), Verdict::Retry { after: None });
        assert_eq!(classify(500, None), Verdict::Retry { after: None });
        assert_eq!(classify(401, None), Verdict::Reject);
        assert_eq!(classify(404, None), Verdict::Reject);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(1));
            assert!(
                *d >= full / 2 && *d <= full,
                "attempt {i}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
