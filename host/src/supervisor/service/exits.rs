//! The end of a child life: the leader's exit, the rest of its group, then
//! the loader's decision or the built-in policy.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::policy::{self, Decision};
use super::{AfterStop, LeaderExit, Pending, ServiceState, ms, signal_name};
use crate::journal::{Cause, Event as Journal};
use crate::supervisor::service::{Action, Effect, LoaderEvent, TimerKind, Why};
use crate::supervisor::state::Status;
use crate::wasm::ExitStatus;

impl ServiceState {
    /// The leader was reaped. The exit counts once its group is gone
    /// ([`Self::on_group_gone`]); until then the service keeps its status.
    pub(super) fn on_exited(&mut self, status: ExitStatus, uptime: Duration, fx: &mut Vec<Effect>) {
        let while_stopping = match self.status {
            Status::Stopping => true,
            Status::Starting | Status::Running | Status::Ready => false,
            other => {
                tracing::warn!(service = %self.name, status = %other, "exit without a child");
                return;
            }
        };
        self.pid = None;
        self.fail_replace(
            format!(
                "the current child exited ({})",
                super::replace_describe(status)
            ),
            fx,
        );
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
    pub(super) fn on_group_lingers(&mut self, live: bool, fx: &mut Vec<Effect>) {
        let (Some(exit), Some(pgid)) = (self.leader_exit, self.group) else {
            return;
        };
        if exit.while_stopping || self.status == Status::Stopping {
            return;
        }
        if live {
            // `stopping` is journaled before the signal goes, so that it
            // precedes the `orphan-reaped` entries of the members it ends.
            let why = Why::new(
                Cause::LeaderExited,
                format!(
                    "processes left in group {pgid} after its leader exited ({})",
                    exit.status
                ),
            );
            self.begin_stop(AfterStop::LeaderExited, why, fx);
        } else {
            let was_ready = self.status == Status::Ready;
            if !self.set(Status::Stopping, fx) {
                return;
            }
            if was_ready {
                fx.push(Effect::Journal(Journal::Unready {
                    reason: Some(format!("exited ({})", exit.status)),
                    cause: None,
                }));
            }
            // Only zombies: nothing to signal, the reaper takes them.
            self.after_stop = AfterStop::LeaderExited;
            self.schedule(TimerKind::StopGrace, self.stop_grace, fx);
        }
    }

    /// Nothing is left of the child: the exit counts now.
    pub(super) fn on_group_gone(&mut self, now: Instant, oom: bool, fx: &mut Vec<Effect>) {
        let Some(exit) = self.leader_exit.take() else {
            return;
        };
        let pid = self.group.take();
        if self.status == Status::Ready {
            // A ready child that ended on its own (a crash): no longer
            // ready, as the journal says before its exit.
            fx.push(Effect::Journal(Journal::Unready {
                reason: Some(format!("exited ({})", exit.status)),
                cause: None,
            }));
        }
        let LeaderExit {
            status,
            uptime,
            while_stopping,
        } = exit;
        self.recent_exits.push_back((status, uptime, now));
        while self.recent_exits.len() > 16 {
            self.recent_exits.pop_front();
        }
        fx.push(Effect::Journal(Journal::Exited {
            pid,
            code: status.code(),
            signal: status.signal().map(signal_name),
            uptime_ms: ms(uptime),
            // Only a leader that ended while Vigil was stopping it ended
            // for that stop's cause; one that ended on its own after an
            // OOM kill in its cgroup, for that.
            cause: self
                .stop_why
                .as_ref()
                .filter(|_| while_stopping)
                .map(|w| w.cause)
                .or(oom.then_some(Cause::Oom)),
        }));
        let clean = status
            .code()
            .is_some_and(|c| self.policy.success_codes.contains(&c));
        self.last_exit_clean = clean;
        if self.begin_post_stop(status, uptime, !clean, fx) {
            // A stop ends when the post-stop hook does.
            return;
        }
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
            self.set(Status::Backoff, fx);
            self.decide_pending(
                now,
                Pending::Exit { failed, uptime },
                LoaderEvent::Exited { status, uptime },
                fx,
            );
        } else {
            self.after_exit_builtin(now, failed, uptime, fx);
        }
    }

    /// The child we were stopping is gone (`status`: the leader's exit;
    /// `None` when the spawn failed).
    pub(super) fn on_exit_while_stopping(
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
    pub(super) fn after_exit_builtin(
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

    pub(super) fn on_decision(
        &mut self,
        now: Instant,
        seq: u64,
        action: Result<Action, String>,
        fx: &mut Vec<Effect>,
    ) {
        if self.pending.is_some() && seq != self.pending_decision {
            // The answer about an earlier event (say `started`), overtaken
            // by one that waits for its own answer (the child exited
            // meanwhile): taken for the exit's, a `none` would have ended
            // a service its loader meant to restart.
            tracing::debug!(service = %self.name, seq, "loader answer overtaken by a later event");
            return;
        }
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
                    Some(Pending::CheckFailed { why, .. }) if alive => {
                        self.begin_stop(AfterStop::Failure, why, fx)
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
                    let why = loader_why(
                        format!("the loader restarts it (after {delay:?})"),
                        pending.as_ref(),
                    );
                    self.begin_stop(AfterStop::Restart(delay), why, fx);
                } else if self.status == Status::Backoff {
                    self.schedule_restart(delay, fx);
                }
            }
            Action::Stop(reason) => {
                if alive {
                    let why =
                        loader_why(format!("the loader stops it: {reason}"), pending.as_ref());
                    self.begin_stop(AfterStop::Fail(reason), why, fx);
                } else if self.status == Status::Backoff {
                    self.give_up(reason, fx);
                }
            }
            Action::Kill(sig) => match (alive, self.pid, Signal::try_from(sig)) {
                (true, Some(pid), Ok(signal)) => {
                    // Journaled before the signal, like every stop.
                    fx.push(Effect::Journal(Journal::Killed {
                        pid,
                        signal: signal.as_str().into(),
                        reason: loader_why("the loader kills it".into(), pending.as_ref()).reason,
                        cause: Some(Cause::Loader),
                    }));
                    fx.push(Effect::Signal { pgid: pid, signal });
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

/// A loader's action as a stop's cause; `pending` says what it answered
/// (a failed check), when it is known.
fn loader_why(action: String, pending: Option<&Pending>) -> Why {
    let reason = match pending {
        Some(Pending::CheckFailed { why, .. }) => format!("{action}; asked after: {}", why.reason),
        _ => action,
    };
    Why::new(Cause::Loader, reason)
}
