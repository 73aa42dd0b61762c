//! Supervisor, hot reload: edits to the checks directory while the real
//! `vigil run` is running (inotify with a debounce), and SIGHUP.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

/// The barrier for "nothing more came of the changes so far": a new
/// service directory is a change the watcher reports after every earlier
/// one, and vigil applies reloads one at a time, journaling each as it
/// goes. Once the sentinel's `reloaded` is in, so is whatever the earlier
/// changes caused (in the same batch at worst, which journals too).
/// Returns the sentinel's line.
fn sentinel(setup: &Setup, vigil: &Vigil, from: usize) -> usize {
    setup.service("sentinel", &command(&["sleep", "1000"]));
    vigil.wait_kind(from, "sentinel", "reloaded").0
}

/// What a `reloaded` event says changed ("" when it says nothing).
fn change(reloaded: &Value) -> &str {
    reloaded["change"].as_str().unwrap_or_default()
}

/// The reload left `svc`'s child alone: `pid` still runs, and it is the
/// only child `svc` ever had (one `spawned`, no `exited`).
fn assert_child_kept(vigil: &Vigil, pid: i32) {
    assert!(alive(pid), "{}", vigil.diagnostics());
    let events = vigil.events("svc");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "spawned").count(),
        1,
        "{}",
        vigil.diagnostics()
    );
    assert!(
        events.iter().all(|e| e["kind"] != "exited"),
        "{}",
        vigil.diagnostics()
    );
}

/// An editor-style save (temp file renamed over service.toml) changing the
/// command is one change: exactly one `reloaded` and one restart, and the
/// new child runs the new command.
#[test]
fn atomic_save_with_new_command_is_one_reload_and_one_restart() {
    let setup = Setup::new("reload-save");
    let dir = setup.service("svc", &command(&["sleep", "301"]));
    let vigil = setup.run();
    let (i, old) = vigil.wait_spawned(0, "svc");

    atomic_save(&dir, &command(&["sleep", "302"]));

    let (j, reloaded) = vigil.wait_kind(i, "svc", "reloaded");
    assert!(change(&reloaded).contains("command changed"), "{reloaded}");
    let (k, exited) = vigil.wait_kind(j, "svc", "exited");
    assert_eq!(pid_of(&exited), old);
    let (l, new) = vigil.wait_spawned(k, "svc");
    assert_ne!(new, old);
    assert_eq!(cmdline(new), "sleep 302");
    assert!(!alive(old));
    let (l, _) = vigil.wait_kind(l, "svc", "ready");

    sentinel(&setup, &vigil, l);
    let events = vigil.events("svc");
    assert_eq!(
        kinds(&events),
        [
            "spawned",
            "ready",
            "reloaded",
            "unready",
            "stopping",
            "exited",
            "restarting",
            "spawned",
            "ready"
        ],
        "{}",
        vigil.diagnostics()
    );
    assert!(alive(new));
}

/// A broken edit keeps the running version: a warning naming the file and
/// field, the same child still alive; fixing it applies the fix.
#[test]
fn broken_manifest_keeps_the_old_version_running() {
    let setup = Setup::new("reload-broken");
    let dir = setup.service("svc", &command(&["sleep", "301"]));
    let vigil = setup.run();
    let (i, pid) = vigil.wait_spawned(0, "svc");

    // A typo in a key and a bad duration.
    atomic_save(
        &dir,
        &format!(
            "{}stop-grace = \"soon\"\nrestrat = \"never\"\n",
            command(&["sleep", "302"])
        ),
    );
    // Filed under the service (`vigil journal svc` shows it).
    let (j, warning) = vigil.wait_event_from(i, |e| is(e, "svc", "warning"), SOON);
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(message.contains("keeping the running version"), "{warning}");
    assert!(message.contains("svc/service.toml:stop-grace"), "{warning}");
    assert!(message.contains("svc/service.toml:restrat"), "{warning}");

    // A syntax error is refused the same way. Its warning is also the
    // barrier for the first refusal: reloads are applied one at a time.
    atomic_save(&dir, "command = [\"sleep\", \n");
    vigil.wait_event_from(
        j + 1,
        |e| {
            is(e, "svc", "warning")
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("svc/service.toml:-: line"))
        },
        SOON,
    );
    assert!(alive(pid), "the old child was stopped");
    assert_eq!(cmdline(pid), "sleep 301");
    // Nothing but the two refusals, each filed under the service.
    assert_eq!(
        kinds(&vigil.events("svc")),
        ["spawned", "ready", "warning", "warning"],
        "{}",
        vigil.diagnostics()
    );

    // Fixed: the new command applies.
    atomic_save(&dir, &command(&["sleep", "303"]));
    let (k, _) = vigil.wait_kind(i, "svc", "reloaded");
    let (_, second) = vigil.wait_spawned(k, "svc");
    assert_eq!(cmdline(second), "sleep 303");
}

