//! Replace without downtime: the one place two children of a service
//! coexist.
//!
//! [`Event::Replace`] spawns a *successor* beside the current child (both
//! get the same listening sockets from Vigil, so both accept from the same
//! queue). The successor must pass its own gate, judged on it alone and
//! never on the current child:
//!
//! - its startup check, run with the successor's pid as the target, until
//!   `ok` (`error` fails the replace);
//! - with `notify = true`, `READY=1` from the successor's own process group;
//! - its readiness check, run against the successor's pid, once `ok`.
//!
//! A check that only asks the shared address (builtin:http on the
//! service's port) may be answered by the old child: its `ok` proves
//! little, which the documentation says; `READY=1` and checks that look at
//! the pid's own state cannot be borrowed.
//!
//! Once the gate passes, the successor becomes the service's child (a new
//! epoch: the old child's timers and check results are stale from then
//! on) and the old one is stopped: the stop signal and SIGCONT to its
//! group, SIGKILL after the stop grace (the *predecessor*). If the gate
//! does not pass within `replace-timeout`, or the successor exits or a
//! check says `error`, the successor's group is SIGKILLed and the old
//! child keeps serving (`replace-failed`). Anything that stops or loses
//! the current child during a replace (stop, restart, its exit, a failed
//! liveness check) ends the replace the same way first.
//!
//! Hooks go around each child as they do in a restart, in the order of
//! the replace's own steps (docs/sockets.md, "Hooks in a replace"):
//!
//! 1. `pre-start`, before the new child is spawned; its failure fails the
//!    replace (nothing was spawned, the old child keeps serving);
//! 2. `post-start` (with the new pid), from the spawn on beside the new
//!    child's startup check; the new child takes over only once it
//!    succeeded, and its failure fails the replace (the new child is
//!    SIGKILLed);
//! 3. at the switch, `pre-stop` (with the old pid) before the old child's
//!    stop signal; the old child's stop grace starts with it, a failure
//!    is a warning and the signal follows at once;
//! 4. `post-stop`, once the old child's whole process group is gone
//!    (while the new child serves: it cannot delay anything).
//!
//! These runs are the replace's own (numbered by it, answered by
//! [`ReplaceEvent::Hook`]), apart from the current life's hook slots: a
//! replace's `post-stop` may run while the new child's life goes on.
//!
//! A loader of world `replace-loader` (WIT 0.1.2) takes part: it is asked
//! ([`Effect::DecideReplace`]) when a replace is requested (go on, restart
//! instead, or refuse), when the new child passed its gate (switch,
//! restart instead, or refuse: the replace fails), and after a replace
//! failed (restart the service, or nothing). A service with any loader is
//! asked; the shell answers at once for a loader without `replace-policy`
//! (the replace goes on), and a loader that fails is journaled and the
//! replace goes on.
//!
//! Invariants (checked by the property test): outside a replace there is
//! at most one child; a replace ends with either the old child stopped
//! (signalled, and SIGKILLed after the grace) or the new one killed.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::events::{ReplaceEvent, ReplaceTimer};
use super::{AfterStop, ServiceState, idx, ms, signal_name};
use crate::journal::Cause;
use crate::journal::Event as Journal;
use crate::supervisor::service::{
    Effect, HookKind, ReplaceAnswer, ReplaceQuestion, TimerKind, Why,
};
use crate::supervisor::state::Status;
use crate::wasm::{ExitStatus, Phase, Verdict};

/// The new child of a replace in progress.
#[derive(Debug, Clone)]
pub(super) struct Successor {
    /// The replace's number: its events and timers carry it.
    pub(super) seq: u64,
    pub(super) why: Why,
    /// `None` while its spawn is in flight.
    pub(super) pid: Option<i32>,
    pub(super) started_at: Option<Instant>,
    pub(super) startup_ok: bool,
    pub(super) notified: bool,
    pub(super) readiness_ok: bool,
    /// Check runs so far, per phase (the target's `attempt`).
    pub(super) attempts: [u32; 3],
    /// Its first readiness run is scheduled.
    pub(super) readiness_started: bool,
    /// Killed (the replace failed); gone once it is reaped.
    pub(super) killed: bool,
    /// Its pre-start hook runs (no spawn asked yet).
    pub(super) pre_start: bool,
    /// Its spawn was asked for and has not answered.
    pub(super) spawning: bool,
    /// Its post-start hook succeeded (or the service has none).
    pub(super) post_start_ok: bool,
    /// The loader was asked about the switch (the question's number).
    pub(super) asked: Option<u64>,
    /// The loader said `proceed` to the switch (or was not asked).
    pub(super) approved: bool,
}

