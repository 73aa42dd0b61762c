//! The event loop with real children and closure probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::service::{Action, History, LoaderEvent};
use super::state::Status;
use super::*;
use crate::config::{CheckSpec, GrantSpec, Service};
use crate::journal::{self, Journal as JournalFile};
use crate::procfs;
use crate::test_support::{SOON, TempDir, wait_until_async};
use crate::wasm::{CheckSource, Phase, Verdict};

type CheckFn = dyn Fn(&str, Phase) -> Verdict + Send + Sync;

struct FnProbes(Box<CheckFn>);

impl Probes for FnProbes {
    fn check(
        &self,
        service: Arc<Service>,
        phase: Phase,
        _target: ProbeTarget,
    ) -> BoxFuture<Verdict> {
        let outcome = (self.0)(&service.name, phase);
        Box::pin(async move { outcome })
    }
    fn decide(
        &self,
        _: Arc<Service>,
        _: LoaderEvent,
        _: History,
    ) -> BoxFuture<Result<Action, String>> {
        Box::pin(async { Err("no loader".to_string()) })
    }
}

/// A service running `argv`, with no checks; other tests build on it.
pub(super) fn service(name: &str, argv: &[&str]) -> Service {
    Service {
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        stop_grace: Duration::from_secs(2),
        ..Service::for_test(name, std::env::temp_dir(), argv)
    }
}

fn check(period_ms: u64, failure: u32) -> CheckSpec {
    CheckSpec {
        check: CheckSource::Builtin("test".into()),
        period: Duration::from_millis(period_ms),
        timeout: Duration::from_millis(500),
        initial_delay: Duration::ZERO,
        failure_threshold: failure,
        success_threshold: 1,
        startup_timeout: Duration::from_secs(10),
        startup_failures: None,
        config: vec![],
    }
}

fn supervisor(dir: &TempDir, probes: Arc<dyn Probes>) -> Supervisor {
    let journal = JournalFile::open(&dir.0, journal::Options::default()).expect("journal");
    Supervisor::new(
        journal,
        probes,
        Options {
            log_dir: Some(dir.0.join("logs")),
            echo: false,
            notify_socket: None,
            cgroups: None,
            ..Options::default()
        },
    )
    .expect("supervisor")
}

fn kinds(dir: &TempDir) -> Vec<(Option<String>, &'static str)> {
    journal::read_lines(&dir.0.join(journal::FILE))
        .into_iter()
        .map(|l| (l.service, l.event.kind()))
        .collect()
}

