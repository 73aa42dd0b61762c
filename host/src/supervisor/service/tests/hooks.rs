//! The hooks in the reducer, on the fake clock: what each hook's end does,
//! and the cases the end-to-end tests cannot time (a stop during a
//! pre-start, a pre-stop cut by the grace, a crash's post-stop holding the
//! next start).

use super::*;
use crate::config::{HookAction, HookSpec, Hooks};

fn hook() -> Option<HookSpec> {
    Some(HookSpec {
        action: HookAction::Command(vec!["true".into()]),
        timeout: Duration::from_secs(5),
    })
}

fn hooked(hooks: Hooks) -> Service {
    Service { hooks, ..service() }
}

fn ran(fx: &[Effect], kind: HookKind) -> bool {
    fx.iter()
        .any(|e| matches!(e, Effect::RunHook { hook, .. } if *hook == kind))
}

fn spawns(fx: &[Effect]) -> bool {
    fx.iter().any(|e| matches!(e, Effect::Spawn { .. }))
}

fn signals(fx: &[Effect]) -> Vec<Signal> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Signal { signal, .. } => Some(*signal),
            _ => None,
        })
        .collect()
}

impl Sim {
    fn hook_done(&mut self, hook: HookKind, result: Result<(), String>) -> Vec<Effect> {
        let epoch = self.s.epoch();
        self.on(Event::Hook {
            epoch,
            hook,
            result,
        })
    }
}

#[test]
fn a_stop_during_the_pre_start_ends_the_start_without_a_spawn() {
    let mut sim = Sim::new(&hooked(Hooks {
        pre_start: hook(),
        ..Hooks::default()
    }));
    let fx = sim.on(Event::Start);
    assert!(ran(&fx, HookKind::PreStart) && !spawns(&fx), "{fx:?}");
    let fx = sim.on(Event::Stop(Why::operator("vigil stop")));
    assert_eq!(sim.s.status(), Status::Stopping, "{fx:?}");
    assert!(signals(&fx).is_empty(), "nothing to signal: {fx:?}");
    let fx = sim.hook_done(HookKind::PreStart, Ok(()));
    assert!(!spawns(&fx), "{fx:?}");
    assert_eq!(sim.s.status(), Status::Stopped);
}

#[test]
fn a_pre_stop_still_running_when_the_grace_ends_is_cut_by_sigkill() {
    let svc = hooked(Hooks {
        pre_stop: hook(),
        ..Hooks::default()
    });
    let mut sim = Sim::running(&svc, 42);
    let fx = sim.on(Event::Stop(Why::operator("vigil stop")));
    assert!(ran(&fx, HookKind::PreStop), "{fx:?}");
    assert!(signals(&fx).is_empty(), "no signal before the hook: {fx:?}");
    // The grace runs from the hook's start.
    assert_eq!(scheduled(&fx, TimerKind::StopGrace), Some(svc.stop_grace));
    let fx = sim.at(svc.stop_grace).timer(TimerKind::StopGrace);
    assert_eq!(signals(&fx), [Signal::SIGKILL], "{fx:?}");
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { message }
            if message.contains("pre-stop hook was still running"))),
        "{fx:?}"
    );
    // Its late answer sends no stop signal to what SIGKILL ended.
    let fx = sim.hook_done(HookKind::PreStop, Err("timed out".into()));
    assert!(signals(&fx).is_empty(), "{fx:?}");
}

#[test]
fn a_pre_stop_is_not_run_for_a_child_that_already_died() {
    let mut sim = Sim::running(
        &hooked(Hooks {
            pre_stop: hook(),
            ..Hooks::default()
        }),
        42,
    );
    sim.leader_exit(ExitStatus::Code(1), Duration::from_secs(1));
    // Its group lingers: stopped like a service, without the hook.
    let fx = sim.group_lingers(true);
    assert!(!ran(&fx, HookKind::PreStop), "{fx:?}");
    assert_eq!(signals(&fx)[0], Signal::SIGTERM, "{fx:?}");
}

