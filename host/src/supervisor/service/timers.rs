//! What each of a service's timers does when it fires: run a check, end
//! a start that took too long, SIGKILL after the grace, restart after the
//! backoff, the watchdog.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{ServiceState, idx};
use crate::journal::{Cause, Event as Journal};
use crate::supervisor::service::{Effect, TimerKind, Why};
use crate::supervisor::state::Status;
use crate::wasm::{Phase, Verdict};

impl ServiceState {
    pub(super) fn on_timer(&mut self, now: Instant, kind: TimerKind, fx: &mut Vec<Effect>) {
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
                    let why = Why::new(Cause::StartupTimeout, reason.clone());
                    self.check_failed(now, Phase::Startup, Verdict::Error(reason), why, fx);
                }
            }
            TimerKind::StopGrace => {
                if self.status == Status::Stopping
                    && let Some(pid) = self.group
                {
                    self.pre_stop_cut(fx);
                    // Journaled first, like the stop of a crashed leader's remains.
                    fx.push(Effect::Journal(Journal::Killed {
                        pid,
                        signal: "SIGKILL".into(),
                        reason: format!(
                            "still running {:?} after {}: the stop grace ran out",
                            self.stop_grace,
                            self.stop_signal.as_str()
                        ),
                        cause: self.stop_why.as_ref().map(|w| w.cause),
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
            // Dispatched by `handle` before the epoch test.
            TimerKind::Replace(_) => {}
        }
    }
}
