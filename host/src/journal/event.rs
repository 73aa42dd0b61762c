//! What the journal records: the events of a service's life and of
//! Vigil's, their causes, and the line that carries them.

use serde::{Deserialize, Serialize};

/// Why Vigil stops, restarts or kills a child: journaled with `stopping`
/// (before the stop signal), and again with the `killed` and `exited` that
/// end that stop, so every end of a child says who asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The liveness check failed (past its threshold, or `error`).
    Liveness,
    /// The startup check answered `error`.
    Startup,
    /// The startup check (or `READY=1`) did not pass in time.
    StartupTimeout,
    /// `vigil stop` or `vigil restart`.
    Operator,
    /// A reload changed what the child runs (command, environment, ...).
    Reload,
    /// A reload removed the service.
    Removed,
    /// A service this one depends on stopped.
    Dependency,
    /// Vigil is shutting down.
    Shutdown,
    /// A `notify` service missed its watchdog or asked to be treated as hung.
    Watchdog,
    /// The service's loader decided it.
    Loader,
    /// The leader exited on its own and left processes in its group.
    LeaderExited,
    /// A scheduled job's `timeout` or `overlap = "kill"`.
    Schedule,
    /// A lifecycle hook failed: a pre-start (the start fails) or a
    /// post-start (the child is stopped) one.
    Hook,
    /// The kernel's OOM killer ended a process of the service (its cgroup
    /// reached `memory-max`).
    Oom,
    /// `vigil scale` lowered the count of replicas below this one's index.
    Scale,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Liveness => "liveness",
            Cause::Startup => "startup",
            Cause::StartupTimeout => "startup-timeout",
            Cause::Operator => "operator",
            Cause::Reload => "reload",
            Cause::Removed => "removed",
            Cause::Dependency => "dependency",
            Cause::Shutdown => "shutdown",
            Cause::Watchdog => "watchdog",
            Cause::Loader => "loader",
            Cause::LeaderExited => "leader-exited",
            Cause::Schedule => "schedule",
            Cause::Hook => "hook",
            Cause::Oom => "oom",
            Cause::Scale => "scale",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// A child could not be spawned; `cause` is `hook` when its pre-start
    /// hook failed.
    SpawnError {
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    /// Vigil begins to stop a child, before the stop signal goes: why
    /// (`cause`, and `reason` in words) and with which signal. `pid` is
    /// `None` when the spawn is still in flight.
    Stopping {
        pid: Option<i32>,
        cause: Cause,
        reason: String,
        signal: String,
    },
    /// A child exited (`code`) or was killed (`signal`); `cause` is the
    /// `stopping` one when Vigil was stopping it, absent when it ended on
    /// its own.
    Exited {
        pid: Option<i32>,
        code: Option<i32>,
        signal: Option<String>,
        uptime_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    /// A check's outcome changed.
    Check {
        phase: String,
        outcome: String,
        reason: Option<String>,
    },
    Ready,
    /// A ready service is no longer: its readiness check failed (`reason`
    /// is the check's), or it begins to stop (`cause` is the stop's).
    Unready {
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
    },
    /// A start waits for the services in its `after` (and `requires`)
    /// list that are not ready yet: journaled when it begins to wait and
    /// whenever the list of what it waits for changes.
    Waiting {
        #[serde(rename = "for")]
        waiting_for: Vec<String>,
    },
    /// A restart is scheduled.
    Restarting {
        delay_ms: u64,
        restarts: u32,
    },
    /// Vigil sent a signal that ends a child (SIGKILL once the stop grace
    /// ran out, or a loader's kill); `cause` is the stop's.
    Killed {
        pid: i32,
        signal: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Cause>,
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
    /// A lifecycle hook ran (`hook`: pre-start, post-start, pre-stop,
    /// post-stop): how long, `outcome` ok / failed / timeout, why it
    /// failed, and the end of what it printed (bounded).
    Hook {
        hook: String,
        outcome: String,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// The instance shut down.
    Quit {
        clean: bool,
    },
    /// `vigil replace` (or a reload of a service with sockets): a new
    /// child (`new_pid`) was spawned beside the current one (`pid`), on
    /// the same sockets; it replaces it once ready.
    Replacing {
        pid: Option<i32>,
        new_pid: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<u64>,
        cause: Cause,
        reason: String,
    },
    /// The new child got ready: it is the service's child now, and the
    /// old one (`old_pid`) is being stopped.
    Replaced {
        old_pid: Option<i32>,
        pid: i32,
    },
    /// The new child did not get ready (`reason`): it was killed and the
    /// old one kept serving.
    ReplaceFailed {
        new_pid: Option<i32>,
        reason: String,
    },
    /// A scheduled job with `catch-up = true` runs at Vigil's start: its
    /// due time `missed` passed after its `last_run` (both RFC 3339) while
    /// Vigil was down. One run stands for every missed due time.
    CatchUp {
        missed: String,
        last_run: String,
    },
    /// `vigil scale` changed the count of a service's replicas (filed
    /// under the service directory's name, `web`).
    Scaled {
        from: u32,
        to: u32,
    },
}

impl Event {
    /// Lifecycle events are fsynced: they are what the next instance needs
    /// to find children left behind.
    pub fn is_lifecycle(&self) -> bool {
        !matches!(
            self,
            Event::Check { .. }
                | Event::Ready
                | Event::Unready { .. }
                | Event::Restarting { .. }
                | Event::Waiting { .. }
                | Event::Warning { .. }
                | Event::Reloaded { .. }
        )
    }

    /// The event's fields as `key=value ...` (strings unquoted, nulls
    /// left out), for the terminal and `vigil journal`. Values are escaped
    /// ([`crate::untrusted::line`]): reasons, messages and descriptions
    /// quote what checks and services said. A process's `start_time` (clock
    /// ticks since boot, for telling a reused pid apart) means nothing to
    /// a reader and is left out; `--json` keeps it.
    pub fn fields_text(&self) -> String {
        use crate::untrusted::line;
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter(|(key, value)| key != "kind" && key != "start_time" && !value.is_null())
                .map(|(key, value)| match value {
                    serde_json::Value::String(text) => format!("{key}={}", line(&text)),
                    other => format!("{key}={}", line(&other.to_string())),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Event::Acquired { .. } => "acquired",
            Event::Spawned { .. } => "spawned",
            Event::SpawnError { .. } => "spawn-error",
            Event::Stopping { .. } => "stopping",
            Event::Exited { .. } => "exited",
            Event::Check { .. } => "check",
            Event::Ready => "ready",
            Event::Unready { .. } => "unready",
            Event::Restarting { .. } => "restarting",
            Event::Waiting { .. } => "waiting",
            Event::Killed { .. } => "killed",
            Event::GaveUp { .. } => "gave-up",
            Event::Warning { .. } => "warning",
            Event::Reloaded { .. } => "reloaded",
            Event::OrphanReaped { .. } => "orphan-reaped",
            Event::Recovered { .. } => "recovered",
            Event::Hook { .. } => "hook",
            Event::Quit { .. } => "quit",
            Event::Replacing { .. } => "replacing",
            Event::Replaced { .. } => "replaced",
            Event::ReplaceFailed { .. } => "replace-failed",
            Event::CatchUp { .. } => "catch-up",
            Event::Scaled { .. } => "scaled",
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// RFC 3339, UTC, milliseconds.
    pub ts: String,
    /// The service it is about; `None` for Vigil itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}
