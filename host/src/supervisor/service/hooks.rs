//! Lifecycle hooks in the reducer: when each runs and what its end does.
//!
//! The shell runs a hook ([`Effect::RunHook`]) and answers with
//! [`Event::Hook`]; here only the order is decided:
//!
//! - pre-start: a start (every one, by policy, operator or reload) runs it
//!   before [`Effect::Spawn`]; its failure is a failed start
//!   (`spawn-error` with cause `hook`, then the restart policy).
//! - post-start: runs from the spawn on, beside the startup check; the
//!   service is ready only once it succeeded (and readiness passes); its
//!   failure stops the child as a failed start (cause `hook`).
//! - pre-stop: a stop of a live child runs it before the stop signal; the
//!   stop grace starts with it (its time counts against the grace, as in
//!   Kubernetes). Failure or timeout is a warning and the stop goes on; a
//!   hook still running when the grace runs out is abandoned and the group
//!   SIGKILLed. Not run when the leader already died.
//! - post-stop: runs once the child's whole group is gone. A stop ends
//!   (stopped, restart, ...) only when it is done; after a crash the
//!   restart policy goes on at once but the next start waits for it.
//!
//! The hooks of a life carry its epoch, so a late answer from a former
//! life changes nothing; post-stop is matched by its running flag alone (at
//! most one runs: no start goes past it).

use std::time::{Duration, Instant};

use super::{AfterStop, ServiceState, idx};
use crate::config::Hooks;
use crate::journal::{Cause, Event as Journal};
use crate::supervisor::service::{Effect, HookKind, Why};
use crate::supervisor::state::Status;
use crate::wasm::{ExitStatus, Phase};

/// The leader's exit of a stop, held while its post-stop hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldExit {
    status: ExitStatus,
    uptime: Duration,
    failed: bool,
}

/// Which hooks a service has, which are running, and what waits for them.
#[derive(Debug, Clone, Default)]
pub(super) struct HookBook {
    configured: [bool; 4],
    running: [bool; 4],
    /// The current child's post-start hook succeeded (or it has none).
    post_start_ok: bool,
    /// A start waits for the last life's post-stop hook.
    launch_waits: bool,
    /// A stop waits for its post-stop hook.
    held: Option<HeldExit>,
}

impl HookBook {
    pub(super) fn new(hooks: &Hooks) -> HookBook {
        let mut book = HookBook {
            post_start_ok: true,
            ..HookBook::default()
        };
        book.configure(hooks);
        book
    }

    /// A reload's hooks: they apply from the next run of each.
    pub(super) fn configure(&mut self, hooks: &Hooks) {
        for kind in HookKind::ALL {
            self.configured[kind.index()] = hooks.get(kind).is_some();
        }
    }

    pub(super) fn has(&self, kind: HookKind) -> bool {
        self.configured[kind.index()]
    }

    fn running(&self, kind: HookKind) -> bool {
        self.running[kind.index()]
    }

    pub(super) fn post_start_ok(&self) -> bool {
        self.post_start_ok
    }

    /// A replace's new child took over: the old life's start and stop
    /// hooks are over (their answers are stale), and the new child passed
    /// its own post-start hook in the replace.
    pub(super) fn took_over(&mut self) {
        for kind in [HookKind::PreStart, HookKind::PostStart, HookKind::PreStop] {
            self.running[kind.index()] = false;
        }
        self.post_start_ok = true;
    }
}

impl ServiceState {
    fn run_hook(&mut self, kind: HookKind, fx: &mut Vec<Effect>) {
        self.hooks.running[kind.index()] = true;
        fx.push(Effect::RunHook {
            hook: kind,
            epoch: self.epoch,
        });
    }

    /// The start of a new life (status `starting`, epoch set): once the
    /// last life's post-stop hook is done, the pre-start hook, else the
    /// spawn.
    pub(super) fn launch(&mut self, fx: &mut Vec<Effect>) {
        for kind in [HookKind::PreStart, HookKind::PostStart, HookKind::PreStop] {
            // Anything of the last life's is over (its answer is stale).
            self.hooks.running[kind.index()] = false;
        }
        self.hooks.post_start_ok = !self.hooks.has(HookKind::PostStart);
        if self.hooks.running(HookKind::PostStop) {
            self.hooks.launch_waits = true;
            return;
        }
        if self.hooks.has(HookKind::PreStart) {
            self.run_hook(HookKind::PreStart, fx);
        } else {
            fx.push(Effect::Spawn {
                restarts: self.restarts,
            });
        }
    }

    /// Right after the spawn.
    pub(super) fn begin_post_start(&mut self, fx: &mut Vec<Effect>) {
        if self.hooks.has(HookKind::PostStart) {
            self.run_hook(HookKind::PostStart, fx);
        }
    }

    /// A stop begins (`stopping` journaled): the pre-stop hook instead of
    /// the stop signal, when there is one and the leader lives. True when
    /// it runs (the signal then goes at its end).
    pub(super) fn begin_pre_stop(&mut self, fx: &mut Vec<Effect>) -> bool {
        if !self.hooks.has(HookKind::PreStop) || self.pid.is_none() {
            return false;
        }
        self.run_hook(HookKind::PreStop, fx);
        true
    }

