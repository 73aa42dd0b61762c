//! `vigil:health/output`: the recent output of the service a check
//! judges, from an in-memory ring the supervisor keeps per service.
//!
//! The ring is fed where the supervisor captures a child's output
//! (`supervisor::logs`), so it works with log files off too. It is filled
//! only while the service grants `output` (no memory for services whose
//! checks may not read it), and bounded three ways: [`MAX_LINES`] lines,
//! [`MAX_BYTES`] of text, [`MAX_LINE_TEXT`] per line; the oldest lines go
//! first and are counted. A check reaches only the ring of the target it
//! judges (it travels in the host's `Target`), never another service's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::sync::LockExt;
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::output;
use crate::wasm::host::HostError;
use crate::wasm::store::HostState;

/// Lines kept per service.
pub const MAX_LINES: usize = 1000;
/// Bytes of text kept per service (what one call may return, at most).
pub const MAX_BYTES: usize = 256 << 10;
/// Longest line kept; the rest of a longer one is cut.
pub const MAX_LINE_TEXT: usize = 4 << 10;

/// Which of a child's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When vigil read it, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub channel: Channel,
    pub text: String,
}

/// Which lines a reader wants (the WIT `query`, capped).
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub since_ms: Option<u64>,
    pub channel: Option<Channel>,
    pub max_lines: usize,
    pub max_bytes: usize,
}

/// The answer to a [`Query`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recent {
    /// Oldest first.
    pub lines: Vec<Line>,
    /// Matching lines left out by the query's caps.
    pub omitted: usize,
    /// Lines the ring dropped to stay bounded, ever.
    pub evicted: u64,
}

/// The recent output of one service. See the module docs.
#[derive(Default)]
pub struct OutputRing {
    enabled: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<Line>,
    bytes: usize,
    evicted: u64,
}

/// A ring is itself: two are equal only when they are the same ring (the
/// same service's), so types that hold one can still be compared.
impl PartialEq for OutputRing {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for OutputRing {}

impl std::fmt::Debug for OutputRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock_unpoisoned();
        f.debug_struct("OutputRing")
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("lines", &inner.lines.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl OutputRing {
    /// Keep lines from now on (`true`), or stop and forget them (`false`):
    /// the service's `[grants] output`, which a reload may change.
    pub fn set_enabled(&self, on: bool) {
        if !self.enabled.swap(on, Ordering::Relaxed) || on {
            return;
        }
        let mut inner = self.inner.lock_unpoisoned();
        inner.lines = VecDeque::new();
        inner.bytes = 0;
    }

    /// Keep `text` (one line, without its line break), read now.
    pub fn push(&self, channel: Channel, text: &str) {
        if self.enabled.load(Ordering::Relaxed) {
            self.push_at(now_ms(), channel, text);
        }
    }

    fn push_at(&self, at_ms: u64, channel: Channel, text: &str) {
        let text = head(text, MAX_LINE_TEXT).to_owned();
        let mut inner = self.inner.lock_unpoisoned();
        while inner.lines.len() >= MAX_LINES || inner.bytes + text.len() > MAX_BYTES {
            let Some(old) = inner.lines.pop_front() else {
                break;
            };
            inner.bytes -= old.text.len();
            inner.evicted += 1;
        }
        inner.bytes += text.len();
        inner.lines.push_back(Line {
            at_ms,
            channel,
            text,
        });
    }

    /// The newest kept lines that match `query`, within its caps (and the
    /// ring's), oldest first.
    pub fn query(&self, query: &Query) -> Recent {
        let max_lines = query.max_lines.min(MAX_LINES);
        let max_bytes = query.max_bytes.min(MAX_BYTES);
        let inner = self.inner.lock_unpoisoned();
        let mut recent = Recent {
            evicted: inner.evicted,
            ..Recent::default()
        };
        let mut bytes = 0;
        let mut full = false;
        for line in inner.lines.iter().rev() {
            let matches = query.since_ms.is_none_or(|since| line.at_ms >= since)
                && query.channel.is_none_or(|c| c == line.channel);
            if !matches {
                continue;
            }
            // Newest first until a line does not fit; everything older
            // that matches is then omitted, so the answer has no gaps.
            full = full || recent.lines.len() >= max_lines || bytes + line.text.len() > max_bytes;
            if full {
                recent.omitted += 1;
            } else {
                bytes += line.text.len();
                recent.lines.push(line.clone());
            }
        }
        recent.lines.reverse();
        recent
    }
}

impl From<Channel> for output::Channel {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Stdout => output::Channel::Stdout,
            Channel::Stderr => output::Channel::Stderr,
        }
    }
}

