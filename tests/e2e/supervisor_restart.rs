//! Supervisor, restart policy: the real `vigil run` restarting real
//! children along the backoff list, and giving up when told.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// A SIGKILLed child is restarted at once (the first backoff is 0) as a
/// new process, and the restart is journaled in order.
#[test]
fn killed_child_is_restarted_with_first_backoff_zero() {
    let setup = Setup::new("sigkill");
    // Default policy: restart = "always", backoff 0, 5 s, 15 s, 60 s.
    setup.service("sleeper", &command(&["sleep", "300"]));
    let vigil = setup.run();

    let (i, first) = vigil.wait_kind(0, "sleeper", "spawned");
    let pid = pid_of(&first);
    assert_eq!(first["restarts"], 0);
    assert!(first["start_time"].is_u64(), "{first}");
    assert!(alive(pid));
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("SIGKILL the child");

    let (j, exited) = vigil.wait_kind(i, "sleeper", "exited");
    assert_eq!(pid_of(&exited), pid);
    assert_eq!(exited["signal"], "SIGKILL", "{exited}");
    assert!(exited["code"].is_null(), "{exited}");
    let (k, restarting) = vigil.wait_kind(j, "sleeper", "restarting");
    assert_eq!(restarting["delay_ms"], 0, "{restarting}");
    assert_eq!(restarting["restarts"], 1, "{restarting}");
    let (_, second) = vigil.wait_kind(k, "sleeper", "spawned");
    let new_pid = pid_of(&second);
    assert_ne!(new_pid, pid);
    assert_eq!(second["restarts"], 1);
    assert!(alive(new_pid), "the new child runs");
    assert_eq!(cmdline(new_pid), "sleep 300");
    // Exactly this (no checks: ready once spawned, unready once it died;
    // nothing killed, no warnings, no spawn errors).
    let events = vigil.events("sleeper");
    assert_eq!(
        kinds(&events)[..6],
        [
            "spawned",
            "ready",
            "unready",
            "exited",
            "restarting",
            "spawned"
        ],
        "{}",
        vigil.diagnostics()
    );
    // Killed again: still restarted, now after the second backoff (5 s).
    kill(Pid::from_raw(new_pid), Signal::SIGKILL).expect("SIGKILL the second child");
    let (_, restarting) = vigil.wait_event_from(k + 1, |e| is(e, "sleeper", "restarting"), SOON);
    assert_eq!(restarting["delay_ms"], 5000, "{restarting}");
}

/// A crash loop (`exit 3` at once) follows the backoff list, the last
/// delay repeating, and gives up after more than `give-up.restarts`
/// restarts within the window: nothing is spawned after `gave-up`.
#[test]
fn crash_loop_follows_backoff_and_gives_up() {
    let setup = Setup::new("crashloop");
    setup.service(
        "crasher",
        &format!(
            r#"{command}backoff = ["0s", "100ms", "200ms"]
give-up = {{ restarts = 4, window = "60s" }}
"#,
            command = command(&["sh", "-c", "exit 3"]),
        ),
    );
    let mut vigil = setup.run();

    let (gave_up_at, gave_up) = vigil.wait_kind(0, "crasher", "gave-up");
    let reason = gave_up["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("more than 4 restarts"), "{gave_up}");
    let events = vigil.events("crasher");
    let delays: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "restarting")
        .map(|e| e["delay_ms"].as_u64().expect("delay_ms"))
        .collect();
    assert_eq!(delays, [0, 100, 200, 200], "{}", vigil.diagnostics());
    // Every life: spawned (ready at once: no checks), then unready and
    // exited with code 3.
    let mut expected = Vec::new();
    for _ in 0..4 {
        expected.extend(["spawned", "ready", "unready", "exited", "restarting"]);
    }
    expected.extend(["spawned", "ready", "unready", "exited", "gave-up"]);
    assert_eq!(kinds(&events), expected, "{}", vigil.diagnostics());
    for e in events.iter().filter(|e| e["kind"] == "exited") {
        assert_eq!(e["code"], 3, "{e}");
    }
    let restarts: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "spawned")
        .map(|e| e["restarts"].as_u64().expect("restarts"))
        .collect();
    assert_eq!(restarts, [0, 1, 2, 3, 4]);
    // Delays are lower bounds: each spawn comes at least its delay after
    // the restart was scheduled (journal timestamps are milliseconds).
    let restartings: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "restarting")
        .collect();
    let spawns: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "spawned")
        .skip(1)
        .collect();
    for (r, s) in restartings.iter().zip(&spawns) {
        let delay = r["delay_ms"].as_i64().expect("delay");
        let gap = ms_between(r, s);
        assert!(
            gap + 1 >= delay,
            "spawned {gap} ms after a {delay} ms backoff"
        );
    }
    // Failed for good: nothing more happens to it. The state says so
    // (a failed service has no timer that acts), and the journal up to
    // vigil's `quit` (the last line a shutdown writes) holds nothing more
    // about it.
    wait_socket(&vigil);
    assert_eq!(service(&status(&vigil.state), "crasher")["state"], "failed");
    let status = vigil.terminate();
    assert!(status.success(), "{status}\n{}", vigil.diagnostics());
    let journal = vigil.journal();
    assert_eq!(
        journal.last().map(|e| e["kind"].clone()),
        Some("quit".into()),
        "{}",
        vigil.diagnostics()
    );
    let after: Vec<_> = journal[gave_up_at + 1..]
        .iter()
        .filter(|e| e["service"] == "crasher")
        .cloned()
        .collect();
    assert!(after.is_empty(), "events after gave-up: {after:?}");
}
