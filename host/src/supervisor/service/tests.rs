//! The reducer without processes: events in, effects out.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::config::{CheckSpec, GiveUp, LoaderSpec};
use crate::journal::Cause;
use crate::wasm::CheckSource;

mod hooks;
mod properties;

fn service() -> Service {
    Service::for_test("svc", PathBuf::from("/srv/svc"), &["sleep", "100"])
}

fn check(period_ms: u64, failure: u32, success: u32) -> CheckSpec {
    CheckSpec {
        check: CheckSource::Builtin("http".into()),
        period: Duration::from_millis(period_ms),
        timeout: Duration::from_millis(500),
        initial_delay: Duration::ZERO,
        failure_threshold: failure,
        success_threshold: success,
        startup_timeout: Duration::from_secs(10),
        startup_failures: None,
        config: vec![],
    }
}

/// A service driven through a fake clock.
struct Sim {
    s: ServiceState,
    now: Instant,
}

impl Sim {
    fn new(svc: &Service) -> Sim {
        Sim {
            s: ServiceState::new(svc),
            now: Instant::now(),
        }
    }
    fn at(&mut self, after: Duration) -> &mut Self {
        self.now += after;
        self
    }
    fn on(&mut self, e: Event) -> Vec<Effect> {
        self.s.handle(self.now, e)
    }
    /// Start and spawn with `pid`.
    fn running(svc: &Service, pid: i32) -> Sim {
        let mut sim = Sim::new(svc);
        sim.on(Event::Start);
        sim.on(Event::Spawned {
            pid,
            start_time: Some(1),
        });
        sim
    }
    fn timer(&mut self, kind: TimerKind) -> Vec<Effect> {
        let epoch = self.s.epoch();
        self.on(Event::Timer(Timer { kind, epoch }))
    }
    fn check(&mut self, phase: Phase, outcome: Verdict) -> Vec<Effect> {
        let epoch = self.s.epoch();
        self.on(Event::Check {
            epoch,
            phase,
            outcome,
        })
    }
    /// The leader exits and its group is empty with it (the common case):
    /// the effects of the exit and of the shell's `GroupGone` answer.
    fn exit(&mut self, status: ExitStatus, uptime: Duration) -> Vec<Effect> {
        let mut fx = self.leader_exit(status, uptime);
        assert!(
            fx.iter().any(|e| matches!(e, Effect::WatchGroup { .. })),
            "{fx:?}"
        );
        fx.extend(self.group_gone());
        fx
    }
    /// Only the leader exits: the reducer asks about its group.
    fn leader_exit(&mut self, status: ExitStatus, uptime: Duration) -> Vec<Effect> {
        self.at(uptime);
        self.on(Event::Exited { status, uptime })
    }
    fn group_lingers(&mut self, live: bool) -> Vec<Effect> {
        let epoch = self.s.epoch();
        self.on(Event::GroupLingers { epoch, live })
    }
    fn group_gone(&mut self) -> Vec<Effect> {
        let epoch = self.s.epoch();
        self.on(Event::GroupGone { epoch, oom: false })
    }
}

fn journal(fx: &[Effect]) -> Vec<Journal> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Journal(j) => Some(j.clone()),
            _ => None,
        })
        .collect()
}

fn scheduled(fx: &[Effect], kind: TimerKind) -> Option<Duration> {
    fx.iter().find_map(|e| match e {
        Effect::Schedule { timer, after, .. } if timer.kind == kind => Some(*after),
        _ => None,
    })
}

/// `(after, spread)` of the timer of `kind`.
fn spread(fx: &[Effect], kind: TimerKind) -> Option<(Duration, Duration)> {
    fx.iter().find_map(|e| match e {
        Effect::Schedule {
            timer,
            after,
            spread,
            ..
        } if timer.kind == kind => Some((*after, *spread)),
        _ => None,
    })
}

fn restart_delay(fx: &[Effect]) -> Option<Duration> {
    scheduled(fx, TimerKind::Backoff)
}

#[test]
fn without_checks_a_spawned_service_is_ready() {
    let mut sim = Sim::new(&service());
    let fx = sim.on(Event::Start);
    assert_eq!(
        fx,
        vec![
            Effect::Status(Status::Starting),
            Effect::Spawn { restarts: 0 }
        ]
    );
    let fx = sim.on(Event::Spawned {
        pid: 42,
        start_time: Some(7),
    });
    assert_eq!(
        fx,
        vec![
            Effect::Journal(Journal::Spawned {
                pid: 42,
                start_time: Some(7),
                restarts: 0
            }),
            Effect::Status(Status::Ready),
            Effect::Journal(Journal::Ready),
        ]
    );
    assert!(sim.s.satisfies_after());
}

#[test]
fn crash_loop_follows_the_backoff_list_and_resets_after_stable_uptime() {
    let mut svc = service();
    svc.restart.backoff = vec![
        Duration::ZERO,
        Duration::from_secs(5),
        Duration::from_secs(15),
    ];
    let mut sim = Sim::running(&svc, 1);
    let mut delays = vec![];
    for pid in 2..7 {
        let fx = sim.exit(ExitStatus::Signal(9), Duration::from_secs(1));
        assert!(fx.contains(&Effect::WatchGroup {
            pgid: pid - 1,
            epoch: sim.s.epoch()
        }));
        assert_eq!(sim.s.status(), Status::Backoff);
        delays.push(restart_delay(&fx).expect("restart scheduled"));
        let fx = sim.timer(TimerKind::Backoff);
        assert!(fx.contains(&Effect::Spawn {
            restarts: pid as u32 - 1
        }));
        sim.on(Event::Spawned {
            pid,
            start_time: None,
        });
    }
    let s = Duration::from_secs;
    assert_eq!(delays, vec![s(0), s(5), s(15), s(15), s(15)]);
    // A child that stayed up past stable-uptime resets the index.
    let fx = sim.exit(ExitStatus::Code(1), s(61));
    assert_eq!(restart_delay(&fx), Some(s(0)));
    assert_eq!(sim.s.restarts(), 5);
}

#[test]
fn gives_up_after_n_restarts_within_the_window() {
    let mut svc = service();
    svc.restart.backoff = vec![Duration::ZERO];
    svc.restart.give_up = Some(GiveUp {
        restarts: 2,
        window: Duration::from_secs(60),
    });
    let mut sim = Sim::running(&svc, 1);
    for pid in 2..4 {
        let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
        assert!(restart_delay(&fx).is_some());
        sim.timer(TimerKind::Backoff);
        sim.on(Event::Spawned {
            pid,
            start_time: None,
        });
    }
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Failed);
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::GaveUp { .. }))
    );
    assert!(restart_delay(&fx).is_none());

    // Restarts spread wider than the window never give up.
    let mut sim = Sim::running(&svc, 1);
    for pid in 2..10 {
        sim.exit(ExitStatus::Code(1), Duration::from_secs(40));
        assert_eq!(sim.s.status(), Status::Backoff);
        sim.timer(TimerKind::Backoff);
        sim.on(Event::Spawned {
            pid,
            start_time: None,
        });
    }
}

