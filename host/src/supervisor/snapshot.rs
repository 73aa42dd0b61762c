//! What the supervisor shows of its services.
//!
//! Each one's [`Snapshot`], and how far the start of all of them has come
//! ([`Startup`]).

use std::time::{Duration, Instant, SystemTime};

use super::service::ServiceState;
use super::state::Status;
use super::task::Local;
use crate::wasm::{Phase, Verdict};

/// A service's state as others see it (dependents, the control API,
/// `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub status: Status,
    pub pid: Option<i32>,
    /// The child's process group while any of it may be alive; it outlives
    /// `pid` when members linger after the leader.
    pub group: Option<i32>,
    pub restarts: u32,
    /// Dependents may start (ready, or a one-shot that exited cleanly).
    pub satisfies_after: bool,
    /// The current child's spawn (monotonic, for uptime), while it runs.
    pub since: Option<Instant>,
    /// The current child's spawn (wall clock), while it runs.
    pub started_at: Option<SystemTime>,
    /// The startup check passed (or there is none) for the current child.
    pub startup_passed: bool,
    /// The latest check result of the current child, any phase.
    pub last_check: Option<CheckResult>,
    /// `STATUS=` from a notify child.
    pub status_text: Option<String>,
    /// The phase whose checks are failing now, how many times in a row,
    /// and the threshold that acts on them (none: a startup check without
    /// `failure-threshold`, which only its timeout ends).
    pub failing: Option<(Phase, u32, Option<u32>)>,
    /// While `waiting`: the services of its `after` list not ready yet.
    pub waiting_for: Vec<String>,
    /// While in `backoff`: when the restart is due.
    pub restart_at: Option<tokio::time::Instant>,
    /// Why a stopped service is stopped when it is not the obvious
    /// (`autostart = false`: it waits for `vigil start`).
    pub note: Option<String>,
    /// A scheduled job's next due time and last runs.
    pub job: Option<super::schedule::JobView>,
    /// The service's cgroup, once it had a child (usage is read from it
    /// on request).
    pub cgroup: Option<std::sync::Arc<crate::cgroup::Cgroup>>,
    /// Sockets Vigil holds for it: (name, address as bound).
    pub sockets: Vec<(String, String)>,
    /// `start = "on-demand"` and no connection yet.
    pub awaiting_connection: bool,
    /// A replace's new child, while it is judged.
    pub successor: Option<i32>,
    /// The child a replace took over from, until it is reaped.
    pub predecessor: Option<i32>,
    /// Replaces finished so far (taken over or failed).
    pub replace_count: u64,
    /// Why the last replace failed, if it did.
    pub replace_failed: Option<String>,
}

/// One finished check run, as the service task measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub phase: Phase,
    pub outcome: Verdict,
    /// Time from the call to its outcome (queueing for an engine slot included).
    pub latency: Duration,
}

impl Snapshot {
    pub(super) fn of(state: &ServiceState, local: &Local) -> Snapshot {
        let running = state.pid().is_some();
        Snapshot {
            status: state.status(),
            pid: state.pid(),
            group: state.group(),
            restarts: state.restarts(),
            satisfies_after: state.satisfies_after(),
            since: state.started_at().filter(|_| running),
            started_at: Some(local.started_wall).filter(|_| running),
            startup_passed: state.has_passed_startup(),
            last_check: local.last_check.clone(),
            status_text: local.status_text.clone(),
            failing: state.failing(),
            waiting_for: local.waiting_for.clone(),
            restart_at: local
                .restart_at
                .filter(|_| state.status() == Status::Backoff),
            note: local.held.then(|| "autostart = false".to_string()),
            job: local.job.clone(),
            cgroup: local.cgroup_view.clone(),
            sockets: local.sockets.clone(),
            awaiting_connection: local.awaiting_connection,
            successor: state.successor_pid(),
            predecessor: state.predecessor_pid(),
            replace_count: state.replaces_done(),
            replace_failed: state.last_replace_failure().map(str::to_owned),
        }
    }

    /// How long the current child has been up.
    pub fn uptime(&self) -> Option<Duration> {
        self.since.map(|t| t.elapsed())
    }
}

/// How far the start of every service has come (see [`Supervisor::startup`](super::Supervisor::startup)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    pub total: usize,
    pub ready: usize,
    /// Services whose startup gate has not passed yet.
    pub waiting: Vec<String>,
    /// Services with a startup gate that gave up (`failed`).
    pub failed: Vec<String>,
}

impl Startup {
    /// Sort services into ready, still starting and failed. `gated`: the
    /// service has a startup gate (a startup check, or `notify = true`
    /// waiting for `READY=1`); only gated services hold the start up.
    pub fn tally<'a>(services: impl IntoIterator<Item = (&'a str, bool, Status)>) -> Startup {
        let mut s = Startup::default();
        for (name, gated, status) in services {
            s.total += 1;
            if status == Status::Ready {
                s.ready += 1;
            }
            if !gated {
                continue;
            }
            match status {
                Status::Running | Status::Ready | Status::Exited => {}
                Status::Failed => s.failed.push(name.to_owned()),
                _ => s.waiting.push(name.to_owned()),
            }
        }
        s
    }

    /// Every startup gate passed.
    pub fn is_up(&self) -> bool {
        self.waiting.is_empty() && self.failed.is_empty()
    }

    /// `3/4 services ready`, for systemd's `STATUS=`.
    pub fn status_line(&self) -> String {
        let mut line = format!("{}/{} services ready", self.ready, self.total);
        if !self.failed.is_empty() {
            line.push_str(&format!("; failed: {}", self.failed.join(", ")));
        } else if !self.waiting.is_empty() {
            line.push_str(&format!("; starting: {}", self.waiting.join(", ")));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gated_services_hold_the_start_up() {
        let s = Startup::tally([
            ("web", false, Status::Starting),
            ("db", true, Status::Ready),
            ("cache", true, Status::Starting),
            ("migrate", true, Status::Exited),
            ("queue", true, Status::Failed),
            ("api", true, Status::Running),
        ]);
        assert_eq!(s.total, 6);
        assert_eq!(s.ready, 1);
        assert_eq!(s.waiting, vec!["cache".to_string()]);
        assert_eq!(s.failed, vec!["queue".to_string()]);
        assert!(!s.is_up());
        assert_eq!(s.status_line(), "1/6 services ready; failed: queue");
        let up = Startup::tally([("web", false, Status::Backoff), ("db", true, Status::Ready)]);
        assert!(up.is_up());
        assert_eq!(up.status_line(), "1/2 services ready");
    }
}
