//! Running one ignored test of this test binary in a child process, to read what trainlog
//! writes on its standard error (the harness captures it in-process).

#![allow(dead_code)] // each test binary uses what it needs

use std::process::Command;

/// What a child printed, and whether its test passed.
pub struct Child {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The variable that tells a child which test it is to run for real.
const CHILD: &str = "TRAINLOG_TEST_CHILD";

/// Whether this process is the child started for `test` (its body runs only then).
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|t| t == test)
}

/// A variable the parent passed to the child.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent sets {name}"))
}

/// Runs the ignored test `test` of this binary alone in a child process, with `envs`.
pub fn run(test: &str, envs: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, test)
    .env_remove("RUST_LOG")
    .env_remove("RANK");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Child {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Child {
    /// The lines of its standard error that trainlog wrote (`trainlog: …`).
    pub fn trainlog_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("trainlog: "))
            .collect()
    }
}