#[test]
fn on_failure_and_never_policies() {
    let mut svc = service();
    svc.restart.mode = RestartMode::OnFailure;
    svc.restart.success_codes = vec![0, 143];
    let mut sim = Sim::running(&svc, 1);
    sim.exit(ExitStatus::Code(143), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Exited);
    assert!(
        !sim.s.satisfies_after(),
        "only one-shots satisfy `after` by exiting"
    );
    let mut sim = Sim::running(&svc, 1);
    sim.exit(ExitStatus::Signal(9), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Backoff);

    svc.restart.mode = RestartMode::Never;
    let mut sim = Sim::running(&svc, 1);
    sim.exit(ExitStatus::Code(0), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Exited);
    assert!(
        sim.s.satisfies_after(),
        "a one-shot that exited 0 satisfies `after`"
    );
    let mut sim = Sim::running(&svc, 1);
    sim.exit(ExitStatus::Code(2), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Failed);
    assert!(!sim.s.satisfies_after());
}

/// The built-in policy alone, without a reducer around it: the book it is
/// given is not changed (the same question gets the same answer), and the
/// book it hands back carries the backoff index and the give-up window.
#[test]
fn the_builtin_policy_is_a_pure_function_of_its_book() {
    use super::policy::{Decision, RestartBook, after_exit};
    let s = Duration::from_secs;
    let policy = RestartPolicy {
        backoff: vec![s(1), s(2)],
        give_up: Some(GiveUp {
            restarts: 2,
            window: s(10),
        }),
        ..RestartPolicy::default()
    };
    let t0 = Instant::now();
    let book = RestartBook::default();
    let (first, book1) = after_exit(&policy, &book, t0, true, s(1));
    assert_eq!(first, Decision::Restart(s(1)));
    assert_eq!(
        after_exit(&policy, &book, t0, true, s(1)),
        (first, book1.clone())
    );
    let (second, book2) = after_exit(&policy, &book1, t0 + s(1), true, s(1));
    assert_eq!(second, Decision::Restart(s(2)));
    // A third restart within the 10 s window is one too many.
    let (third, _) = after_exit(&policy, &book2, t0 + s(2), true, s(1));
    assert!(
        matches!(&third, Decision::GiveUp(r) if r.contains("more than 2 restarts")),
        "{third:?}"
    );
    // Past the window the earlier restarts are forgotten, and the last
    // delay repeats.
    let (later, book3) = after_exit(&policy, &book2, t0 + s(30), true, s(1));
    assert_eq!(later, Decision::Restart(s(2)));
    // A child up for the stable uptime (60 s by default) resets the backoff.
    let (stable, _) = after_exit(&policy, &book3, t0 + s(100), true, s(60));
    assert_eq!(stable, Decision::Restart(s(1)));
    // Clean exits under on-failure stay down; failures under never give up.
    let on_failure = RestartPolicy {
        mode: RestartMode::OnFailure,
        ..policy.clone()
    };
    assert_eq!(
        after_exit(&on_failure, &book, t0, false, s(1)).0,
        Decision::Exited
    );
    let never = RestartPolicy {
        mode: RestartMode::Never,
        ..policy
    };
    assert!(matches!(
        after_exit(&never, &book, t0, true, s(1)).0,
        Decision::GiveUp(_)
    ));
}

#[test]
fn startup_repeats_until_ok_then_readiness_and_liveness_begin() {
    let mut svc = service();
    svc.checks.startup = Some(check(100, 3, 1));
    svc.checks.readiness = Some(check(200, 1, 1));
    svc.checks.liveness = Some(check(300, 3, 1));
    let mut sim = Sim::new(&svc);
    sim.on(Event::Start);
    let fx = sim.on(Event::Spawned {
        pid: 5,
        start_time: None,
    });
    assert_eq!(
        scheduled(&fx, TimerKind::Check(Phase::Startup)),
        Some(Duration::ZERO)
    );
    assert_eq!(
        scheduled(&fx, TimerKind::StartupTimeout),
        Some(Duration::from_secs(10))
    );
    assert_eq!(sim.s.status(), Status::Starting);
    // Liveness and readiness do not run before startup passed.
    assert!(sim.timer(TimerKind::Check(Phase::Liveness)).is_empty());
    for attempt in 1..4 {
        let fx = sim.timer(TimerKind::Check(Phase::Startup));
        assert_eq!(
            fx,
            vec![Effect::RunCheck {
                phase: Phase::Startup,
                epoch: sim.s.epoch(),
                attempt
            }]
        );
        let fx = sim.check(Phase::Startup, Verdict::Retry("refused".into()));
        assert_eq!(
            scheduled(&fx, TimerKind::Check(Phase::Startup)),
            Some(Duration::from_millis(100))
        );
        // The outcome is journaled once, not on every repeat.
        assert_eq!(journal(&fx).len(), usize::from(attempt == 1));
    }
    let fx = sim.check(Phase::Startup, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Running);
    // Readiness at once (dependents wait for it); liveness at a random
    // point of its first period, so services started together spread out.
    assert_eq!(
        spread(&fx, TimerKind::Check(Phase::Readiness)),
        Some((Duration::ZERO, Duration::ZERO))
    );
    assert_eq!(
        spread(&fx, TimerKind::Check(Phase::Liveness)),
        Some((Duration::ZERO, Duration::from_millis(300)))
    );
    // The startup timeout no longer acts.
    assert!(sim.timer(TimerKind::StartupTimeout).is_empty());
    let fx = sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Ready);
    assert!(journal(&fx).contains(&Journal::Ready));
}

#[test]
fn startup_error_or_timeout_fails_the_start() {
    let mut svc = service();
    svc.checks.startup = Some(check(100, 3, 1));
    svc.restart.backoff = vec![Duration::from_secs(5)];
    let mut sim = Sim::running(&svc, 9);
    let fx = sim.check(Phase::Startup, Verdict::Error("bad config".into()));
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(fx.contains(&Effect::Signal {
        pgid: 9,
        signal: Signal::SIGTERM
    }));
    assert_eq!(
        scheduled(&fx, TimerKind::StopGrace),
        Some(Duration::from_secs(3))
    );
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_millis(50));
    assert_eq!(
        sim.s.status(),
        Status::Backoff,
        "an exit by our own stop signal is still a failure"
    );
    assert_eq!(restart_delay(&fx), Some(Duration::from_secs(5)));

    let mut sim = Sim::running(&svc, 9);
    sim.check(Phase::Startup, Verdict::Retry("not yet".into()));
    let fx = sim.timer(TimerKind::StartupTimeout);
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { .. }))
    );

    svc.restart.mode = RestartMode::Never;
    let mut sim = Sim::running(&svc, 9);
    sim.check(Phase::Startup, Verdict::Error("bad".into()));
    sim.exit(ExitStatus::Code(0), Duration::from_millis(50));
    assert_eq!(sim.s.status(), Status::Failed);
}

/// `failure-threshold` in `[checks.startup]`, with Kubernetes' meaning:
/// that many consecutive failures (retry, trap, timeout), one period
/// apart, fail the start before `startup-timeout` would (an ok is the
/// start itself, so the failures are always in a row).
#[test]
fn startup_failure_threshold_fails_the_start_before_the_timeout() {
    let mut svc = service();
    let mut spec = check(100, 3, 1);
    spec.startup_failures = Some(3);
    svc.checks.startup = Some(spec);
    let mut sim = Sim::running(&svc, 9);
    for outcome in [
        Verdict::Retry("refused".into()),
        Verdict::Trapped("panic".into()),
    ] {
        let fx = sim.check(Phase::Startup, outcome);
        assert_eq!(sim.s.status(), Status::Starting);
        assert_eq!(
            scheduled(&fx, TimerKind::Check(Phase::Startup)),
            Some(Duration::from_millis(100))
        );
    }
    let fx = sim.check(Phase::Startup, Verdict::timed_out(None));
    assert_eq!(sim.s.status(), Status::Stopping, "{fx:?}");
    assert!(
        journal(&fx).iter().any(|j| matches!(
            j,
            Journal::Stopping { cause: Cause::Startup, reason, .. }
                if reason.contains("failed 3/3")
        )),
        "{fx:?}"
    );

    // Without the key only the startup timeout ends a start.
    svc.checks.startup = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 9);
    for _ in 0..10 {
        sim.check(Phase::Startup, Verdict::Retry("refused".into()));
    }
    assert_eq!(sim.s.status(), Status::Starting);
}