/// Changing only a check's settings swaps the check in without touching
/// the child: the same pid keeps running while the new check judges it.
#[test]
fn check_change_swaps_the_check_and_keeps_the_child() {
    let server = HttpServer::start();
    let setup = Setup::new("reload-check");
    let manifest = |path: &str| {
        command(&["sleep", "301"]) + &http_readiness(&server.url(path), &server.grant())
    };
    let dir = setup.service("svc", &manifest("/ok"));
    let vigil = setup.run();
    let (i, pid) = vigil.wait_spawned(0, "svc");
    let (i, _) = vigil.wait_kind(i, "svc", "ready");

    atomic_save(&dir, &manifest("/status/503"));
    let (j, reloaded) = vigil.wait_kind(i, "svc", "reloaded");
    assert!(!change(&reloaded).contains("restart"), "{reloaded}");
    // The new check is the one running: the service turns unready.
    let (k, unready) = vigil.wait_kind(j, "svc", "unready");
    assert!(
        unready["reason"]
            .as_str()
            .is_some_and(|r| r.contains("503")),
        "{unready}"
    );
    // And back: the original check makes it ready again.
    atomic_save(&dir, &manifest("/ok"));
    vigil.wait_kind(k, "svc", "ready");
    assert_child_kept(&vigil, pid);
}

/// A changed component under the same manifest (`cp new.wasm check.wasm`)
/// is swapped in without touching the child: a readiness check that said
/// `retry` is replaced by one that says `ok`, and the same child becomes
/// ready.
#[test]
fn replaced_component_is_swapped_in_without_a_restart() {
    let setup = Setup::new("reload-wasm");
    let dir = setup.service(
        "svc",
        &format!(
            r#"{}
[checks.readiness]
check = "check.wasm"
period = "200ms"
timeout = "5s"
"#,
            command(&["sleep", "301"])
        ),
    );
    std::fs::copy(programs::RETRY, dir.join("check.wasm")).expect("copy retry component");
    let vigil = setup.run();
    let (i, pid) = vigil.wait_spawned(0, "svc");
    let (i, retry) = vigil.wait_event_from(i, |e| is(e, "svc", "check"), SOON);
    assert_eq!(retry["outcome"], "retry", "{retry}");

    std::fs::copy(programs::OK, dir.join("check.wasm")).expect("overwrite with ok component");
    let (j, reloaded) = vigil.wait_kind(i, "svc", "reloaded");
    assert!(change(&reloaded).contains("checks or loader"), "{reloaded}");
    vigil.wait_kind(j, "svc", "ready");
    assert_child_kept(&vigil, pid);
}

/// A new service directory starts; a removed one stops (its child with it).
#[test]
fn added_service_starts_and_removed_service_stops() {
    let setup = Setup::new("reload-add-remove");
    setup.service("old", &command(&["sleep", "301"]));
    let vigil = setup.run();
    let (i, old_pid) = vigil.wait_spawned(0, "old");

    // Added: the directory, then its manifest (as a person would).
    setup.service("new", &command(&["sleep", "302"]));
    let (j, reloaded) = vigil.wait_kind(i, "new", "reloaded");
    assert_eq!(reloaded["change"], "added", "{reloaded}");
    let (_, new_pid) = vigil.wait_spawned(j, "new");
    assert_eq!(cmdline(new_pid), "sleep 302");

    // Removed.
    std::fs::remove_dir_all(setup.checks.join("old")).expect("remove old");
    let (k, reloaded) = vigil.wait_kind(i, "old", "reloaded");
    assert!(change(&reloaded).contains("removed"), "{reloaded}");
    let (_, exited) = vigil.wait_kind(k, "old", "exited");
    assert_eq!(pid_of(&exited), old_pid);
    wait_until("the removed service's child is gone", SOON, || {
        !alive(old_pid)
    });

    sentinel(&setup, &vigil, k);
    // It stays stopped; the other service was not touched.
    assert_eq!(
        kinds(&vigil.events("old")),
        [
            "spawned", "ready", "reloaded", "unready", "stopping", "exited"
        ],
        "{}",
        vigil.diagnostics()
    );
    assert_eq!(
        kinds(&vigil.events("new")),
        ["reloaded", "spawned", "ready"]
    );
    assert!(alive(new_pid));
}

/// SIGHUP rescans what inotify cannot see: a manifest that is a symlink to
/// a file kept elsewhere (a configuration-management layout) changes with
/// no event in the checks directory.
#[test]
fn sighup_forces_a_rescan() {
    let setup = Setup::new("reload-sighup");
    let outside = setup.root.join("managed");
    std::fs::create_dir_all(&outside).expect("managed dir");
    let target = outside.join("svc.toml");
    std::fs::write(&target, command(&["sleep", "301"])).expect("write managed manifest");
    let dir = setup.checks.join("svc");
    std::fs::create_dir_all(&dir).expect("service dir");
    std::os::unix::fs::symlink(&target, dir.join("service.toml")).expect("symlink manifest");
    let vigil = setup.run();
    let (i, old) = vigil.wait_spawned(0, "svc");

    std::fs::write(&target, command(&["sleep", "302"])).expect("edit managed manifest");
    // A fixed wait must stay here: what is proven is that the watcher
    // reported nothing, and no barrier can pass through the watcher
    // without a rescan, which would read the edited manifest itself.
    // Longer than the reload debounce (300 ms) with room to spare.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        kinds(&vigil.events("svc")),
        ["spawned", "ready"],
        "an edit outside the checks directory was seen without SIGHUP"
    );

    vigil.signal(Signal::SIGHUP);
    let (j, reloaded) = vigil.wait_kind(i, "svc", "reloaded");
    assert!(change(&reloaded).contains("command changed"), "{reloaded}");
    let (_, second) = vigil.wait_spawned(j, "svc");
    assert_eq!(cmdline(second), "sleep 302");
    assert!(!alive(old));
}