/// The child a replace took over from, while it stops.
#[derive(Debug, Clone)]
pub(super) struct Predecessor {
    pub(super) seq: u64,
    /// Its process group (its leader's pid).
    pub(super) group: i32,
    /// `None` once the leader was reaped (the group may linger until the
    /// grace ends).
    pub(super) pid: Option<i32>,
    /// Its pre-stop hook runs: the stop signal waits for its end (or the
    /// grace's SIGKILL).
    pub(super) pre_stop: bool,
}

impl ServiceState {
    /// The new child of a replace in progress (spawned, not yet reaped).
    pub fn successor_pid(&self) -> Option<i32> {
        self.successor.as_ref().and_then(|s| s.pid)
    }

    /// The process group of the child a replace took over from, until
    /// its grace has ended.
    pub fn predecessor_group(&self) -> Option<i32> {
        self.predecessor.as_ref().map(|p| p.group)
    }

    /// The child a replace took over from, until its leader is reaped.
    pub fn predecessor_pid(&self) -> Option<i32> {
        self.predecessor.as_ref().and_then(|p| p.pid)
    }

    /// Replaces that ended (taken over or failed).
    pub fn replaces_done(&self) -> u64 {
        self.replaces_done
    }

    /// Why the last replace failed (`None` when it took over).
    pub fn last_replace_failure(&self) -> Option<&str> {
        self.replace_failure.as_deref()
    }

    /// The number of the replace in progress.
    pub fn successor_seq(&self) -> Option<u64> {
        self.successor.as_ref().map(|s| s.seq)
    }

    /// Whether a replace's new child is being judged (not killed).
    pub fn replacing(&self) -> bool {
        self.successor.as_ref().is_some_and(|s| !s.killed)
    }

    pub(super) fn on_replace(&mut self, now: Instant, why: Why, fx: &mut Vec<Effect>) {
        let serving = matches!(self.status, Status::Running | Status::Ready) && self.pid.is_some();
        if !serving {
            // Nothing to keep serving: a replace is a restart.
            return self.on_restart(now, why, fx);
        }
        if self.successor.is_some()
            || self.predecessor_pid().is_some()
            || self.replace_asked.is_some()
        {
            fx.push(Effect::Journal(Journal::Warning {
                message: format!(
                    "replace ({}) ignored: the previous replace has not finished",
                    why.reason
                ),
            }));
            return;
        }
        if let Some(pid) = self.pid.filter(|_| self.loader_config.is_some()) {
            // The loader has its say first (the shell answers `proceed`
            // at once for a loader without `replace-policy`).
            let question = ReplaceQuestion::Requested {
                pid,
                cause: why.cause,
                reason: why.reason.clone(),
            };
            let q = self.ask_replace(now, question, fx);
            self.replace_asked = Some((q, why));
            return;
        }
        self.begin_replace(why, fx);
    }

    /// Ask the loader's `decide-replace`; the question's number.
    fn ask_replace(&mut self, now: Instant, event: ReplaceQuestion, fx: &mut Vec<Effect>) -> u64 {
        self.replace_questions += 1;
        fx.push(Effect::DecideReplace {
            question: self.replace_questions,
            event,
            history: self.history(now),
        });
        self.replace_questions
    }

