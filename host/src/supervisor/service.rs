//! The per-service reducer: `handle(now, event) -> Vec<Effect>`.
//!
//! Everything that happens to a service (a spawn result, an exit, a check
//! result, a timer, a loader decision, an operator command) is an
//! [`Event`]; the reducer updates the state and answers with [`Effect`]s
//! for a thin shell to perform (spawn, signal, schedule, run a check, ask
//! the loader, journal). Time is passed in, so the whole state machine is
//! tested without processes or clocks.
//!
//! Child lives are numbered (`epoch`): timers, check results and loader
//! decisions carry the epoch they were issued for, and stale ones are
//! ignored, so nothing needs cancelling.
//!
//! A child is its whole process group, not only the leader we spawned. When
//! the leader is reaped the reducer asks the shell about the group
//! ([`Effect::WatchGroup`]); the exit counts (journal `exited`, the restart
//! policy, the loader, `stopped` for a stop) only at [`Event::GroupGone`]:
//!
//! - While stopping (stop, restart, shutdown, removal), members left behind
//!   by the leader get the rest of the same stop grace, then SIGKILL of the
//!   group with the `StopGrace` timer, as when the leader itself lingers.
//! - When the leader exits on its own (a crash, a daemonizing parent), what
//!   is left of its group is stopped like a service: the stop signal
//!   (journaled as `killed`), the full stop grace, then SIGKILL. Only then
//!   does the restart policy run, so a restarted service never runs beside
//!   the remains of its previous life.
//!
//! The reducer's parts, by concern: `events` (its vocabulary), this file
//! (the state, operator commands, spawning and stopping), `startup` (a
//! child's start up to ready), `timers` (what each timer does), `checks`
//! (check results, notify messages, the watchdog), `exits` (the end of a
//! child life, the loader's decisions) and `policy` (the built-in restart
//! policy, a pure function).

mod checks;
mod events;
mod exits;
mod hooks;
mod policy;
mod replace;
mod startup;
mod timers;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::state::{Status, can_transition};
use crate::config::{Checks, NotifySpec, RestartMode, RestartPolicy, Service};
use crate::journal::{Cause, Event as Journal};
use crate::wasm::{ExitStatus, Phase, Verdict};
pub use events::{
    Action, Effect, Event, History, HookKind, LoaderEvent, Notify, ReplaceAnswer, ReplaceEvent,
    ReplaceQuestion, ReplaceTimer, Timer, TimerKind, Why,
};
use policy::RestartBook;

/// What to do once the child we are stopping has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterStop {
    /// Stay stopped.
    Stop,
    /// Start again after this delay (operator or loader restart).
    Restart(Duration),
    /// Go to `failed` with this reason.
    Fail(String),
    /// Apply the restart policy as for a failed exit (a failed check).
    Failure,
    /// The leader exited on its own and its group is being stopped: apply
    /// the restart policy (or the loader) to that exit once the group is gone.
    LeaderExited,
}

/// The leader's exit, held until its process group is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaderExit {
    status: ExitStatus,
    uptime: Duration,
    /// What the service was doing when the leader exited.
    while_stopping: bool,
}

/// A failure waiting for the loader's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Exit {
        failed: bool,
        uptime: Duration,
    },
    CheckFailed {
        phase: Phase,
        outcome: Verdict,
        /// The stop it calls for when the loader cannot answer.
        why: Why,
    },
}

#[derive(Debug, Clone, Default)]
struct Counters {
    attempt: u32,
    consecutive_ok: u32,
    consecutive_fail: u32,
    last: Option<&'static str>,
}

/// One service's state. Owned by its task; changed only by [`ServiceState::handle`].
#[derive(Debug)]
pub struct ServiceState {
    name: String,
    policy: RestartPolicy,
    checks: Checks,
    stop_signal: Signal,
    stop_grace: Duration,
    loader_config: Option<Vec<(String, String)>>,
    notify: Option<NotifySpec>,