#[test]
fn readiness_toggles_with_thresholds_and_never_restarts() {
    let mut svc = service();
    svc.checks.readiness = Some(check(100, 2, 2));
    let mut sim = Sim::running(&svc, 3);
    assert_eq!(sim.s.status(), Status::Running);
    sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Running, "success threshold 2");
    sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Ready);
    sim.check(Phase::Readiness, Verdict::Retry("slow".into()));
    assert_eq!(sim.s.status(), Status::Ready, "failure threshold 2");
    let fx = sim.check(Phase::Readiness, Verdict::timed_out(None));
    assert_eq!(sim.s.status(), Status::Running);
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Unready { .. }))
    );
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { .. })),
        "timeouts warn"
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Signal { .. })));
    sim.check(Phase::Readiness, Verdict::Ok);
    sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Ready);
    sim.check(Phase::Readiness, Verdict::Error("gone".into()));
    assert_eq!(
        sim.s.status(),
        Status::Running,
        "error drops readiness at once"
    );
}

#[test]
fn liveness_counts_consecutive_failures_and_error_restarts_at_once() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 4);
    for o in [
        Verdict::Retry("a".into()),
        Verdict::timed_out(None),
        Verdict::Ok,
        Verdict::Trapped("x".into()),
        Verdict::Retry("b".into()),
    ] {
        let fx = sim.check(Phase::Liveness, o);
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::Signal { .. })),
            "an ok resets the count"
        );
        assert_eq!(
            scheduled(&fx, TimerKind::Check(Phase::Liveness)),
            Some(Duration::from_millis(100))
        );
    }
    let fx = sim.check(Phase::Liveness, Verdict::Trapped("oom".into()));
    assert!(
        fx.contains(&Effect::Signal {
            pgid: 4,
            signal: Signal::SIGTERM
        }),
        "third consecutive failure"
    );
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { message } if message.contains("trapped")))
    );
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));

    let mut sim = Sim::running(&svc, 4);
    let fx = sim.check(Phase::Liveness, Verdict::Error("deadlocked".into()));
    assert!(fx.contains(&Effect::Signal {
        pgid: 4,
        signal: Signal::SIGTERM
    }));
}

#[test]
fn stop_escalates_and_stopping_ignores_checks() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 1, 1));
    let mut sim = Sim::running(&svc, 8);
    let fx = sim.on(Event::Stop(Why::operator("vigil stop")));
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(fx.contains(&Effect::Signal {
        pgid: 8,
        signal: Signal::SIGTERM
    }));
    assert!(
        sim.check(Phase::Liveness, Verdict::Error("x".into()))
            .is_empty()
    );
    assert!(sim.timer(TimerKind::Check(Phase::Liveness)).is_empty());
    let fx = sim.timer(TimerKind::StopGrace);
    assert!(fx.contains(&Effect::Signal {
        pgid: 8,
        signal: Signal::SIGKILL
    }));
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Killed { pid: 8, .. }))
    );
    let fx = sim.exit(ExitStatus::Signal(9), Duration::from_secs(3));
    assert_eq!(sim.s.status(), Status::Stopped);
    assert!(restart_delay(&fx).is_none());
    // A grace timer of an old life does nothing.
    assert!(
        sim.on(Event::Timer(Timer {
            kind: TimerKind::StopGrace,
            epoch: 0
        }))
        .is_empty()
    );
}

/// `vigil start` while the old child is still stopping is queued: the
/// service starts once that child is gone (never beside it), and only
/// once however often it is asked. During shutdown a start is ignored.
#[test]
fn a_start_during_a_stop_waits_for_the_exit_then_starts_once() {
    let svc = service();
    let mut sim = Sim::running(&svc, 8);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    assert!(sim.on(Event::Start).is_empty(), "nothing while it stops");
    assert!(sim.on(Event::Start).is_empty());
    assert_eq!(sim.s.status(), Status::Stopping);
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(3));
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO), "{fx:?}");
    let fx = sim.timer(TimerKind::Backoff);
    assert!(spawns(&fx), "{fx:?}");
    assert_eq!(sim.s.status(), Status::Starting);

    let mut sim = Sim::running(&svc, 9);
    sim.on(Event::Stop(Why::shutdown()));
    sim.on(Event::Start);
    sim.exit(ExitStatus::Signal(15), Duration::from_secs(3));
    assert_eq!(sim.s.status(), Status::Stopped);
}

#[test]
fn stop_while_the_spawn_is_in_flight() {
    let mut sim = Sim::new(&service());
    sim.on(Event::Start);
    let fx = sim.on(Event::Stop(Why::operator("vigil stop")));
    assert_eq!(
        fx,
        vec![
            Effect::Status(Status::Stopping),
            Effect::Journal(Journal::Stopping {
                pid: None,
                cause: Cause::Operator,
                reason: "vigil stop".into(),
                signal: "SIGTERM".into(),
            })
        ]
    );
    let fx = sim.on(Event::Spawned {
        pid: 77,
        start_time: None,
    });
    assert!(fx.contains(&Effect::Signal {
        pgid: 77,
        signal: Signal::SIGTERM
    }));
    sim.exit(ExitStatus::Signal(15), Duration::from_millis(5));
    assert_eq!(sim.s.status(), Status::Stopped);
}

#[test]
fn operator_restart_does_not_count_as_failure() {
    let mut svc = service();
    svc.restart.backoff = vec![Duration::from_secs(60)];
    let mut sim = Sim::running(&svc, 8);
    sim.on(Event::Restart(Why::operator("vigil restart")));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));
    let fx = sim.timer(TimerKind::Backoff);
    assert!(fx.contains(&Effect::Spawn { restarts: 1 }));
}

#[test]
fn stale_results_are_ignored_and_spawn_errors_back_off() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 1, 1));
    let mut sim = Sim::running(&svc, 8);
    let old = sim.s.epoch();
    sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    sim.timer(TimerKind::Backoff);
    assert!(
        sim.on(Event::Check {
            epoch: old,
            phase: Phase::Liveness,
            outcome: Verdict::Error("x".into())
        })
        .is_empty()
    );
    let fx = sim.on(Event::SpawnFailed("ENOENT".into()));
    assert!(journal(&fx).contains(&Journal::SpawnError {
        error: "ENOENT".into(),
        cause: None,
    }));
    assert_eq!(sim.s.status(), Status::Backoff);
    // An unexpected spawn result in a wrong state changes nothing.
    let mut idle = Sim::new(&service());
    assert!(
        idle.on(Event::Spawned {
            pid: 1,
            start_time: None
        })
        .is_empty()
    );
    assert_eq!(idle.s.status(), Status::Stopped);
}

