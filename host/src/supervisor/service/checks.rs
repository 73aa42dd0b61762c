//! Check results and notify messages: thresholds, readiness toggles,
//! liveness failures and the watchdog.

use std::time::Instant;

use super::{AfterStop, Pending, ServiceState, idx};
use crate::config::CheckSpec;
use crate::journal::{Cause, Event as Journal};
use crate::supervisor::service::{Effect, LoaderEvent, Notify, TimerKind, Why};
use crate::supervisor::state::Status;
use crate::wasm::{Phase, Verdict};

impl ServiceState {
    // -- notify (systemd's protocol, from the child) -------------------------

    pub(super) fn on_notify(&mut self, now: Instant, message: Notify, fx: &mut Vec<Effect>) {
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
    pub(super) fn on_watchdog_timer(&mut self, now: Instant, fx: &mut Vec<Effect>) {
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
        let why = Why::new(Cause::Watchdog, reason.clone());
        self.check_failed(now, Phase::Liveness, Verdict::Error(reason), why, fx);
    }

    pub(super) fn on_check(
        &mut self,
        now: Instant,
        phase: Phase,
        outcome: Verdict,
        fx: &mut Vec<Effect>,
    ) {
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
        if outcome == Verdict::Ok {
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
                reason: outcome.reason().map(str::to_owned),
            }));
        }
        if matches!(outcome, Verdict::Trapped(_) | Verdict::TimedOut(_)) {
            fx.push(Effect::Journal(Journal::Warning {
                message: format!(
                    "{phase} check {} {}",
                    spec.check,
                    match &outcome {
                        Verdict::Trapped(r) => format!("trapped: {r}"),
                        other => other.reason().unwrap_or("timed out").to_string(),
                    }
                ),
            }));
        }

        match (phase, &outcome) {
            (Phase::Startup, Verdict::Ok) => {
                self.startup_check_ok = true;
                self.startup_gate(now, fx);
            }
            (Phase::Readiness, Verdict::Ok) => {
                if self.status == Status::Running && ok_count >= spec.success_threshold {
                    self.become_ready(now, fx);
                }
                self.schedule(TimerKind::Check(phase), spec.period, fx);
            }
            (Phase::Liveness, Verdict::Ok) => {
                self.schedule(TimerKind::Check(phase), spec.period, fx)
            }
            (_, _) => {
                if self.loader_config.is_some() {
                    // Keep checking; the loader's action may stop the child.
                    if outcome.counts_as_retry() || phase == Phase::Readiness {
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
        outcome: &Verdict,
        fx: &mut Vec<Effect>,
    ) {
        let drop_ready =
            matches!(outcome, Verdict::Error(_)) || fail_count >= spec.failure_threshold;
        if self.status == Status::Ready && drop_ready && self.set(Status::Running, fx) {
            fx.push(Effect::Journal(Journal::Unready {
                reason: outcome.reason().map(str::to_owned),
                cause: None,
            }));
        }
    }

    fn builtin_check_failure(
        &mut self,
        now: Instant,
        phase: Phase,
        spec: &CheckSpec,
        fail_count: u32,
        outcome: Verdict,
        fx: &mut Vec<Effect>,
    ) {
        match phase {
            Phase::Startup => {
                let past_threshold = spec.startup_failures.is_some_and(|n| fail_count >= n);
                if outcome.counts_as_retry() && past_threshold {
                    let why = Why::new(
                        Cause::Startup,
                        format!(
                            "startup {} failed {fail_count}/{}: {}",
                            spec.check,
                            spec.startup_failures.unwrap_or_default(),
                            outcome.reason().unwrap_or_default()
                        ),
                    );
                    self.check_failed(now, phase, outcome, why, fx);
                } else if outcome.counts_as_retry() {
                    // Until the threshold, if any; the startup timeout
                    // bounds this in any case.
                    self.schedule(TimerKind::Check(phase), spec.period, fx);
                } else {
                    let why = Why::new(
                        Cause::Startup,
                        format!(
                            "startup {} failed: {}",
                            spec.check,
                            outcome.reason().unwrap_or_default()
                        ),
                    );
                    self.check_failed(now, phase, outcome, why, fx);
                }
            }
            Phase::Readiness => {
                self.readiness_failed(spec, fail_count, &outcome, fx);
                self.schedule(TimerKind::Check(phase), spec.period, fx);
            }
            Phase::Liveness => {
                if matches!(outcome, Verdict::Error(_)) || fail_count >= spec.failure_threshold {
                    let why =
                        Why::new(Cause::Liveness, liveness_reason(spec, fail_count, &outcome));
                    self.check_failed(now, phase, outcome, why, fx);
                } else {
                    self.schedule(TimerKind::Check(phase), spec.period, fx);
                }
            }
        }
    }

    /// A check failed for good (startup error or timeout, liveness past its
    /// threshold): the loader decides, or the child is stopped and the
    /// built-in policy applies as for a failed exit.
    pub(super) fn check_failed(
        &mut self,
        now: Instant,
        phase: Phase,
        outcome: Verdict,
        why: Why,
        fx: &mut Vec<Effect>,
    ) {
        if self.loader_config.is_some() && self.pending.is_none() {
            let consecutive = self.counters[idx(phase)].consecutive_fail;
            self.decide_pending(
                now,
                Pending::CheckFailed {
                    phase,
                    outcome: outcome.clone(),
                    why,
                },
                LoaderEvent::CheckFailed {
                    phase,
                    outcome,
                    consecutive,
                },
                fx,
            );
            return;
        }
        self.begin_stop(AfterStop::Failure, why, fx);
    }
}

/// "liveness builtin:redis failed 3/3: did not answer PING within 1s", or
/// for an `error`, which restarts at once, "liveness builtin:redis failed
/// (error): ...".
fn liveness_reason(spec: &CheckSpec, fail_count: u32, outcome: &Verdict) -> String {
    let reason = outcome.reason().unwrap_or_default();
    match outcome {
        Verdict::Error(_) => format!("liveness {} failed (error): {reason}", spec.check),
        _ => format!(
            "liveness {} failed {fail_count}/{}: {reason}",
            spec.check, spec.failure_threshold
        ),
    }
}