    status: Status,
    epoch: u64,
    /// The process group leader, while it has not been reaped.
    pid: Option<i32>,
    /// The child's process group (the leader's pid), until it is empty.
    group: Option<i32>,
    /// Set between the leader's exit and the end of its group.
    leader_exit: Option<LeaderExit>,
    started_at: Option<Instant>,
    restarts: u32,
    /// The built-in restart policy's memory (backoff, give-up window).
    book: RestartBook,
    recent_exits: VecDeque<(ExitStatus, Duration, Instant)>,
    counters: [Counters; 3],
    startup_passed: bool,
    after_stop: AfterStop,
    /// Why the current child is being stopped (from `stopping` until the
    /// next spawn), for the `killed` and `exited` of that stop.
    stop_why: Option<Why>,
    pending: Option<Pending>,
    /// The number of the question whose answer resolves `pending`.
    pending_decision: u64,
    /// Questions asked of the loader so far.
    decisions: u64,
    deps_ready: bool,
    last_exit_clean: bool,
    /// The current child's startup check passed (it may still wait for
    /// `READY=1`).
    startup_check_ok: bool,
    /// The current child sent `READY=1`.
    notified_ready: bool,
    /// The current child's last `WATCHDOG=1` (or when the watchdog was armed).
    last_ping: Option<Instant>,
    /// Which hooks the service has and which run now (`hooks`).
    hooks: hooks::HookBook,
    /// `replace-timeout`.
    replace_timeout: Duration,
    /// Replaces so far (numbers their events and timers).
    replaces: u64,
    /// The new child of a replace in progress (see `service/replace.rs`).
    successor: Option<replace::Successor>,
    /// The child a replace took over from, while it stops.
    predecessor: Option<replace::Predecessor>,
    /// Why the predecessor is stopped (for its `exited` and `killed`).
    replaced_why: Option<Why>,
    /// The number of the last replace that took over (its old child's
    /// post-stop hook is that replace's).
    replaced_seq: u64,
    /// Replaces that ended, and why the last one failed.
    replaces_done: u64,
    replace_failure: Option<String>,
    /// Questions asked of the loader's `decide-replace` so far.
    replace_questions: u64,
    /// A replace asked for, while the loader is asked whether it goes on.
    replace_asked: Option<(u64, Why)>,
    /// The question that told the loader of the last failed replace.
    failed_question: u64,
}

fn idx(phase: Phase) -> usize {
    match phase {
        Phase::Startup => 0,
        Phase::Readiness => 1,
        Phase::Liveness => 2,
    }
}

/// A signal as the journal names it (`SIGTERM`), or its number.
pub(super) fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