    /// The stop grace ran out: a pre-stop hook still running is abandoned
    /// (the caller SIGKILLs the group).
    pub(super) fn pre_stop_cut(&mut self, fx: &mut Vec<Effect>) {
        if self.hooks.running(HookKind::PreStop) {
            self.hooks.running[HookKind::PreStop.index()] = false;
            fx.push(Effect::Journal(Journal::Warning {
                message: format!(
                    "the pre-stop hook was still running when the stop grace ({:?}) ran out",
                    self.stop_grace
                ),
            }));
        }
    }

    /// The child's group is gone (its `exited` journaled): the post-stop
    /// hook, when there is one. True when the caller must not go on: a
    /// stop then ends when the hook does.
    pub(super) fn begin_post_stop(
        &mut self,
        status: ExitStatus,
        uptime: Duration,
        failed: bool,
        fx: &mut Vec<Effect>,
    ) -> bool {
        if !self.hooks.has(HookKind::PostStop) {
            return false;
        }
        self.run_hook(HookKind::PostStop, fx);
        if self.status == Status::Stopping {
            self.hooks.held = Some(HeldExit {
                status,
                uptime,
                failed,
            });
            return true;
        }
        false
    }

    pub(super) fn on_hook(
        &mut self,
        now: Instant,
        epoch: u64,
        hook: HookKind,
        result: Result<(), String>,
        fx: &mut Vec<Effect>,
    ) {
        let current = hook == HookKind::PostStop || epoch == self.epoch;
        if !current || !self.hooks.running(hook) {
            return;
        }
        self.hooks.running[hook.index()] = false;
        match hook {
            HookKind::PreStart => self.pre_start_done(now, result, fx),
            HookKind::PostStart => self.post_start_done(now, result, fx),
            HookKind::PreStop => self.pre_stop_done(result, fx),
            HookKind::PostStop => self.post_stop_done(now, result, fx),
        }
    }

    fn pre_start_done(&mut self, now: Instant, result: Result<(), String>, fx: &mut Vec<Effect>) {
        if self.pid.is_some() || self.group.is_some() {
            return;
        }
        match (self.status, result) {
            (Status::Starting, Ok(())) => fx.push(Effect::Spawn {
                restarts: self.restarts,
            }),
            (Status::Starting, Err(reason)) => {
                fx.push(Effect::Journal(Journal::SpawnError {
                    error: format!("the pre-start hook failed: {reason}"),
                    cause: Some(Cause::Hook),
                }));
                self.after_exit_builtin(now, true, Duration::ZERO, fx);
            }
            (Status::Stopping, _) => self.launch_abandoned(now, fx),
            _ => {}
        }
    }

    fn post_start_done(&mut self, now: Instant, result: Result<(), String>, fx: &mut Vec<Effect>) {
        let alive = matches!(
            self.status,
            Status::Starting | Status::Running | Status::Ready
        );
        if !alive || self.pid.is_none() {
            return;
        }
        match result {
            Ok(()) => {
                self.hooks.post_start_ok = true;
                let readiness = match &self.checks.readiness {
                    None => true,
                    Some(spec) => {
                        self.counters[idx(Phase::Readiness)].consecutive_ok
                            >= spec.success_threshold
                    }
                };
                if self.status == Status::Running && self.startup_passed && readiness {
                    self.become_ready(now, fx);
                }
            }
            Err(reason) => {
                let why = Why::new(Cause::Hook, format!("the post-start hook failed: {reason}"));
                self.begin_stop(AfterStop::Failure, why, fx);
            }
        }
    }

    fn pre_stop_done(&mut self, result: Result<(), String>, fx: &mut Vec<Effect>) {
        if self.status != Status::Stopping {
            return;
        }
        if let Err(reason) = result {
            fx.push(Effect::Journal(Journal::Warning {
                message: format!("the pre-stop hook failed ({reason}); stopping anyway"),
            }));
        }
        if let Some(pgid) = self.group {
            fx.push(Effect::Signal {
                pgid,
                signal: self.stop_signal,
            });
            fx.push(Effect::Signal {
                pgid,
                signal: nix::sys::signal::Signal::SIGCONT,
            });
        }
    }

    fn post_stop_done(&mut self, now: Instant, result: Result<(), String>, fx: &mut Vec<Effect>) {
        if let Err(reason) = result {
            fx.push(Effect::Journal(Journal::Warning {
                message: format!("the post-stop hook failed: {reason}"),
            }));
        }
        if let Some(held) = self.hooks.held.take() {
            if self.status == Status::Stopping && self.group.is_none() {
                self.on_exit_while_stopping(now, Some(held.status), held.uptime, held.failed, fx);
            }
            return;
        }
        if std::mem::take(&mut self.hooks.launch_waits)
            && self.pid.is_none()
            && self.group.is_none()
        {
            match self.status {
                Status::Starting => self.launch(fx),
                Status::Stopping => self.launch_abandoned(now, fx),
                _ => {}
            }
        }
    }

    /// A start stopped before its spawn (during the pre-start hook, or
    /// while it waited for the last post-stop): the stop is over.
    fn launch_abandoned(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        self.on_exit_while_stopping(now, None, Duration::ZERO, false, fx);
    }
}