    /// The loader answered question `question`.
    fn replace_decided(
        &mut self,
        now: Instant,
        question: u64,
        answer: Result<Option<ReplaceAnswer>, String>,
        fx: &mut Vec<Effect>,
    ) {
        let answer = match answer {
            Ok(answer) => answer.unwrap_or(ReplaceAnswer::Proceed),
            Err(problem) => {
                fx.push(Effect::Journal(Journal::Warning {
                    message: format!(
                        "the loader could not decide about the replace ({problem}); going on"
                    ),
                }));
                ReplaceAnswer::Proceed
            }
        };
        let serving = matches!(self.status, Status::Running | Status::Ready) && self.pid.is_some();
        if let Some((q, why)) = self.replace_asked.clone()
            && q == question
        {
            self.replace_asked = None;
            if !serving {
                // Stopped or restarted meanwhile: nothing to replace.
                return;
            }
            match answer {
                ReplaceAnswer::Proceed => self.begin_replace(why, fx),
                ReplaceAnswer::Restart => {
                    let reason = format!(
                        "the loader restarts it instead of a replace ({})",
                        why.reason
                    );
                    self.on_restart(now, Why::new(Cause::Loader, reason), fx);
                }
                ReplaceAnswer::Refuse(reason) => {
                    let reason = format!("the loader refused the replace: {reason}");
                    self.replaces_done += 1;
                    self.replace_failure = Some(reason.clone());
                    fx.push(Effect::Journal(Journal::ReplaceFailed {
                        new_pid: None,
                        reason,
                    }));
                }
            }
            return;
        }
        let asked = self
            .successor
            .as_ref()
            .is_some_and(|s| s.asked == Some(question) && !s.killed);
        if asked {
            match answer {
                ReplaceAnswer::Proceed => {
                    if let Some(s) = self.successor.as_mut() {
                        s.approved = true;
                    }
                    self.successor_gate(now, fx);
                }
                ReplaceAnswer::Refuse(reason) => {
                    self.fail_replace(format!("the loader refused the switch: {reason}"), fx)
                }
                ReplaceAnswer::Restart => {
                    self.fail_replace(
                        "the loader restarts the service instead of switching".into(),
                        fx,
                    );
                    let why = Why::new(Cause::Loader, "the loader restarts it instead of a switch");
                    self.on_restart(now, why, fx);
                }
            }
            return;
        }
        if question == self.failed_question
            && answer == ReplaceAnswer::Restart
            && serving
            && !self.replacing()
        {
            let why = Why::new(
                Cause::Loader,
                "the loader restarts it after a failed replace",
            );
            self.on_restart(now, why, fx);
        }
    }

    /// A replace failed by its own steps (not by a stop): the loader is
    /// told, and may restart the service.
    fn tell_replace_failed(&mut self, now: Instant, new_pid: Option<i32>, fx: &mut Vec<Effect>) {
        let Some(old_pid) = self.pid.filter(|_| self.loader_config.is_some()) else {
            return;
        };
        let reason = self.replace_failure.clone().unwrap_or_default();
        let question = ReplaceQuestion::Failed {
            old_pid,
            new_pid,
            reason,
        };
        self.failed_question = self.ask_replace(now, question, fx);
    }

    /// Spawn the new child (after its pre-start hook): the replace begins.
    fn begin_replace(&mut self, why: Why, fx: &mut Vec<Effect>) {
        if let Some(old) = self.predecessor.take() {
            // Its leader is gone; what lingers of its group goes now.
            fx.push(Effect::Journal(Journal::Killed {
                pid: old.group,
                signal: "SIGKILL".into(),
                reason: "what is left of the replaced child's group, before the next replace"
                    .into(),
                cause: self.replaced_why.as_ref().map(|w| w.cause),
            }));
            fx.push(Effect::Signal {
                pgid: old.group,
                signal: Signal::SIGKILL,
            });
        }
        self.replaces += 1;
        let seq = self.replaces;
        let pre_start = self.hooks.has(HookKind::PreStart);
        self.successor = Some(Successor {
            seq,
            why,
            pid: None,
            started_at: None,
            startup_ok: self.checks.startup.is_none(),
            notified: self.notify.is_none(),
            readiness_ok: self.checks.readiness.is_none(),
            attempts: [0; 3],
            readiness_started: false,
            killed: false,
            pre_start,
            spawning: !pre_start,
            post_start_ok: true,
            asked: None,
            approved: self.loader_config.is_none(),
        });
        if pre_start {
            // As before any spawn: the new child only once it said ok.
            fx.push(Effect::RunReplaceHook {
                hook: HookKind::PreStart,
                seq,
                pid: None,
            });
        } else {
            fx.push(Effect::SpawnSuccessor {
                seq,
                restarts: self.restarts,
            });
        }
        self.push_schedule(
            TimerKind::Replace(ReplaceTimer::Deadline),
            self.replace_timeout,
            Duration::ZERO,
            false,
            fx,
        );
        // The deadline timer carries the replace's number, not the epoch.
        if let Some(Effect::Schedule { timer, .. }) = fx.last_mut() {
            timer.epoch = seq;
        }
    }

