//! Supervisor, health: readiness, liveness and check verdicts judged by
//! the real `vigil run` on real processes.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// A Python http.server judged by builtin:http readiness becomes `ready`
/// once it answers, after a passing readiness check.
#[test]
fn readiness_reached() {
    let setup = Setup::new("ready");
    let port = closed_port();
    setup.service("web", &http_server_manifest(port, ""));
    let vigil = setup.run();

    let (spawned_at, pid) = vigil.wait_spawned(0, "web");
    let (ready_at, _) = vigil.wait_kind(spawned_at, "web", "ready");
    // The readiness check passed before `ready`, after the spawn.
    let events = vigil.journal();
    let ok_check = events[spawned_at..ready_at]
        .iter()
        .any(|e| is(e, "web", "check") && e["phase"] == "readiness" && e["outcome"] == "ok");
    assert!(
        ok_check,
        "no passing readiness check before ready\n{}",
        vigil.diagnostics()
    );
    // It really is the server we spawned, and it answers.
    assert!(listening(port), "ready, but nothing listens on {port}");
    assert!(alive(pid));
    assert!(cmdline(pid).contains("http.server"), "{}", cmdline(pid));
    // Ready is not followed by a restart.
    assert!(
        vigil.events("web").iter().all(|e| e["kind"] != "exited"),
        "{}",
        vigil.diagnostics()
    );
}

/// A SIGSTOPped server stops answering: liveness (builtin:http) fails
/// `failure-threshold` times in a row, `period` apart, then vigil stops the
/// child (SIGCONT lets it obey SIGTERM) and starts a new one (backoff 0).
#[test]
fn stopped_child_fails_liveness_and_is_restarted() {
    let setup = Setup::new("hang");
    let port = closed_port();
    // threshold 3 x period 400 ms: two more failures after the first. The
    // startup check holds liveness back until the server answers, however
    // long python takes to start on a busy machine.
    let manifest = format!(
        r#"{command}stop-grace = "5s"

[checks.startup]
check = "builtin:http"
period = "100ms"
timeout = "3s"
[checks.startup.config]
url = "http://127.0.0.1:{port}/"
timeout = "300ms"

[checks.liveness]
check = "builtin:http"
period = "400ms"
timeout = "3s"
failure-threshold = 3
[checks.liveness.config]
url = "http://127.0.0.1:{port}/"
timeout = "300ms"

[grants]
hosts = ["http://127.0.0.1:{port}"]
"#,
        command = http_server_command(port),
    );
    setup.service("web", &manifest);
    let vigil = setup.run();

    let (i, pid) = vigil.wait_spawned(0, "web");
    let (i, _) = vigil.wait_event_from(
        i,
        |e| is(e, "web", "check") && e["phase"] == "liveness" && e["outcome"] == "ok",
        SOON,
    );
    kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("SIGSTOP the server");

    let (fail_at, first_fail) = vigil.wait_event_from(
        i,
        |e| is(e, "web", "check") && e["phase"] == "liveness" && e["outcome"] != "ok",
        SOON,
    );
    assert_eq!(first_fail["outcome"], "retry", "{first_fail}");
    let (exit_at, exited) = vigil.wait_kind(fail_at, "web", "exited");
    assert_eq!(pid_of(&exited), pid);
    // SIGTERM reached the stopped server (no SIGKILL needed).
    assert_eq!(exited["signal"], "SIGTERM", "{}", vigil.diagnostics());
    let (restart_at, restarting) = vigil.wait_kind(exit_at, "web", "restarting");
    assert_eq!(restarting["delay_ms"], 0);
    let (_, respawned) = vigil.wait_kind(restart_at, "web", "spawned");
    assert_ne!(pid_of(&respawned), pid);
    assert_eq!(respawned["restarts"], 1);

    // In between: the failing check was the only news until the stop (the
    // service leaves `ready`, then says why it stops); nothing was killed
    // and the child was not restarted on its first failure.
    let between: Vec<_> = vigil.journal()[fail_at..exit_at]
        .iter()
        .filter(|e| e["service"] == "web")
        .cloned()
        .collect();
    assert_eq!(
        kinds(&between),
        ["check", "unready", "stopping"],
        "{}",
        vigil.diagnostics()
    );
    let gap = ms_between(&first_fail, &exited);
    // Two more periods (minus 10 % jitter each) must pass after the first
    // failure before the threshold of 3 is reached.
    assert!(
        gap >= 600,
        "restarted {gap} ms after the first failure: the threshold was not applied\n{}",
        vigil.diagnostics()
    );
    // The new server answers again.
    vigil.wait_event_from(
        restart_at,
        |e| is(e, "web", "check") && e["outcome"] == "ok",
        SOON,
    );
}

