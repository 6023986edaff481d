//! The line on stderr that tells what a closing spool waits for.

use std::time::{Duration, Instant};

/// The line on stderr that says what close is waiting for: shown after a second, updated
/// in place on a terminal, every ten seconds otherwise.
pub(super) struct Progress {
    name: &'static str,
    terminal: bool,
    shown: Option<Instant>,
}

impl Progress {
    pub(super) fn new(name: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress {
            name,
            terminal: std::io::stderr().is_terminal(),
            shown: None,
        }
    }

    pub(super) fn show(&mut self, waited: Duration, pending: u64, target: &str) {
        if waited < Duration::from_secs(1) {
            return;
        }
        let every = if self.terminal {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        if self.shown.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.shown = Some(Instant::now());
        let line = format!(
            "trainlog: {}: sending {} pending messages to {target} …",
            self.name,
            group(pending)
        );
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the line: says that everything went when it did, else leaves the last count
    /// for the message that follows.
    pub(super) fn finish(&self, drained: bool, target: &str) {
        if self.shown.is_none() {
            return;
        }
        let done = format!(
            "trainlog: {}: delivered every pending message to {target}",
            self.name
        );
        match (self.terminal, drained) {
            (true, true) => eprintln!("\r\x1b[2K{done}"),
            (true, false) => eprintln!(),
            (false, true) => eprintln!("{done}"),
            (false, false) => {}
        }
    }
}

/// `1602` as `1,602`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