    fn schedule_replace(
        &self,
        seq: u64,
        kind: ReplaceTimer,
        after: Duration,
        fx: &mut Vec<Effect>,
    ) {
        self.push_schedule(TimerKind::Replace(kind), after, Duration::ZERO, false, fx);
        if let Some(Effect::Schedule { timer, .. }) = fx.last_mut() {
            timer.epoch = seq;
        }
    }

    pub(super) fn on_replacement(
        &mut self,
        now: Instant,
        event: ReplaceEvent,
        fx: &mut Vec<Effect>,
    ) {
        match event {
            ReplaceEvent::Spawned {
                seq,
                pid,
                start_time,
            } => self.successor_spawned(now, seq, pid, start_time, fx),
            ReplaceEvent::SpawnFailed { seq, error } => {
                if self.successor.as_ref().is_some_and(|s| s.seq == seq) {
                    let killed = self.successor.as_ref().is_some_and(|s| s.killed);
                    if killed {
                        // The replace already failed while it was spawned.
                        self.successor = None;
                        return;
                    }
                    self.successor = None;
                    self.replaces_done += 1;
                    self.replace_failure = Some(format!("cannot spawn the new child: {error}"));
                    fx.push(Effect::Journal(Journal::ReplaceFailed {
                        new_pid: None,
                        reason: format!("cannot spawn the new child: {error}"),
                    }));
                    self.tell_replace_failed(now, None, fx);
                }
            }
            ReplaceEvent::Check {
                seq,
                phase,
                outcome,
            } => self.successor_checked(now, seq, phase, outcome, fx),
            ReplaceEvent::Ready { seq } => {
                if let Some(s) = self
                    .successor
                    .as_mut()
                    .filter(|s| s.seq == seq && !s.killed)
                {
                    s.notified = true;
                    self.successor_gate(now, fx);
                }
            }
            ReplaceEvent::Exited { seq, status } => {
                let Some(s) = self.successor.as_ref().filter(|s| s.seq == seq) else {
                    return;
                };
                let (killed, pid) = (s.killed, s.pid);
                if !killed {
                    let reason = format!("the new child exited ({})", describe(status));
                    self.fail_replace(reason, fx);
                }
                self.successor = None;
                if !killed {
                    self.tell_replace_failed(now, pid, fx);
                }
            }
            ReplaceEvent::OldExited { status, uptime } => {
                let Some(p) = self.predecessor.as_mut() else {
                    return;
                };
                let pid = p.pid.take();
                let (seq, group) = (p.seq, p.group);
                fx.push(Effect::Journal(Journal::Exited {
                    pid,
                    code: status.code(),
                    signal: status.signal().map(signal_name),
                    uptime_ms: ms(uptime),
                    cause: self.replaced_why.as_ref().map(|w| w.cause),
                }));
                // Its post-stop hook once nothing of its group is left.
                if self.hooks.has(HookKind::PostStop) {
                    fx.push(Effect::WatchReplaced { pgid: group, seq });
                }
            }
            ReplaceEvent::OldGroupGone { seq } => {
                if seq == self.replaced_seq && self.hooks.has(HookKind::PostStop) {
                    fx.push(Effect::RunReplaceHook {
                        hook: HookKind::PostStop,
                        seq,
                        pid: None,
                    });
                }
            }
            ReplaceEvent::Hook { seq, hook, result } => {
                self.replace_hook_done(now, seq, hook, result, fx)
            }
            ReplaceEvent::Decided { question, answer } => {
                self.replace_decided(now, question, answer, fx)
            }
        }
    }