impl From<output::Channel> for Channel {
    fn from(channel: output::Channel) -> Self {
        match channel {
            output::Channel::Stdout => Channel::Stdout,
            output::Channel::Stderr => Channel::Stderr,
        }
    }
}

impl output::Host for HostState {
    async fn recent(&mut self, query: output::Query) -> Result<output::Lines, HostError> {
        if !self.caps.grants.output() {
            return Err(ErrorCode::Denied(
                "the service's output is not granted: add `output = true` to its [grants]".into(),
            )
            .into());
        }
        // Granted, but no service around the check (`vigil check`).
        let Some(ring) = &self.caps.output else {
            return Err(ErrorCode::NotFound.into());
        };
        let recent = ring.query(&Query {
            since_ms: query.since_ms,
            channel: query.channel.map(Channel::from),
            max_lines: usize::try_from(query.max_lines).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(query.max_bytes).unwrap_or(usize::MAX),
        });
        Ok(output::Lines {
            lines: recent
                .lines
                .into_iter()
                .map(|line| output::Line {
                    at_ms: line.at_ms,
                    channel: line.channel.into(),
                    text: line.text,
                })
                .collect(),
            omitted: u32::try_from(recent.omitted).unwrap_or(u32::MAX),
            evicted: recent.evicted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Query {
        Query {
            since_ms: None,
            channel: None,
            max_lines: usize::MAX,
            max_bytes: usize::MAX,
        }
    }

    fn texts(recent: &Recent) -> Vec<&str> {
        recent.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn nothing_is_kept_until_enabled_and_disabling_forgets() {
        let ring = OutputRing::default();
        ring.push(Channel::Stdout, "before");
        assert_eq!(ring.query(&all()), Recent::default());
        ring.set_enabled(true);
        ring.push(Channel::Stdout, "kept");
        assert_eq!(texts(&ring.query(&all())), ["kept"]);
        ring.set_enabled(false);
        ring.push(Channel::Stdout, "after");
        assert!(ring.query(&all()).lines.is_empty());
    }

    #[test]
    fn bounded_by_lines_bytes_and_line_length() {
        let ring = OutputRing::default();
        ring.set_enabled(true);
        for i in 0..MAX_LINES + 10 {
            ring.push_at(i as u64, Channel::Stdout, &i.to_string());
        }
        let recent = ring.query(&all());
        assert_eq!(recent.lines.len(), MAX_LINES);
        assert_eq!(recent.evicted, 10);
        assert_eq!(recent.lines[0].text, "10");

        let ring = OutputRing::default();
        ring.set_enabled(true);
        let long = "é".repeat(MAX_LINE_TEXT); // 2 bytes each
        for _ in 0..200 {
            ring.push(Channel::Stderr, &long);
        }
        let recent = ring.query(&all());
        let bytes: usize = recent.lines.iter().map(|l| l.text.len()).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        assert_eq!(recent.lines.len(), MAX_BYTES / MAX_LINE_TEXT);
        assert!(recent.lines.iter().all(|l| l.text.len() == MAX_LINE_TEXT));
        assert_eq!(recent.evicted, 200 - recent.lines.len() as u64);
    }

    #[test]
    fn queries_select_by_time_and_channel_newest_first_within_caps() {
        let ring = OutputRing::default();
        ring.set_enabled(true);
        ring.push_at(1, Channel::Stdout, "old child");
        ring.push_at(5, Channel::Stdout, "a");
        ring.push_at(6, Channel::Stderr, "b");
        ring.push_at(7, Channel::Stdout, "c");
        let since = |since_ms, channel, max_lines, max_bytes| {
            ring.query(&Query {
                since_ms: Some(since_ms),
                channel,
                max_lines,
                max_bytes,
            })
        };
        assert_eq!(texts(&since(5, None, 10, 100)), ["a", "b", "c"]);
        assert_eq!(texts(&since(0, Some(Channel::Stderr), 10, 100)), ["b"]);
        let capped = since(5, Some(Channel::Stdout), 1, 100);
        assert_eq!((texts(&capped), capped.omitted), (vec!["c"], 1));
        let capped = since(0, None, 10, 2);
        assert_eq!((texts(&capped), capped.omitted), (vec!["b", "c"], 2));
        assert_eq!(since(0, None, 0, 100).omitted, 4);
    }
}
