//! Lifecycle hooks (docs/hooks.md): pre-start, post-start, pre-stop and
//! post-stop around real processes, their order in the journal, what their
//! failures do, and a pre-stop `POST /drain` by builtin:http reaching a
//! real server before the stop signal.
//!
//! Orders are proven by cause, not by clocks where it can be: a service
//! that refuses to run without its pre-start's file, a stop-signal trap
//! that looks for the drain request, a post-stop that looks for the old
//! process group.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::Value;

use crate::support::*;

/// `[hooks.KIND]` running `script` with `sh -c`, plus `extra` lines.
fn sh_hook(kind: &str, script: &str, extra: &str) -> String {
    format!(
        "\n[hooks.{kind}]\ncommand = [\"sh\", \"-c\", {}]\n{extra}",
        toml_str(script)
    )
}

/// The journal index and line of the first `hook` event of `which` from
/// line `from` on.
fn wait_hook(vigil: &Vigil, from: usize, service: &str, which: &str) -> (usize, Value) {
    vigil.wait_event_from(from, |e| is(e, service, "hook") && e["hook"] == which, SOON)
}

/// The index of the first line of `kind` about `service` in `journal`.
fn index(journal: &[Value], service: &str, kind: &str, also: impl Fn(&Value) -> bool) -> usize {
    journal
        .iter()
        .position(|e| is(e, service, kind) && also(e))
        .unwrap_or_else(|| panic!("no {kind} of {service} in {journal:#?}"))
}

/// A stop-signal trap, a background member that outlives the leader by
/// half a second, and the group id in `./group`: a service whose stop
/// ends with its group empty only after its leader.
const LINGERING: &str = "test -f prepared || exit 9; echo $$ > group; \
     (trap 'sleep 0.5; exit 0' TERM; while :; do sleep 0.1; done) & \
     trap 'exit 0' TERM; while :; do sleep 0.1; done";

/// All four hooks around one life and vigil's shutdown: pre-start before
/// the spawn (the service refuses to run without the file it makes),
/// post-start after it with the child's pid and before `ready`, pre-stop
/// after `stopping` and before the exit, post-stop once nothing of the
/// group is left (it looks), and the shutdown's `quit` only after it.
#[test]
fn the_four_hooks_run_in_order_around_a_life() {
    let setup = Setup::new("hooks-order");
    let manifest = format!(
        "{}stop-grace = \"20s\"\n{}{}{}{}",
        command(&["sh", "-c", LINGERING]),
        sh_hook(
            "pre-start",
            "echo pre-start >> hooks.log; touch prepared; echo prepared the service",
            "",
        ),
        sh_hook(
            "post-start",
            "echo post-start $VIGIL_SERVICE_PID >> hooks.log",
            ""
        ),
        sh_hook("pre-stop", "echo pre-stop >> hooks.log", ""),
        sh_hook(
            "post-stop",
            "if kill -0 -$(cat group) 2>/dev/null; then echo post-stop-early; \
             else echo post-stop; fi >> hooks.log",
            "",
        ),
    );
    let dir = setup.service("web", &manifest);
    let mut vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "web");
    vigil.wait_kind(0, "web", "ready");
    let status = vigil.terminate();
    assert_eq!(status.code(), Some(0), "{}", vigil.diagnostics());

    let journal = vigil.journal();
    let hook = |which: &'static str| move |e: &Value| e["hook"] == which;
    let any = |_: &Value| true;
    let order = [
        index(&journal, "web", "hook", hook("pre-start")),
        index(&journal, "web", "spawned", any),
        index(&journal, "web", "hook", hook("post-start")),
        index(&journal, "web", "ready", any),
        index(&journal, "web", "stopping", any),
        index(&journal, "web", "hook", hook("pre-stop")),
        index(&journal, "web", "exited", any),
        index(&journal, "web", "hook", hook("post-stop")),
        journal
            .iter()
            .position(|e| e["kind"] == "quit")
            .expect("quit"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "journal order {order:?}:\n{}",
        vigil.diagnostics()
    );
    // The journal's timestamps agree with its order.
    for w in order.windows(2) {
        assert!(
            ms_between(&journal[w[0]], &journal[w[1]]) >= 0,
            "{} after {}",
            journal[w[0]],
            journal[w[1]]
        );
    }
    for which in ["pre-start", "post-start", "pre-stop", "post-stop"] {
        let e = &journal[index(&journal, "web", "hook", hook(which))];
        assert_eq!(e["outcome"], "ok", "{e}");
        assert!(e["duration_ms"].is_u64(), "{e}");
    }
    let pre_start = &journal[order[0]];
    assert_eq!(pre_start["output"], "prepared the service", "{pre_start}");
    let exited = &journal[order[6]];
    assert_eq!(
        exited["code"], 0,
        "the service ran after its pre-start: {exited}"
    );

    let log = std::fs::read_to_string(dir.join("hooks.log")).expect("hooks.log");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "pre-start".to_string(),
            format!("post-start {pid}"),
            "pre-stop".into(),
            "post-stop".into(),
        ],
        "{}",
        vigil.diagnostics()
    );
    // A command hook's output is in the service's log, marked.
    let service_log = std::fs::read_to_string(setup.state.join("logs/web.log")).unwrap_or_default();
    assert!(
        service_log.contains("[pre-start] prepared the service"),
        "{service_log}"
    );
}

