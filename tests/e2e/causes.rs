//! README "Journal": every stop says why. Each kind of stop, driven through
//! the real `vigil run` with real children, journals `stopping` with its
//! `cause` before the stop signal, a ready service turns `unready` first,
//! and the `exited` (and `killed`) that end the stop carry the same cause.
//! Warnings about a service are filed under it, with what a failing check
//! printed.

use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::helpers::{closed_port, programs};
use crate::servers::Redis;
use crate::supervisor_helpers::{
    SOON, Setup, Vigil, atomic_save, command, is, kinds, pid_of, vigil_command, wait_until,
};
use crate::support::cli;

/// Wait for `service`'s next `stopping` from line `from` and check what
/// follows it: the `exited` of the same child with the same cause, and,
/// when the service was ready, an `unready` with that cause just before
/// it. Returns the `stopping` line and the `exited` line (with its index).
fn stop_of(vigil: &Vigil, from: usize, service: &str, cause: &str) -> (Value, usize, Value) {
    let (at, stopping) = vigil.wait_kind(from, service, "stopping");
    assert_eq!(stopping["cause"], cause, "{}", vigil.diagnostics());
    let (exit_at, exited) = vigil.wait_kind(at, service, "exited");
    assert_eq!(exited["cause"], cause, "{}", vigil.diagnostics());
    if !stopping["pid"].is_null() {
        assert_eq!(stopping["pid"], exited["pid"], "{}", vigil.diagnostics());
    }
    (stopping, exit_at, exited)
}

/// The kinds journaled about `service` from line `from` to line `to`.
fn kinds_between(vigil: &Vigil, service: &str, from: usize, to: usize) -> Vec<String> {
    let lines: Vec<Value> = vigil.journal()[from..to]
        .iter()
        .filter(|e| e["service"] == service)
        .cloned()
        .collect();
    kinds(&lines)
}

