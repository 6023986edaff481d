//! The message of the last panic in this process, for sinks that report a failed run with
//! its reason (the webhook's "failed" alert). One process-wide panic hook, installed by
//! the logger when it starts and one of its sinks asks for it
//! ([`Sink::wants_panic_message`](crate::sink::Sink::wants_panic_message)), at most once
//! per process; it chains the hook that was there before, which still runs.

use std::sync::{Mutex, OnceLock};

static LAST: OnceLock<Mutex<Option<String>>> = OnceLock::new();

/// Installs the hook that remembers panic messages, unless it is installed already.
pub(crate) fn install() {
    LAST.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = payload_text(info.payload()).unwrap_or_else(|| "a panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Some(slot) = LAST.get() {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{text}{at}"));
            }
            previous(info);
        }));
        Mutex::new(None)
    });
}

/// The text a panic carries: `panic!("..")`'s message, `None` for other payloads. Used by
/// the hook, the worker (a sink that panicked) and the run API (a run that panicked).
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// The message and location of the last panic in this process (`"out of memory at
/// src/train.rs:42"`), once a logger with a sink that
/// [wants it](crate::sink::Sink::wants_panic_message) has started; `None` before that or
/// when nothing panicked since.
pub fn last_panic() -> Option<String> {
    LAST.get()?
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}