/// A pre-start that fails fails the start: no spawn, a `spawn-error` with
/// cause `hook`, and the restart policy applies (here it gives up after
/// two restarts).
#[test]
fn a_failing_pre_start_follows_the_restart_policy() {
    let setup = Setup::new("hooks-pre-start-fails");
    let manifest = format!(
        "{}restart = \"on-failure\"\nbackoff = [\"0s\"]\n\
         give-up = {{ restarts = 2, window = \"1h\" }}\n{}",
        command(&["sh", "-c", "touch ran; sleep 300"]),
        sh_hook("pre-start", "echo not today; exit 4", ""),
    );
    let dir = setup.service("web", &manifest);
    let vigil = setup.run();
    vigil.wait_kind(0, "web", "gave-up");
    let events = vigil.events("web");
    let hooks: Vec<&Value> = events.iter().filter(|e| e["kind"] == "hook").collect();
    let errors: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "spawn-error")
        .collect();
    assert_eq!(
        hooks.len(),
        3,
        "a first start and two restarts: {events:#?}"
    );
    assert_eq!(errors.len(), 3, "{events:#?}");
    for (hook, error) in hooks.iter().zip(&errors) {
        assert_eq!(hook["hook"], "pre-start");
        assert_eq!(hook["outcome"], "failed");
        assert_eq!(hook["reason"], "exit code 4", "{hook}");
        assert_eq!(hook["output"], "not today", "{hook}");
        assert_eq!(error["cause"], "hook", "{error}");
    }
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "restarting").count(),
        2,
        "{events:#?}"
    );
    assert!(!kinds(&events).contains(&"spawned".to_string()));
    assert!(!dir.join("ran").exists(), "the service never ran");
}