    /// A hook of replace `seq` ended.
    fn replace_hook_done(
        &mut self,
        now: Instant,
        seq: u64,
        hook: HookKind,
        result: Result<(), String>,
        fx: &mut Vec<Effect>,
    ) {
        match hook {
            HookKind::PreStart => {
                let Some(s) = self
                    .successor
                    .as_mut()
                    .filter(|s| s.seq == seq && s.pre_start)
                else {
                    return;
                };
                s.pre_start = false;
                if s.killed {
                    // The replace ended while it ran: nothing to spawn.
                    self.successor = None;
                    return;
                }
                match result {
                    Ok(()) => {
                        s.spawning = true;
                        fx.push(Effect::SpawnSuccessor {
                            seq,
                            restarts: self.restarts,
                        });
                    }
                    Err(reason) => {
                        self.fail_replace(format!("its pre-start hook failed: {reason}"), fx);
                        self.tell_replace_failed(now, None, fx);
                    }
                }
            }
            HookKind::PostStart => {
                let Some(s) = self
                    .successor
                    .as_mut()
                    .filter(|s| s.seq == seq && !s.killed && !s.post_start_ok)
                else {
                    return;
                };
                match result {
                    Ok(()) => {
                        s.post_start_ok = true;
                        self.successor_gate(now, fx);
                    }
                    Err(reason) => {
                        let pid = s.pid;
                        self.fail_replace(format!("its post-start hook failed: {reason}"), fx);
                        self.tell_replace_failed(now, pid, fx);
                    }
                }
            }
            HookKind::PreStop => {
                let Some(p) = self
                    .predecessor
                    .as_mut()
                    .filter(|p| p.seq == seq && p.pre_stop)
                else {
                    return;
                };
                p.pre_stop = false;
                let group = p.group;
                if p.pid.is_none() {
                    // Its leader died (and was reaped) during the hook: no
                    // stop signal to a group id that may be gone; what
                    // lingers gets the grace's SIGKILL.
                    return;
                }
                if let Err(reason) = result {
                    fx.push(Effect::Journal(Journal::Warning {
                        message: format!(
                            "the replaced child's pre-stop hook failed ({reason}); stopping it anyway"
                        ),
                    }));
                }
                fx.push(Effect::Signal {
                    pgid: group,
                    signal: self.stop_signal,
                });
                fx.push(Effect::Signal {
                    pgid: group,
                    signal: Signal::SIGCONT,
                });
            }
            HookKind::PostStop => {
                if let Err(reason) = result {
                    fx.push(Effect::Journal(Journal::Warning {
                        message: format!("the replaced child's post-stop hook failed: {reason}"),
                    }));
                }
            }
        }
    }

    /// A replace timer (`t.epoch` is the replace's number).
    pub(super) fn on_replace_timer(
        &mut self,
        now: Instant,
        seq: u64,
        kind: ReplaceTimer,
        fx: &mut Vec<Effect>,
    ) {
        match kind {
            ReplaceTimer::OldGrace => {
                if let Some(p) = self.predecessor.as_mut().filter(|p| p.seq == seq) {
                    if std::mem::take(&mut p.pre_stop) {
                        fx.push(Effect::Journal(Journal::Warning {
                            message: format!(
                                "the replaced child's pre-stop hook was still running when its stop grace ({:?}) ran out",
                                self.stop_grace
                            ),
                        }));
                    }
                    let p = p.clone();
                    // Whatever is left of its group (perhaps nothing: the
                    // signal then finds no process).
                    fx.push(Effect::Journal(Journal::Killed {
                        pid: p.group,
                        signal: "SIGKILL".into(),
                        reason: format!(
                            "the replaced child's stop grace ({}s) ran out",
                            self.stop_grace.as_secs_f64()
                        ),
                        cause: self.replaced_why.as_ref().map(|w| w.cause),
                    }));
                    fx.push(Effect::Signal {
                        pgid: p.group,
                        signal: Signal::SIGKILL,
                    });
                    if p.pid.is_none() {
                        self.predecessor = None;
                    }
                }
            }
            ReplaceTimer::Deadline => {
                if self
                    .successor
                    .as_ref()
                    .is_some_and(|s| s.seq == seq && !s.killed)
                {
                    let reason = format!(
                        "not ready within replace-timeout ({}s): {}",
                        self.replace_timeout.as_secs_f64(),
                        self.successor_waits_for()
                    );
                    let pid = self.successor_pid();
                    self.fail_replace(reason, fx);
                    self.tell_replace_failed(now, pid, fx);
                }
            }
            ReplaceTimer::Check(phase) => {
                let Some(s) = self
                    .successor
                    .as_mut()
                    .filter(|s| s.seq == seq && !s.killed)
                else {
                    return;
                };
                let Some(pid) = s.pid else { return };
                s.attempts[idx(phase)] += 1;
                fx.push(Effect::RunSuccessorCheck {
                    seq,
                    phase,
                    pid,
                    attempt: s.attempts[idx(phase)],
                });
                let _ = now;
            }
        }
    }