#[test]
fn dependencies_gate_the_first_start() {
    let mut svc = service();
    svc.after = vec!["db".into()];
    let mut sim = Sim::new(&svc);
    let fx = sim.on(Event::Start);
    assert_eq!(fx, vec![Effect::Status(Status::Waiting)]);
    assert!(sim.on(Event::Dependencies(false)).is_empty());
    let fx = sim.on(Event::Dependencies(true));
    assert!(fx.contains(&Effect::Spawn { restarts: 0 }));
    // Stopping a waiting service keeps it stopped.
    let mut sim = Sim::new(&svc);
    sim.on(Event::Start);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    assert!(sim.on(Event::Dependencies(true)).is_empty());
    assert_eq!(sim.s.status(), Status::Stopped);
}

/// Every start waits for `after`, not only the first: a restart by policy
/// or by the operator while a dependency is not ready goes to `waiting`
/// and starts once it is; a restart asked while waiting changes nothing
/// (process-compose#530: it must not wedge the service or spawn twice).
#[test]
fn restarts_wait_for_dependencies_too() {
    let mut svc = service();
    svc.after = vec!["db".into()];
    svc.restart.backoff = vec![Duration::from_secs(1)];
    let mut sim = Sim::new(&svc);
    sim.on(Event::Dependencies(true));
    sim.on(Event::Start);
    sim.on(Event::Spawned {
        pid: 7,
        start_time: None,
    });
    assert_eq!(sim.s.status(), Status::Ready);
    // db goes away; then the child crashes.
    assert!(sim.on(Event::Dependencies(false)).is_empty());
    sim.exit(ExitStatus::Code(1), Duration::from_secs(5));
    assert_eq!(sim.s.status(), Status::Backoff);
    let fx = sim.timer(TimerKind::Backoff);
    assert_eq!(sim.s.status(), Status::Waiting, "{fx:?}");
    assert!(!fx.iter().any(|e| matches!(e, Effect::Spawn { .. })));
    // The operator's restart while waiting: still waiting, nothing spawned.
    let fx = sim.on(Event::Restart(Why::operator("vigil restart")));
    assert!(fx.is_empty(), "{fx:?}");
    let fx = sim.on(Event::Dependencies(true));
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::Spawn { .. }))
            .count(),
        1,
        "{fx:?}"
    );
    assert_eq!(sim.s.status(), Status::Starting);
}

/// `requires`: when the dependency stops or its child dies, the dependent
/// is stopped with the cause `dependency`, then waits for it and starts
/// again once it is ready.
#[test]
fn a_required_dependency_gone_stops_the_dependent_until_it_is_back() {
    let mut svc = service();
    svc.after = vec!["db".into()];
    svc.requires = vec!["db".into()];
    let mut sim = Sim::new(&svc);
    sim.on(Event::Dependencies(true));
    sim.on(Event::Start);
    sim.on(Event::Spawned {
        pid: 7,
        start_time: None,
    });
    sim.on(Event::Dependencies(false));
    let fx = sim.on(Event::DependencyGone("db".into()));
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(
        journal(&fx).iter().any(|j| matches!(
            j,
            Journal::Stopping { cause: Cause::Dependency, reason, .. } if reason == "db stopped"
        )),
        "{fx:?}"
    );
    sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    let fx = sim.timer(TimerKind::Backoff);
    assert_eq!(sim.s.status(), Status::Waiting, "{fx:?}");
    let fx = sim.on(Event::Dependencies(true));
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Spawn { .. })),
        "{fx:?}"
    );
    // Gone again while it is stopped by the operator: it stays stopped.
    let mut sim = Sim::new(&svc);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    assert!(sim.on(Event::DependencyGone("db".into())).is_empty());
    assert_eq!(sim.s.status(), Status::Stopped);
}

/// A reload's edit acts on the running child: a liveness check it adds
/// starts now (not at the next start), removing readiness from an unready
/// child makes it ready, removing the startup check from a starting child
/// completes its start.
#[test]
fn an_update_starts_added_checks_and_releases_removed_gates() {
    let svc = service();
    let mut sim = Sim::running(&svc, 9);
    assert_eq!(sim.s.status(), Status::Ready);
    let mut edited = svc.clone();
    edited.checks.liveness = Some(check(300, 3, 1));
    let now = sim.now;
    let fx = sim.s.update(now, &edited);
    assert_eq!(
        spread(&fx, TimerKind::Check(Phase::Liveness)),
        Some((Duration::ZERO, Duration::from_millis(300)))
    );

    let mut svc = service();
    svc.checks.readiness = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 9);
    assert_eq!(sim.s.status(), Status::Running);
    let now = sim.now;
    let fx = sim.s.update(now, &service());
    assert_eq!(sim.s.status(), Status::Ready);
    assert!(journal(&fx).contains(&Journal::Ready), "{fx:?}");

    let mut svc = service();
    svc.checks.startup = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 9);
    assert_eq!(sim.s.status(), Status::Starting);
    let now = sim.now;
    sim.s.update(now, &service());
    assert_eq!(sim.s.status(), Status::Ready);
}

fn with_loader() -> Service {
    let mut svc = service();
    svc.loader = Some(LoaderSpec {
        path: "/srv/svc/loader.wasm".into(),
        config: vec![("k".into(), "v".into())],
        embedded: false,
    });
    svc.checks.liveness = Some(check(100, 3, 1));
    svc
}

fn decide(fx: &[Effect]) -> Option<((u64, u64), LoaderEvent, History)> {
    fx.iter().find_map(|e| match e {
        Effect::Decide {
            epoch,
            seq,
            event,
            history,
        } => Some(((*epoch, *seq), event.clone(), history.clone())),
        _ => None,
    })
}

#[test]
fn a_loader_decides_exits() {
    let svc = with_loader();
    let mut sim = Sim::new(&svc);
    sim.on(Event::Start);
    let fx = sim.on(Event::Spawned {
        pid: 3,
        start_time: None,
    });
    assert_eq!(decide(&fx).map(|d| d.1), Some(LoaderEvent::Started(3)));
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(2));
    let (epoch, event, history) = decide(&fx).expect("asks the loader");
    assert_eq!(
        event,
        LoaderEvent::Exited {
            status: ExitStatus::Code(1),
            uptime: Duration::from_secs(2)
        }
    );
    assert_eq!(history.recent_exits.len(), 1);
    assert_eq!(history.config, vec![("k".into(), "v".into())]);
    assert_eq!(sim.s.status(), Status::Backoff);
    assert!(restart_delay(&fx).is_none(), "no built-in restart");
    assert!(
        sim.timer(TimerKind::Backoff).is_empty(),
        "waits for the decision"
    );
    let fx = sim.on(Event::Decision {
        epoch: epoch.0,
        seq: epoch.1,
        action: Ok(Action::Restart(Duration::from_millis(1500))),
    });
    assert_eq!(restart_delay(&fx), Some(Duration::from_millis(1500)));

    // stop -> failed
    sim.timer(TimerKind::Backoff);
    sim.on(Event::Spawned {
        pid: 4,
        start_time: None,
    });
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(2));
    let (epoch, ..) = decide(&fx).expect("asks");
    let fx = sim.on(Event::Decision {
        epoch: epoch.0,
        seq: epoch.1,
        action: Ok(Action::Stop("enough".into())),
    });
    assert_eq!(sim.s.status(), Status::Failed);
    assert!(journal(&fx).contains(&Journal::GaveUp {
        reason: "enough".into()
    }));
}