/// Ready waits for the post-start hook, even when the readiness check
/// passed first; a failing post-start then stops the child as a failed
/// start (cause `hook`).
#[test]
fn post_start_gates_ready_and_its_failure_fails_the_start() {
    let setup = Setup::new("hooks-post-start");
    // The hook says it is waiting, then waits for the test's `go`.
    let manifest = format!(
        "{}\n[checks.readiness]\ncheck = \"builtin:process\"\nperiod = \"100ms\"\n{}",
        command(&["sleep", "300"]),
        sh_hook(
            "post-start",
            "touch waiting; while [ ! -f go ]; do sleep 0.05; done; exit $(cat go)",
            "timeout = \"60s\"\n",
        ),
    );
    let dir = setup.service("web", &manifest);
    let vigil = setup.run();
    let (spawned, _) = vigil.wait_spawned(0, "web");
    vigil.wait_until("the post-start hook runs", || dir.join("waiting").exists());
    // Readiness passes while the hook still runs: not ready yet.
    let (check, _) = vigil.wait_event_from(
        spawned,
        |e| is(e, "web", "check") && e["phase"] == "readiness" && e["outcome"] == "ok",
        SOON,
    );
    let status = status(&setup.state);
    assert_eq!(service(&status, "web")["state"], "running", "{status}");
    assert!(
        !kinds(&vigil.events("web")).contains(&"ready".to_string()),
        "{}",
        vigil.diagnostics()
    );
    std::fs::write(dir.join("go"), "0").expect("go");
    let (hook, _) = wait_hook(&vigil, check, "web", "post-start");
    let (ready, _) = vigil.wait_kind(check, "web", "ready");
    assert!(hook < ready, "{}", vigil.diagnostics());

    // A failing one: the next life's post-start exits 3.
    std::fs::write(dir.join("go"), "3").expect("go");
    let out = cli(&setup.state, &["restart", "web"]);
    expect_code(&out, 0, "vigil restart");
    let (failed, hook) = vigil.wait_event_from(
        ready,
        |e| is(e, "web", "hook") && e["outcome"] == "failed",
        SOON,
    );
    assert_eq!(hook["reason"], "exit code 3", "{hook}");
    let (_, stopping) = vigil.wait_kind(failed, "web", "stopping");
    assert_eq!(stopping["cause"], "hook", "{stopping}");
    let (_, restarting) = vigil.wait_kind(failed, "web", "restarting");
    assert!(restarting["delay_ms"].is_u64(), "{restarting}");
}