    fn successor_spawned(
        &mut self,
        now: Instant,
        seq: u64,
        pid: i32,
        start_time: Option<u64>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(s) = self.successor.as_mut().filter(|s| s.seq == seq) else {
            // A replace that ended while its spawn was in flight.
            fx.push(Effect::Journal(Journal::Killed {
                pid,
                signal: "SIGKILL".into(),
                reason: "the replace it was spawned for has ended".into(),
                cause: None,
            }));
            fx.push(Effect::Signal {
                pgid: pid,
                signal: Signal::SIGKILL,
            });
            return;
        };
        s.pid = Some(pid);
        s.started_at = Some(now);
        s.spawning = false;
        if s.killed {
            fx.push(Effect::Journal(Journal::Killed {
                pid,
                signal: "SIGKILL".into(),
                reason: "the replace it was spawned for has failed".into(),
                cause: None,
            }));
            fx.push(Effect::Signal {
                pgid: pid,
                signal: Signal::SIGKILL,
            });
            return;
        }
        fx.push(Effect::Journal(Journal::Replacing {
            pid: self.pid,
            new_pid: pid,
            start_time,
            cause: s.why.cause,
            reason: s.why.reason.clone(),
        }));
        if self.hooks.has(HookKind::PostStart) {
            // Beside its startup check, as in a start; the switch waits for it.
            s.post_start_ok = false;
            fx.push(Effect::RunReplaceHook {
                hook: HookKind::PostStart,
                seq,
                pid: Some(pid),
            });
        }
        match self.checks.startup.clone() {
            Some(spec) => self.schedule_replace(
                seq,
                ReplaceTimer::Check(Phase::Startup),
                spec.initial_delay,
                fx,
            ),
            None => self.successor_gate(now, fx),
        }
    }

    fn successor_checked(
        &mut self,
        now: Instant,
        seq: u64,
        phase: Phase,
        outcome: Verdict,
        fx: &mut Vec<Effect>,
    ) {
        let Some(s) = self
            .successor
            .as_mut()
            .filter(|s| s.seq == seq && !s.killed)
        else {
            return;
        };
        match outcome {
            Verdict::Ok => {
                match phase {
                    Phase::Startup => s.startup_ok = true,
                    Phase::Readiness => s.readiness_ok = true,
                    Phase::Liveness => {}
                }
                self.successor_gate(now, fx);
            }
            Verdict::Error(reason) => {
                let reason = format!("its {phase} check failed: {reason}");
                let pid = s.pid;
                self.fail_replace(reason, fx);
                self.tell_replace_failed(now, pid, fx);
            }
            _ => {
                if let Some(spec) = self.checks.get(phase) {
                    let period = spec.period;
                    self.schedule_replace(seq, ReplaceTimer::Check(phase), period, fx);
                }
            }
        }
    }

    /// What the new child still has to pass, in words.
    fn successor_waits_for(&self) -> String {
        let Some(s) = &self.successor else {
            return String::new();
        };
        let mut left = Vec::new();
        if s.pre_start {
            left.push("its pre-start hook");
        } else if s.pid.is_none() {
            left.push("its spawn");
        }
        if !s.post_start_ok {
            left.push("its post-start hook");
        }
        if s.asked.is_some() && !s.approved {
            left.push("the loader's say");
        }
        if !s.startup_ok {
            left.push("its startup check");
        }
        if !s.notified {
            left.push("READY=1");
        }
        if !s.readiness_ok {
            left.push("its readiness check");
        }
        format!("still waiting for {}", left.join(", "))
    }

    /// Startup (check and `READY=1`) then readiness: the new child takes
    /// over once all that apply have passed.
    fn successor_gate(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Some(s) = self.successor.as_ref().filter(|s| !s.killed) else {
            return;
        };
        let (seq, started) = (s.seq, s.startup_ok && s.notified);
        if !started {
            return;
        }
        if !s.readiness_ok {
            // First readiness run once started; later ones by its period.
            if !s.readiness_started
                && let Some(spec) = &self.checks.readiness
            {
                let delay = spec.initial_delay;
                if let Some(s) = self.successor.as_mut() {
                    s.readiness_started = true;
                }
                self.schedule_replace(seq, ReplaceTimer::Check(Phase::Readiness), delay, fx);
            }
            return;
        }
        if !s.post_start_ok {
            // Its post-start hook's end brings it back here.
            return;
        }
        if !s.approved {
            // The loader's `proceed` brings it back here.
            if s.asked.is_none()
                && let (Some(old_pid), Some(new_pid)) = (self.pid, s.pid)
            {
                let q = self.ask_replace(now, ReplaceQuestion::NewReady { old_pid, new_pid }, fx);
                if let Some(s) = self.successor.as_mut() {
                    s.asked = Some(q);
                }
            }
            return;
        }
        self.take_over(now, fx);
    }

