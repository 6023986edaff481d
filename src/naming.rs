//! Run names with placeholders, and the host name: shared by the backends that name runs.
//!
//! Placeholders (InstructLab's): `{time}` and `{utc_time}` (both `YYYYMMDD_HHMMSS` in UTC:
//! trainlog carries no time-zone database), `{rank}`, `{local_rank}`.

use std::time::SystemTime;

use crate::{Error, RankInfo, Result};

/// The run-name template every backend uses when none is given.
pub const DEFAULT_RUN_NAME: &str = "{time}_rank{rank}";

/// Expands the placeholders of a run-name template.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use trainlog::{naming::expand_run_name, RankInfo};
///
/// let t = UNIX_EPOCH + Duration::from_secs(1_795_505_431);
/// let name = expand_run_name("{time}_rank{rank}", RankInfo::new(3), t)?;
/// assert_eq!(name, "20261124_073031_rank3");
/// assert!(expand_run_name("{oops}", RankInfo::new(0), t).is_err());
/// # Ok::<(), trainlog::Error>(())
/// ```
pub fn expand_run_name(template: &str, rank: RankInfo, now: SystemTime) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(Error::Config(format!(
                "run name `{template}` has a `{{` without a closing `}}`"
            )));
        };
        match &after[..close] {
            "time" | "utc_time" => out.push_str(&crate::time::compact(now)),
            "rank" => out.push_str(&rank.rank.to_string()),
            "local_rank" => out.push_str(&rank.local_rank.to_string()),
            other => {
                return Err(Error::Config(format!(
                    "run name `{template}` has an unknown placeholder `{{{other}}}`; \
                     known: {{time}}, {{utc_time}}, {{rank}}, {{local_rank}}"
                )))
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if out.is_empty() || out.contains(['/', '\\']) || out == "." || out == ".." {
        return Err(Error::Config(format!(
            "run name `{out}` (from `{template}`) must be a non-empty name without path separators"
        )));
    }
    Ok(out)
}

/// This machine's host name, reduced to characters safe in a file name.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

/// A run id no other process picks: `run_<UTC time>_<host>_<pid>_<random>`, e.g.
/// `run_20261206_041500_gpu-07_31337_9f3a`. Two jobs started in the same second, on one
/// machine or on two, get different ids (the default used to be `run_<unix seconds>`,
/// which two such jobs shared, and a server then saw each step twice under it).
#[cfg(feature = "http")]
pub(crate) fn unique_run_id(now: std::time::SystemTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    // std's RandomState is seeded from the OS's randomness once per process, and each
    // new one differs: enough for a random part without a dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        now.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "run_{}_{}_{}_{:04x}",
        crate::time::compact(now),
        hostname(),
        std::process::id(),
        hasher.finish() as u16
    )
}
