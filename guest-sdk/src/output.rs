//! The recent output of the service being judged (`vigil:health/output`,
//! new in contract 0.1.1): its child's stdout and stderr lines with the
//! time vigil read each. Readable only when the service grants it with
//! `[grants] output = true`; otherwise every call is `denied`. A check only
//! ever sees the output of the service it judges.
//!
//! The host keeps the last 1000 lines (256 KiB) per service and cuts each
//! line at 4 KiB. The text is the service's: treat it as untrusted input.
//!
//! ```no_run
//! use vigil_sdk::{output, Outcome, Target};
//!
//! # fn demo(target: Target) -> Result<Outcome, vigil_sdk::ErrorCode> {
//! // Lines of the current child only.
//! let recent = output::Query::since_start(&target).fetch()?;
//! if recent.lines.iter().any(|l| l.text.contains("Ready to accept connections")) {
//!     return Ok(Outcome::Ok);
//! }
//! # Ok(Outcome::retry("not yet"))
//! # }
//! ```

use crate::bindings::checker::vigil::health::output as raw;
use crate::{ErrorCode, Target};

pub use raw::{Channel, Line, Lines};

/// Most lines the host returns at once.
pub const MAX_LINES: u32 = 1000;
/// Most bytes of text the host returns at once.
pub const MAX_BYTES: u32 = 256 << 10;

/// Which lines to read; [`Query::fetch`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    inner: raw::Query,
}

impl Query {
    /// Every kept line, from both channels, up to the host's caps.
    pub fn all() -> Query {
        Query {
            inner: raw::Query {
                since_ms: None,
                channel: None,
                max_lines: MAX_LINES,
                max_bytes: MAX_BYTES,
            },
        }
    }

    /// The lines of the target's current child (read since it started).
    pub fn since_start(target: &Target) -> Query {
        Query::all().since_ms(target.started_at_ms)
    }

    /// Only lines read at or after `ms` (milliseconds since the Unix epoch).
    pub fn since_ms(mut self, ms: u64) -> Query {
        self.inner.since_ms = Some(ms);
        self
    }

    /// Only lines from `channel`.
    pub fn channel(mut self, channel: Channel) -> Query {
        self.inner.channel = Some(channel);
        self
    }

    /// At most the `n` newest matching lines.
    pub fn max_lines(mut self, n: u32) -> Query {
        self.inner.max_lines = n;
        self
    }

    /// At most `n` bytes of text, the newest matching lines.
    pub fn max_bytes(mut self, n: u32) -> Query {
        self.inner.max_bytes = n;
        self
    }

    /// Read the matching lines, oldest first.
    pub fn fetch(&self) -> Result<Lines, ErrorCode> {
        raw::recent(self.inner)
    }
}

impl Channel {
    /// `stdout` or `stderr`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Stdout => "stdout",
            Channel::Stderr => "stderr",
        }
    }
}
