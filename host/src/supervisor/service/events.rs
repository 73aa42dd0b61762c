//! The reducer's vocabulary: events in, effects out, and what they carry.

use std::time::Duration;

use nix::sys::signal::Signal;

pub use crate::config::HookKind;
use crate::journal::{Cause, Event as Journal};
use crate::supervisor::state::Status;
use crate::wasm::{ExitStatus, Phase, Verdict};

/// Why a stop or restart is asked for: the journal's `cause`, and what
/// happened in words (e.g. "liveness builtin:redis failed 3/3: did not
/// answer PING within 1s", or "vigil restart"). Carried by the reducer from
/// the event that stops a child to the `stopping`, `killed` and `exited`
/// lines of that stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub cause: Cause,
    pub reason: String,
}

impl Why {
    pub fn new(cause: Cause, reason: impl Into<String>) -> Why {
        Why {
            cause,
            reason: reason.into(),
        }
    }

    /// An operator's command, e.g. `Why::operator("vigil stop")`.
    pub fn operator(command: &str) -> Why {
        Why::new(Cause::Operator, command)
    }

    /// Vigil's own shutdown.
    pub fn shutdown() -> Why {
        Why::new(Cause::Shutdown, "vigil is shutting down")
    }
}

/// An event of a service's life, as a loader sees it (WIT `policy.event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoaderEvent {
    Started(u32),
    Ready,
    CheckFailed {
        phase: Phase,
        outcome: Verdict,
        consecutive: u32,
    },
    Exited {
        status: ExitStatus,
        uptime: Duration,
    },
}

/// A step of a replace, as a loader of world `replace-loader` is asked
/// about it (WIT `replace-policy.replace-event`, new in 0.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceQuestion {
    /// A replace was asked for while `pid` serves.
    Requested {
        pid: i32,
        cause: Cause,
        reason: String,
    },
    /// The new child passed its gate: the switch is next.
    NewReady { old_pid: i32, new_pid: i32 },
    /// The replace failed; the old child serves.
    Failed {
        old_pid: i32,
        new_pid: Option<i32>,
        reason: String,
    },
}

/// A loader's say about a step of a replace (WIT
/// `replace-policy.replace-decision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceAnswer {
    Proceed,
    Restart,
    Refuse(String),
}

/// What a loader knows besides the event (WIT `policy.history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub service: String,
    pub restarts: u32,
    pub uptime: Duration,
    /// Newest first, at most 16: the exit and how long ago it happened.
    pub recent_exits: Vec<(ExitStatus, Duration, Duration)>,
    pub config: Vec<(String, String)>,
}

/// A loader's decision (WIT `policy.action`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Restart(Duration),
    Stop(String),
    Kill(i32),
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Run the check of this phase.
    Check(Phase),
    /// The startup check's deadline.
    StartupTimeout,
    /// The stop grace: SIGKILL when it fires.
    StopGrace,
    /// The restart delay.
    Backoff,
    /// A `notify` service's watchdog deadline (`watchdog-sec`).
    Watchdog,
    /// A replace (`Timer::epoch` is the replace's number, not the
    /// child's): see [`ReplaceTimer`].
    Replace(ReplaceTimer),
}

/// The timers of a replace (see `service/replace.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplaceTimer {
    /// Run the new child's check of this phase.
    Check(Phase),
    /// `replace-timeout`: the new child is not ready, kill it.
    Deadline,
    /// The replaced child's stop grace: SIGKILL to its group.
    OldGrace,
}

/// What happens to the new child of a replace, or the old one after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaceEvent {
    Spawned {
        seq: u64,
        pid: i32,
        start_time: Option<u64>,
    },
    SpawnFailed {
        seq: u64,
        error: String,
    },
    /// A check of the new child finished.
    Check {
        seq: u64,
        phase: Phase,
        outcome: Verdict,
    },
    /// `READY=1` from the new child (the shell checked its group).
    Ready {
        seq: u64,
    },
    /// The new child (before it took over) was reaped.
    Exited {
        seq: u64,
        status: ExitStatus,
    },
    /// The replaced child was reaped.
    OldExited {
        status: ExitStatus,
        uptime: Duration,
    },
    /// Answer to [`Effect::WatchReplaced`]: nothing is left of the
    /// replaced child's process group.
    OldGroupGone {
        seq: u64,
    },
    /// A hook asked for by [`Effect::RunReplaceHook`] ended (`Err` says
    /// why it failed).
    Hook {
        seq: u64,
        hook: HookKind,
        result: Result<(), String>,
    },
    /// The loader answered [`Effect::DecideReplace`] `question`: `None`
    /// when it has no `replace-policy` (it is not asked: the replace goes
    /// on), `Err` when it failed (journaled; the replace goes on).
    Decided {
        question: u64,
        answer: Result<Option<ReplaceAnswer>, String>,
    },
}

/// What a `notify = true` child said, as far as the state machine cares
/// (`STATUS=` text goes straight to the snapshot).
///
/// `READY=1` is a startup gate: the service is started once it has sent
/// `READY=1` *and* its startup check (if any) has passed; a readiness check
/// then gates `ready` as usual. Without a startup check, `notify-timeout`
/// bounds the wait for `READY=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// `READY=1`.
    Ready,
    /// `WATCHDOG=1`: the child is alive (with `watchdog-sec`).
    Watchdog,
    /// `WATCHDOG=trigger`: the child asks to be treated as hung.
    WatchdogTrigger,
}