#[test]
fn a_failed_post_start_stops_the_child_with_cause_hook() {
    let mut sim = Sim::running(
        &hooked(Hooks {
            post_start: hook(),
            ..Hooks::default()
        }),
        42,
    );
    // No checks: started at once, but not ready before the hook.
    assert_eq!(sim.s.status(), Status::Running);
    let fx = sim.hook_done(HookKind::PostStart, Err("exit code 3".into()));
    assert!(
        journal(&fx).iter().any(
            |j| matches!(j, Journal::Stopping { cause: Cause::Hook, reason, .. }
            if reason.contains("exit code 3"))
        ),
        "{fx:?}"
    );
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_millis(10));
    assert_eq!(
        sim.s.status(),
        Status::Backoff,
        "the policy restarts: {fx:?}"
    );
}

#[test]
fn after_a_crash_the_next_start_waits_for_the_post_stop() {
    let mut sim = Sim::running(
        &hooked(Hooks {
            post_stop: hook(),
            ..Hooks::default()
        }),
        42,
    );
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    assert!(ran(&fx, HookKind::PostStop), "{fx:?}");
    // The first backoff is 0: the restart is due at once, but waits.
    let fx = sim.timer(TimerKind::Backoff);
    assert_eq!(sim.s.status(), Status::Starting);
    assert!(!spawns(&fx), "{fx:?}");
    let fx = sim.hook_done(HookKind::PostStop, Ok(()));
    assert!(spawns(&fx), "{fx:?}");
}

#[test]
fn a_stop_ends_only_when_its_post_stop_has() {
    let mut sim = Sim::running(
        &hooked(Hooks {
            post_stop: hook(),
            ..Hooks::default()
        }),
        42,
    );
    sim.on(Event::Stop(Why::operator("vigil stop")));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert!(ran(&fx, HookKind::PostStop), "{fx:?}");
    assert_eq!(sim.s.status(), Status::Stopping);
    sim.hook_done(HookKind::PostStop, Err("exit code 1".into()));
    assert_eq!(sim.s.status(), Status::Stopped);
}

fn replace_hook(fx: &[Effect]) -> Vec<(HookKind, Option<i32>)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::RunReplaceHook { hook, pid, .. } => Some((*hook, *pid)),
            _ => None,
        })
        .collect()
}

fn all_hooks() -> Service {
    hooked(Hooks {
        pre_start: hook(),
        post_start: hook(),
        pre_stop: hook(),
        post_stop: hook(),
    })
}

/// A running service with every hook, through its start hooks: ready.
fn ready_with_hooks(svc: &Service, pid: i32) -> Sim {
    let mut sim = Sim::new(svc);
    sim.on(Event::Start);
    sim.hook_done(HookKind::PreStart, Ok(()));
    sim.on(Event::Spawned {
        pid,
        start_time: Some(1),
    });
    sim.hook_done(HookKind::PostStart, Ok(()));
    assert_eq!(sim.s.status(), Status::Ready);
    sim
}

impl Sim {
    fn replace_hook_done(&mut self, hook: HookKind, result: Result<(), String>) -> Vec<Effect> {
        let seq = self.s.replaces;
        self.on(Event::Replacement(ReplaceEvent::Hook { seq, hook, result }))
    }
}

