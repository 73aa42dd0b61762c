//! README "Bundled checks": every builtin in its ok, retry and error
//! states against a live server, process or file.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vigil::wasm::{Engine, EngineOptions, Grants, Sandbox, Verdict};

use crate::support::*;

const T: Duration = Duration::from_secs(5);

fn assert_retry(verdict: &Verdict, needle: &str) {
    match verdict {
        Verdict::Retry(reason) => assert!(
            reason.contains(needle),
            "retry reason {reason:?} lacks {needle:?}"
        ),
        other => panic!("expected retry ({needle}), got {other:?}"),
    }
}

fn assert_error(verdict: &Verdict, needle: &str) {
    match verdict {
        Verdict::Error(reason) => assert!(
            reason.contains(needle),
            "error reason {reason:?} lacks {needle:?}"
        ),
        other => panic!("expected error ({needle}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_ok_retry_and_error() {
    let server = HttpServer::start();
    let granted = sandbox(&[server.grant()], &[], T);

    let ok = run(
        "builtin:http",
        &[("url", &server.url("/ok"))],
        None,
        &granted,
    )
    .await;
    assert_eq!(ok.verdict, Verdict::Ok, "{ok:?}");

    let unavailable = run(
        "builtin:http",
        &[("url", &server.url("/status/503"))],
        None,
        &granted,
    )
    .await;
    assert_retry(&unavailable.verdict, "503");

    let wrong_status = run(
        "builtin:http",
        &[
            ("url", &server.url("/status/204")),
            ("expect-status", "200"),
        ],
        None,
        &granted,
    )
    .await;
    assert_retry(&wrong_status.verdict, "204");

    let missing_url = run("builtin:http", &[], None, &granted).await;
    assert_error(&missing_url.verdict, "url");

    let bad_status_spec = run(
        "builtin:http",
        &[("url", &server.url("/ok")), ("expect-status", "abc")],
        None,
        &granted,
    )
    .await;
    assert_error(&bad_status_spec.verdict, "expect-status");

    let not_granted = run(
        "builtin:http",
        &[("url", &server.url("/ok"))],
        None,
        &sandbox(&[], &[], T),
    )
    .await;
    // The denial names the grant to add, under both of its names.
    let entry = server.grant();
    assert_error(
        &not_granted.verdict,
        &format!(
            "denied: {entry} is not granted: add \"{entry}\" to [grants] hosts (or --allow-host {entry} with vigil check)"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_body_and_json_field() {
    let server = HttpServer::start();
    let granted = sandbox(&[server.grant()], &[], T);

    let field_ok = run(
        "builtin:http",
        &[
            ("url", &server.url("/json/ok")),
            ("json-field", "checks.db=ok"),
        ],
        None,
        &granted,
    )
    .await;
    assert_eq!(field_ok.verdict, Verdict::Ok, "{field_ok:?}");

    let field_down = run(
        "builtin:http",
        &[
            ("url", &server.url("/json/down")),
            ("json-field", "checks.db=ok"),
        ],
        None,
        &granted,
    )
    .await;
    assert_retry(&field_down.verdict, "down");

    let body_ok = run(
        "builtin:http",
        &[("url", &server.url("/ok")), ("body-contains", "\"status\"")],
        None,
        &granted,
    )
    .await;
    assert_eq!(body_ok.verdict, Verdict::Ok, "{body_ok:?}");

    let body_missing = run(
        "builtin:http",
        &[("url", &server.url("/ok")), ("body-contains", "nowhere")],
        None,
        &granted,
    )
    .await;
    assert!(
        matches!(body_missing.verdict, Verdict::Retry(_)),
        "{body_missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_refused_is_retry() {
    let port = closed_port();
    let granted = sandbox(&[format!("http://127.0.0.1:{port}")], &[], T);
    let url = format!("http://127.0.0.1:{port}/");
    let report = run("builtin:http", &[("url", &url)], None, &granted).await;
    assert!(matches!(report.verdict, Verdict::Retry(_)), "{report:?}");
}

/// A grant by name (here `*`) only reaches public addresses: `localhost`
/// resolving to 127.0.0.1 is refused by the host's resolver.
#[tokio::test(flavor = "multi_thread")]
async fn http_name_resolving_to_loopback_needs_an_explicit_grant() {
    let server = HttpServer::start();
    let url = format!("http://localhost:{}/ok", server.port);
    let wildcard = sandbox(&[format!("http://*:{}", server.port)], &[], T);
    let report = run("builtin:http", &[("url", &url)], None, &wildcard).await;
    assert_error(&report.verdict, "resolves to");

    let explicit = sandbox(&[format!("http://localhost:{}", server.port)], &[], T);
    let report = run("builtin:http", &[("url", &url)], None, &explicit).await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_ok_retry_and_error() {
    let pong = PongServer::start();
    let port = pong.port.to_string();
    let granted = sandbox(&[format!("tcp://127.0.0.1:{port}")], &[], T);

    let connect = run("builtin:tcp", &[("port", &port)], None, &granted).await;
    assert_eq!(connect.verdict, Verdict::Ok, "{connect:?}");

    let ping = run(
        "builtin:tcp",
        &[("port", &port), ("send", "PING\\r\\n"), ("expect", "PONG")],
        None,
        &granted,
    )
    .await;
    assert_eq!(ping.verdict, Verdict::Ok, "{ping:?}");

    let silent = run(
        "builtin:tcp",
        &[
            ("port", &port),
            ("send", "HELLO\\r\\n"),
            ("expect", "PONG"),
            ("timeout", "300ms"),
        ],
        None,
        &granted,
    )
    .await;
    assert!(matches!(silent.verdict, Verdict::Retry(_)), "{silent:?}");

    let closed = closed_port().to_string();
    let refused = run(
        "builtin:tcp",
        &[("port", &closed)],
        None,
        &sandbox(&[format!("tcp://127.0.0.1:{closed}")], &[], T),
    )
    .await;
    assert!(matches!(refused.verdict, Verdict::Retry(_)), "{refused:?}");

    let bad_port = run("builtin:tcp", &[("port", "seventy")], None, &granted).await;
    assert_error(&bad_port.verdict, "port");

    let denied = run(
        "builtin:tcp",
        &[("port", &port)],
        None,
        &sandbox(&[], &[], T),
    )
    .await;
    let entry = format!("tcp://127.0.0.1:{port}");
    assert_error(
        &denied.verdict,
        &format!(
            "denied: {entry} is not granted: add \"{entry}\" to [grants] hosts (or --allow-host {entry} with vigil check)"
        ),
    );
}

struct Sleeper(std::process::Child);

impl Sleeper {
    fn start() -> Sleeper {
        Sleeper(
            Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sleep"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn process_ok_stopped_zombie_and_limits() {
    let none = sandbox(&[], &[], T);
    let sleeper = Sleeper::start();
    let pid = Some(sleeper.pid());

    let alive = run("builtin:process", &[], pid, &none).await;
    assert_eq!(alive.verdict, Verdict::Ok, "{alive:?}");

    let over = run("builtin:process", &[("max-rss", "4k")], pid, &none).await;
    assert_retry(&over.verdict, "rss");

    let bad = run("builtin:process", &[("max-threads", "many")], pid, &none).await;
    assert_error(&bad.verdict, "max-threads");

    let raw = Pid::from_raw(sleeper.pid() as i32);
    kill(raw, Signal::SIGSTOP).expect("SIGSTOP");
    // Delivery is asynchronous: wait until /proc shows the stop.
    wait_until("/proc shows the stop", SOON, || {
        vigil::procfs::stat(raw.as_raw()).is_none_or(|s| s.state == 'T')
    });
    let stopped = run("builtin:process", &[], pid, &none).await;
    assert!(matches!(stopped.verdict, Verdict::Retry(_)), "{stopped:?}");
    kill(raw, Signal::SIGCONT).expect("SIGCONT");

    // Killed but not yet waited for: a zombie, which waiting cannot fix.
    kill(raw, Signal::SIGKILL).expect("SIGKILL");
    wait_until("/proc shows a zombie", SOON, || {
        vigil::procfs::stat(raw.as_raw()).is_none_or(|s| s.state == 'Z')
    });
    let zombie = run("builtin:process", &[], pid, &none).await;
    assert_error(&zombie.verdict, "zombie");

    let no_pid = run("builtin:process", &[], None, &none).await;
    assert!(matches!(no_pid.verdict, Verdict::Error(_)), "{no_pid:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_fresh_stale_missing_and_denied() {
    let dir = scratch("heartbeat");
    let beat = dir.join("beat");
    std::fs::write(&beat, "alive").expect("write heartbeat");
    let path = beat.to_str().expect("utf8");
    let granted = sandbox(&[], std::slice::from_ref(&dir), T);

    let fresh = run(
        "builtin:file",
        &[("path", path), ("max-age", "60s")],
        None,
        &granted,
    )
    .await;
    assert_eq!(fresh.verdict, Verdict::Ok, "{fresh:?}");

    let file = std::fs::File::options()
        .write(true)
        .open(&beat)
        .expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(600))
        .expect("set mtime");
    let stale = run(
        "builtin:file",
        &[("path", path), ("max-age", "60s")],
        None,
        &granted,
    )
    .await;
    assert!(matches!(stale.verdict, Verdict::Retry(_)), "{stale:?}");

    let missing_path = dir.join("nope");
    let missing = run(
        "builtin:file",
        &[("path", missing_path.to_str().expect("utf8"))],
        None,
        &granted,
    )
    .await;
    assert!(matches!(missing.verdict, Verdict::Retry(_)), "{missing:?}");

    let denied = run(
        "builtin:file",
        &[("path", path)],
        None,
        &sandbox(&[], &[], T),
    )
    .await;
    assert!(matches!(denied.verdict, Verdict::Error(_)), "{denied:?}");

    let bad_age = run(
        "builtin:file",
        &[("path", path), ("max-age", "soon")],
        None,
        &granted,
    )
    .await;
    assert_error(&bad_age.verdict, "max-age");
}

/// `vigil check` resolves a relative `path` against its working directory
/// (a service's checks, against the service directory).
#[test]
fn file_check_resolves_relative_paths() {
    let dir = scratch("relative");
    std::fs::write(dir.join("beat"), "x").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "check",
            "builtin:file",
            "--config",
            "path=beat",
            "--allow-path",
            ".",
        ])
        .current_dir(&dir)
        .output()
        .expect("run vigil");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Bundled checks reuse a finished instance (README "Sandbox"): the next
/// call gets that call's own grants and memory cap, a file check still gets
/// a fresh instance every time, and an instance that failed is not kept.
#[tokio::test(flavor = "multi_thread")]
async fn builtin_instances_are_reused_with_each_calls_own_sandbox() {
    // An engine of its own: the shared one counts other tests' stores.
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(scratch("reuse-cache")),
        max_instances: 8,
        max_memory: 256 << 20,
    })
    .expect("engine");
    let stores = || engine.stats().stores_created;
    let pong = PongServer::start();
    let port = pong.port.to_string();
    let config = [("port", port.as_str())];
    let tcp = engine
        .load_checker(&"builtin:tcp".parse().expect("infallible"))
        .await
        .expect("builtin:tcp");
    let target = target(&config, None);
    let check = |sandbox: Sandbox| {
        let (tcp, target) = (&tcp, &target);
        async move { tcp.check(target, &sandbox).await }
    };
    let granted = || sandbox(&[format!("tcp://127.0.0.1:{port}")], &[], T);

    assert_eq!(check(granted()).await.verdict, Verdict::Ok);
    assert_eq!(stores(), 1);
    assert_eq!(check(granted()).await.verdict, Verdict::Ok);
    assert_eq!(stores(), 1, "the second call reuses the first instance");

    // Same instance, another service's grants: denied.
    let denied = check(sandbox(&[], &[], T)).await;
    assert_error(
        &denied.verdict,
        &format!("add \"tcp://127.0.0.1:{port}\" to [grants] hosts"),
    );
    assert_eq!(stores(), 1);

    // A cap below what the idle instance already holds: not handed over;
    // a fresh instance traps on its initial memory instead.
    let tiny = Sandbox::new(
        Grants::parse(&[format!("tcp://127.0.0.1:{port}")], &[]).expect("grants"),
        T,
        64 << 10,
    );
    let capped = check(tiny).await;
    assert!(matches!(capped.verdict, Verdict::Trapped(_)), "{capped:?}");
    assert_eq!(stores(), 2);
    // The trapped one was dropped; the idle one is still there.
    assert_eq!(check(granted()).await.verdict, Verdict::Ok);
    assert_eq!(stores(), 2);

    // Another service naming the same builtin shares the idle instances.
    let again = engine
        .load_checker(&"builtin:tcp".parse().expect("infallible"))
        .await
        .expect("builtin:tcp");
    let report = again.check(&target, &granted()).await;
    assert_eq!(report.verdict, Verdict::Ok);
    assert_eq!(stores(), 2);

    // A check from a file: a fresh instance per call.
    let file = engine
        .load_checker(&programs::OK.parse().expect("infallible"))
        .await
        .expect("ok.wasm");
    for expected in [3, 4] {
        let report = file.check(&target, &granted()).await;
        assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
        assert_eq!(stores(), expected);
    }
}