/// A timer, tied to the child life it was set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    pub epoch: u64,
}

/// Inputs of the reducer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Operator or startup: run the service.
    Start,
    /// Operator, shutdown, reload: stop the service and keep it stopped.
    Stop(Why),
    /// Operator or reload: stop and start again at once.
    Restart(Why),
    /// Whether everything in `after` is satisfied now.
    Dependencies(bool),
    /// A service in `requires` stopped or its child died: stop this one
    /// too; it starts again once its dependencies are ready.
    DependencyGone(String),
    /// The shell spawned the child.
    Spawned {
        pid: i32,
        start_time: Option<u64>,
    },
    /// The shell could not spawn the child.
    SpawnFailed(String),
    /// The child (the process group leader) was reaped.
    Exited {
        status: ExitStatus,
        uptime: Duration,
    },
    /// Answer to [`Effect::WatchGroup`]: members of the exited leader's
    /// group remain (`live`: some are not zombies). [`Event::GroupGone`]
    /// follows once the group is empty.
    GroupLingers {
        epoch: u64,
        live: bool,
    },
    /// The exited leader's process group is empty, and every member the
    /// reaper took has been journaled.
    GroupGone {
        /// The kernel's OOM killer ended a process of this life (read
        /// from the service's cgroup; false without one).
        oom: bool,
        epoch: u64,
    },
    /// A check finished.
    Check {
        epoch: u64,
        phase: Phase,
        outcome: Verdict,
    },
    Timer(Timer),
    /// The loader answered (Err: it failed, use the built-in policy).
    Decision {
        epoch: u64,
        /// Which [`Effect::Decide`] this answers (answers can arrive out
        /// of order: each runs in its own task).
        seq: u64,
        action: Result<Action, String>,
    },
    /// A notify message from the current child (the shell checked the
    /// sender's credentials).
    Notify(Notify),
    /// A hook asked for by [`Effect::RunHook`] ended: `Err` says why it
    /// failed (non-zero exit, timeout, a check that was not `ok`).
    Hook {
        epoch: u64,
        hook: HookKind,
        result: Result<(), String>,
    },
    /// Operator or reload: start a new child beside the current one and
    /// switch to it once it is ready (a service with sockets).
    Replace(Why),
    /// About a replace in progress or just done.
    Replacement(ReplaceEvent),
}

/// Outputs of the reducer, performed by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Spawn the child (the manifest's command, or the loader's `spawn`)
    /// and answer with [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn {
        restarts: u32,
    },
    /// Send a signal to the child's process group.
    Signal {
        pgid: i32,
        signal: Signal,
    },
    /// The group's leader was reaped: answer at once with
    /// [`Event::GroupGone`] when nothing is left of group `pgid`, else with
    /// [`Event::GroupLingers`] and later [`Event::GroupGone`].
    WatchGroup {
        pgid: i32,
        epoch: u64,
    },
    /// Fire [`Event::Timer`] after this long, plus a random part of
    /// `spread`, chosen by the shell.
    Schedule {
        timer: Timer,
        after: Duration,
        spread: Duration,
        /// The shell may move `after` by ±10 % (periodic checks); never
        /// for a check's first run, whose initial delay is a lower bound.
        jitter: bool,
    },
    /// Run a check and answer with [`Event::Check`].
    RunCheck {
        phase: Phase,
        epoch: u64,
        attempt: u32,
    },
    /// Ask the loader and answer with [`Event::Decision`].
    Decide {
        epoch: u64,
        /// Numbers the questions, so an answer is matched to its own.
        seq: u64,
        event: LoaderEvent,
        history: History,
    },
    Journal(Journal),
    /// Run the service's `hook` (journal it) and answer with
    /// [`Event::Hook`] carrying `epoch`.
    RunHook {
        hook: HookKind,
        epoch: u64,
    },
    /// The status changed (dependents, control API).
    Status(Status),
    /// Spawn the new child of replace `seq` (same command as [`Effect::Spawn`]);
    /// answer with [`ReplaceEvent::Spawned`] or [`ReplaceEvent::SpawnFailed`].
    SpawnSuccessor {
        seq: u64,
        restarts: u32,
    },
    /// Run a check against the new child `pid` of replace `seq`; answer
    /// with [`ReplaceEvent::Check`].
    RunSuccessorCheck {
        seq: u64,
        phase: Phase,
        pid: i32,
        attempt: u32,
    },
    /// Run the service's `hook` around a child of replace `seq` (journal
    /// it) and answer with [`ReplaceEvent::Hook`]: pre-start and
    /// post-start for the new child, pre-stop and post-stop for the old
    /// one. `pid` is the child it is run for (`VIGIL_SERVICE_PID`, a check
    /// hook's target), none before its spawn and after its end.
    RunReplaceHook {
        hook: HookKind,
        seq: u64,
        pid: Option<i32>,
    },
    /// The replaced child's leader was reaped: answer with
    /// [`ReplaceEvent::OldGroupGone`] once its group `pgid` is empty.
    WatchReplaced {
        pgid: i32,
        seq: u64,
    },
    /// Ask the loader's `decide-replace` (a service with a loader) and
    /// answer with [`ReplaceEvent::Decided`] for `question`.
    DecideReplace {
        question: u64,
        event: ReplaceQuestion,
        history: History,
    },
}