/// Each answer runs in its own task, so the answer about `started` can
/// arrive after the child has exited: it must not be taken for the
/// exit's (a `none` there would end a service its loader restarts).
#[test]
fn a_late_answer_about_an_earlier_event_is_not_taken_for_the_exits() {
    let svc = with_loader();
    let mut sim = Sim::new(&svc);
    sim.on(Event::Start);
    let fx = sim.on(Event::Spawned {
        pid: 3,
        start_time: None,
    });
    let (started, event, _) = decide(&fx).expect("asks about the start");
    assert_eq!(event, LoaderEvent::Started(3));
    let fx = sim.exit(ExitStatus::Code(0), Duration::from_millis(7));
    let (exited, ..) = decide(&fx).expect("asks about the exit");
    assert_ne!(started, exited);
    let fx = sim.on(Event::Decision {
        epoch: started.0,
        seq: started.1,
        action: Ok(Action::None),
    });
    assert_eq!(sim.s.status(), Status::Backoff, "{fx:?}");
    let fx = sim.on(Event::Decision {
        epoch: exited.0,
        seq: exited.1,
        action: Ok(Action::Restart(Duration::from_millis(20))),
    });
    assert_eq!(restart_delay(&fx), Some(Duration::from_millis(20)));
}

#[test]
fn a_loader_decides_check_failures_and_a_broken_loader_falls_back() {
    let svc = with_loader();
    let mut sim = Sim::running(&svc, 6);
    let fx = sim.check(Phase::Liveness, Verdict::Retry("slow".into()));
    let (epoch, event, _) = decide(&fx).expect("asks");
    assert_eq!(
        event,
        LoaderEvent::CheckFailed {
            phase: Phase::Liveness,
            outcome: Verdict::Retry("slow".into()),
            consecutive: 1
        }
    );
    let fx = sim.on(Event::Decision {
        epoch: epoch.0,
        seq: epoch.1,
        action: Ok(Action::Kill(libc::SIGQUIT)),
    });
    assert!(fx.contains(&Effect::Signal {
        pgid: 6,
        signal: Signal::SIGQUIT
    }));
    let fx = sim.on(Event::Decision {
        epoch: epoch.0,
        seq: epoch.1,
        action: Ok(Action::Restart(Duration::ZERO)),
    });
    assert!(fx.contains(&Effect::Signal {
        pgid: 6,
        signal: Signal::SIGTERM
    }));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));

    // Decide failed: the built-in policy applies to the exit.
    let mut sim = Sim::running(&svc, 6);
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    let (epoch, ..) = decide(&fx).expect("asks");
    let fx = sim.on(Event::Decision {
        epoch: epoch.0,
        seq: epoch.1,
        action: Err("trap".into()),
    });
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { .. }))
    );
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));
}

fn exited(fx: &[Effect]) -> Option<Journal> {
    journal(fx)
        .into_iter()
        .find(|j| matches!(j, Journal::Exited { .. }))
}

fn spawns(fx: &[Effect]) -> bool {
    fx.iter().any(|e| matches!(e, Effect::Spawn { .. }))
}

fn killed(fx: &[Effect]) -> Vec<(i32, String)> {
    journal(fx)
        .into_iter()
        .filter_map(|j| match j {
            Journal::Killed { pid, signal, .. } => Some((pid, signal)),
            _ => None,
        })
        .collect()
}

/// The stop grace is the whole group's: a leader that dies of the stop
/// signal leaves its members the rest of the grace; the service is down
/// (and `exited` journaled) only once the group is gone.
#[test]
fn members_of_a_stopped_leader_get_the_rest_of_the_grace() {
    let mut sim = Sim::running(&service(), 8);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    let fx = sim.leader_exit(ExitStatus::Signal(15), Duration::from_millis(10));
    assert_eq!(
        fx,
        vec![Effect::WatchGroup {
            pgid: 8,
            epoch: sim.s.epoch()
        }]
    );
    assert_eq!(sim.s.status(), Status::Stopping);
    assert_eq!((sim.s.pid(), sim.s.group()), (None, Some(8)));
    // The stop signal already reached them: nothing more to send yet.
    assert!(sim.group_lingers(true).is_empty());
    assert_eq!(
        sim.s.status(),
        Status::Stopping,
        "not down while members live"
    );
    // The group empties within the grace: down, with the leader's exit.
    let fx = sim.group_gone();
    assert_eq!(
        exited(&fx),
        Some(Journal::Exited {
            pid: Some(8),
            code: None,
            signal: Some("SIGTERM".into()),
            uptime_ms: 10,
            cause: Some(Cause::Operator),
        })
    );
    assert_eq!(sim.s.status(), Status::Stopped);
    assert_eq!(sim.s.group(), None);
    assert!(killed(&fx).is_empty());
    // The grace timer of that stop no longer acts.
    assert!(sim.timer(TimerKind::StopGrace).is_empty());

    // Members that outlast the grace: SIGKILL to the group, then down.
    let mut sim = Sim::running(&service(), 9);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    sim.leader_exit(ExitStatus::Code(0), Duration::from_millis(10));
    sim.group_lingers(true);
    let fx = sim.timer(TimerKind::StopGrace);
    assert!(fx.contains(&Effect::Signal {
        pgid: 9,
        signal: Signal::SIGKILL
    }));
    assert_eq!(killed(&fx), vec![(9, "SIGKILL".to_string())]);
    assert_eq!(sim.s.status(), Status::Stopping);
    let fx = sim.group_gone();
    assert!(exited(&fx).is_some());
    assert_eq!(sim.s.status(), Status::Stopped);
}

/// A restart waits for the whole old group: never two lives at once.
#[test]
fn a_restart_spawns_only_once_the_old_group_is_gone() {
    let mut sim = Sim::running(&service(), 8);
    sim.on(Event::Restart(Why::operator("vigil restart")));
    let mut fx = sim.leader_exit(ExitStatus::Signal(15), Duration::from_secs(1));
    fx.extend(sim.group_lingers(true));
    assert!(restart_delay(&fx).is_none() && !spawns(&fx), "{fx:?}");
    let fx = sim.group_gone();
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));
    let fx = sim.timer(TimerKind::Backoff);
    assert!(fx.contains(&Effect::Spawn { restarts: 1 }));
    assert_eq!(
        sim.s.group(),
        None,
        "the new life has no group until spawned"
    );
}