/// A liveness check answering `error` restarts at once, whatever the
/// failure threshold: a builtin:file check on a path that is not granted
/// (the sandbox's definitive refusal), and a component that always errs.
#[test]
fn check_error_restarts_at_once() {
    let setup = Setup::new("check-error");
    // With threshold 1000 and a 1 s period, a threshold restart would take
    // over 16 minutes: a restart within the test's wait is the error path.
    let liveness = |check: &str, config: &str| {
        format!(
            r#"{command}
[checks.liveness]
check = "{check}"
period = "1s"
failure-threshold = 1000
timeout = "5s"
[checks.liveness.config]
{config}
"#,
            command = command(&["sleep", "300"]),
        )
    };
    setup.service(
        "denied",
        &liveness("builtin:file", "path = \"/etc/hostname\"\n"),
    );
    let dir = setup.service("broken", &liveness("error.wasm", ""));
    std::fs::copy(programs::ERROR, dir.join("error.wasm")).expect("copy error component");
    let vigil = setup.run();

    for service in ["denied", "broken"] {
        let (i, first) = vigil.wait_spawned(0, service);
        let (j, check) = vigil.wait_event_from(i, |e| is(e, service, "check"), SOON);
        assert_eq!(check["phase"], "liveness", "{check}");
        assert_eq!(check["outcome"], "error", "{check}");
        let (k, exited) = vigil.wait_kind(j, service, "exited");
        assert_eq!(pid_of(&exited), first);
        assert_eq!(exited["signal"], "SIGTERM", "{exited}");
        let (l, restarting) = vigil.wait_kind(k, service, "restarting");
        assert_eq!(restarting["delay_ms"], 0, "first backoff is 0");
        let (_, second) = vigil.wait_spawned(l, service);
        assert_ne!(second, first);
    }
    let denied = vigil.wait_event(|e| is(e, "denied", "check"), SOON);
    let reason = denied["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("/etc/hostname"),
        "reason names the path: {denied}"
    );
    let broken = vigil.wait_event(|e| is(e, "broken", "check"), SOON);
    assert_eq!(broken["reason"], "broken on purpose", "{broken}");
}

/// A check that never returns (an infinite loop, stopped by its deadline)
/// does not hold up other services' checks. Four such checks spin at once
/// (two services, liveness and readiness each: more than the cores of a
/// small machine) while `good`'s readiness check, every 100 ms, asks a
/// server of this test: while one hostile check spins through its whole
/// 2 s timeout (between two of its timeouts), the good check is served
/// again and again (about 20 times; once at most when the spinning checks
/// starved the runtime's timers and sockets). It becomes ready and stays
/// so, while the hostile checks time out again and again with warnings
/// that name the check.
#[test]
fn hostile_check_does_not_delay_other_services() {
    let setup = Setup::new("hostile");
    let hostile_check = |phase: &str| {
        format!(
            r#"
[checks.{phase}]
check = "loop.wasm"
period = "100ms"
timeout = "2s"
failure-threshold = 100000
"#
        )
    };
    for name in ["hostile", "hostile2"] {
        let dir = setup.service(
            name,
            &format!(
                "{}{}{}",
                command(&["sleep", "300"]),
                hostile_check("liveness"),
                hostile_check("readiness").replace("failure-threshold = 100000\n", "")
            ),
        );
        std::fs::copy(programs::INFINITE_LOOP, dir.join("loop.wasm")).expect("copy loop component");
    }
    let server = RequestLog::start();
    // A liveness timeout or failure would restart it (threshold 1).
    setup.service(
        "good",
        &format!(
            r#"{command}
[checks.readiness]
check = "builtin:http"
period = "100ms"
timeout = "2s"
[checks.readiness.config]
url = "{url}"

[checks.liveness]
check = "builtin:process"
period = "100ms"
timeout = "2s"
failure-threshold = 1

[grants]
hosts = ["{grant}"]
"#,
            command = command(&["sleep", "300"]),
            url = server.url(),
            grant = server.grant(),
        ),
    );
    let vigil = setup.run();

    // Between consecutive timeouts of one hostile check (it spun for its
    // whole timeout in between, beside three others), count the good
    // check's requests: journal and server stamps are both wall-clock
    // RFC 3339 in milliseconds, so they order as strings.
    let (first_warning, _) = vigil.wait_event_from(0, |e| is(e, "hostile", "warning"), SOON);
    let liveness_timeout = |e: &serde_json::Value| {
        is(e, "hostile", "warning")
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("liveness check"))
    };
    let mut timeouts = Vec::new();
    let mut from = 0;
    for _ in 0..3 {
        let (i, warning) = vigil.wait_event_from(from, liveness_timeout, SOON);
        timeouts.push(warning["ts"].as_str().expect("ts").to_string());
        from = i + 1;
    }
    let arrivals = server.arrivals();
    for spin in timeouts.windows(2) {
        let served = arrivals
            .iter()
            .filter(|t| **t > spin[0] && **t < spin[1])
            .count();
        assert!(
            served >= 3,
            "the good check (period 100 ms) was served {served} times while a hostile \
             check spun from {} to {}\n{}",
            spin[0],
            spin[1],
            vigil.diagnostics()
        );
    }

    // The hostile checks time out, repeatedly, each with a warning naming
    // the component and the phase.
    let mut from = first_warning;
    for _ in 0..3 {
        let (i, warning) = vigil.wait_event_from(from, |e| is(e, "hostile", "warning"), SOON);
        let message = warning["message"].as_str().unwrap_or_default();
        assert!(message.contains("loop.wasm"), "{warning}");
        assert!(message.contains("timed out after 2s"), "{warning}");
        // What it printed before it was cut off is kept with the reason.
        assert!(
            message.contains("check output: spinning: waiting for a lock"),
            "{warning}"
        );
        assert!(
            message.starts_with("liveness check") || message.starts_with("readiness check"),
            "{warning}"
        );
        from = i + 1;
    }
    let timed_out = vigil.wait_event(|e| is(e, "hostile", "check"), SOON);
    assert_eq!(timed_out["outcome"], "timed-out", "{timed_out}");
    let hostile = vigil.events("hostile");
    assert!(
        hostile
            .iter()
            .all(|e| e["kind"] != "ready" && e["kind"] != "exited")
    );

    // The good service became ready and its checks kept passing: after
    // `ready`, it journaled nothing but passing checks.
    let (ready_at, _) = vigil.wait_kind(0, "good", "ready");
    let good_after: Vec<_> = vigil.journal()[ready_at + 1..]
        .iter()
        .filter(|e| e["service"] == "good")
        .cloned()
        .collect();
    assert!(
        good_after
            .iter()
            .all(|e| e["kind"] == "check" && e["outcome"] == "ok"),
        "the good service was disturbed: {:?}\n{}",
        kinds(&good_after),
        vigil.diagnostics()
    );
    let good = vigil.events("good");
    assert!(
        good.iter()
            .any(|e| e["kind"] == "check" && e["phase"] == "liveness" && e["outcome"] == "ok"),
        "{}",
        vigil.diagnostics()
    );
}