/// A replace runs the hooks a restart would, in the replace's own order:
/// pre-start before the new child's spawn, post-start beside its gate (the
/// switch waits for it), pre-stop before the old child's stop signal,
/// post-stop once the old child's group is gone.
#[test]
fn a_replace_runs_the_hooks_of_both_children_in_order() {
    let svc = all_hooks();
    let mut sim = ready_with_hooks(&svc, 42);
    let fx = sim.on(Event::Replace(Why::operator("vigil replace")));
    assert_eq!(replace_hook(&fx), [(HookKind::PreStart, None)], "{fx:?}");
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::SpawnSuccessor { .. })),
        "no spawn before pre-start: {fx:?}"
    );
    let fx = sim.replace_hook_done(HookKind::PreStart, Ok(()));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::SpawnSuccessor { .. })),
        "{fx:?}"
    );
    let seq = sim.s.replaces;
    let fx = sim.on(Event::Replacement(ReplaceEvent::Spawned {
        seq,
        pid: 50,
        start_time: Some(2),
    }));
    assert_eq!(
        replace_hook(&fx),
        [(HookKind::PostStart, Some(50))],
        "{fx:?}"
    );
    // Without a startup check the gate is open but for the post-start hook.
    assert_eq!(sim.s.pid(), Some(42), "the switch waits for post-start");
    let fx = sim.replace_hook_done(HookKind::PostStart, Ok(()));
    assert_eq!(sim.s.pid(), Some(50), "{fx:?}");
    assert_eq!(replace_hook(&fx), [(HookKind::PreStop, Some(42))], "{fx:?}");
    assert!(
        signals(&fx).is_empty(),
        "no stop signal before pre-stop: {fx:?}"
    );
    let fx = sim.replace_hook_done(HookKind::PreStop, Ok(()));
    assert_eq!(signals(&fx), [Signal::SIGTERM, Signal::SIGCONT], "{fx:?}");
    let fx = sim.on(Event::Replacement(ReplaceEvent::OldExited {
        status: ExitStatus::Code(0),
        uptime: Duration::from_secs(1),
    }));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::WatchReplaced { pgid: 42, .. })),
        "{fx:?}"
    );
    assert!(
        replace_hook(&fx).is_empty(),
        "post-stop waits for the group"
    );
    let fx = sim.on(Event::Replacement(ReplaceEvent::OldGroupGone { seq }));
    assert_eq!(replace_hook(&fx), [(HookKind::PostStop, None)], "{fx:?}");
    // The new child's life goes on, its own hooks in its own slots.
    assert_eq!(sim.s.status(), Status::Ready);
    let fx = sim.on(Event::Stop(Why::operator("vigil stop")));
    assert!(ran(&fx, HookKind::PreStop), "{fx:?}");
}

/// A failing pre-start or post-start fails the replace: the old child
/// keeps serving, and nothing (pre-start) or the new child (post-start)
/// is killed; the next replace may go.
#[test]
fn a_failing_start_hook_fails_the_replace_and_keeps_the_old_child() {
    let svc = all_hooks();
    let mut sim = ready_with_hooks(&svc, 42);
    sim.on(Event::Replace(Why::operator("vigil replace")));
    let fx = sim.replace_hook_done(HookKind::PreStart, Err("exit code 3".into()));
    assert!(
        journal(&fx).iter().any(|j| matches!(j,
            Journal::ReplaceFailed { new_pid: None, reason } if reason.contains("pre-start hook failed: exit code 3"))),
        "{fx:?}"
    );
    assert!(signals(&fx).is_empty(), "{fx:?}");
    assert!(!sim.s.replacing() && sim.s.successor_seq().is_none());
    assert_eq!((sim.s.pid(), sim.s.status()), (Some(42), Status::Ready));

    let fx = sim.on(Event::Replace(Why::operator("vigil replace")));
    assert_eq!(replace_hook(&fx), [(HookKind::PreStart, None)], "{fx:?}");
    sim.replace_hook_done(HookKind::PreStart, Ok(()));
    let seq = sim.s.replaces;
    sim.on(Event::Replacement(ReplaceEvent::Spawned {
        seq,
        pid: 51,
        start_time: Some(2),
    }));
    let fx = sim.replace_hook_done(HookKind::PostStart, Err("exit code 4".into()));
    assert_eq!(signals(&fx), [Signal::SIGKILL], "the new child: {fx:?}");
    assert_eq!((sim.s.pid(), sim.s.status()), (Some(42), Status::Ready));
}

/// A replace that ends while its pre-start hook runs (the deadline, a
/// stop) spawns nothing when the hook answers, and is over at once.
#[test]
fn a_replace_ended_during_its_pre_start_spawns_nothing() {
    let svc = all_hooks();
    let mut sim = ready_with_hooks(&svc, 42);
    sim.on(Event::Replace(Why::operator("vigil replace")));
    let seq = sim.s.replaces;
    let fx = sim.on(Event::Timer(Timer {
        kind: TimerKind::Replace(ReplaceTimer::Deadline),
        epoch: seq,
    }));
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::ReplaceFailed { reason, .. } if reason.contains("pre-start hook"))),
        "{fx:?}"
    );
    let fx = sim.replace_hook_done(HookKind::PreStart, Ok(()));
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::SpawnSuccessor { .. })),
        "{fx:?}"
    );
    assert!(sim.s.successor_seq().is_none());
}
