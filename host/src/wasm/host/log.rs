//! `vigil:health/log`: bounded diagnostic lines attached to the result.

use std::sync::{Arc, Mutex};

use crate::sync::LockExt;
use crate::wasm::bindings::checker::vigil::health::log::{self, Level};
use crate::wasm::store::HostState;

const MAX_LINES: usize = 100;
const MAX_LINE_BYTES: usize = 1024;

/// Lines logged by a guest during one call; past the caps, lines are
/// dropped and counted, so a chatty guest costs bounded memory.
#[derive(Clone, Default, Debug)]
pub struct LogBuffer {
    inner: Arc<Mutex<(Vec<String>, usize)>>,
}

/// The first [`MAX_LINE_BYTES`] of `message`, cut at a character boundary.
fn head(message: &str) -> &str {
    let mut end = message.len().min(MAX_LINE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

impl LogBuffer {
    pub fn push(&self, level: Level, message: &str) {
        let mut inner = self.inner.lock_unpoisoned();
        if inner.0.len() >= MAX_LINES {
            inner.1 += 1;
            return;
        }
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        inner.0.push(format!("{level}: {}", head(message)));
    }

    /// The lines, plus a last line counting the dropped ones.
    pub fn lines(&self) -> Vec<String> {
        let inner = self.inner.lock_unpoisoned();
        let mut lines = inner.0.clone();
        if inner.1 > 0 {
            lines.push(format!("[vigil: {} more log lines dropped]", inner.1));
        }
        lines
    }
}

impl log::Host for HostState {
    /// Traced as kept: the guest chooses the message's size, and a debug
    /// log must not copy megabytes per call either.
    async fn log(&mut self, level: Level, message: String) {
        // Cut first, then escaped: tracing escapes ESC and C1, not CR or
        // bidi controls (the arguments are only evaluated when the level
        // is enabled).
        tracing::debug!(
            target: "vigil::guest",
            ?level,
            bytes = message.len(),
            "{}",
            crate::untrusted::line(head(&message))
        );
        self.caps.log.push(level, &message);
    }
}
