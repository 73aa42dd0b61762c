//! The event loop with real children and closure probes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::service::{Action, History, LoaderEvent, Outcome};
use super::state::Status;
use super::*;
use crate::config::{CheckRef, CheckSpec, Checks, GrantSpec, Phase, RestartPolicy, Service};
use crate::journal::{self, Journal as JournalFile};

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("vigil-loop-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type CheckFn = dyn Fn(&str, Phase) -> Outcome + Send + Sync;

struct FnProbes(Box<CheckFn>);

impl Probes for FnProbes {
    fn check(
        &self,
        service: Arc<Service>,
        phase: Phase,
        _target: ProbeTarget,
    ) -> BoxFuture<Outcome> {
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

fn service(name: &str, argv: &[&str]) -> Service {
    Service {
        name: name.into(),
        dir: std::env::temp_dir(),
        command: Some(argv.iter().map(|s| s.to_string()).collect()),
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        inherit_env: vec![],
        cwd: std::env::temp_dir(),
        stop_signal: Signal::SIGTERM,
        stop_grace: Duration::from_secs(2),
        restart: RestartPolicy::default(),
        after: vec![],
        notify: None,
        grants: GrantSpec::default(),
        checks: Checks::default(),
        loader: None,
    }
}

fn check(period_ms: u64, failure: u32) -> CheckSpec {
    CheckSpec {
        check: CheckRef::Builtin("test".into()),
        period: Duration::from_millis(period_ms),
        timeout: Duration::from_millis(500),
        initial_delay: Duration::ZERO,
        failure_threshold: failure,
        success_threshold: 1,
        startup_timeout: Duration::from_secs(10),
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

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_child_is_restarted_at_once_and_shutdown_is_clean() {
    let dir = TempDir::new("restart");
    let sup = supervisor(&dir, Arc::new(FnProbes(Box::new(|_, _| Outcome::Ok))));
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
    let deadline = Instant::now() + T;
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .next()
        .is_some_and(|l| l.ends_with(" stdout hello"))
    {
        assert!(Instant::now() < deadline, "output not captured");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    assert!(proc::stat(second.pid.expect("pid")).is_none_or(|st| st.state == 'Z'));
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
                Outcome::Retry("sick".into())
            } else {
                Outcome::Ok
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
    let sup = supervisor(
        &dir,
        Arc::new(FnProbes(Box::new(move |name, _| {
            if name != "db" || flag.load(Ordering::SeqCst) {
                Outcome::Ok
            } else {
                Outcome::Retry("starting".into())
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
    tokio::time::sleep(Duration::from_millis(200)).await;
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
        recover_previous(&mut j, &[], Duration::from_secs(2)).await,
        1
    );
    assert!(proc::stat(child.pid.as_raw()).is_none_or(|s| s.state == 'Z'));
    assert!(
        j.previous_children().is_empty(),
        "recovered children are not found twice"
    );
    drop(spawner);
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
    spec.check = CheckRef::Builtin("tcp".into());
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        sup.flush_journal().await;
        let retried = journal::read_lines(&dir.0.join(journal::FILE))
            .iter()
            .any(|l| matches!(&l.event, crate::journal::Event::Check { outcome, .. } if outcome == "retry"));
        if retried {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failing check while nothing listens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let sup = supervisor(&dir, Arc::new(FnProbes(Box::new(|_, _| Outcome::Ok))));
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
    let deadline = std::time::Instant::now() + T;
    while removed.upgrade().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the removed service's task still runs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        proc::stat(pids["drop"]).is_none_or(|s| s.state == 'Z'),
        "removed service stopped"
    );
    sup.shutdown().await;
    let reloaded = journal::read_lines(&dir.0.join(journal::FILE))
        .into_iter()
        .filter(|l| l.event.kind() == "reloaded")
        .count();
    assert_eq!(reloaded, 4, "keep, change, new, drop");
}

#[test]
fn timer_spread_stays_in_range_and_varies() {
    let period = Duration::from_millis(100);
    let phases: Vec<Duration> = (0..1000).map(|_| random_below(period)).collect();
    assert!(phases.iter().all(|p| *p < period));
    // Spread over the period, not bunched: both halves are well used.
    let early = phases.iter().filter(|p| **p < period / 2).count();
    assert!(
        (300..=700).contains(&early),
        "{early} of 1000 in the first half"
    );
    for _ in 0..1000 {
        let j = jitter(Duration::from_secs(1));
        assert!(j >= Duration::from_millis(900) && j < Duration::from_millis(1100));
    }
    assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
    assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
}

#[test]
fn check_timers_share_grid_points_a_tenth_of_their_period() {
    let ms = Duration::from_millis;
    assert_eq!(check_grid(Duration::from_secs(10)), ms(100));
    assert_eq!(check_grid(Duration::from_secs(1)), ms(100));
    assert_eq!(check_grid(ms(300)), ms(25));
    assert_eq!(check_grid(ms(50)), ms(5));
    assert_eq!(check_grid(ms(5)), Duration::ZERO);

    let now = tokio::time::Instant::now();
    let grid = ms(100);
    for offset in [0, 1, 37, 99, 100, 101, 250] {
        let deadline = now + ms(offset);
        let point = on_grid(deadline, grid);
        assert!(point >= deadline && point < deadline + grid, "{offset} ms");
    }
    // Deadlines in one cell meet at one point; the next cell is one grid on.
    let a = on_grid(now + ms(1000), grid);
    let cell: Vec<_> = (0..100)
        .map(|i| on_grid(a - grid + ms(1) + ms(i) / 2, grid))
        .collect();
    assert!(cell.iter().all(|p| *p == a));
    assert_eq!(on_grid(a + ms(1), grid), a + grid);
    assert_eq!(on_grid(now, Duration::ZERO), now);
}
