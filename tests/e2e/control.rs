//! README "Control": the control socket and its CLI clients against a real
//! `vigil run` with real children.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::sync::mpsc;

use serde_json::Value;

use crate::support::*;

fn sleeper_setup(name: &str) -> Setup {
    let setup = Setup::new(name);
    setup.service("sleeper", &command(&["sleep", "1000"]));
    setup
}

#[test]
fn socket_is_private_and_status_reports_every_service() {
    let setup = sleeper_setup("ctl-status");
    let port = crate::support::closed_port();
    setup.service("web", &http_server_manifest(port, ""));
    let vigil = setup.run();
    wait_socket(&vigil);

    let meta = std::fs::metadata(socket(&setup.state)).expect("socket metadata");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "socket mode");

    let (_, spawned) = vigil.wait_kind(0, "sleeper", "spawned");
    let sleeper = wait_status(&vigil, "sleeper", |s| s["state"] == "ready");
    assert_eq!(sleeper["pid"], spawned["pid"]);
    assert!(alive(pid_of(&sleeper)), "the reported pid runs");
    assert_eq!(sleeper["restarts"], 0);
    assert_eq!(sleeper["ready"], true);
    assert_eq!(sleeper["startup_passed"], true);
    assert!(sleeper["uptime_secs"].as_f64().is_some());
    assert!(sleeper["last_outcome"].is_null(), "no checks: {sleeper}");

    let web = wait_status(&vigil, "web", |s| s["state"] == "ready");
    assert_eq!(web["last_outcome"], "ok", "{web}");
    assert_eq!(web["last_phase"], "readiness", "{web}");
    assert!(
        web["check_latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{web}"
    );

    let report = status(&setup.state);
    assert_eq!(report["pid"], vigil.pid);
    assert_eq!(report["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        report["started_at"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000)
    );
    assert_eq!(report["state_dir"], setup.state.display().to_string());
    assert_eq!(report["services"].as_array().map(Vec::len), Some(2));

    // The table: a header, one aligned line per service, no colour on a pipe.
    let out = cli(&setup.state, &["status"]);
    expect_code(&out, 0, "vigil status");
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("SERVICE"), "{table}");
    let col = lines[0].find("STATE").expect("STATE column");
    for line in &lines[1..] {
        assert_eq!(line.find("ready"), Some(col), "{table}");
    }
    assert!(table.contains("readiness ok"), "{table}");
    assert!(!table.contains('\x1b'), "no colour on a pipe: {table:?}");

    // One service, and an unknown one.
    let out = cli(&setup.state, &["status", "web", "--json"]);
    expect_code(&out, 0, "vigil status web");
    let one: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(one["name"], "web");
    let out = cli(&setup.state, &["status", "nope"]);
    expect_code(&out, 4, "vigil status nope");
    assert!(
        text(&out.stderr).contains("known services: sleeper, web"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stop_start_and_restart_one_service() {
    let setup = sleeper_setup("ctl-start-stop");
    // A service that must stay untouched by the others' commands.
    setup.service("other", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    let (i, first) = vigil.wait_kind(0, "sleeper", "spawned");
    let first = pid_of(&first);
    let other = pid_of(&vigil.wait_kind(0, "other", "spawned").1);

    // stop: the child is gone, and no policy restart brings it back.
    let out = cli(&setup.state, &["stop", "sleeper"]);
    expect_code(&out, 0, "vigil stop");
    assert_eq!(text(&out.stdout).trim(), "sleeper: stopped");
    wait_until("the stopped child is gone", SOON, || !alive(first));
    let (j, exited) = vigil.wait_kind(i, "sleeper", "exited");
    assert_eq!(pid_of(&exited), first);
    assert_eq!(exited["signal"], "SIGTERM");
    let s = service(&status(&setup.state), "sleeper").clone();
    assert_eq!(s["state"], "stopped");
    assert!(s["pid"].is_null());
    assert!(
        !vigil.journal()[j..]
            .iter()
            .any(|e| is(e, "sleeper", "spawned")),
        "an operator stop is not restarted:\n{}",
        vigil.diagnostics()
    );
    // Stopping again is harmless.
    expect_code(&cli(&setup.state, &["stop", "sleeper"]), 0, "second stop");

    // start: a new child.
    let out = cli(&setup.state, &["start", "sleeper"]);
    expect_code(&out, 0, "vigil start");
    let (k, spawned) = vigil.wait_kind(j, "sleeper", "spawned");
    let second = pid_of(&spawned);
    assert_ne!(second, first);
    assert!(alive(second));
    assert!(
        text(&out.stdout).contains(&format!("pid {second}")),
        "{}",
        text(&out.stdout)
    );

    // restart: the old child exits, a new one runs.
    let out = cli(&setup.state, &["restart", "sleeper"]);
    expect_code(&out, 0, "vigil restart");
    let (l, exited) = vigil.wait_kind(k, "sleeper", "exited");
    assert_eq!(pid_of(&exited), second);
    let (_, spawned) = vigil.wait_kind(l, "sleeper", "spawned");
    let third = pid_of(&spawned);
    assert!(
        text(&out.stdout).contains(&format!("pid {third}")),
        "{}",
        text(&out.stdout)
    );
    wait_until("the restarted child is gone", SOON, || !alive(second));
    assert!(alive(third));
    assert_eq!(spawned["restarts"], 1, "{spawned}");

    // Untouched throughout.
    assert!(alive(other));
    assert_eq!(
        vigil
            .events("other")
            .iter()
            .filter(|e| e["kind"] == "spawned")
            .count(),
        1
    );

    // Unknown service: the message lists the known ones.
    for verb in ["start", "stop", "restart"] {
        let out = cli(&setup.state, &[verb, "nope"]);
        expect_code(&out, 4, verb);
        let err = text(&out.stderr);
        assert!(err.contains("no service named `nope`"), "{err}");
        assert!(err.contains("known services: other, sleeper"), "{err}");
    }
}

/// The next line from `rx` satisfying `pred` (within [`SOON`]).
fn next_matching(rx: &mpsc::Receiver<Value>, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + SOON;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if pred(&v) => return v,
            Ok(_) => {}
            Err(e) => panic!("no matching journal line from the follower: {e}"),
        }
    }
}

#[test]
fn journal_prints_past_lines_and_follows_live_events() {
    let setup = sleeper_setup("ctl-journal");
    setup.service("other", &command(&["sleep", "1000"]));
    let mut vigil = setup.run();
    wait_socket(&vigil);
    let first = pid_of(&vigil.wait_kind(0, "sleeper", "spawned").1);
    vigil.wait_kind(0, "other", "spawned");

    // Past lines: the last N, of one service.
    let out = cli(&setup.state, &["journal", "-n", "2", "--json"]);
    expect_code(&out, 0, "vigil journal -n 2");
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    let out = cli(&setup.state, &["journal", "sleeper", "--json"]);
    expect_code(&out, 0, "vigil journal sleeper");
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.iter().all(|l| l["service"] == "sleeper"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| is(l, "sleeper", "spawned") && pid_of(l) == first)
    );
    // The text form: time, service, kind, fields.
    let out = cli(&setup.state, &["journal", "sleeper"]);
    let plain = text(&out.stdout);
    assert!(
        plain
            .lines()
            .any(|l| l.contains(" sleeper spawned pid=") && l.contains("restarts=0")),
        "{plain}"
    );

    // Follow: history first, then live events as they are recorded.
    let (mut follower, rx) = follow_journal(&setup.state, &["-f", "sleeper"]);
    next_matching(&rx, |l| is(l, "sleeper", "spawned") && pid_of(l) == first);
    expect_code(&cli(&setup.state, &["restart", "sleeper"]), 0, "restart");
    let exited = next_matching(&rx, |l| is(l, "sleeper", "exited"));
    assert_eq!(pid_of(&exited), first);
    let spawned = next_matching(&rx, |l| is(l, "sleeper", "spawned"));
    assert_ne!(pid_of(&spawned), first);
    // Filtered: the other service's restart does not show.
    expect_code(
        &cli(&setup.state, &["restart", "other"]),
        0,
        "restart other",
    );
    expect_code(&cli(&setup.state, &["stop", "sleeper"]), 0, "stop");
    let stopped = next_matching(&rx, |l| l["kind"] == "exited");
    assert_eq!(
        stopped["service"], "sleeper",
        "only sleeper's lines: {stopped}"
    );

    // The follow ends when vigil shuts down.
    expect_code(&cli(&setup.state, &["shutdown"]), 0, "shutdown");
    let status = follower.wait().expect("wait for the follower");
    assert!(
        status.success(),
        "journal -f exits 0 at shutdown: {status:?}"
    );
    assert!(vigil.wait_exit(SOON).is_some_and(|s| s.success()));
}

#[test]
fn reload_applies_or_says_why_not() {
    let setup = sleeper_setup("ctl-reload");
    let vigil = setup.run();
    wait_socket(&vigil);
    vigil.wait_kind(0, "sleeper", "spawned");

    setup.service("late", &command(&["sleep", "1000"]));
    let out = cli(&setup.state, &["reload"]);
    expect_code(&out, 0, "vigil reload");
    assert_eq!(text(&out.stdout).trim(), "reloaded");
    vigil.wait_kind(0, "late", "spawned");
    wait_status(&vigil, "late", |s| s["state"] == "ready");

    // An invalid directory is refused, with the reason, and nothing changes.
    setup.service("broken", "command = 42\n");
    let out = cli(&setup.state, &["reload"]);
    expect_code(&out, 1, "vigil reload of an invalid directory");
    let err = text(&out.stderr);
    assert!(err.contains("reload refused"), "{err}");
    assert!(
        err.contains("broken"),
        "the message names the service: {err}"
    );
    let report = status(&setup.state);
    assert_eq!(report["services"].as_array().map(Vec::len), Some(2));
}

#[test]
fn shutdown_stops_everything_and_waits_until_vigil_is_gone() {
    let setup = sleeper_setup("ctl-shutdown");
    let mut vigil = setup.run();
    wait_socket(&vigil);
    let child = pid_of(&vigil.wait_kind(0, "sleeper", "spawned").1);

    let out = cli(&setup.state, &["shutdown"]);
    expect_code(&out, 0, "vigil shutdown");
    assert!(
        text(&out.stdout).contains(&format!("vigil (pid {}) has shut down", vigil.pid)),
        "{}",
        text(&out.stdout)
    );
    // It waited: the child is already gone, the journal says so, and vigil
    // has exited (or is a zombie waiting for this test to reap it).
    assert!(!alive(child), "the child outlived `vigil shutdown`");
    assert!(!alive(vigil.pid), "vigil outlived `vigil shutdown`");
    let status = vigil.wait_exit(SOON).expect("vigil exited");
    assert!(status.success(), "{status:?}");
    let journal = vigil.journal();
    assert_eq!(
        journal.last().map(|e| e["kind"].clone()),
        Some("quit".into())
    );
    assert!(!socket(&setup.state).exists(), "the socket file is removed");

    // Now nothing runs there.
    let out = cli(&setup.state, &["status"]);
    expect_code(&out, 3, "status after shutdown");
}

#[test]
fn no_instance_is_a_clear_message_and_exit_code_3() {
    let setup = Setup::new("ctl-none");
    let sock = socket(&setup.state);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["stop", "web"],
        &["reload"],
        &["shutdown"],
        &["journal", "-f"],
    ] {
        let out = cli(&setup.state, args);
        expect_code(&out, 3, &args.join(" "));
        let err = text(&out.stderr);
        assert!(err.contains("no vigil is running"), "{err}");
        assert!(
            err.contains(&sock.display().to_string()),
            "names the socket: {err}"
        );
    }

    // A stale socket file (its vigil was SIGKILLed) is not an instance
    // either, and the next `vigil run` replaces it.
    std::fs::create_dir_all(&setup.state).expect("state dir");
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind a socket"));
    assert!(sock.exists());
    expect_code(&cli(&setup.state, &["status"]), 3, "stale socket");
    setup.service("sleeper", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    wait_status(&vigil, "sleeper", |s| s["state"] == "ready");

    // --socket points elsewhere.
    let out = vigil_command()
        .args(["status", "--socket"])
        .arg(&sock)
        .output()
        .expect("vigil status --socket");
    expect_code(&out, 0, "status --socket");
}

#[test]
fn a_socket_path_too_long_is_refused_with_advice() {
    let setup = Setup::new("ctl-long");
    setup.service("sleeper", &command(&["sleep", "1000"]));
    let deep = setup.root.join("x".repeat(120));
    let out = run_command(&setup.checks, &deep)
        .arg("--quiet")
        .output()
        .expect("vigil run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&deep.join("control.sock").display().to_string()),
        "{err}"
    );
    assert!(err.contains("shorter --state-dir"), "{err}");
    // Refused before anything was touched.
    assert!(!deep.join("journal.jsonl").exists());
}

/// `vigil start` while the service still stops (its child ignores SIGTERM
/// and waits for the grace's SIGKILL) is queued, as systemd queues a start
/// job behind a stop: the new child starts once the old one is gone, never
/// beside it, and the answer names the new child.
#[test]
fn a_start_during_a_stop_starts_after_the_old_child_is_gone() {
    let setup = Setup::new("ctl-start-while-stopping");
    setup.service(
        "stubborn",
        &format!(
            "{}stop-grace = \"3s\"\n",
            command(&["sh", "-c", "trap '' TERM; while :; do sleep 0.2; done"])
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let (i, spawned) = vigil.wait_kind(0, "stubborn", "spawned");
    let old = pid_of(&spawned);
    wait_status(&vigil, "stubborn", |s| s["state"] == "ready");

    let mut stop = vigil_command()
        .args(["stop", "stubborn", "--state-dir"])
        .arg(&setup.state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("vigil stop");
    wait_status(&vigil, "stubborn", |s| s["state"] == "stopping");
    let out = cli(&setup.state, &["start", "stubborn"]);
    expect_code(&out, 0, "vigil start while stopping");
    let _ = stop.wait();

    let (k, killed) = vigil.wait_kind(i, "stubborn", "killed");
    assert_eq!(pid_of(&killed), old, "{killed}");
    let (l, exited) = vigil.wait_kind(k, "stubborn", "exited");
    assert_eq!(pid_of(&exited), old, "{exited}");
    let (_, respawned) = vigil.wait_kind(l, "stubborn", "spawned");
    let new = pid_of(&respawned);
    assert_ne!(new, old);
    assert!(
        text(&out.stdout).contains(&format!("pid {new}")),
        "the answer names the new child: {}",
        text(&out.stdout)
    );
    let spawns = vigil
        .journal()
        .iter()
        .filter(|e| is(e, "stubborn", "spawned"))
        .count();
    assert_eq!(spawns, 2, "{}", vigil.diagnostics());
}
