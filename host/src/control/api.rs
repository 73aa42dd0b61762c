//! The control API's wire types (JSON), shared by the server and the client.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The supervisor's own pid.
    pub pid: u32,
    pub version: String,
    /// When this instance started, Unix seconds.
    pub started_at: u64,
    pub state_dir: PathBuf,
    /// The instance's cgroup (each service's is under it); absent when
    /// services are tracked by process group only (docs/cgroups.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups: Option<PathBuf>,
    pub services: Vec<ServiceStatus>,
}

/// One service, in `GET /v1/status` and `GET /v1/status/{name}`, and the
/// answer to start, stop and restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `stopped`, `waiting`, `starting`, `running` (unready), `ready`,
    /// `stopping`, `backoff`, `exited` or `failed`.
    pub state: String,
    pub pid: Option<i32>,
    /// Seconds the current child has been up.
    pub uptime_secs: Option<f64>,
    pub restarts: u32,
    pub ready: bool,
    /// True when the current child passed its startup check or has none.
    pub startup_passed: bool,
    /// The latest check's outcome: `ok`, `retry`, `error`, `trapped`, `timed-out`.
    pub last_outcome: Option<String>,
    /// Why it was not `ok`.
    pub last_reason: Option<String>,
    /// The phase of that check: `startup`, `readiness`, `liveness`.
    #[serde(default)]
    pub last_phase: Option<String>,
    /// How long that check took, milliseconds.
    pub check_latency_ms: Option<f64>,
    /// `STATUS=` sent by a notify child.
    pub status_text: Option<String>,
    /// Exited and done: a one-shot (`restart = "never"`) whose last exit
    /// was clean, which satisfies its dependents' `after`.
    #[serde(default)]
    pub finished: bool,
    /// The phase whose checks fail now, as `liveness 2/3` (failures in a
    /// row / the threshold that acts on them; `startup 4` when only the
    /// startup timeout does).
    #[serde(default)]
    pub failing: Option<String>,
    /// While `waiting`: the services of its `after` list not ready yet.
    #[serde(default)]
    pub waiting_for: Vec<String>,
    /// While in `backoff`: seconds until the restart.
    #[serde(default)]
    pub restart_in_secs: Option<f64>,
    /// Why a stopped service is stopped: `autostart = false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A scheduled job: seconds until its next due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_in_secs: Option<f64>,
    /// A scheduled job: its next due time and last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobStatus>,
    /// The service's cgroup (absent: tracked by process group only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// CPU time used in its cgroup, all its lives, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    /// Memory charged to its cgroup now, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The services it starts after (its `after` list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Listening sockets Vigil holds for it, in the order its children get
    /// them (fd 3 on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sockets: Vec<SocketStatus>,
    /// `start = "on-demand"`, waiting for its first connection.
    #[serde(default)]
    pub awaiting_connection: bool,
    /// While a replace runs: the new child, beside `pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacing_pid: Option<i32>,
    /// After a replace: the old child, until it has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_pid: Option<i32>,
    /// Why the last replace kept the old child (cleared by the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_failed: Option<String>,
}

/// One finished check in `GET /v1/checks` (kept by the supervisor).
pub use crate::supervisor::history::CheckSample;

/// `GET /v1/checks[?service=NAME]`: the last check results of each
/// service (up to 120), oldest first, for latency plots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckHistory {
    pub services: std::collections::BTreeMap<String, Vec<CheckSample>>,
}

/// A scheduled job, in [`ServiceStatus`] (times RFC 3339, UTC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `every 10m`, or the cron expression and its zone.
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<JobRun>,
    /// When the last successful run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
}

/// How a job's last run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Why it was stopped, if it was (`schedule`: its timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub duration_secs: f64,
    pub ended_at: String,
    /// It exited with one of its `success-codes`.
    pub ok: bool,
}

/// A socket held for a service, in [`ServiceStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStatus {
    /// Its `[sockets.NAME]`, the child's `LISTEN_FDNAMES` entry.
    pub name: String,
    /// The address as bound (a port 0 resolved).
    pub listen: String,
    /// The fd a child finds it at.
    pub fd: u32,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// For an unknown service: the services there are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<String>,
}

/// `POST /v1/reload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    pub reloaded: bool,
}

/// The lines of `POST /v1/shutdown` (streamed: the answer ends when the
/// services are stopped and the instance is about to exit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownProgress {
    /// The pid that is shutting down.
    pub pid: u32,
    /// False on the first line, true on the last one.
    pub stopped: bool,
}

/// What `GET /v1/journal` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalQuery {
    /// Only lines about this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Keep the answer open and stream new lines as they are recorded.
    #[serde(default)]
    pub follow: bool,
    /// How many past lines to send first (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
    /// Only lines recorded at or after this time: RFC 3339 in the
    /// journal's own form (UTC, milliseconds, as
    /// [`journal::timestamp`](crate::journal::timestamp) writes it), so
    /// that it compares as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only these kinds of events, comma-separated (`exited,killed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl JournalQuery {
    /// True when `line` passes the query's service, `since` and `kind`
    /// filters (`lines` and `follow` say how many and how long).
    /// A replicated service's name (`web`) matches its own lines
    /// (`scaled`) and every replica's (`web@1`).
    pub fn matches(&self, line: &crate::journal::Line) -> bool {
        self.service.as_ref().is_none_or(|s| {
            line.service.as_deref().is_some_and(|l| {
                l == s
                    || crate::config::replicas::split_name(l).is_some_and(|(group, _)| group == s)
            })
        }) && self.since.as_ref().is_none_or(|t| line.ts >= *t)
            && self
                .kind
                .as_ref()
                .is_none_or(|kinds| kinds.split(',').any(|k| k.trim() == line.event.kind()))
    }
}

/// Past lines `GET /v1/journal` sends when `lines` is not given.
pub const DEFAULT_JOURNAL_LINES: usize = 50;
