//! A Python virtual environment for the tests that read files back with real Python
//! packages. Created once under `target/tmp/` from a pinned requirements file, reused by
//! later runs, rebuilt when the requirements change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Serialises environment creation between the tests of one binary.
static SETUP: Mutex<()> = Mutex::new(());

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The project's Python helper script `tests/python/<name>`: the package's own, else the
/// workspace root's (the command line and the framework adapters use the root's readers).
pub fn script(name: &str) -> PathBuf {
    let own = manifest_dir().join("tests/python").join(name);
    if own.exists() {
        return own;
    }
    manifest_dir().join("../tests/python").join(name)
}

/// The interpreter of the environment for `tests/python/requirements-<name>.txt`,
/// creating the environment if needed. Panics with what to install when python3 is missing.
pub fn python(name: &str) -> PathBuf {
    let _one_at_a_time = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let requirements = script(&format!("requirements-{name}.txt"));
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("reading {}: {e}", requirements.display()));
    let env = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("trainlog-pyenv-{name}"));
    let python = env.join("bin/python");
    let stamp = env.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && python.exists() {
        return python;
    }
    // Other test binaries may be building the same environment: take a lock file.
    let lock = env.with_extension("lock");
    // A lock left by an interrupted run is stale after ten minutes.
    let stale = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(600));
    if stale {
        let _ = std::fs::remove_file(&lock);
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    let _lock = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break LockFile(lock.clone()),
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
                if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
                    return python;
                }
            }
            Err(e) => panic!(
                "waiting for {}: {e}; remove it if no test is running",
                lock.display()
            ),
        }
    };
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let version = Command::new(&system).arg("--version").output();
    if !version.as_ref().is_ok_and(|o| o.status.success()) {
        panic!(
            "these tests read files back with real Python packages and need `{system}` \
             (Python 3.9+ with the venv module and network access to PyPI). Install it, \
             e.g. `apt install python3 python3-venv`, or point PYTHON at an interpreter."
        );
    }
    let _ = std::fs::remove_dir_all(&env);
    run(
        Command::new(&system).args(["-m", "venv"]).arg(&env),
        "create the virtual environment",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "install the pinned test requirements",
    );
    std::fs::write(&stamp, wanted).expect("writing the install stamp");
    python
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not {what}: {e}"));
    assert!(
        out.status.success(),
        "could not {what}: {cmd:?} failed\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct LockFile(PathBuf);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a helper script with the environment's interpreter and parses its JSON output.
#[allow(dead_code)] // not every test binary reads JSON from a script
pub fn run_json(env: &str, script_name: &str, args: &[&Path]) -> serde_json::Value {
    let out = Command::new(python(env))
        .arg(script(script_name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script_name}: {e}"));
    assert!(
        out.status.success(),
        "{script_name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script_name} printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
