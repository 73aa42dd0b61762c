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

mod events;
mod policy;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::reaper::ExitStatus;
use super::state::{Status, can_transition};
use crate::config::{CheckSpec, Checks, NotifySpec, Phase, RestartMode, RestartPolicy, Service};
use crate::journal::Event as Journal;
pub use events::{Action, Effect, Event, History, LoaderEvent, Notify, Outcome, Timer, TimerKind};
use policy::{Decision, RestartBook};

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
    Exit { failed: bool, uptime: Duration },
    CheckFailed { phase: Phase, outcome: Outcome },
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
    pending: Option<Pending>,
    deps_ready: bool,
    last_exit_clean: bool,
    /// The current child's startup check passed (it may still wait for
    /// `READY=1`).
    startup_check_ok: bool,
    /// The current child sent `READY=1`.
    notified_ready: bool,
    /// The current child's last `WATCHDOG=1` (or when the watchdog was armed).
    last_ping: Option<Instant>,
}

fn idx(phase: Phase) -> usize {
    match phase {
        Phase::Startup => 0,
        Phase::Readiness => 1,
        Phase::Liveness => 2,
    }
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

fn ms(d: Duration) -> u64 {
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
            pending: None,
            deps_ready: service.after.is_empty(),
            last_exit_clean: false,
            startup_check_ok: false,
            notified_ready: false,
            last_ping: None,
        }
    }

    /// Swap in a changed definition without touching the child (checks,
    /// policy, loader). Check timers already set keep running with the new
    /// specs.
    pub fn update(&mut self, service: &Service) {
        self.policy = service.restart.clone();
        self.checks = service.checks.clone();
        self.stop_signal = service.stop_signal;
        self.stop_grace = service.stop_grace;
        self.loader_config = service.loader.as_ref().map(|l| l.config.clone());
        self.notify = service.notify;
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
            Event::Stop => self.on_stop(&mut fx),
            Event::Restart => self.on_restart(now, &mut fx),
            Event::Dependencies(ready) => {
                self.deps_ready = ready;
                if ready && self.status == Status::Waiting {
                    self.spawn(&mut fx);
                }
            }
            Event::Spawned { pid, start_time } => self.on_spawned(now, pid, start_time, &mut fx),
            Event::SpawnFailed(error) => {
                if self.status == Status::Starting && self.pid.is_none() {
                    fx.push(Effect::Journal(Journal::SpawnError { error }));
                    self.after_exit_builtin(now, true, Duration::ZERO, &mut fx);
                } else if self.status == Status::Stopping && self.pid.is_none() {
                    fx.push(Effect::Journal(Journal::SpawnError { error }));
                    self.on_exit_while_stopping(now, None, Duration::ZERO, true, &mut fx);
                }
            }
            Event::Exited { status, uptime } => self.on_exited(status, uptime, &mut fx),
            Event::GroupLingers { epoch, live } => {
                if epoch == self.epoch {
                    self.on_group_lingers(live, &mut fx);
                }
            }
            Event::GroupGone { epoch } => {
                if epoch == self.epoch {
                    self.on_group_gone(now, &mut fx);
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
            Event::Timer(t) => {
                if t.epoch == self.epoch {
                    self.on_timer(now, t.kind, &mut fx);
                }
            }
            Event::Decision { epoch, action } => {
                if epoch == self.epoch {
                    self.on_decision(now, action, &mut fx);
                }
            }
            Event::Notify(message) => self.on_notify(now, message, &mut fx),
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

    fn schedule(&self, kind: TimerKind, after: Duration, fx: &mut Vec<Effect>) {
        self.schedule_spread(kind, after, Duration::ZERO, fx);
    }

    /// Like [`Self::schedule`], at a random point of `spread` past `after`.
    fn schedule_spread(
        &self,
        kind: TimerKind,
        after: Duration,
        spread: Duration,
        fx: &mut Vec<Effect>,
    ) {
        fx.push(Effect::Schedule {
            timer: Timer {
                kind,
                epoch: self.epoch,
            },
            after,
            spread,
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

    fn decide(&mut self, now: Instant, event: LoaderEvent, fx: &mut Vec<Effect>) {
        fx.push(Effect::Decide {
            epoch: self.epoch,
            event,
            history: self.history(now),
        });
    }

    fn spawn(&mut self, fx: &mut Vec<Effect>) {
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
        fx.push(Effect::Spawn {
            restarts: self.restarts,
        });
    }

    /// Stop signal to the group and the grace timer; `after` decides what
    /// happens at the exit.
    fn begin_stop(&mut self, after: AfterStop, fx: &mut Vec<Effect>) {
        self.after_stop = after;
        if !self.set(Status::Stopping, fx) {
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
        // Without a group the spawn is in flight: `Spawned` sends the signal.
    }

    fn on_start(&mut self, _now: Instant, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Stopped | Status::Exited | Status::Failed => {
                self.book = RestartBook::default();
                if self.deps_ready {
                    self.spawn(fx);
                } else {
                    self.epoch += 1;
                    self.set(Status::Waiting, fx);
                }
            }
            _ => {}
        }
    }

    fn on_stop(&mut self, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Waiting | Status::Backoff | Status::Exited | Status::Failed => {
                self.epoch += 1; // cancels timers and pending decisions
                self.pending = None;
                self.set(Status::Stopped, fx);
            }
            Status::Starting | Status::Running | Status::Ready => {
                self.begin_stop(AfterStop::Stop, fx)
            }
            Status::Stopping => self.after_stop = AfterStop::Stop,
            Status::Stopped => {}
        }
    }

    fn on_restart(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        match self.status {
            Status::Starting | Status::Running | Status::Ready => {
                self.begin_stop(AfterStop::Restart(Duration::ZERO), fx)
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

    fn on_spawned(
        &mut self,
        now: Instant,
        pid: i32,
        start_time: Option<u64>,
        fx: &mut Vec<Effect>,
    ) {
        if self.pid.is_some() || !matches!(self.status, Status::Starting | Status::Stopping) {
            tracing::warn!(service = %self.name, pid, status = %self.status, "unexpected spawn result");
            return;
        }
        self.pid = Some(pid);
        self.group = Some(pid);
        self.started_at = Some(now);
        fx.push(Effect::Journal(Journal::Spawned {
            pid,
            start_time,
            restarts: self.restarts,
        }));
        if self.status == Status::Stopping {
            fx.push(Effect::Signal {
                pgid: pid,
                signal: self.stop_signal,
            });
            self.schedule(TimerKind::StopGrace, self.stop_grace, fx);
            return;
        }
        if self.loader_config.is_some() {
            self.decide(now, LoaderEvent::Started(pid.unsigned_abs()), fx);
        }
        match (self.checks.startup.clone(), self.notify) {
            (Some(spec), _) => {
                self.schedule(TimerKind::Check(Phase::Startup), spec.initial_delay, fx);
                self.schedule(
                    TimerKind::StartupTimeout,
                    spec.initial_delay + spec.startup_timeout,
                    fx,
                );
            }
            (None, Some(notify)) => {
                self.startup_check_ok = true;
                self.schedule(TimerKind::StartupTimeout, notify.timeout, fx);
            }
            (None, None) => self.startup_passed(now, fx),
        }
    }

    /// The startup check passed or `READY=1` came: started once both
    /// conditions that apply hold.
    fn startup_gate(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let check_ok = self.startup_check_ok || self.checks.startup.is_none();
        let notified = self.notified_ready || self.notify.is_none();
        if check_ok && notified && !self.startup_passed {
            self.startup_passed(now, fx);
        }
    }

    fn startup_passed(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        self.startup_passed = true;
        if let Some(watchdog) = self.notify.and_then(|n| n.watchdog) {
            self.last_ping = Some(now);
            self.schedule(TimerKind::Watchdog, watchdog, fx);
        }
        // Liveness starts at a random point of its first period: services
        // started together then do not check in lockstep, and a hang is
        // found at a uniformly random point of the period, not always just
        // after a check. (The startup check has just passed, so checking
        // liveness at once would say little.) Readiness starts at once:
        // dependents wait for it.
        if let Some(spec) = &self.checks.liveness {
            let kind = TimerKind::Check(Phase::Liveness);
            self.schedule_spread(kind, spec.initial_delay, spec.period, fx);
        }
        match &self.checks.readiness {
            Some(spec) => {
                self.schedule(TimerKind::Check(Phase::Readiness), spec.initial_delay, fx);
                self.set(Status::Running, fx);
            }
            None => self.become_ready(now, fx),
        }
    }

    fn become_ready(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        if self.set(Status::Ready, fx) {
            fx.push(Effect::Journal(Journal::Ready));
            if self.loader_config.is_some() {
                self.decide(now, LoaderEvent::Ready, fx);
            }
        }
    }

    /// The leader was reaped. The exit counts once its group is gone
    /// ([`Self::on_group_gone`]); until then the service keeps its status.
    fn on_exited(&mut self, status: ExitStatus, uptime: Duration, fx: &mut Vec<Effect>) {
        let while_stopping = match self.status {
            Status::Stopping => true,
            Status::Starting | Status::Running | Status::Ready => false,
            other => {
                tracing::warn!(service = %self.name, status = %other, "exit without a child");
                return;
            }
        };
        self.pid = None;
        self.leader_exit = Some(LeaderExit {
            status,
            uptime,
            while_stopping,
        });
        match self.group {
            Some(pgid) => fx.push(Effect::WatchGroup {
                pgid,
                epoch: self.epoch,
            }),
            None => tracing::warn!(service = %self.name, "exit of a child with no process group"),
        }
    }

    /// Members of the exited leader's group remain. While stopping they are
    /// already covered: the stop signal went to the whole group and the
    /// `StopGrace` timer SIGKILLs it. After a leader's own exit they are
    /// stopped like the service itself.
    fn on_group_lingers(&mut self, live: bool, fx: &mut Vec<Effect>) {
        let (Some(exit), Some(pgid)) = (self.leader_exit, self.group) else {
            return;
        };
        if exit.while_stopping || self.status == Status::Stopping {
            return;
        }
        if live {
            // Journaled before the signal goes, so that it precedes the
            // `orphan-reaped` entries of the members it ends.
            fx.push(Effect::Journal(Journal::Killed {
                pid: pgid,
                signal: self.stop_signal.as_str().into(),
                reason: format!(
                    "processes left in the group after its leader exited ({})",
                    exit.status
                ),
            }));
            self.begin_stop(AfterStop::LeaderExited, fx);
        } else if self.set(Status::Stopping, fx) {
            // Only zombies: nothing to signal, the reaper takes them.
            self.after_stop = AfterStop::LeaderExited;
            self.schedule(TimerKind::StopGrace, self.stop_grace, fx);
        }
    }

    /// Nothing is left of the child: the exit counts now.
    fn on_group_gone(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Some(exit) = self.leader_exit.take() else {
            return;
        };
        let pid = self.group.take();
        let LeaderExit { status, uptime, .. } = exit;
        self.recent_exits.push_back((status, uptime, now));
        while self.recent_exits.len() > 16 {
            self.recent_exits.pop_front();
        }
        fx.push(Effect::Journal(Journal::Exited {
            pid,
            code: status.code(),
            signal: status.signal().map(signal_name),
            uptime_ms: ms(uptime),
        }));
        let clean = status
            .code()
            .is_some_and(|c| self.policy.success_codes.contains(&c));
        self.last_exit_clean = clean;
        match self.status {
            Status::Stopping => self.on_exit_while_stopping(now, Some(status), uptime, !clean, fx),
            Status::Starting | Status::Running | Status::Ready => {
                self.after_exit(now, status, uptime, !clean, fx)
            }
            other => tracing::warn!(service = %self.name, status = %other, "exit without a child"),
        }
    }

    /// The child exited on its own: the loader decides, or the built-in policy.
    fn after_exit(
        &mut self,
        now: Instant,
        status: ExitStatus,
        uptime: Duration,
        failed: bool,
        fx: &mut Vec<Effect>,
    ) {
        if self.loader_config.is_some() {
            self.pending = Some(Pending::Exit { failed, uptime });
            self.set(Status::Backoff, fx);
            self.decide(now, LoaderEvent::Exited { status, uptime }, fx);
        } else {
            self.after_exit_builtin(now, failed, uptime, fx);
        }
    }

    /// The child we were stopping is gone (`status`: the leader's exit;
    /// `None` when the spawn failed).
    fn on_exit_while_stopping(
        &mut self,
        now: Instant,
        status: Option<ExitStatus>,
        uptime: Duration,
        failed: bool,
        fx: &mut Vec<Effect>,
    ) {
        match std::mem::replace(&mut self.after_stop, AfterStop::Stop) {
            AfterStop::Stop => {
                self.set(Status::Stopped, fx);
            }
            AfterStop::Restart(delay) => self.schedule_restart(delay, fx),
            AfterStop::Fail(reason) => self.give_up(reason, fx),
            AfterStop::Failure => self.after_exit_builtin(now, true, uptime, fx),
            AfterStop::LeaderExited => match status {
                Some(status) => self.after_exit(now, status, uptime, failed, fx),
                None => self.after_exit_builtin(now, true, uptime, fx),
            },
        }
    }

    fn give_up(&mut self, reason: String, fx: &mut Vec<Effect>) {
        if self.set(Status::Failed, fx) {
            fx.push(Effect::Journal(Journal::GaveUp { reason }));
        }
    }

    /// The built-in restart policy, after the child is gone.
    fn after_exit_builtin(
        &mut self,
        now: Instant,
        failed: bool,
        uptime: Duration,
        fx: &mut Vec<Effect>,
    ) {
        let (decision, book) = policy::after_exit(&self.policy, &self.book, now, failed, uptime);
        self.book = book;
        match decision {
            Decision::Exited => {
                self.set(Status::Exited, fx);
            }
            Decision::GiveUp(reason) => self.give_up(reason, fx),
            Decision::Restart(delay) => self.schedule_restart(delay, fx),
        }
    }

    /// Into `backoff`: journal the coming restart and set its timer. Every
    /// restart delay, the policy's, an operator's or a loader's, goes
    /// through here.
    fn schedule_restart(&mut self, delay: Duration, fx: &mut Vec<Effect>) {
        if self.set(Status::Backoff, fx) {
            fx.push(Effect::Journal(Journal::Restarting {
                delay_ms: ms(delay),
                restarts: self.restarts + 1,
            }));
            self.schedule(TimerKind::Backoff, delay, fx);
        }
    }

    fn on_timer(&mut self, now: Instant, kind: TimerKind, fx: &mut Vec<Effect>) {
        match kind {
            TimerKind::Check(phase) => {
                let runs = match phase {
                    Phase::Startup => {
                        self.status == Status::Starting
                            && !self.startup_passed
                            && self.pid.is_some()
                    }
                    _ => matches!(self.status, Status::Running | Status::Ready),
                };
                if runs && self.checks.get(phase).is_some() {
                    let c = &mut self.counters[idx(phase)];
                    c.attempt += 1;
                    fx.push(Effect::RunCheck {
                        phase,
                        epoch: self.epoch,
                        attempt: c.attempt,
                    });
                }
            }
            TimerKind::StartupTimeout => {
                if self.status == Status::Starting && !self.startup_passed {
                    let reason = match (&self.checks.startup, self.notify) {
                        (Some(spec), _) if !self.startup_check_ok => format!(
                            "startup check did not pass within {:?}",
                            spec.startup_timeout
                        ),
                        (Some(spec), _) => format!(
                            "no READY=1 from the service within {:?} (its startup check passed)",
                            spec.startup_timeout
                        ),
                        (None, Some(notify)) => format!(
                            "no READY=1 from the service within {:?} (notify-timeout)",
                            notify.timeout
                        ),
                        (None, None) => "startup did not complete".to_string(),
                    };
                    fx.push(Effect::Journal(Journal::Warning {
                        message: reason.clone(),
                    }));
                    self.check_failed(now, Phase::Startup, Outcome::Error(reason), fx);
                }
            }
            TimerKind::StopGrace => {
                if self.status == Status::Stopping
                    && let Some(pid) = self.group
                {
                    // Journaled first, like the stop of a crashed leader's remains.
                    fx.push(Effect::Journal(Journal::Killed {
                        pid,
                        signal: "SIGKILL".into(),
                        reason: format!(
                            "still running {:?} after {}",
                            self.stop_grace,
                            self.stop_signal.as_str()
                        ),
                    }));
                    fx.push(Effect::Signal {
                        pgid: pid,
                        signal: Signal::SIGKILL,
                    });
                }
            }
            TimerKind::Backoff => {
                if self.status == Status::Backoff && self.pending.is_none() {
                    self.restarts += 1;
                    self.spawn(fx);
                }
            }
            TimerKind::Watchdog => self.on_watchdog_timer(now, fx),
        }
    }

    // -- notify (systemd's protocol, from the child) -------------------------

    fn on_notify(&mut self, now: Instant, message: Notify, fx: &mut Vec<Effect>) {
        if self.notify.is_none() || self.pid.is_none() {
            return;
        }
        let alive = matches!(self.status, Status::Running | Status::Ready);
        match message {
            Notify::Ready => {
                if self.status == Status::Starting && !self.notified_ready {
                    self.notified_ready = true;
                    self.startup_gate(now, fx);
                }
            }
            Notify::Watchdog => {
                if self.last_ping.is_some() {
                    self.last_ping = Some(now);
                }
            }
            Notify::WatchdogTrigger => {
                if alive && self.pending.is_none() {
                    self.watchdog_failed(now, "the service sent WATCHDOG=trigger".into(), fx);
                }
            }
        }
    }

    /// Armed once started; re-armed for what is left of the deadline after
    /// each ping, so one timer is outstanding per child life.
    fn on_watchdog_timer(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let (Some(watchdog), Some(last)) = (self.notify.and_then(|n| n.watchdog), self.last_ping)
        else {
            return;
        };
        if !matches!(self.status, Status::Running | Status::Ready) {
            return; // stopping: no liveness acts
        }
        let silent = now.saturating_duration_since(last);
        if silent < watchdog {
            self.schedule(TimerKind::Watchdog, watchdog - silent, fx);
            return;
        }
        if self.pending.is_none() {
            let reason = format!("no WATCHDOG=1 within watchdog-sec ({watchdog:?})");
            self.watchdog_failed(now, reason, fx);
        }
    }

    /// A watchdog failure is a liveness failure: journaled like a failed
    /// liveness check, then the loader or the built-in policy restarts.
    fn watchdog_failed(&mut self, now: Instant, reason: String, fx: &mut Vec<Effect>) {
        self.last_ping = None;
        fx.push(Effect::Journal(Journal::Check {
            phase: Phase::Liveness.to_string(),
            outcome: "error".into(),
            reason: Some(reason.clone()),
        }));
        self.check_failed(now, Phase::Liveness, Outcome::Error(reason), fx);
    }

    fn on_check(&mut self, now: Instant, phase: Phase, outcome: Outcome, fx: &mut Vec<Effect>) {
        let Some(spec) = self.checks.get(phase).cloned() else {
            return;
        };
        let active = match phase {
            Phase::Startup => self.status == Status::Starting && !self.startup_passed,
            _ => matches!(self.status, Status::Running | Status::Ready),
        };
        if !active {
            return; // e.g. stopping: no check acts
        }
        let c = &mut self.counters[idx(phase)];
        if outcome == Outcome::Ok {
            c.consecutive_ok += 1;
            c.consecutive_fail = 0;
        } else {
            c.consecutive_fail += 1;
            c.consecutive_ok = 0;
        }
        let (ok_count, fail_count) = (c.consecutive_ok, c.consecutive_fail);
        if c.last != Some(outcome.kind()) {
            c.last = Some(outcome.kind());
            fx.push(Effect::Journal(Journal::Check {
                phase: phase.to_string(),
                outcome: outcome.kind().into(),
                reason: outcome.reason(),
            }));
        }
        if matches!(outcome, Outcome::Trapped(_) | Outcome::TimedOut) {
            fx.push(Effect::Journal(Journal::Warning {
                message: format!(
                    "{phase} check {} {}",
                    spec.check,
                    match &outcome {
                        Outcome::Trapped(r) => format!("trapped: {r}"),
                        _ => format!("timed out after {:?}", spec.timeout),
                    }
                ),
            }));
        }

        match (phase, &outcome) {
            (Phase::Startup, Outcome::Ok) => {
                self.startup_check_ok = true;
                self.startup_gate(now, fx);
            }
            (Phase::Readiness, Outcome::Ok) => {
                if self.status == Status::Running && ok_count >= spec.success_threshold {
                    self.become_ready(now, fx);
                }
                self.schedule(TimerKind::Check(phase), spec.period, fx);
            }
            (Phase::Liveness, Outcome::Ok) => {
                self.schedule(TimerKind::Check(phase), spec.period, fx)
            }
            (_, _) => {
                if self.loader_config.is_some() {
                    // Keep checking; the loader's action may stop the child.
                    if outcome.is_inconclusive() || phase == Phase::Readiness {
                        self.schedule(TimerKind::Check(phase), spec.period, fx);
                    }
                    self.pending = None;
                    self.decide(
                        now,
                        LoaderEvent::CheckFailed {
                            phase,
                            outcome: outcome.clone(),
                            consecutive: fail_count,
                        },
                        fx,
                    );
                    // Readiness still toggles by itself.
                    if phase == Phase::Readiness {
                        self.readiness_failed(&spec, fail_count, &outcome, fx);
                    }
                } else {
                    self.builtin_check_failure(now, phase, &spec, fail_count, outcome, fx);
                }
            }
        }
    }

    fn readiness_failed(
        &mut self,
        spec: &CheckSpec,
        fail_count: u32,
        outcome: &Outcome,
        fx: &mut Vec<Effect>,
    ) {
        let drop_ready =
            matches!(outcome, Outcome::Error(_)) || fail_count >= spec.failure_threshold;
        if self.status == Status::Ready && drop_ready && self.set(Status::Running, fx) {
            fx.push(Effect::Journal(Journal::Unready {
                reason: outcome.reason(),
            }));
        }
    }

    fn builtin_check_failure(
        &mut self,
        now: Instant,
        phase: Phase,
        spec: &CheckSpec,
        fail_count: u32,
        outcome: Outcome,
        fx: &mut Vec<Effect>,
    ) {
        match phase {
            Phase::Startup => {
                if outcome.is_inconclusive() {
                    self.schedule(TimerKind::Check(phase), spec.period, fx); // the startup timeout bounds this
                } else {
                    self.check_failed(now, phase, outcome, fx);
                }
            }
            Phase::Readiness => {
                self.readiness_failed(spec, fail_count, &outcome, fx);
                self.schedule(TimerKind::Check(phase), spec.period, fx);
            }
            Phase::Liveness => {
                if matches!(outcome, Outcome::Error(_)) || fail_count >= spec.failure_threshold {
                    self.check_failed(now, phase, outcome, fx);
                } else {
                    self.schedule(TimerKind::Check(phase), spec.period, fx);
                }
            }
        }
    }

    /// A check failed for good (startup error or timeout, liveness past its
    /// threshold): the loader decides, or the child is stopped and the
    /// built-in policy applies as for a failed exit.
    fn check_failed(&mut self, now: Instant, phase: Phase, outcome: Outcome, fx: &mut Vec<Effect>) {
        if self.loader_config.is_some() && self.pending.is_none() {
            let consecutive = self.counters[idx(phase)].consecutive_fail;
            self.pending = Some(Pending::CheckFailed {
                phase,
                outcome: outcome.clone(),
            });
            self.decide(
                now,
                LoaderEvent::CheckFailed {
                    phase,
                    outcome,
                    consecutive,
                },
                fx,
            );
            return;
        }
        self.begin_stop(AfterStop::Failure, fx);
    }

    fn on_decision(&mut self, now: Instant, action: Result<Action, String>, fx: &mut Vec<Effect>) {
        let pending = self.pending.take();
        let alive = matches!(
            self.status,
            Status::Starting | Status::Running | Status::Ready
        );
        let action = match action {
            Ok(a) => a,
            Err(e) => {
                fx.push(Effect::Journal(Journal::Warning {
                    message: format!("loader failed ({e}); using the built-in policy"),
                }));
                match pending {
                    Some(Pending::Exit { failed, uptime }) => {
                        self.after_exit_builtin(now, failed, uptime, fx)
                    }
                    Some(Pending::CheckFailed { .. }) if alive => {
                        self.begin_stop(AfterStop::Failure, fx)
                    }
                    _ => {}
                }
                return;
            }
        };
        match action {
            Action::None => {
                if let Some(Pending::Exit { failed, .. }) = pending {
                    if failed {
                        self.give_up("the loader chose not to restart".into(), fx);
                    } else {
                        self.set(Status::Exited, fx);
                    }
                }
            }
            Action::Restart(delay) => {
                if alive {
                    self.begin_stop(AfterStop::Restart(delay), fx);
                } else if self.status == Status::Backoff {
                    self.schedule_restart(delay, fx);
                }
            }
            Action::Stop(reason) => {
                if alive {
                    self.begin_stop(AfterStop::Fail(reason), fx);
                } else if self.status == Status::Backoff {
                    self.give_up(reason, fx);
                }
            }
            Action::Kill(sig) => match (alive, self.pid, Signal::try_from(sig)) {
                (true, Some(pid), Ok(signal)) => {
                    fx.push(Effect::Signal { pgid: pid, signal });
                    fx.push(Effect::Journal(Journal::Killed {
                        pid,
                        signal: signal.as_str().into(),
                        reason: "loader".into(),
                    }));
                }
                (_, _, Err(_)) => fx.push(Effect::Journal(Journal::Warning {
                    message: format!("loader asked for unknown signal {sig}"),
                })),
                _ => {
                    if let Some(Pending::Exit { .. }) = pending {
                        self.set(Status::Exited, fx);
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