/// Whole milliseconds, as the journal and the loader interface count.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ServiceState {
    pub fn new(service: &Service) -> ServiceState {
        ServiceState {
            name: service.name.clone(),
            policy: service.restart.clone(),
            checks: service.checks.clone(),
            stop_signal: service.stop_signal,
            stop_grace: service.stop_grace,
            loader_config: service.loader.as_ref().map(|l| l.config.clone()),
            notify: service.notify,
            status: Status::Stopped,
            epoch: 0,
            pid: None,
            group: None,
            leader_exit: None,
            started_at: None,
            restarts: 0,
            book: RestartBook::default(),
            recent_exits: VecDeque::new(),
            counters: Default::default(),
            startup_passed: false,
            after_stop: AfterStop::Stop,
            stop_why: None,
            pending: None,
            pending_decision: 0,
            decisions: 0,
            deps_ready: service.after.is_empty(),
            last_exit_clean: false,
            startup_check_ok: false,
            notified_ready: false,
            last_ping: None,
            hooks: hooks::HookBook::new(&service.hooks),
            replace_timeout: service.sockets.replace_timeout,
            replaces: 0,
            successor: None,
            predecessor: None,
            replaced_why: None,
            replaced_seq: 0,
            replaces_done: 0,
            replace_failure: None,
            replace_questions: 0,
            replace_asked: None,
            failed_question: 0,
        }
    }

    /// Swap in a changed definition without touching the child (checks,
    /// policy, loader). Check timers already set keep running with the new
    /// specs.
    ///
    /// A check the edit adds to a running child starts now (not at its
    /// next start); a readiness check it removes leaves the child ready,
    /// a startup check it removes lets the start complete.
    pub fn update(&mut self, now: Instant, service: &Service) -> Vec<Effect> {
        self.policy = service.restart.clone();
        let old = std::mem::replace(&mut self.checks, service.checks.clone());
        self.stop_signal = service.stop_signal;
        self.stop_grace = service.stop_grace;
        self.loader_config = service.loader.as_ref().map(|l| l.config.clone());
        self.notify = service.notify;
        self.hooks.configure(&service.hooks);
        self.replace_timeout = service.sockets.replace_timeout;
        let mut fx = Vec::new();
        let up = matches!(self.status, Status::Running | Status::Ready);
        for phase in [Phase::Readiness, Phase::Liveness] {
            if let Some(spec) = self
                .checks
                .get(phase)
                .filter(|_| up && old.get(phase).is_none())
            {
                let spread = match phase {
                    Phase::Liveness => spec.period,
                    _ => Duration::ZERO,
                };
                self.schedule_first_check(phase, spec.initial_delay, spread, &mut fx);
            }
        }
        if self.status == Status::Running && self.checks.readiness.is_none() {
            self.become_ready(now, &mut fx);
        }
        if self.status == Status::Starting && self.pid.is_some() && self.checks.startup.is_none() {
            self.startup_gate(now, &mut fx);
        }
        fx
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn status(&self) -> Status {
        self.status
    }
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }
    /// The child's process group while any of it may be alive (it outlives
    /// the leader when members linger).
    pub fn group(&self) -> Option<i32> {
        self.group
    }
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn started_at(&self) -> Option<Instant> {
        self.started_at
    }
    /// The current child's startup check passed (or it has none).
    pub fn has_passed_startup(&self) -> bool {
        self.startup_passed
    }

    /// The phase whose checks fail now (the longest run of failures), its
    /// consecutive failures, and the threshold that acts on them.
    pub fn failing(&self) -> Option<(Phase, u32, Option<u32>)> {
        Phase::ALL
            .into_iter()
            .filter_map(|phase| {
                let spec = self.checks.get(phase)?;
                let failures = self.counters[idx(phase)].consecutive_fail;
                let threshold = match phase {
                    Phase::Startup => spec.startup_failures,
                    _ => Some(spec.failure_threshold),
                };
                (failures > 0).then_some((phase, failures, threshold))
            })
            .max_by_key(|(_, failures, _)| *failures)
    }

    /// True when services that list this one in `after` may start: it is
    /// ready, or it is a one-shot (`restart = "never"`) that exited cleanly.
    pub fn satisfies_after(&self) -> bool {
        self.status == Status::Ready
            || (self.status == Status::Exited
                && self.policy.mode == RestartMode::Never
                && self.last_exit_clean)
    }

    /// Feed one event; returns what the shell must do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Effect> {
        let mut fx = Vec::new();
        match event {
            Event::Start => self.on_start(now, &mut fx),
            Event::Stop(why) => self.on_stop(why, &mut fx),
            Event::Restart(why) => self.on_restart(now, why, &mut fx),
            Event::Dependencies(ready) => {
                self.deps_ready = ready;
                if ready && self.status == Status::Waiting {
                    self.spawn(&mut fx);
                }
            }
            Event::DependencyGone(name) => {
                if matches!(
                    self.status,
                    Status::Starting | Status::Running | Status::Ready
                ) {
                    // Started again (through `waiting`) once it is ready.
                    let why = Why::new(Cause::Dependency, format!("{name} stopped"));
                    self.begin_stop(AfterStop::Restart(Duration::ZERO), why, &mut fx);
                }
            }
            Event::Spawned { pid, start_time } => self.on_spawned(now, pid, start_time, &mut fx),
            Event::SpawnFailed(error) => {
                if self.status == Status::Starting && self.pid.is_none() {
                    fx.push(Effect::Journal(Journal::SpawnError { error, cause: None }));
                    self.after_exit_builtin(now, true, Duration::ZERO, &mut fx);
                } else if self.status == Status::Stopping && self.pid.is_none() {
                    fx.push(Effect::Journal(Journal::SpawnError { error, cause: None }));
                    self.on_exit_while_stopping(now, None, Duration::ZERO, true, &mut fx);
                }
            }
            Event::Exited { status, uptime } => self.on_exited(status, uptime, &mut fx),
            Event::GroupLingers { epoch, live } => {
                if epoch == self.epoch {
                    self.on_group_lingers(live, &mut fx);
                }
            }
            Event::GroupGone { epoch, oom } => {
                if epoch == self.epoch {
                    self.on_group_gone(now, oom, &mut fx);
                }
            }
            Event::Check {
                epoch,
                phase,
                outcome,
            } => {
                if epoch == self.epoch {
                    self.on_check(now, phase, outcome, &mut fx);
                }
            }
            Event::Timer(Timer {
                kind: TimerKind::Replace(kind),
                epoch: seq,
            }) => self.on_replace_timer(now, seq, kind, &mut fx),
            Event::Timer(t) => {
                if t.epoch == self.epoch {
                    self.on_timer(now, t.kind, &mut fx);
                }
            }
            Event::Decision { epoch, seq, action } => {
                if epoch == self.epoch {
                    self.on_decision(now, seq, action, &mut fx);
                }
            }
            Event::Notify(message) => self.on_notify(now, message, &mut fx),
            Event::Hook {
                epoch,
                hook,
                result,
            } => self.on_hook(now, epoch, hook, result, &mut fx),
            Event::Replace(why) => self.on_replace(now, why, &mut fx),
            Event::Replacement(e) => self.on_replacement(now, e, &mut fx),
        }
        fx
    }

    // -- transitions --------------------------------------------------------

    fn set(&mut self, to: Status, fx: &mut Vec<Effect>) -> bool {
        if self.status == to {
            return true;
        }
        if !can_transition(self.status, to) {
            tracing::error!(service = %self.name, from = %self.status, to = %to, "illegal transition not taken");
            return false;
        }
        self.status = to;
        fx.push(Effect::Status(to));
        true
    }

    /// A timer `after` from now; a periodic check's may be moved by the
    /// shell's jitter.
    fn schedule(&self, kind: TimerKind, after: Duration, fx: &mut Vec<Effect>) {
        let jitter = matches!(kind, TimerKind::Check(_));
        self.push_schedule(kind, after, Duration::ZERO, jitter, fx);
    }

    /// A check's first run: its initial delay is a lower bound (as
    /// Kubernetes' initialDelaySeconds), so no jitter may bring it
    /// forward; `spread` only ever delays it further.
    fn schedule_first_check(
        &self,
        phase: Phase,
        initial_delay: Duration,
        spread: Duration,
        fx: &mut Vec<Effect>,
    ) {
        let kind = TimerKind::Check(phase);
        self.push_schedule(kind, initial_delay, spread, false, fx);
    }

    fn push_schedule(
        &self,
        kind: TimerKind,
        after: Duration,
        spread: Duration,
        jitter: bool,
        fx: &mut Vec<Effect>,
    ) {
        fx.push(Effect::Schedule {
            timer: Timer {
                kind,
                epoch: self.epoch,
            },
            after,
            spread,
            jitter,
        });
    }

    fn history(&self, now: Instant) -> History {
        History {
            service: self.name.clone(),
            restarts: self.restarts,
            uptime: self
                .started_at
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default(),
            recent_exits: self
                .recent_exits
                .iter()
                .rev()
                .map(|(status, uptime, at)| (*status, *uptime, now.saturating_duration_since(*at)))
                .collect(),
            config: self.loader_config.clone().unwrap_or_default(),
        }
    }

    /// Asks the loader about `event`; returns the question's number.
    fn decide(&mut self, now: Instant, event: LoaderEvent, fx: &mut Vec<Effect>) -> u64 {
        self.decisions += 1;
        fx.push(Effect::Decide {
            epoch: self.epoch,
            seq: self.decisions,
            event,
            history: self.history(now),
        });
        self.decisions
    }

    /// Asks the loader about an event that waits for its answer (an exit,
    /// a failed check): only that answer resolves `pending`.
    fn decide_pending(
        &mut self,
        now: Instant,
        pending: Pending,
        event: LoaderEvent,
        fx: &mut Vec<Effect>,
    ) {
        self.pending = Some(pending);
        self.pending_decision = self.decide(now, event, fx);
    }

    fn spawn(&mut self, fx: &mut Vec<Effect>) {
        if !self.deps_ready {
            // Every start waits for `after`, not only the first: a restart
            // (by policy, reload or operator) while a dependency is not
            // ready waits for it. A new epoch drops the timers of the
            // last life.
            self.epoch += 1;
            self.set(Status::Waiting, fx);
            return;
        }
        if !self.set(Status::Starting, fx) {
            return;
        }
        self.epoch += 1;
        self.pid = None;
        self.group = None;
        self.leader_exit = None;
        self.started_at = None;
        self.counters = Default::default();
        self.startup_passed = false;
        self.startup_check_ok = false;
        self.notified_ready = false;
        self.last_ping = None;
        self.pending = None;
        self.after_stop = AfterStop::Stop;
        self.stop_why = None;
        // Through the pre-start hook (and the last life's post-stop).
        self.launch(fx);
    }

    /// Stop signal to the group and the grace timer; `after` decides what
    /// happens at the exit, `why` is journaled (`stopping`) before the
    /// signal goes. A ready service turns `unready` first, as a terminating
    /// pod does: whoever reads the journal sees it leave service before
    /// its child is signalled.
    fn begin_stop(&mut self, after: AfterStop, why: Why, fx: &mut Vec<Effect>) {
        // The child a replace would keep is going: so does the new one.
        self.fail_replace(
            format!("the current child is being stopped: {}", why.reason),
            fx,
        );
        self.after_stop = after;
        let was_ready = self.status == Status::Ready;
        if !self.set(Status::Stopping, fx) {
            return;
        }
        if was_ready {
            fx.push(Effect::Journal(Journal::Unready {
                reason: Some(format!("stopping: {}", why.reason)),
                cause: Some(why.cause),
            }));
        }
        fx.push(Effect::Journal(Journal::Stopping {
            pid: self.group,
            cause: why.cause,
            reason: why.reason.clone(),
            signal: self.stop_signal.as_str().into(),
        }));
        self.stop_why = Some(why);
        if self.group.is_some() && self.begin_pre_stop(fx) {
            // The grace runs from now: the hook's time counts against it.
            self.schedule(TimerKind::StopGrace, self.stop_grace, fx);
            return;
        }
        if let Some(pgid) = self.group {
            fx.push(Effect::Signal {
                pgid,
                signal: self.stop_signal,
            });
            // A SIGSTOPped child (a hang) cannot act on the stop signal
            // until it is continued.
            fx.push(Effect::Signal {
                pgid,
                signal: Signal::SIGCONT,
            });
            self.schedule(TimerKind::StopGrace, self.stop_grace, fx);
        }
        // Without a group the spawn is in flight (`Spawned` sends the
        // signal) or not made yet: the pre-start hook or the last life's
        // post-stop runs, and its end finishes the stop.
    }

    fn on_start(&mut self, _now: Instant, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Stopped | Status::Exited | Status::Failed => {
                self.book = RestartBook::default();
                // Waits for `after` first, as every start does.
                self.spawn(fx);
            }
            // A start asked while the child is still going (after `vigil
            // stop`, say) is queued, as systemd queues a start job behind a
            // stop: it starts once the old child is gone, never beside it.
            // Shutdown is the exception: Vigil is going away.
            Status::Stopping
                if self.stop_why.as_ref().map(|why| why.cause) != Some(Cause::Shutdown) =>
            {
                self.book = RestartBook::default();
                self.after_stop = AfterStop::Restart(Duration::ZERO);
            }
            _ => {}
        }
    }

    fn on_stop(&mut self, why: Why, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Waiting | Status::Backoff | Status::Exited | Status::Failed => {
                self.epoch += 1; // cancels timers and pending decisions
                self.pending = None;
                self.set(Status::Stopped, fx);
            }
            Status::Starting | Status::Running | Status::Ready => {
                self.begin_stop(AfterStop::Stop, why, fx)
            }
            // Already signalled: the first stop's cause stands.
            Status::Stopping => self.after_stop = AfterStop::Stop,
            Status::Stopped => {}
        }
    }

    fn on_restart(&mut self, now: Instant, why: Why, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Starting | Status::Running | Status::Ready => {
                self.begin_stop(AfterStop::Restart(Duration::ZERO), why, fx)
            }
            Status::Stopping => self.after_stop = AfterStop::Restart(Duration::ZERO),
            Status::Backoff => {
                self.restarts += 1;
                self.spawn(fx);
            }
            Status::Waiting => {}
            Status::Stopped | Status::Exited | Status::Failed => self.on_start(now, fx),
        }
    }
}

use replace::describe as replace_describe;

#[cfg(test)]
mod tests;