const T: Duration = SOON;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_is_restarted_at_once_and_shutdown_is_clean() {
    let dir = TempDir::new("restart");
    let sup = supervisor(&dir, Arc::new(FnProbes(Box::new(|_, _| Verdict::Ok))));
    sup.start(vec![service(
        "sleeper",
        &["sh", "-c", "echo hello; exec sleep 100"],
    )]);
    let first = sup
        .wait_for("sleeper", T, |s| s.status == Status::Ready)
        .await
        .expect("ready");
    let pid = first.pid.expect("pid");
    // Its output is captured (and it is past `echo` before we kill it).
    let log_path = dir.0.join("logs").join("sleeper.log");
    wait_until_async("the output is captured", T, async || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(" stdout hello"))
    })
    .await;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    let second = sup
        .wait_for("sleeper", T, |s| {
            s.status == Status::Ready && s.pid.is_some_and(|p| p != pid)
        })
        .await
        .expect("restarted");
    assert_eq!(second.restarts, 1);
    sup.shutdown().await;
    let s = sup.snapshots()["sleeper"].clone();
    assert_eq!(s.status, Status::Stopped);
    assert!(procfs::stat(second.pid.expect("pid")).is_none_or(|st| st.state == 'Z'));
    // At once: the first backoff is 0, and nothing came between the kill
    // and the new child; the stop at shutdown is the last thing, then quit.
    let lines = journal::read_lines(&dir.0.join(journal::FILE));
    let events: Vec<&journal::Event> = lines.iter().map(|l| &l.event).collect();
    let second_pid = second.pid.expect("pid");
    let at = events
        .iter()
        .position(|e| matches!(e, journal::Event::Exited { pid: Some(p), .. } if *p == pid))
        .unwrap_or_else(|| panic!("no exit of {pid}: {events:?}"));
    assert!(
        matches!(events[at], journal::Event::Exited { signal: Some(s), .. } if s == "SIGKILL"),
        "{events:?}"
    );
    assert_eq!(
        events[at + 1],
        &journal::Event::Restarting {
            delay_ms: 0,
            restarts: 1
        },
        "{events:?}"
    );
    assert!(
        matches!(events[at + 2], journal::Event::Spawned { pid: p, restarts: 1, .. } if *p == second_pid),
        "{events:?}"
    );
    let k: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        &k[k.len() - 2..],
        ["exited", "quit"],
        "the second child's exit, then quit: {k:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_restarts_the_child() {
    let dir = TempDir::new("liveness");
    let sick = Arc::new(AtomicBool::new(false));
    let flag = sick.clone();
    let sup = supervisor(
        &dir,
        Arc::new(FnProbes(Box::new(move |_, _| {
            if flag.load(Ordering::SeqCst) {
                Verdict::Retry("sick".into())
            } else {
                Verdict::Ok
            }
        }))),
    );
    let mut svc = service("worker", &["sleep", "100"]);
    svc.checks.liveness = Some(check(30, 2));
    svc.stop_grace = Duration::from_millis(200);
    sup.start(vec![svc]);
    let first = sup
        .wait_for("worker", T, |s| s.status == Status::Ready)
        .await
        .expect("ready");
    sick.store(true, Ordering::SeqCst);
    sup.wait_for("worker", T, |s| {
        s.restarts >= 1 && s.pid.is_some() && s.pid != first.pid
    })
    .await
    .expect("restarted");
    sick.store(false, Ordering::SeqCst);
    sup.shutdown().await;
    assert!(kinds(&dir).iter().any(|(_, k)| *k == "check"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_start_after_ready_and_stop_first() {
    let dir = TempDir::new("deps");
    let db_ready = Arc::new(AtomicBool::new(false));
    let flag = db_ready.clone();
    let db_checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = db_checks.clone();
    let sup = supervisor(
        &dir,
        Arc::new(FnProbes(Box::new(move |name, _| {
            if name == "db" {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            if name != "db" || flag.load(Ordering::SeqCst) {
                Verdict::Ok
            } else {
                Verdict::Retry("starting".into())
            }
        }))),
    );
    let mut db = service("db", &["sleep", "100"]);
    db.checks.readiness = Some(check(20, 1));
    let mut app = service("app", &["sleep", "100"]);
    app.after = vec!["db".into()];
    let mut migrate = service("migrate", &["true"]);
    migrate.restart.mode = crate::config::RestartMode::Never;
    let mut web = service("web", &["sleep", "100"]);
    web.after = vec!["migrate".into()];
    sup.start(vec![db, app, migrate, web]);
    // A one-shot that exited 0 satisfies `after`.
    sup.wait_for("web", T, |s| s.status == Status::Ready)
        .await
        .expect("web after migrate");
    // db has said "not ready" a few times (every 20 ms): app still waits.
    wait_until_async("db's readiness said retry three times", T, async || {
        db_checks.load(Ordering::SeqCst) >= 3
    })
    .await;
    assert_eq!(sup.snapshots()["app"].status, Status::Waiting);
    db_ready.store(true, Ordering::SeqCst);
    sup.wait_for("app", T, |s| s.status == Status::Ready)
        .await
        .expect("app after db");
    sup.shutdown().await;
    let lines = journal::read_lines(&dir.0.join(journal::FILE));
    let pos = |svc: &str, kind: &str| {
        lines
            .iter()
            .position(|l| l.service.as_deref() == Some(svc) && l.event.kind() == kind)
            .expect("event")
    };
    assert!(
        pos("db", "ready") < pos("app", "spawned"),
        "app spawned before db was ready"
    );
    let last_exit = |svc: &str| {
        lines
            .iter()
            .rposition(|l| l.service.as_deref() == Some(svc) && l.event.kind() == "exited")
            .expect("exited")
    };
    assert!(
        last_exit("app") < last_exit("db"),
        "db stopped before its dependent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_crashed_instance_are_recovered() {
    let dir = TempDir::new("recover");
    // A previous instance's child: spawned by a spawner that is then dropped
    // would die of PDEATHSIG, so simulate a survivor (a grandchild that
    // kept the group) with a child that ignores nothing and is simply alive.
    let reaper = reaper::Reaper::global().expect("reaper");
    let spawner = spawn::Spawner::new(reaper.registry().clone()).expect("spawner");
    let child = spawner
        .spawn(spawn::Command::new(&["sleep", "100"]), Box::new(|_| {}))
        .await
        .expect("spawn");
    {
        let mut j = JournalFile::open(&dir.0, journal::Options::default()).expect("journal");
        j.record(
            Some("old"),
            &crate::journal::Event::Spawned {
                pid: child.pid.as_raw(),
                start_time: child.start_time,
                restarts: 0,
            },
        )
        .expect("record");
    }
    let mut j = JournalFile::open(&dir.0, journal::Options::default()).expect("journal");
    assert_eq!(
        recover::recover_previous(&mut j, &[], Duration::from_secs(2)).await,
        1
    );
    assert!(procfs::stat(child.pid.as_raw()).is_none_or(|s| s.state == 'Z'));
    assert!(
        j.previous_children().is_empty(),
        "recovered children are not found twice"
    );
    drop(spawner);
}

/// Moved from the journal's tests when the decision moved here: the
/// journal lists what never ended, recovery keeps only what is still ours.
#[test]
fn survivors_are_only_live_unreused_pids() {
    let t = TempDir::new("prev");
    let me = std::process::id() as i32;
    let my_start = procfs::start_time(me).expect("own start time");
    {
        let mut j = JournalFile::open(&t.0, journal::Options::default()).expect("open");
        let spawned = |pid, start_time| crate::journal::Event::Spawned {
            pid,
            start_time: Some(start_time),
            restarts: 0,
        };
        // Alive with the recorded start time: ours.
        j.record(Some("a"), &spawned(me, my_start)).expect("record");
        // Pid 1 with another start time: reused, never ours.
        j.record(Some("b"), &spawned(1, u64::MAX)).expect("record");
        // Spawned then exited.
        j.record(Some("c"), &spawned(999_999, 5)).expect("record");
        j.record(
            Some("c"),
            &crate::journal::Event::Exited {
                pid: Some(999_999),
                code: Some(0),
                signal: None,
                uptime_ms: 1,
                cause: None,
            },
        )
        .expect("record");
        // Dead leader, no group left.
        j.record(Some("d"), &spawned(999_998, 5)).expect("record");
        // Crash: no quit.
    }
    let j = JournalFile::open(&t.0, journal::Options::default()).expect("reopen");
    assert_eq!(
        recover::survivors(&j),
        vec![crate::journal::PreviousChild {
            service: Some("a".into()),
            pid: me,
            start_time: my_start
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_engine_builtin_tcp_readiness_gates_ready() {
    let dir = TempDir::new("engine");
    let engine = crate::wasm::Engine::new(crate::wasm::EngineOptions {
        cache_dir: None,
        max_instances: 16,
        max_memory: 256 << 20,
    })
    .expect("engine");
    let sup = supervisor(&dir, probes::WasmProbes::new(engine));
    // Reserve a port, then release it: nothing listens yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut svc = service("web", &["sleep", "100"]);
    let mut spec = check(50, 1);
    spec.check = CheckSource::Builtin("tcp".into());
    spec.timeout = Duration::from_secs(2);
    spec.config = vec![
        ("host".into(), "127.0.0.1".into()),
        ("port".into(), port.to_string()),
    ];
    svc.checks.readiness = Some(spec);
    svc.grants =
        GrantSpec::new(vec![format!("tcp://127.0.0.1:{port}")], vec![], 64 << 20).expect("grants");
    sup.start(vec![svc]);
    sup.wait_for("web", T, |s| s.status == Status::Running)
        .await
        .expect("running");
    // Wait for the first (failing) check before anything listens.
    wait_until_async(
        "a failing check while nothing listens",
        Duration::from_secs(30),
        async || {
            sup.flush_journal().await;
            journal::read_lines(&dir.0.join(journal::FILE))
                .iter()
                .any(|l| matches!(&l.event, crate::journal::Event::Check { outcome, .. } if outcome == "retry"))
        },
    )
    .await;
    assert_eq!(
        sup.snapshots()["web"].status,
        Status::Running,
        "not ready while nothing listens"
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("listen");
    let accept = tokio::spawn(async move {
        loop {
            if listener.accept().await.is_err() {
                return;
            }
        }
    });
    sup.wait_for("web", Duration::from_secs(30), |s| {
        s.status == Status::Ready
    })
    .await
    .expect("ready once listening");
    sup.shutdown().await;
    accept.abort();
    let lines = journal::read_lines(&dir.0.join(journal::FILE));
    assert!(
        lines.iter().any(|l| matches!(&l.event, crate::journal::Event::Check { outcome, .. } if outcome == "retry")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_removes_and_restarts_only_changed_commands() {
    let dir = TempDir::new("reload");
    let sup = supervisor(&dir, Arc::new(FnProbes(Box::new(|_, _| Verdict::Ok))));
    sup.start(vec![
        service("keep", &["sleep", "100"]),
        service("change", &["sleep", "100"]),
        service("drop", &["sleep", "100"]),
    ]);
    let mut pids = std::collections::BTreeMap::new();
    for name in ["keep", "change", "drop"] {
        let s = sup
            .wait_for(name, T, |s| s.status == Status::Ready)
            .await
            .expect("ready");
        pids.insert(name, s.pid.expect("pid"));
    }
    let removed = Arc::downgrade(&sup.service("drop").expect("drop is loaded"));
    let mut changed = service("change", &["sleep", "200"]);
    changed.stop_grace = Duration::from_secs(1);
    let mut keep = service("keep", &["sleep", "100"]);
    keep.checks.liveness = Some(check(1000, 3)); // a check change only
    sup.reload(vec![keep, changed, service("new", &["sleep", "100"])], None)
        .await;
    sup.wait_for("change", T, |s| {
        s.status == Status::Ready && s.pid != Some(pids["change"])
    })
    .await
    .expect("restarted");
    sup.wait_for("new", T, |s| s.status == Status::Ready)
        .await
        .expect("added");
    assert_eq!(
        sup.snapshots()["keep"].pid,
        Some(pids["keep"]),
        "a check change keeps the child"
    );
    assert!(!sup.snapshots().contains_key("drop"));
    // Its task ended: nothing holds the removed service any more (the
    // task kept it, and itself, alive for ever once).
    wait_until_async("the removed service's task has ended", T, async || {
        removed.upgrade().is_none()
    })
    .await;
    assert!(
        procfs::stat(pids["drop"]).is_none_or(|s| s.state == 'Z'),
        "removed service stopped"
    );
    sup.shutdown().await;
    let reloaded = journal::read_lines(&dir.0.join(journal::FILE))
        .into_iter()
        .filter(|l| l.event.kind() == "reloaded")
        .count();
    assert_eq!(reloaded, 4, "keep, change, new, drop");
}

fn always_ok() -> Arc<dyn Probes> {
    Arc::new(FnProbes(Box::new(|_, _| Verdict::Ok)))
}

/// The journal's events about `name`, once everything recorded is on disk.
async fn events_of(sup: &Supervisor, dir: &TempDir, name: &str) -> Vec<journal::Event> {
    sup.flush_journal().await;
    journal::read_lines(&dir.0.join(journal::FILE))
        .into_iter()
        .filter(|l| l.service.as_deref() == Some(name))
        .map(|l| l.event)
        .collect()
}

/// Start `svc` alone and return its child's pid once it is ready.
async fn start_one(sup: &Supervisor, svc: Service) -> i32 {
    let name = svc.name.clone();
    sup.start(vec![svc]);
    sup.wait_for(&name, T, |s| s.status == Status::Ready)
        .await
        .expect("ready")
        .pid
        .expect("pid")
}

/// The operator's stop, through the supervisor: returns once the service
/// is stopped (its whole group gone), with how long that took.
async fn stop_service(sup: &Supervisor, name: &str) -> Duration {
    let t0 = Instant::now();
    assert!(
        sup.send(name, Event::Stop(service::Why::operator("vigil stop"))),
        "{name} is loaded"
    );
    // The grace of these tests is at most 30 s; SIGKILL follows it.
    sup.wait_for(name, T * 4, |s| s.status == Status::Stopped)
        .await
        .expect("stopped");
    t0.elapsed()
}

/// The signal the leader's `exited` names, and whether vigil journaled a
/// `killed` (SIGKILL after the grace) for it.
fn exit_signal_and_killed(events: &[journal::Event]) -> (Option<String>, bool) {
    let signal = events.iter().find_map(|e| match e {
        journal::Event::Exited { signal, .. } => Some(signal.clone()),
        _ => None,
    });
    let killed = events
        .iter()
        .any(|e| matches!(e, journal::Event::Killed { .. }));
    (signal.flatten(), killed)
}

/// The pid a service printed first (its output is captured to
/// `logs/NAME.log`), once it has.
async fn first_line_pid(dir: &TempDir, name: &str) -> i32 {
    let log = dir.0.join("logs").join(format!("{name}.log"));
    let mut pid = None;
    wait_until_async(&format!("{name} printed a pid"), T, async || {
        pid = std::fs::read_to_string(&log).ok().and_then(|text| {
            let line = text.lines().next()?;
            logs::LogLine::parse(line).text.trim().parse::<i32>().ok()
        });
        pid.is_some()
    })
    .await;
    pid.expect("a pid")
}

/// True once the process is gone or a zombie (reaped soon after).
fn gone_or_zombie(pid: i32) -> bool {
    procfs::stat(pid).is_none_or(|s| s.state == 'Z')
}

/// The child dies of the stop signal itself: no SIGKILL was sent, so the
/// grace (long enough to notice) was not waited out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_graceful_when_the_child_obeys() {
    let dir = TempDir::new("stop-obeys");
    let sup = supervisor(&dir, always_ok());
    let mut svc = service("obedient", &["sleep", "100"]);
    svc.stop_grace = Duration::from_secs(30);
    let pid = start_one(&sup, svc).await;
    stop_service(&sup, "obedient").await;
    let events = events_of(&sup, &dir, "obedient").await;
    let (signal, killed) = exit_signal_and_killed(&events);
    assert_eq!(signal.as_deref(), Some("SIGTERM"), "{events:?}");
    assert!(!killed, "{events:?}");
    assert!(!stop::group_alive(Pid::from_raw(pid)));
    sup.shutdown().await;
}

/// A SIGSTOPped child still dies of the stop signal (SIGCONT follows it),
/// rather than waiting out the grace for SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_child_obeys_the_stop_signal() {
    let dir = TempDir::new("stop-stopped");
    let sup = supervisor(&dir, always_ok());
    let mut svc = service("frozen", &["sleep", "100"]);
    svc.stop_grace = Duration::from_secs(30);
    let pid = start_one(&sup, svc).await;
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP");
    wait_until_async("/proc shows the child stopped", T, async || {
        procfs::stat(pid).is_none_or(|s| s.state == 'T')
    })
    .await;
    stop_service(&sup, "frozen").await;
    let events = events_of(&sup, &dir, "frozen").await;
    let (signal, killed) = exit_signal_and_killed(&events);
    assert_eq!(signal.as_deref(), Some("SIGTERM"), "{events:?}");
    assert!(
        !killed,
        "needed SIGKILL: the stop signal stayed pending: {events:?}"
    );
    sup.shutdown().await;
}

/// A group that ignores the stop signal is SIGKILLed, leader and member,
/// once the grace (a lower bound) is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_after_the_grace() {
    let dir = TempDir::new("stop-escalates");
    let sup = supervisor(&dir, always_ok());
    let mut svc = service(
        "stubborn",
        &[
            "sh",
            "-c",
            "trap '' TERM; sleep 100 & echo $!; wait; exit 0",
        ],
    );
    svc.stop_grace = Duration::from_millis(300);
    let leader = start_one(&sup, svc).await;
    // Written once the trap is installed (the member inherits the ignored
    // TERM).
    let member = first_line_pid(&dir, "stubborn").await;
    let took = stop_service(&sup, "stubborn").await;
    let events = events_of(&sup, &dir, "stubborn").await;
    let (signal, killed) = exit_signal_and_killed(&events);
    assert_eq!(signal.as_deref(), Some("SIGKILL"), "{events:?}");
    assert!(killed, "{events:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // The whole group is gone, including `sleep`: it ignores TERM too, so
    // only the SIGKILL can have ended it.
    assert!(!stop::group_alive(Pid::from_raw(leader)));
    assert!(gone_or_zombie(member));
    sup.shutdown().await;
}

/// The leader obeys the stop signal; a member that ignores it is SIGKILLed
/// once the grace is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stragglers_of_an_exited_leader_are_killed() {
    let dir = TempDir::new("stop-stragglers");
    let sup = supervisor(&dir, always_ok());
    let mut svc = service(
        "leaky",
        &["sh", "-c", "(trap '' TERM; exec sleep 100) & echo $!; wait"],
    );
    svc.stop_grace = Duration::from_millis(300);
    start_one(&sup, svc).await;
    let member = first_line_pid(&dir, "leaky").await;
    wait_until_async("the member ignores TERM", T, async || {
        std::fs::read_to_string(format!("/proc/{member}/status"))
            .map(|st| {
                // TERM itself: a background job of a non-interactive
                // shell ignores INT and QUIT from the start, before the trap.
                st.lines()
                    .filter_map(|l| l.strip_prefix("SigIgn:"))
                    .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                    .any(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
            })
            .unwrap_or(false)
    })
    .await;
    stop_service(&sup, "leaky").await;
    let events = events_of(&sup, &dir, "leaky").await;
    let (signal, killed) = exit_signal_and_killed(&events);
    assert_eq!(signal.as_deref(), Some("SIGTERM"), "{events:?}");
    assert!(killed, "the straggler needed SIGKILL: {events:?}");
    wait_until_async("the straggler is reaped", T, async || {
        procfs::stat(member).is_none()
    })
    .await;
    sup.shutdown().await;
}
