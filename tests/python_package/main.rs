//! The Python package (`python/`, built by maturin as a user would: `pip install ./python`)
//! and its pytest suite, run from `cargo test` so the README's test command covers it.
//! `python/ci.sh` makes a venv under `target/python-venv` (maturin and pytest from PyPI).
//! The suite reads files back with the same pinned readers as the Rust tests (TensorBoard's
//! and wandb's, each in its own environment under `target/tmp`), handed over by path.

use std::process::Command;

#[path = "../support/python.rs"]
#[allow(dead_code)]
mod python;

#[test]
fn the_python_package_builds_and_its_pytest_suite_passes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/python/ci.sh"))
        .env("TRAINLOG_TENSORBOARD_PYTHON", python::python("tensorboard"))
        .env(
            "TRAINLOG_READ_TENSORBOARD",
            python::script("read_tensorboard.py"),
        )
        .env("TRAINLOG_WANDB_PYTHON", python::python("wandb"))
        .env("TRAINLOG_READ_WANDB", python::script("read_wandb.py"))
        .output()
        .expect("running python/ci.sh (needs bash and python3 with venv)");
    assert!(
        out.status.success(),
        "python/ci.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(
        !stdout.contains("failed") && !stdout.contains("skipped"),
        "{stdout}"
    );
}
