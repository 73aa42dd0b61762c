//! Statistics of the target's own process tree (`vigil:health/process`),
//! read by the host from /proc. Any pid outside the tree rooted at the
//! target's pid is `denied`.
//!
//! ```no_run
//! use vigil_sdk::process;
//!
//! # fn demo() -> Result<(), vigil_sdk::ErrorCode> {
//! let pid = process::target_pid()?;
//! let stats = process::stat(pid)?;
//! println!("{pid} is {} with {} threads", stats.state, stats.threads);
//! let total_rss: u64 = process::tree_stats()?.iter().map(|s| s.rss_bytes).sum();
//! # Ok(())
//! # }
//! ```

use std::fmt;

use crate::ErrorCode;
use crate::bindings::checker::vigil::health::process as raw;

pub use raw::{State, Stats};

/// Pid of the target's main process (`not-found` when it has none).
pub fn target_pid() -> Result<u32, ErrorCode> {
    raw::target_pid()
}

/// Stats of `pid`, the target or one of its descendants.
pub fn stat(pid: u32) -> Result<Stats, ErrorCode> {
    raw::stat(pid)
}

/// Every pid in the target's tree, the target first.
pub fn tree() -> Result<Vec<u32>, ErrorCode> {
    raw::tree()
}

/// Stats of every process in the target's tree, the target first.
/// Processes that exit between listing and reading are skipped (`not-found`,
/// or `denied` once their pid went to a process outside the tree); the
/// target's own failure is returned.
pub fn tree_stats() -> Result<Vec<Stats>, ErrorCode> {
    let pids = tree()?;
    let mut out = Vec::with_capacity(pids.len());
    for (i, pid) in pids.into_iter().enumerate() {
        match stat(pid) {
            Ok(stats) => out.push(stats),
            Err(ErrorCode::NotFound | ErrorCode::Denied(_)) if i > 0 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl State {
    /// The state's name as /proc shows it in words: `running`,
    /// `sleeping`, `disk-sleep`, `stopped`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Running => "running",
            State::Sleeping => "sleeping",
            State::DiskSleep => "disk-sleep",
            State::Stopped => "stopped",
            State::TracingStop => "tracing-stop",
            State::Zombie => "zombie",
            State::Dead => "dead",
            State::Other => "other",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
