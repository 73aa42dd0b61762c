//! The words Vigil shares with its checks and loaders, one type each: where
//! a check comes from ([`CheckSource`]) and what it said ([`Verdict`]).
//! Config, the supervisor, the journal, the control API and the CLI all
//! use these; the WIT-generated `outcome` appears only in
//! [`super::bindings`], which converts at the boundary.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a component comes from: embedded in the binary or a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckSource {
    /// `builtin:NAME`, one of [`super::builtins::names`].
    Builtin(String),
    /// A `.wasm` file (in a manifest: inside the service directory, made
    /// absolute).
    File(PathBuf),
}

impl FromStr for CheckSource {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.strip_prefix("builtin:") {
            Some(name) => CheckSource::Builtin(name.to_owned()),
            None => CheckSource::File(PathBuf::from(text)),
        })
    }
}

impl fmt::Display for CheckSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSource::Builtin(name) => write!(f, "builtin:{name}"),
            CheckSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What one check run said, including the ways a guest can fail to say
/// anything. Its [`kind`](Verdict::kind) is the one spelling of a result
/// everywhere: `vigil check`, the journal, the control API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Retry(String),
    Error(String),
    /// The guest trapped (panic, memory cap, stack overflow, ...) or could
    /// not be instantiated. Inconclusive: counts like `Retry`, plus a
    /// journal warning.
    Trapped(String),
    /// The deadline passed. Inconclusive: counts like `Retry`, plus a
    /// journal warning.
    TimedOut,
}

impl Verdict {
    /// Short name: `ok`, `retry`, `error`, `trapped`, `timed-out`. The
    /// journal's spelling: it persists on disk and scripts read it.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Retry(_) => "retry",
            Verdict::Error(_) => "error",
            Verdict::Trapped(_) => "trapped",
            Verdict::TimedOut => "timed-out",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Ok => None,
            Verdict::Retry(r) | Verdict::Error(r) | Verdict::Trapped(r) => Some(r),
            Verdict::TimedOut => Some("timed out"),
        }
    }

    /// A trap or timeout: the check gave no answer.
    pub fn is_inconclusive(&self) -> bool {
        matches!(self, Verdict::Trapped(_) | Verdict::TimedOut)
    }

    /// Retry, trap and timeout: ask again, counting towards thresholds.
    pub fn counts_as_retry(&self) -> bool {
        matches!(self, Verdict::Retry(_)) || self.is_inconclusive()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{}: {reason}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}
