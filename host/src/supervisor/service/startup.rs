//! A child's start: spawned, its startup gate (startup check and
//! `READY=1`), then running or ready.

use std::time::{Duration, Instant};

use super::ServiceState;
use crate::journal::Event as Journal;
use crate::supervisor::service::{Effect, LoaderEvent, TimerKind};
use crate::supervisor::state::Status;
use crate::wasm::Phase;

impl ServiceState {
    pub(super) fn on_spawned(
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
        self.begin_post_start(fx);
        match (self.checks.startup.clone(), self.notify) {
            (Some(spec), _) => {
                self.schedule_first_check(Phase::Startup, spec.initial_delay, Duration::ZERO, fx);
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
    pub(super) fn startup_gate(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let check_ok = self.startup_check_ok || self.checks.startup.is_none();
        let notified = self.notified_ready || self.notify.is_none();
        if check_ok && notified && !self.startup_passed {
            self.startup_passed(now, fx);
        }
    }

    pub(super) fn startup_passed(&mut self, now: Instant, fx: &mut Vec<Effect>) {
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
            self.schedule_first_check(Phase::Liveness, spec.initial_delay, spec.period, fx);
        }
        match &self.checks.readiness {
            Some(spec) => {
                self.schedule_first_check(Phase::Readiness, spec.initial_delay, Duration::ZERO, fx);
                self.set(Status::Running, fx);
            }
            None => self.become_ready(now, fx),
        }
    }

    pub(super) fn become_ready(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        if !self.hooks.post_start_ok() {
            // Ready waits for the post-start hook too (its end calls here).
            self.set(Status::Running, fx);
            return;
        }
        if self.set(Status::Ready, fx) {
            fx.push(Effect::Journal(Journal::Ready));
            if self.loader_config.is_some() {
                self.decide(now, LoaderEvent::Ready, fx);
            }
        }
    }
}