/// A leader that exits on its own (a crash, a daemonizing parent): what is
/// left of its group is stopped like the service (stop signal, grace,
/// SIGKILL); the restart policy sees the leader's exit once the group is
/// gone.
#[test]
fn members_left_by_a_crashed_leader_are_stopped_before_the_policy_runs() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 1, 1));
    svc.stop_signal = Signal::SIGINT;
    let mut sim = Sim::running(&svc, 5);
    let fx = sim.leader_exit(ExitStatus::Code(1), Duration::from_secs(2));
    assert_eq!(sim.s.status(), Status::Ready, "asks about the group first");
    assert!(exited(&fx).is_none());
    let fx = sim.group_lingers(true);
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(fx.contains(&Effect::Signal {
        pgid: 5,
        signal: Signal::SIGINT
    }));
    assert!(fx.contains(&Effect::Signal {
        pgid: 5,
        signal: Signal::SIGCONT
    }));
    assert_eq!(
        scheduled(&fx, TimerKind::StopGrace),
        Some(Duration::from_secs(3))
    );
    // The stop of the remains says why, before its signal.
    let (reason, cause) = journal(&fx)
        .into_iter()
        .find_map(|j| match j {
            Journal::Stopping { reason, cause, .. } => Some((reason, cause)),
            _ => None,
        })
        .expect("a stopping line");
    assert_eq!(cause, Cause::LeaderExited);
    assert!(reason.contains("exit code 1"), "{reason}");
    assert!(restart_delay(&fx).is_none() && !spawns(&fx));
    // Stopping: no check acts on the remains.
    assert!(
        sim.check(Phase::Liveness, Verdict::Error("x".into()))
            .is_empty()
    );
    let fx = sim.timer(TimerKind::StopGrace);
    assert_eq!(killed(&fx), vec![(5, "SIGKILL".to_string())]);
    let fx = sim.group_gone();
    assert_eq!(
        exited(&fx),
        Some(Journal::Exited {
            pid: Some(5),
            code: Some(1),
            signal: None,
            uptime_ms: 2000,
            cause: None,
        })
    );
    assert_eq!(sim.s.status(), Status::Backoff);
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));
    assert!(
        sim.timer(TimerKind::Backoff)
            .contains(&Effect::Spawn { restarts: 1 })
    );

    // Only zombies left: nothing to signal or journal as killed; wait.
    let mut sim = Sim::running(&service(), 6);
    sim.leader_exit(ExitStatus::Code(0), Duration::from_secs(1));
    let fx = sim.group_lingers(false);
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(!fx.iter().any(|e| matches!(e, Effect::Signal { .. })));
    assert!(killed(&fx).is_empty());
    let fx = sim.group_gone();
    assert!(exited(&fx).is_some());
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO), "restart = always");

    // An operator stop while the remains are stopped wins over the policy.
    let mut sim = Sim::running(&service(), 7);
    sim.leader_exit(ExitStatus::Code(1), Duration::from_secs(1));
    sim.group_lingers(true);
    assert!(
        sim.on(Event::Stop(Why::operator("vigil stop"))).is_empty(),
        "the stop signal already went"
    );
    let fx = sim.group_gone();
    assert_eq!(sim.s.status(), Status::Stopped);
    assert!(restart_delay(&fx).is_none());
}

/// With a loader, the exit is decided once the group is gone.
#[test]
fn a_loader_sees_the_exit_once_the_group_is_gone() {
    let mut sim = Sim::running(&with_loader(), 3);
    let mut fx = sim.leader_exit(ExitStatus::Code(2), Duration::from_secs(1));
    fx.extend(sim.group_lingers(true));
    assert!(decide(&fx).is_none());
    let fx = sim.group_gone();
    let (_, event, history) = decide(&fx).expect("asks the loader");
    assert_eq!(
        event,
        LoaderEvent::Exited {
            status: ExitStatus::Code(2),
            uptime: Duration::from_secs(1)
        }
    );
    assert_eq!(history.recent_exits.len(), 1);
    assert_eq!(sim.s.status(), Status::Backoff);
}

/// Group answers of an earlier life are ignored.
#[test]
fn stale_group_events_are_ignored() {
    let mut sim = Sim::running(&service(), 8);
    let old = sim.s.epoch();
    sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    sim.timer(TimerKind::Backoff);
    sim.on(Event::Spawned {
        pid: 9,
        start_time: None,
    });
    assert!(
        sim.on(Event::GroupLingers {
            epoch: old,
            live: true
        })
        .is_empty()
    );
    assert!(
        sim.on(Event::GroupGone {
            epoch: old,
            oom: false
        })
        .is_empty()
    );
    // And without a leader exit, a group answer does nothing.
    assert!(sim.group_gone().is_empty());
    assert_eq!(sim.s.status(), Status::Ready);
    assert_eq!(sim.s.group(), Some(9));
}

// -- notify (systemd's protocol from the child) -------------------------------

fn notify_service(watchdog: Option<Duration>) -> Service {
    Service {
        notify: Some(crate::config::NotifySpec {
            watchdog,
            timeout: Duration::from_secs(20),
        }),
        ..service()
    }
}

#[test]
fn a_notify_service_is_started_by_ready_1_and_bounded_by_notify_timeout() {
    let mut sim = Sim::running(&notify_service(None), 42);
    assert_eq!(sim.s.status(), Status::Starting);
    // The wait is bounded by notify-timeout, not a check.
    let mut sim2 = Sim::new(&notify_service(None));
    sim2.on(Event::Start);
    let fx = sim2.on(Event::Spawned {
        pid: 43,
        start_time: None,
    });
    assert_eq!(
        scheduled(&fx, TimerKind::StartupTimeout),
        Some(Duration::from_secs(20))
    );
    let fx = sim2
        .at(Duration::from_secs(20))
        .timer(TimerKind::StartupTimeout);
    assert!(
        journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Warning { message } if message.contains("no READY=1"))),
        "{fx:?}"
    );
    assert_eq!(sim2.s.status(), Status::Stopping);

    let fx = sim.on(Event::Notify(Notify::Ready));
    assert_eq!(sim.s.status(), Status::Ready);
    assert!(journal(&fx).contains(&Journal::Ready));
    // A second READY=1 changes nothing; the timeout no longer acts.
    assert!(sim.on(Event::Notify(Notify::Ready)).is_empty());
    assert!(sim.timer(TimerKind::StartupTimeout).is_empty());
}

#[test]
fn ready_1_and_a_startup_check_must_both_pass() {
    let mut svc = notify_service(None);
    svc.checks.startup = Some(check(100, 3, 1));
    // Check first, then READY=1.
    let mut sim = Sim::running(&svc, 42);
    sim.check(Phase::Startup, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Starting);
    sim.on(Event::Notify(Notify::Ready));
    assert_eq!(sim.s.status(), Status::Ready);
    // READY=1 first, then the check.
    let mut sim = Sim::running(&svc, 42);
    sim.on(Event::Notify(Notify::Ready));
    assert_eq!(sim.s.status(), Status::Starting);
    sim.check(Phase::Startup, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Ready);
    // Check passed, READY=1 never came: the startup timeout says so.
    let mut sim = Sim::running(&svc, 42);
    sim.check(Phase::Startup, Verdict::Ok);
    let fx = sim
        .at(Duration::from_secs(10))
        .timer(TimerKind::StartupTimeout);
    assert!(
        journal(&fx).iter().any(|j| matches!(j, Journal::Warning { message } if message.contains("no READY=1") && message.contains("startup check passed"))),
        "{fx:?}"
    );
}

#[test]
fn with_a_readiness_check_ready_1_only_starts_the_service() {
    let mut svc = notify_service(None);
    svc.checks.readiness = Some(check(100, 1, 1));
    let mut sim = Sim::running(&svc, 42);
    let fx = sim.on(Event::Notify(Notify::Ready));
    assert_eq!(sim.s.status(), Status::Running);
    assert_eq!(
        scheduled(&fx, TimerKind::Check(Phase::Readiness)),
        Some(Duration::ZERO)
    );
    sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(sim.s.status(), Status::Ready);
}

