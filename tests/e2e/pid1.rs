//! Vigil as PID 1 (README "Containers: Vigil as PID 1"): inside a new pid
//! namespace (`unshare --pid --fork --mount-proc`, as root) it reaps every
//! orphan, turns SIGTERM into a graceful shutdown and exits 0 after it.
//! PID 1 gets no default signal actions, so this also proves that every
//! signal Vigil relies on has a handler.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// The pid (outside the namespace) of `unshare`'s child, once it runs vigil.
fn child_of(parent: u32) -> i32 {
    let mut found = None;
    wait_until("unshare's child runs vigil", SOON, || {
        found = all_processes()
            .into_iter()
            .find(|s| s.ppid == parent as i32 && cmdline(s.pid).contains("vigil"))
            .map(|s| s.pid);
        found.is_some()
    });
    found.expect("found")
}

#[test]
fn as_pid_1_vigil_reaps_orphans_and_shuts_down_on_sigterm() {
    if !can_unshare_pid() {
        // Not root, or no CAP_SYS_ADMIN in this container: nothing to test.
        eprintln!("skipped: `unshare --pid --fork --mount-proc` is not permitted here");
        return;
    }
    let setup = Setup::new("pid1");
    // A double fork: the subshell exits at once, its background sleep
    // re-parents to PID 1.
    setup.service(
        "double-fork",
        &command(&["sh", "-c", "(sleep 0.3 &); exec sleep 1000"]),
    );
    // An orphan whose parent dies later: `sleep 0.2` is the parent of
    // `sleep 0.6` and exits first.
    setup.service(
        "parent-dies",
        &command(&["sh", "-c", "(sleep 0.6 & exec sleep 0.2); exec sleep 1000"]),
    );
    let stderr = setup.root.join("vigil.stderr");
    let mut unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg("run")
        .arg("--checks")
        .arg(&setup.checks)
        .arg("--state-dir")
        .arg(&setup.state)
        .arg("--quiet")
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("supervisor-cache"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start unshare");
    let vigil = child_of(unshare.id());
    let journal_path = setup.state.join("journal.jsonl");
    let diagnostics = || {
        format!(
            "--- journal ---\n{}--- stderr ---\n{}",
            std::fs::read_to_string(&journal_path).unwrap_or_default(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    };
    let journal = || read_journal(&journal_path);
    poll_until(
        "two orphans are reaped",
        SOON,
        || {
            let reaped = journal()
                .iter()
                .filter(|e| e["kind"] == "orphan-reaped")
                .count();
            (reaped >= 2).then_some(())
        },
        diagnostics,
    );
    let events = journal();
    // It really was PID 1 of its namespace.
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "acquired" && e["pid"] == 1),
        "{}",
        diagnostics()
    );
    for e in events.iter().filter(|e| e["kind"] == "orphan-reaped") {
        assert_eq!(e["code"], 0, "{e}");
    }
    // No zombie is left among vigil's children.
    let zombies: Vec<i32> = all_processes()
        .into_iter()
        .filter(|s| s.ppid == vigil && s.state == 'Z')
        .map(|s| s.pid)
        .collect();
    assert!(zombies.is_empty(), "zombies {zombies:?}\n{}", diagnostics());

    kill(Pid::from_raw(vigil), Signal::SIGTERM).expect("SIGTERM to PID 1");
    let deadline = Instant::now() + SOON;
    let status = loop {
        if let Some(status) = unshare.try_wait().expect("wait unshare") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = unshare.kill();
            kill_journaled_children(&journal());
            panic!("vigil as PID 1 ignored SIGTERM\n{}", diagnostics());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", diagnostics());
    let events = journal();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "quit" && e["clean"] == true),
        "{}",
        diagnostics()
    );
    for name in ["double-fork", "parent-dies"] {
        assert!(
            events
                .iter()
                .any(|e| e["service"] == name && e["kind"] == "exited" && e["signal"] == "SIGTERM"),
            "{name} was not stopped by the graceful shutdown\n{}",
            diagnostics()
        );
    }
}
