//! The journal: what happened, one JSON object a line.

use serde::{Deserialize, Serialize};

/// One journal event. Serialized with its `kind` next to its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// An instance took the journal's lock.
    Acquired {
        pid: u32,
    },
    /// A child was spawned; `start_time` (from /proc) identifies it across
    /// pid reuse.
    Spawned {
        pid: i32,
        start_time: Option<u64>,
        restarts: u32,
    },
    /// A child could not be spawned.
    SpawnError {
        error: String,
    },
    /// A child exited (`code`) or was killed (`signal`).
    Exited {
        pid: Option<i32>,
        code: Option<i32>,
        signal: Option<String>,
        uptime_ms: u64,
    },
    /// A check's outcome changed.
    Check {
        phase: String,
        outcome: String,
        reason: Option<String>,
    },
    Ready,
    Unready {
        reason: Option<String>,
    },
    /// A restart is scheduled.
    Restarting {
        delay_ms: u64,
        restarts: u32,
    },
    /// Vigil sent a signal that ends a child (SIGKILL after the grace, or a loader's kill).
    Killed {
        pid: i32,
        signal: String,
        reason: String,
    },
    /// The policy gave up: the service is `failed`.
    GaveUp {
        reason: String,
    },
    Warning {
        message: String,
    },
    /// A service's definition, check or loader changed.
    Reloaded {
        change: String,
    },
    /// A process re-parented to Vigil exited and was reaped.
    OrphanReaped {
        pid: i32,
        code: Option<i32>,
        signal: Option<String>,
    },
    /// A child left by a previous instance was found alive and stopped.
    Recovered {
        pid: i32,
        start_time: u64,
    },
    /// The instance shut down.
    Quit {
        clean: bool,
    },
}