#[test]
fn a_silent_watchdog_is_a_liveness_failure_and_pings_postpone_it() {
    let wd = Duration::from_secs(5);
    let mut sim = Sim::running(&notify_service(Some(wd)), 42);
    // Pings before the start do not arm anything.
    assert!(sim.on(Event::Notify(Notify::Watchdog)).is_empty());
    let fx = sim.on(Event::Notify(Notify::Ready));
    assert_eq!(scheduled(&fx, TimerKind::Watchdog), Some(wd));
    // A ping 3 s in: the timer at 5 s re-arms for the 3 s left.
    sim.at(Duration::from_secs(3))
        .on(Event::Notify(Notify::Watchdog));
    let fx = sim.at(Duration::from_secs(2)).timer(TimerKind::Watchdog);
    assert_eq!(
        fx,
        vec![Effect::Schedule {
            timer: Timer {
                kind: TimerKind::Watchdog,
                epoch: sim.s.epoch()
            },
            after: Duration::from_secs(3),
            spread: Duration::ZERO,
            jitter: false
        }]
    );
    assert_eq!(sim.s.status(), Status::Ready);
    // Silence past the deadline: journaled and stopped for a restart.
    let fx = sim.at(Duration::from_secs(3)).timer(TimerKind::Watchdog);
    assert!(
        journal(&fx).iter().any(|j| matches!(j,
            Journal::Check { phase, outcome, reason: Some(r) }
                if phase == "liveness" && outcome == "error" && r.contains("WATCHDOG=1"))),
        "{fx:?}"
    );
    assert_eq!(sim.s.status(), Status::Stopping);
    assert!(fx.contains(&Effect::Signal {
        pgid: 42,
        signal: Signal::SIGTERM
    }));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_millis(10));
    assert_eq!(restart_delay(&fx), Some(Duration::ZERO));
    // The next life starts without a watchdog until READY=1.
    let fx = sim.timer(TimerKind::Backoff);
    assert!(fx.contains(&Effect::Spawn { restarts: 1 }));
    sim.on(Event::Spawned {
        pid: 43,
        start_time: None,
    });
    assert!(sim.at(wd * 2).timer(TimerKind::Watchdog).is_empty());
    assert_eq!(sim.s.status(), Status::Starting);
}

#[test]
fn watchdog_trigger_restarts_and_notify_is_ignored_without_notify() {
    let mut sim = Sim::running(&notify_service(None), 42);
    sim.on(Event::Notify(Notify::Ready));
    sim.on(Event::Notify(Notify::WatchdogTrigger));
    assert_eq!(sim.s.status(), Status::Stopping);

    let mut svc = service();
    svc.checks.startup = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 42);
    assert!(sim.on(Event::Notify(Notify::Ready)).is_empty());
    assert_eq!(sim.s.status(), Status::Starting);
}

#[test]
fn operator_stop_stays_stopped_until_started() {
    let mut svc = service();
    svc.restart.mode = RestartMode::Always;
    svc.restart.backoff = vec![Duration::ZERO];
    svc.checks.liveness = Some(check(100, 1, 1));
    // Stopped while a failed liveness check is already stopping it: the
    // operator's stop wins over the policy restart.
    let mut sim = Sim::running(&svc, 8);
    sim.check(Phase::Liveness, Verdict::Error("down".into()));
    assert_eq!(sim.s.status(), Status::Stopping);
    sim.on(Event::Stop(Why::operator("vigil stop")));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Stopped);
    assert!(restart_delay(&fx).is_none());
    // Nothing but a start brings it back: not a stale backoff timer, not
    // its dependencies becoming ready.
    assert!(sim.timer(TimerKind::Backoff).is_empty());
    assert!(sim.on(Event::Dependencies(true)).is_empty());
    assert_eq!(sim.s.status(), Status::Stopped);
    let fx = sim.on(Event::Start);
    assert!(fx.contains(&Effect::Spawn { restarts: 0 }));

    // Stopped during the restart delay: the pending restart is cancelled.
    let mut sim = Sim::running(&svc, 9);
    svc.restart.backoff = vec![Duration::from_secs(5)];
    let now = sim.now;
    sim.s.update(now, &svc);
    sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    assert_eq!(sim.s.status(), Status::Backoff);
    let stale = sim.s.epoch();
    sim.on(Event::Stop(Why::operator("vigil stop")));
    assert_eq!(sim.s.status(), Status::Stopped);
    assert!(
        sim.on(Event::Timer(Timer {
            kind: TimerKind::Backoff,
            epoch: stale
        }))
        .is_empty()
    );
    assert_eq!(sim.s.status(), Status::Stopped);
}

/// `initial-delay` is a lower bound, as Kubernetes' initialDelaySeconds:
/// a check's first run is scheduled without jitter (which could bring it
/// forward by a tenth); the periodic runs after it keep theirs.
#[test]
fn a_first_check_is_never_brought_forward_by_jitter() {
    let mut svc = service();
    let mut readiness = check(1000, 3, 1);
    readiness.initial_delay = Duration::from_millis(1500);
    let mut liveness = check(1000, 3, 1);
    liveness.initial_delay = Duration::from_millis(700);
    svc.checks.readiness = Some(readiness);
    svc.checks.liveness = Some(liveness);
    let mut sim = Sim::new(&svc);
    sim.on(Event::Start);
    let fx = sim.on(Event::Spawned {
        pid: 3,
        start_time: None,
    });
    let first = |fx: &[Effect], phase| {
        fx.iter().find_map(|e| match e {
            Effect::Schedule {
                timer,
                after,
                spread,
                jitter,
            } if timer.kind == TimerKind::Check(phase) => Some((*after, *spread, *jitter)),
            _ => None,
        })
    };
    assert_eq!(
        first(&fx, Phase::Readiness),
        Some((Duration::from_millis(1500), Duration::ZERO, false))
    );
    assert_eq!(
        first(&fx, Phase::Liveness),
        Some((
            Duration::from_millis(700),
            Duration::from_millis(1000),
            false
        ))
    );
    let fx = sim.check(Phase::Readiness, Verdict::Ok);
    assert_eq!(
        first(&fx, Phase::Readiness),
        Some((Duration::from_millis(1000), Duration::ZERO, true)),
        "the periodic runs keep their jitter"
    );
}

// -- causes: every stop says why, before its signal ---------------------------

/// The `stopping` line of `fx`, checked to come before the first signal
/// (and the `unready` of a ready service before it): `(cause, reason)`.
fn stopping(fx: &[Effect]) -> (Cause, String) {
    let at = fx
        .iter()
        .position(|e| matches!(e, Effect::Journal(Journal::Stopping { .. })))
        .unwrap_or_else(|| panic!("no stopping in {fx:?}"));
    let signal = fx.iter().position(|e| matches!(e, Effect::Signal { .. }));
    assert!(
        signal.is_none_or(|s| at < s),
        "stopping after the signal: {fx:?}"
    );
    match &fx[at] {
        Effect::Journal(Journal::Stopping { cause, reason, .. }) => (*cause, reason.clone()),
        _ => unreachable!(),
    }
}

fn exit_cause(fx: &[Effect]) -> Option<Cause> {
    match exited(fx) {
        Some(Journal::Exited { cause, .. }) => cause,
        other => panic!("no exited in {fx:?}: {other:?}"),
    }
}