/// Milliseconds since midnight UTC of a journal timestamp
/// (`2026-12-06T20:45:52.502Z`).
fn ms_of_day(ts: &str) -> i64 {
    let time = ts.split('T').nth(1).expect("a time").trim_end_matches('Z');
    let mut parts = time.split(':');
    let mut next = || {
        parts
            .next()
            .expect("h:m:s")
            .parse::<f64>()
            .expect("a number")
    };
    let (h, m, s) = (next(), next(), next());
    ((h * 3600.0 + m * 60.0) * 1000.0 + (s * 1000.0).round()) as i64
}

/// README: `initial-delay` is a lower bound (Kubernetes'
/// initialDelaySeconds is never cut short): the ±10 % jitter of periodic
/// checks never brings a first check forward. Eight services make a
/// jittered first check (half of them early, by chance) all but certain
/// to show.
#[test]
fn initial_delay_is_a_lower_bound() {
    let setup = Setup::new("initial-delay");
    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    for name in &names {
        setup.service(
            name,
            &format!(
                "{}\n[checks.readiness]\ncheck = \"builtin:process\"\nperiod = \"60s\"\ninitial-delay = \"1500ms\"\n",
                command(&["sleep", "1000"])
            ),
        );
    }
    let vigil = setup.run();
    for name in &names {
        let (spawned_at, _) = vigil.wait_spawned(0, name);
        let (_, check) = vigil.wait_event_from(
            spawned_at,
            |e| is(e, name, "check") && e["phase"] == "readiness",
            std::time::Duration::from_secs(30),
        );
        let spawned = &vigil.journal()[spawned_at];
        let mut waited = ms_of_day(check["ts"].as_str().expect("ts"))
            - ms_of_day(spawned["ts"].as_str().expect("ts"));
        if waited < 0 {
            waited += 86_400_000; // across midnight
        }
        // Both stamps are whole milliseconds: allow the rounding of one.
        assert!(
            waited >= 1499,
            "{name}: first readiness check {waited} ms after the spawn, before its initial delay of 1500 ms\n{}",
            vigil.diagnostics()
        );
    }
}

/// `failure-threshold` in `[checks.startup]` ends a start after that many
/// failures in a row, long before its `startup-timeout` (10 minutes
/// here: the test's wait is 30 s, so a stop within it is the threshold's).
#[test]
fn startup_failure_threshold_ends_the_start_before_its_timeout() {
    let setup = Setup::new("startup-threshold");
    let port = closed_port();
    setup.service(
        "slow",
        &format!(
            r#"{command}restart = "never"
[checks.startup]
check = "builtin:tcp"
period = "100ms"
failure-threshold = 3
startup-timeout = "10m"
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
    let stopping = vigil.wait_event(|e| is(e, "slow", "stopping"), SOON);
    assert_eq!(stopping["cause"], "startup", "{stopping}");
    let reason = stopping["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failed 3/3"), "{stopping}");
    vigil.wait_event(|e| is(e, "slow", "gave-up"), SOON);
}
