//! A service's status and the transitions allowed between them.
//!
//! ```text
//! stopped → waiting → starting → running (unready) ⇄ ready
//!                        ↓            ↓               ↓
//!                     stopping ← ─ ─ ─┴─ ─ ─ ─ ─ ─ ─ ─┘
//!                        ↓
//!          backoff → starting ...     exited / failed / stopped
//! ```
//!
//! Every change goes through [`can_transition`]; an illegal one is logged
//! and not taken.

use serde::{Deserialize, Serialize};

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not running and not wanted: before the first start, or after a stop.
    Stopped,
    /// Wanted, but a service in its `after` list is not ready yet.
    Waiting,
    /// Spawn requested or child running; its startup check has not passed.
    Starting,
    /// Running and started, but not ready (readiness not yet or no longer ok).
    Running,
    /// Running and ready: gates dependents and `/readyz`.
    Ready,
    /// Stop signal sent; waiting for the child's whole process group to
    /// exit (SIGKILL after the grace).
    Stopping,
    /// Exited; waiting for the restart delay (or for the loader's decision).
    Backoff,
    /// Exited and the policy does not restart it (one-shot done, or `never`).
    Exited,
    /// Given up: too many restarts, a failed start under `never`, or a loader's `stop`.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "stopped",
            Status::Waiting => "waiting",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Ready => "ready",
            Status::Stopping => "stopping",
            Status::Backoff => "backoff",
            Status::Exited => "exited",
            Status::Failed => "failed",
        }
    }

    /// True while a child process may exist.
    pub fn has_child(self) -> bool {
        matches!(
            self,
            Status::Starting | Status::Running | Status::Ready | Status::Stopping
        )
    }

    /// True when the service is down for good until someone starts it.
    pub fn is_down(self) -> bool {
        matches!(self, Status::Stopped | Status::Exited | Status::Failed)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transition table.
pub fn can_transition(from: Status, to: Status) -> bool {
    use Status::*;
    matches!(
        (from, to),
        (Stopped, Waiting | Starting)
            | (Waiting, Starting | Stopped)
            | (
                Starting,
                Running | Ready | Stopping | Backoff | Exited | Failed
            )
            | (Running, Ready | Stopping | Backoff | Exited | Failed)
            | (Ready, Running | Stopping | Backoff | Exited | Failed)
            | (Stopping, Stopped | Backoff | Exited | Failed)
            | (Backoff, Starting | Waiting | Stopped | Exited | Failed)
            | (Exited, Waiting | Starting | Stopped)
            | (Failed, Waiting | Starting | Stopped)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 9] = [
        Status::Stopped,
        Status::Waiting,
        Status::Starting,
        Status::Running,
        Status::Ready,
        Status::Stopping,
        Status::Backoff,
        Status::Exited,
        Status::Failed,
    ];

    #[test]
    fn table_shape() {
        for s in ALL {
            assert!(!can_transition(s, s), "{s} -> {s} is not a transition");
            // Every state is reachable and can be left.
            assert!(ALL.iter().any(|f| can_transition(*f, s)) || s == Status::Stopped);
            assert!(ALL.iter().any(|t| can_transition(s, *t)));
        }
        // A running child is never dropped without going through an exit.
        assert!(!can_transition(Status::Ready, Status::Stopped));
        assert!(!can_transition(Status::Running, Status::Starting));
        // Nothing restarts straight from stopping.
        assert!(!can_transition(Status::Stopping, Status::Starting));
        assert!(can_transition(Status::Stopped, Status::Starting));
    }
}
