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
