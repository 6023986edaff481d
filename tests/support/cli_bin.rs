//! The `trainlog` command line of the workspace's `trainlog-cli` package, for the library
//! tests that check what `trainlog sync` does with a backend's spool.

use std::path::PathBuf;

/// `target/<profile>/trainlog`, which `cargo test` at the workspace root builds (for the
/// command line's own tests) before any test runs.
pub fn trainlog_bin() -> PathBuf {
    // This test binary is `target/<profile>/deps/<name>-<hash>`.
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(format!("trainlog{}", std::env::consts::EXE_SUFFIX)))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: run the tests from the workspace root (`cargo test --all-features`), \
         or build the command line first (`cargo build -p trainlog-cli`)",
        bin.display()
    );
    bin
}