    /// The new child is ready: it becomes the service's child and the old
    /// one is stopped.
    fn take_over(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let Some(s) = self.successor.take() else {
            return;
        };
        let Some(new_pid) = s.pid else {
            return;
        };
        let old_pid = self.pid;
        self.replaces_done += 1;
        self.replace_failure = None;
        fx.push(Effect::Journal(Journal::Replaced {
            old_pid,
            pid: new_pid,
        }));
        if let Some(group) = self.group {
            fx.push(Effect::Journal(Journal::Stopping {
                pid: Some(group),
                cause: s.why.cause,
                reason: format!("replaced by pid {new_pid}: {}", s.why.reason),
                signal: self.stop_signal.as_str().into(),
            }));
            // As any stop of a live child: its pre-stop hook first (the
            // grace runs from now), else the stop signal at once.
            let pre_stop = old_pid.is_some() && self.hooks.has(HookKind::PreStop);
            if pre_stop {
                fx.push(Effect::RunReplaceHook {
                    hook: HookKind::PreStop,
                    seq: s.seq,
                    pid: old_pid,
                });
            } else {
                fx.push(Effect::Signal {
                    pgid: group,
                    signal: self.stop_signal,
                });
                fx.push(Effect::Signal {
                    pgid: group,
                    signal: Signal::SIGCONT,
                });
            }
            self.predecessor = Some(Predecessor {
                seq: s.seq,
                group,
                pid: old_pid,
                pre_stop,
            });
            self.replaced_why = Some(s.why.clone());
            self.replaced_seq = s.seq;
            self.schedule_replace(s.seq, ReplaceTimer::OldGrace, self.stop_grace, fx);
        }
        // The old life's hooks are over; the new child passed its own.
        self.hooks.took_over();
        // The new child's life: a new epoch, so the old one's timers and
        // check results are stale from now on.
        self.epoch += 1;
        self.pid = Some(new_pid);
        self.group = Some(new_pid);
        self.leader_exit = None;
        self.started_at = s.started_at.or(Some(now));
        self.counters = Default::default();
        self.startup_passed = true;
        self.startup_check_ok = true;
        self.notified_ready = true;
        self.pending = None;
        self.after_stop = AfterStop::Stop;
        self.stop_why = None;
        if let Some(watchdog) = self.notify.and_then(|n| n.watchdog) {
            self.last_ping = Some(now);
            self.schedule(TimerKind::Watchdog, watchdog, fx);
        }
        if let Some(spec) = &self.checks.liveness {
            self.schedule_first_check(Phase::Liveness, spec.initial_delay, spec.period, fx);
        }
        if let Some(spec) = &self.checks.readiness {
            // It has just passed against this child: the next run by its period.
            self.counters[idx(Phase::Readiness)].consecutive_ok = 1;
            self.schedule(TimerKind::Check(Phase::Readiness), spec.period, fx);
        }
        if self.status != Status::Ready {
            self.become_ready(now, fx);
        }
    }

    /// End the replace in progress: SIGKILL the new child's group, keep
    /// the old child (`replace-failed` with `reason`).
    pub(super) fn fail_replace(&mut self, reason: String, fx: &mut Vec<Effect>) {
        let Some(s) = self.successor.as_mut().filter(|s| !s.killed) else {
            return;
        };
        s.killed = true;
        let pid = s.pid;
        self.replaces_done += 1;
        self.replace_failure = Some(reason.clone());
        fx.push(Effect::Journal(Journal::ReplaceFailed {
            new_pid: pid,
            reason,
        }));
        // Without a pid its spawn is in flight: killed as soon as it
        // answers. Before its spawn (the pre-start hook runs) there is
        // nothing to kill: the replace is over.
        match pid {
            Some(pgid) => fx.push(Effect::Signal {
                pgid,
                signal: Signal::SIGKILL,
            }),
            None if !s.spawning && !s.pre_start => self.successor = None,
            None => {}
        }
    }
}

pub(super) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (_, Some(sig)) => signal_name(sig),
        (Some(code), None) => format!("code {code}"),
        (None, None) => "exited".into(),
    }
}
