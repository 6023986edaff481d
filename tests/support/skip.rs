//! Skipping a test that needs something this machine lacks (root for a tmpfs, a Debian
//! package), visibly: never silently, and never under `CI=true`.

use std::io::Write;

/// Reports that the calling test is skipped because of `why`.
///
/// Under `CI=true` a skip is a failure (CI installs what the real path needs), so this
/// panics. Elsewhere it writes the reason straight to the process's standard error,
/// where the test harness does not capture it (`eprintln!` would be captured and only
/// shown for failed tests), so a person running `cargo test` sees the line.
pub fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test}: cannot run here and CI=true forbids skipping: {why}");
    }
    let line = format!("\nSKIPPED {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
