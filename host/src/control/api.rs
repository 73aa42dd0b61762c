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
    pub fn matches(&self, line: &crate::journal::Line) -> bool {
        self.service
            .as_ref()
            .is_none_or(|s| line.service.as_ref() == Some(s))
            && self.since.as_ref().is_none_or(|t| line.ts >= *t)
            && self
                .kind
                .as_ref()
                .is_none_or(|kinds| kinds.split(',').any(|k| k.trim() == line.event.kind()))
    }
}

/// Past lines `GET /v1/journal` sends when `lines` is not given.
pub const DEFAULT_JOURNAL_LINES: usize = 50;