#[test]
fn a_liveness_stop_of_a_ready_service_is_unready_then_stopping_then_killed_and_exited() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 8);
    assert_eq!(sim.s.status(), Status::Ready);
    for _ in 0..2 {
        sim.check(Phase::Liveness, Verdict::Retry("no PONG".into()));
    }
    let fx = sim.check(Phase::Liveness, Verdict::Retry("no PONG".into()));
    let (cause, reason) = stopping(&fx);
    assert_eq!(cause, Cause::Liveness);
    assert_eq!(reason, "liveness builtin:http failed 3/3: no PONG");
    // Unready first, with the stop's cause, before `stopping`.
    let lines = journal(&fx);
    let unready = lines
        .iter()
        .position(|j| matches!(j, Journal::Unready { cause: Some(Cause::Liveness), reason: Some(r) } if r.starts_with("stopping: liveness")))
        .unwrap_or_else(|| panic!("no unready in {lines:?}"));
    let stop_at = lines
        .iter()
        .position(|j| matches!(j, Journal::Stopping { .. }))
        .expect("stopping");
    assert!(unready < stop_at, "{lines:?}");
    // The grace runs out: `killed` says so and carries the cause.
    let fx = sim.timer(TimerKind::StopGrace);
    assert!(
        journal(&fx).iter().any(|j| matches!(j, Journal::Killed { signal, cause: Some(Cause::Liveness), reason, .. } if signal == "SIGKILL" && reason.contains("grace ran out"))),
        "{fx:?}"
    );
    let fx = sim.exit(ExitStatus::Signal(9), Duration::from_secs(3));
    assert_eq!(exit_cause(&fx), Some(Cause::Liveness));
    // The next life starts without a cause: its own exit has none.
    sim.timer(TimerKind::Backoff);
    sim.on(Event::Spawned {
        pid: 9,
        start_time: None,
    });
    let fx = sim.exit(ExitStatus::Code(1), Duration::from_secs(1));
    assert_eq!(exit_cause(&fx), None);
}

#[test]
fn a_liveness_error_restarts_with_its_reason() {
    let mut svc = service();
    svc.checks.liveness = Some(check(100, 3, 1));
    let mut sim = Sim::running(&svc, 8);
    let fx = sim.check(Phase::Liveness, Verdict::Error("deadlocked".into()));
    assert_eq!(
        stopping(&fx),
        (
            Cause::Liveness,
            "liveness builtin:http failed (error): deadlocked".into()
        )
    );
}

#[test]
fn startup_failures_timeouts_watchdog_and_operator_have_their_causes() {
    // A startup check that errs.
    let mut svc = service();
    svc.checks.startup = Some(check(100, 1, 1));
    let mut sim = Sim::running(&svc, 8);
    let fx = sim.check(Phase::Startup, Verdict::Error("bad config".into()));
    assert_eq!(
        stopping(&fx),
        (
            Cause::Startup,
            "startup builtin:http failed: bad config".into()
        )
    );
    // Not ready yet: no `unready`.
    assert!(
        !journal(&fx)
            .iter()
            .any(|j| matches!(j, Journal::Unready { .. }))
    );
    let fx = sim.exit(ExitStatus::Code(0), Duration::from_millis(10));
    assert_eq!(exit_cause(&fx), Some(Cause::Startup));

    // A startup check that never passes in time.
    let mut sim = Sim::running(&svc, 8);
    let fx = sim
        .at(Duration::from_secs(10))
        .timer(TimerKind::StartupTimeout);
    let (cause, reason) = stopping(&fx);
    assert_eq!(cause, Cause::StartupTimeout);
    assert!(reason.contains("did not pass within"), "{reason}");

    // A notify service that stops pinging.
    let mut sim = Sim::running(&notify_service(Some(Duration::from_secs(1))), 8);
    sim.on(Event::Notify(Notify::Ready));
    let fx = sim.at(Duration::from_secs(2)).timer(TimerKind::Watchdog);
    let (cause, reason) = stopping(&fx);
    assert_eq!(cause, Cause::Watchdog);
    assert!(reason.contains("WATCHDOG=1"), "{reason}");

    // The operator, and a reload.
    let mut sim = Sim::running(&service(), 8);
    let fx = sim.on(Event::Restart(Why::operator("vigil restart")));
    assert_eq!(stopping(&fx), (Cause::Operator, "vigil restart".into()));
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(exit_cause(&fx), Some(Cause::Operator));
    sim.timer(TimerKind::Backoff);
    sim.on(Event::Spawned {
        pid: 9,
        start_time: None,
    });
    let fx = sim.on(Event::Restart(Why::new(Cause::Reload, "command changed")));
    assert_eq!(stopping(&fx), (Cause::Reload, "command changed".into()));
    // A second stop while stopping keeps the first cause.
    let fx = sim.on(Event::Stop(Why::shutdown()));
    assert!(journal(&fx).is_empty(), "{fx:?}");
    let fx = sim.exit(ExitStatus::Signal(15), Duration::from_secs(1));
    assert_eq!(exit_cause(&fx), Some(Cause::Reload));
}

#[test]
fn a_loaders_stops_and_kills_say_loader() {
    let svc = with_loader();
    let mut sim = Sim::running(&svc, 8);
    // A liveness failure: the loader is asked, and restarts.
    let fx = sim.check(Phase::Liveness, Verdict::Retry("slow".into()));
    let ((epoch, seq), _, _) = decide(&fx).expect("the loader is asked");
    let fx = sim.on(Event::Decision {
        epoch,
        seq,
        action: Ok(Action::Restart(Duration::ZERO)),
    });
    let (cause, reason) = stopping(&fx);
    assert_eq!(cause, Cause::Loader);
    assert!(reason.starts_with("the loader restarts it"), "{reason}");

    // A kill is journaled before its signal, as the loader's.
    let mut sim = Sim::running(&svc, 8);
    let epoch = sim.s.epoch();
    let seq = sim.s.decisions;
    let fx = sim.on(Event::Decision {
        epoch,
        seq,
        action: Ok(Action::Kill(9)),
    });
    let killed_at = fx
        .iter()
        .position(|e| {
            matches!(
                e,
                Effect::Journal(Journal::Killed {
                    cause: Some(Cause::Loader),
                    ..
                })
            )
        })
        .unwrap_or_else(|| panic!("{fx:?}"));
    let signal_at = fx
        .iter()
        .position(|e| matches!(e, Effect::Signal { .. }))
        .unwrap_or_else(|| panic!("{fx:?}"));
    assert!(killed_at < signal_at, "{fx:?}");
}

/// A child the kernel's OOM killer ended (the shell read it from the
/// cgroup) is journaled with cause `oom`; a stop's own cause stands over
/// it.
#[test]
fn an_exit_after_an_oom_kill_is_journaled_with_cause_oom() {
    let mut sim = Sim::running(&service(), 42);
    let epoch = sim.s.epoch();
    sim.leader_exit(ExitStatus::Signal(9), Duration::from_secs(1));
    let fx = sim.on(Event::GroupGone { epoch, oom: true });
    assert!(
        journal(&fx).iter().any(|j| matches!(
            j,
            Journal::Exited {
                cause: Some(Cause::Oom),
                signal: Some(_),
                ..
            }
        )),
        "{fx:?}"
    );

    let mut sim = Sim::running(&service(), 43);
    sim.on(Event::Stop(Why::new(Cause::Operator, "stop")));
    let epoch = sim.s.epoch();
    sim.leader_exit(ExitStatus::Signal(9), Duration::from_secs(1));
    let fx = sim.on(Event::GroupGone { epoch, oom: true });
    assert!(
        journal(&fx).iter().any(|j| matches!(
            j,
            Journal::Exited {
                cause: Some(Cause::Operator),
                ..
            }
        )),
        "{fx:?}"
    );
}
