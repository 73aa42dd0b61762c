//! The words Vigil shares with its checks and loaders, one type each: where
//! a check comes from ([`CheckSource`]), which question it answers
//! ([`Phase`]), what it said ([`Verdict`]) and how a child ended
//! ([`ExitStatus`]). Config, the supervisor, the journal, the control API
//! and the CLI all use these; the WIT-generated twins of the last three
//! appear only in [`super::bindings`], which converts at the boundary.

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
    /// `embedded:ROLE`: the component a binary carries in its
    /// `.vigil.components` section (see [`super::embedded`]); in a
    /// manifest, the binary is the program of the service's command.
    Embedded { binary: PathBuf, role: String },
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
            CheckSource::Embedded { binary, role } => {
                write!(f, "embedded:{role} in {}", binary.display())
            }
        }
    }
}

/// Which question a check answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Startup,
    Readiness,
    Liveness,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Startup, Phase::Readiness, Phase::Liveness];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Readiness => "readiness",
            Phase::Liveness => "liveness",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// journal warning. The reason says which deadline, and a check run by
    /// the supervisor gets the end of what it printed before it was cut
    /// off (where it was stuck).
    TimedOut(String),
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
            Verdict::TimedOut(_) => "timed-out",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Ok => None,
            Verdict::Retry(r) | Verdict::Error(r) | Verdict::Trapped(r) | Verdict::TimedOut(r) => {
                Some(r)
            }
        }
    }

    /// A trap or timeout: the check gave no answer.
    pub fn is_inconclusive(&self) -> bool {
        matches!(self, Verdict::Trapped(_) | Verdict::TimedOut(_))
    }

    /// A timeout after `deadline`, or at a deadline the caller does not know.
    pub fn timed_out(deadline: Option<std::time::Duration>) -> Verdict {
        Verdict::TimedOut(match deadline {
            Some(deadline) => format!(
                "timed out after {}",
                crate::units::format_duration(deadline)
            ),
            None => "timed out".to_string(),
        })
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

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited by itself with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// `Some(code)` when it exited by itself.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) => None,
        }
    }

    /// `Some(signal)` when it was killed by a signal.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Code(_) => None,
            ExitStatus::Signal(s) => Some(s),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => match nix::sys::signal::Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by {sig}"),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}