/// A loopback server from tests/fixtures/request_recorder.py: its port
/// and the file it records requests in (one JSON line each).
struct Recorder {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Recorder {
    /// Each request takes `delay_ms` before it is recorded and answered.
    fn start(dir: &Path, delay_ms: u64) -> Recorder {
        let port_file = dir.join("recorder.port");
        let log = dir.join("requests.log");
        let child = Command::new("python3")
            .arg(workspace().join("tests/fixtures/request_recorder.py"))
            .arg(&port_file)
            .arg(&log)
            .arg(delay_ms.to_string())
            .spawn()
            .expect("start python3 request_recorder.py");
        let port = poll_until(
            "the recorder's port",
            SOON,
            || {
                std::fs::read_to_string(&port_file)
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            },
            String::new,
        );
        Recorder { child, port, log }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pre-stop check hook (builtin:http, `POST /drain` with a body) reaches
/// a real server before the stop signal: the service's SIGTERM trap finds
/// the request in the server's log and exits 0 (3 if it is not there yet).
/// The server takes 300 ms over the request and the trap runs the moment
/// the signal comes (`wait` is interrupted), so a signal sent beside the
/// hook instead of after its answer is caught.
#[test]
fn a_pre_stop_post_reaches_the_server_before_the_stop_signal() {
    let setup = Setup::new("hooks-drain");
    let recorder = Recorder::start(&setup.root, 300);
    let origin = format!("http://127.0.0.1:{}", recorder.port);
    let trap = format!(
        "trap 'grep -q /drain {} && exit 0 || exit 3' TERM; while :; do sleep 1 & wait $!; done",
        recorder.log.display()
    );
    let manifest = format!(
        "{}stop-grace = \"20s\"\n\n[grants]\nhosts = [{}]\n\n\
         [hooks.pre-stop]\ncheck = \"builtin:http\"\ntimeout = \"10s\"\n\
         [hooks.pre-stop.config]\nurl = \"{origin}/drain\"\nmethod = \"POST\"\n\
         body = \"{{\\\"from\\\": \\\"vigil\\\"}}\"\ntimeout = \"5s\"\n",
        command(&["sh", "-c", &trap]),
        toml_str(&origin),
    );
    setup.service("web", &manifest);
    let mut vigil = setup.run();
    vigil.wait_kind(0, "web", "ready");
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
    let status = vigil.terminate();
    assert_eq!(status.code(), Some(0), "{}", vigil.diagnostics());

    let requests = recorder.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/drain");
    assert_eq!(requests[0]["body"], "{\"from\": \"vigil\"}");
    let events = vigil.events("web");
    let hook = &events[index(&events, "web", "hook", |_| true)];
    assert_eq!(hook["hook"], "pre-stop");
    assert_eq!(hook["outcome"], "ok", "{hook}");
    let exited = &events[index(&events, "web", "exited", |_| true)];
    assert_eq!(
        exited["code"],
        0,
        "the trap saw the drain request: {exited}\n{}",
        vigil.diagnostics()
    );
}

/// A pre-stop hook that hangs is killed at its timeout (its whole group),
/// journaled as a warning, and the stop goes on with the stop signal well
/// within the grace: the child exits from its SIGTERM trap, no SIGKILL.
#[test]
fn a_hanging_pre_stop_is_cut_by_its_timeout_and_the_stop_goes_on() {
    let setup = Setup::new("hooks-pre-stop-hangs");
    let manifest = format!(
        "{}stop-grace = \"30s\"\n{}",
        command(&[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done"
        ]),
        sh_hook(
            "pre-stop",
            "echo $$ > hook.pid; sleep 300 & wait",
            "timeout = \"300ms\"\n",
        ),
    );
    let dir = setup.service("web", &manifest);
    let vigil = setup.run();
    let (from, _) = vigil.wait_kind(0, "web", "ready");
    let out = cli(&setup.state, &["stop", "web"]);
    expect_code(&out, 0, "vigil stop");
    let (_, hook) = wait_hook(&vigil, from, "web", "pre-stop");
    assert_eq!(hook["outcome"], "timeout", "{hook}");
    // Its time is a lower bound: the hook ran until its timeout.
    assert!(hook["duration_ms"].as_u64() >= Some(300), "{hook}");
    let (_, exited) = vigil.wait_kind(from, "web", "exited");
    assert_eq!(exited["code"], 0, "SIGTERM, not SIGKILL: {exited}");
    let events = vigil.events("web");
    assert!(
        !kinds(&events).contains(&"killed".to_string()),
        "no SIGKILL: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e["kind"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("pre-stop hook failed"))),
        "{events:#?}"
    );
    // The hook's whole group went: its shell and the sleep it started.
    let hook_pid: i32 = std::fs::read_to_string(dir.join("hook.pid"))
        .expect("hook.pid")
        .trim()
        .parse()
        .expect("a pid");
    vigil.wait_until("the hook's group is gone", || {
        all_processes().iter().all(|p| p.pgrp != hook_pid)
    });
}

/// `vigil validate` judges a check hook as it judges a check: its config
/// against the component's schema and its URL against the service's
/// grants, each at its file:field; granted and spelt right, it passes.
#[test]
fn validate_checks_a_check_hooks_config_and_grants() {
    let setup = Setup::new("hooks-validate");
    let body = |key: &str, grants: &str| {
        format!(
            "{}\n[hooks.pre-stop]\ncheck = \"builtin:http\"\n[hooks.pre-stop.config]\n\
             url = \"http://127.0.0.1:8080/drain\"\n{key} = \"POST\"\n{grants}",
            command(&["sleep", "1"])
        )
    };
    setup.service("web", &body("methd", ""));
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("run vigil validate");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for wanted in [
        "web/service.toml:hooks.pre-stop.config.methd: unknown key (fix: did you mean `hooks.pre-stop.config.method`?)",
        "web/service.toml:hooks.pre-stop.config.url: builtin:http would be denied: http://127.0.0.1:8080 is not in [grants] hosts",
    ] {
        assert!(err.contains(wanted), "missing `{wanted}` in:\n{err}");
    }
    setup.service(
        "web",
        &body("method", "[grants]\nhosts = [\"http://127.0.0.1:8080\"]\n"),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("run vigil validate");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