/// A SIGSTOPped redis-server fails its liveness check three times: Vigil
/// journals `unready` and `stopping` (cause liveness, with the check, the
/// count and the check's reason) before SIGTERM. Continued by the SIGCONT
/// that follows, redis shuts down cleanly and exits 0: the `exited code=0`
/// that once looked like a wrong status read is redis's own graceful exit,
/// and now says it ended for the liveness stop.
#[test]
fn a_sigstopped_redis_is_stopped_for_liveness_and_says_so() {
    let setup = Setup::new("cause-liveness");
    let port = closed_port();
    let redis = Redis::binary();
    setup.service(
        "redis",
        &format!(
            r#"{command}stop-grace = "10s"

[checks.liveness]
check = "builtin:redis"
period = "200ms"
timeout = "3s"
failure-threshold = 3
[checks.liveness.config]
host = "127.0.0.1"
port = "{port}"
timeout = "300ms"

[grants]
hosts = ["tcp://127.0.0.1:{port}"]
"#,
            command = command(&[
                &redis.display().to_string(),
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
        ),
    );
    let vigil = setup.run();
    let (i, pid) = vigil.wait_spawned(0, "redis");
    let (i, _) = vigil.wait_event_from(
        i,
        |e| is(e, "redis", "check") && e["phase"] == "liveness" && e["outcome"] == "ok",
        SOON,
    );
    kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP redis");

    let (stopping, exit_at, exited) = stop_of(&vigil, i, "redis", "liveness");
    let reason = stopping["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("liveness builtin:redis failed 3/3: "),
        "{stopping}"
    );
    assert!(reason.contains("PING"), "{stopping}");
    assert_eq!(stopping["signal"], "SIGTERM", "{stopping}");
    assert_eq!(pid_of(&exited), pid);
    // Redis obeyed SIGTERM once continued: its own clean exit, no SIGKILL.
    assert_eq!(exited["code"], 0, "{}", vigil.diagnostics());
    assert!(exited["signal"].is_null(), "{exited}");
    // Ready before: unready, then stopping, then exited (the failing check
    // before them; nothing killed).
    let (fail_at, _) =
        vigil.wait_event_from(i, |e| is(e, "redis", "check") && e["outcome"] != "ok", SOON);
    assert_eq!(
        kinds_between(&vigil, "redis", fail_at, exit_at + 1),
        ["check", "unready", "stopping", "exited"],
        "{}",
        vigil.diagnostics()
    );
    let unready = &vigil.events("redis")[..]
        .iter()
        .find(|e| e["kind"] == "unready")
        .cloned()
        .expect("unready");
    assert_eq!(unready["cause"], "liveness", "{unready}");
}

/// A startup check that never passes: the start fails for
/// `startup-timeout`, and the stop says so.
#[test]
fn a_startup_timeout_is_the_cause() {
    let setup = Setup::new("cause-startup-timeout");
    let port = closed_port();
    setup.service(
        "slow",
        &format!(
            r#"{command}
[checks.startup]
check = "builtin:tcp"
period = "100ms"
timeout = "2s"
startup-timeout = "500ms"
[checks.startup.config]
host = "127.0.0.1"
port = "{port}"

[grants]
hosts = ["tcp://127.0.0.1:{port}"]
"#,
            command = command(&["sleep", "300"]),
        ),
    );
    let vigil = setup.run();
    let (stopping, _, exited) = stop_of(&vigil, 0, "slow", "startup-timeout");
    assert!(
        stopping["reason"]
            .as_str()
            .is_some_and(|r| r.contains("did not pass within")),
        "{stopping}"
    );
    assert_eq!(exited["signal"], "SIGTERM", "{exited}");
    // Never ready, so never unready.
    assert!(
        vigil.events("slow").iter().all(|e| e["kind"] != "unready"),
        "{}",
        vigil.diagnostics()
    );
}

/// `vigil stop` and `vigil restart` are the operator's, named; a reload
/// that changes the command says what changed; the shutdown says it is one.
#[test]
fn operator_reload_and_shutdown_stops_have_their_causes() {
    let setup = Setup::new("cause-operator");
    let dir = setup.service("svc", &command(&["sleep", "301"]));
    let mut vigil = setup.run();
    let (i, _) = vigil.wait_kind(0, "svc", "ready");

    let out = cli(&setup.state, &["restart", "svc"]);
    assert!(out.status.success(), "{out:?}");
    let (stopping, exit_at, _) = stop_of(&vigil, i, "svc", "operator");
    assert_eq!(stopping["reason"], "vigil restart", "{stopping}");
    // Ready: unready (cause operator) right before stopping.
    assert_eq!(
        kinds_between(&vigil, "svc", i + 1, exit_at + 1),
        ["unready", "stopping", "exited"],
        "{}",
        vigil.diagnostics()
    );
    let (i, _) = vigil.wait_kind(exit_at, "svc", "ready");

    let out = cli(&setup.state, &["stop", "svc"]);
    assert!(out.status.success(), "{out:?}");
    let (stopping, exit_at, _) = stop_of(&vigil, i, "svc", "operator");
    assert_eq!(stopping["reason"], "vigil stop", "{stopping}");
    let out = cli(&setup.state, &["start", "svc"]);
    assert!(out.status.success(), "{out:?}");
    let (i, _) = vigil.wait_kind(exit_at, "svc", "ready");

    atomic_save(&dir, &command(&["sleep", "302"]));
    let (stopping, exit_at, _) = stop_of(&vigil, i, "svc", "reload");
    assert_eq!(stopping["reason"], "command changed", "{stopping}");
    let (i, _) = vigil.wait_kind(exit_at, "svc", "ready");

    let status = vigil.terminate();
    assert!(status.success(), "{status}\n{}", vigil.diagnostics());
    let (stopping, _, exited) = stop_of(&vigil, i, "svc", "shutdown");
    assert_eq!(stopping["reason"], "vigil is shutting down", "{stopping}");
    assert_eq!(exited["signal"], "SIGTERM", "{exited}");
}

/// A reload that removes a service stops it as `removed`.
#[test]
fn a_removed_service_is_stopped_as_removed() {
    let setup = Setup::new("cause-removed");
    setup.service("gone", &command(&["sleep", "303"]));
    let vigil = setup.run();
    let (i, _) = vigil.wait_kind(0, "gone", "ready");
    std::fs::remove_dir_all(setup.checks.join("gone")).expect("remove the service");
    stop_of(&vigil, i, "gone", "removed");
}

/// A `notify` service that stops pinging is stopped by its watchdog.
#[test]
fn a_silent_watchdog_is_the_cause() {
    let setup = Setup::new("cause-watchdog");
    let script = "import os, socket\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n\
                  import time\n\
                  time.sleep(300)\n";
    setup.service(
        "pinger",
        &format!(
            "{}notify = true\nwatchdog-sec = \"300ms\"\n",
            command(&["python3", "-c", script])
        ),
    );
    let vigil = setup.run();
    let (i, _) = vigil.wait_kind(0, "pinger", "ready");
    let (stopping, _, _) = stop_of(&vigil, i, "pinger", "watchdog");
    assert!(
        stopping["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no WATCHDOG=1 within")),
        "{stopping}"
    );
}

/// A loader that restarts on a failed check: the stop is the loader's,
/// and says what it answered.
#[test]
fn a_loaders_restart_is_the_cause() {
    let setup = Setup::new("cause-loader");
    let dir = setup.service(
        "looped",
        r#"[loader.config]
argv = "sleep 304"

[checks.liveness]
check = "error.wasm"
period = "200ms"
timeout = "5s"
"#,
    );
    std::fs::copy(programs::LOADER_POLICY, dir.join("loader.wasm")).expect("copy loader");
    std::fs::copy(programs::ERROR, dir.join("error.wasm")).expect("copy check");
    let vigil = setup.run();
    let (stopping, _, _) = stop_of(&vigil, 0, "looped", "loader");
    assert!(
        stopping["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("the loader restarts it")),
        "{stopping}"
    );
}

/// A check that panics: its warning is filed under its service (so
/// `vigil journal NAME` shows it) and carries what the guest printed
/// (Rust's panic message is on its stderr), as does the check's reason.
#[test]
fn a_trapped_checks_warning_is_the_services_and_keeps_its_stderr() {
    let setup = Setup::new("cause-trap-output");
    let dir = setup.service(
        "panicky",
        &format!(
            r#"{command}
[checks.liveness]
check = "panic.wasm"
period = "200ms"
timeout = "5s"
failure-threshold = 1000
"#,
            command = command(&["sleep", "305"]),
        ),
    );
    std::fs::copy(programs::PANIC, dir.join("panic.wasm")).expect("copy check");
    let vigil = setup.run();
    let (_, warning) = vigil.wait_event_from(
        0,
        |e| e["kind"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains("trapped")),
        SOON,
    );
    assert_eq!(warning["service"], "panicky", "{warning}");
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(message.contains("boom from guest"), "{warning}");
    let (_, check) = vigil.wait_event_from(
        0,
        |e| is(e, "panicky", "check") && e["outcome"] == "trapped",
        SOON,
    );
    assert!(
        check["reason"]
            .as_str()
            .is_some_and(|r| r.contains("boom from guest")),
        "{check}"
    );
    // `vigil journal panicky` shows it.
    let out = cli(&setup.state, &["journal", "panicky"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("boom from guest"), "{out:?}");
}

/// The foreground echo (`vigil run` without `--quiet`) shows no clock
/// ticks (`start_time`) and no trailing spaces (`web * ready`).
#[test]
fn the_echo_has_no_ticks_and_no_trailing_spaces() {
    let setup = Setup::new("cause-echo");
    setup.service("web", &command(&["sleep", "306"]));
    let stderr = setup.root.join("echo.stderr");
    let mut child = vigil_command()
        .arg("run")
        .arg("--checks")
        .arg(&setup.checks)
        .arg("--state-dir")
        .arg(&setup.state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start vigil run");
    let read = || std::fs::read_to_string(&stderr).unwrap_or_default();
    wait_until("web is ready", SOON, || read().contains("web * ready"));
    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("SIGTERM vigil");
    let status = child.wait().expect("wait vigil");
    assert!(status.success(), "{status}");
    let text = read();
    assert!(text.contains("web * spawned pid="), "{text}");
    assert!(!text.contains("start_time"), "{text}");
    for line in text.lines() {
        assert_eq!(line, line.trim_end(), "a trailing space: {line:?}");
    }
    assert!(text.lines().any(|l| l.ends_with("web * ready")), "{text}");
    assert!(text.contains("web * stopping cause=shutdown"), "{text}");
}
