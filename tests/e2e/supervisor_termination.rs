//! Supervisor, termination: graceful shutdown, stop signals and grace,
//! orphans of double-forking services, and what happens when vigil itself
//! is SIGKILLed (PDEATHSIG now, recovery at the next start).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

/// SIGTERM: every child gets its own stop signal, a child ignoring it is
/// SIGKILLed after its stop grace, and vigil exits 0 with `quit`
/// clean=true.
#[test]
fn graceful_shutdown_within_the_grace() {
    let setup = Setup::new("shutdown");
    setup.service("polite", &command(&["sleep", "300"]));
    // Ignores SIGTERM (inherited by its sleep too): killed after 500 ms.
    setup.service(
        "stubborn",
        &format!(
            "{}stop-grace = \"500ms\"\n",
            command(&["sh", "-c", "trap '' TERM; sleep 300"])
        ),
    );
    // Stops on SIGINT only: exits 7 from its trap, proving SIGINT came.
    setup.service(
        "interruptible",
        &format!(
            "{}stop-signal = \"SIGINT\"\nstop-grace = \"10s\"\n",
            command(&[
                "sh",
                "-c",
                "trap 'exit 7' INT; trap '' TERM; while :; do sleep 0.1; done"
            ])
        ),
    );
    let mut vigil = setup.run();
    let mut pids = Vec::new();
    for name in ["polite", "stubborn", "interruptible"] {
        let (_, pid) = vigil.wait_spawned(0, name);
        pids.push((name, pid));
    }
    // The shells' traps are set before the shutdown begins.
    let (stubborn, interruptible) = (pids[1].1, pids[2].1);
    wait_until("the traps are installed", SOON, || {
        ignores(stubborn, Signal::SIGTERM)
            && ignores(interruptible, Signal::SIGTERM)
            && catches(interruptible, Signal::SIGINT)
    });

    let t0 = Instant::now();
    let status = vigil.terminate();
    let took = t0.elapsed();
    assert_eq!(status.code(), Some(0), "{}", vigil.diagnostics());

    let exited = |name: &str| {
        vigil
            .events(name)
            .into_iter()
            .find(|e| e["kind"] == "exited")
            .unwrap_or_else(|| panic!("{name} did not exit\n{}", vigil.diagnostics()))
    };
    assert_eq!(exited("polite")["signal"], "SIGTERM");
    assert_eq!(exited("stubborn")["signal"], "SIGKILL");
    assert_eq!(
        exited("interruptible")["code"],
        7,
        "{}",
        vigil.diagnostics()
    );
    let killed: Vec<_> = vigil
        .journal()
        .into_iter()
        .filter(|e| e["kind"] == "killed")
        .collect();
    assert!(
        killed.iter().all(|e| e["service"] == "stubborn"),
        "only the stubborn child needed SIGKILL: {killed:?}"
    );
    assert_eq!(
        killed.first().map(|e| &e["signal"]),
        Some(&"SIGKILL".into()),
        "{killed:?}"
    );
    let reason = killed[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("after SIGTERM"), "{reason}");
    // The stubborn child had its whole grace before the SIGKILL.
    assert!(took >= Duration::from_millis(500), "shut down in {took:?}");
    let quit = vigil.wait_event(|e| e["kind"] == "quit", SOON);
    assert_eq!(quit["clean"], true, "{}", vigil.diagnostics());
    for (name, pid) in pids {
        assert!(!alive(pid), "{name} ({pid}) survived the shutdown");
    }
}

/// True when `pid` ignores `signal` (its `SigIgn` mask in /proc).
fn ignores(pid: i32, signal: Signal) -> bool {
    in_signal_mask(pid, "SigIgn", signal)
}

/// True when `pid` has a handler for `signal` (its `SigCgt` mask in /proc).
fn catches(pid: i32, signal: Signal) -> bool {
    in_signal_mask(pid, "SigCgt", signal)
}

/// True when `signal` is in the signal mask `field` (`SigIgn`, `SigCgt`,
/// ...) of `pid` in /proc; false when `pid` is gone.
fn in_signal_mask(pid: i32, field: &str, signal: Signal) -> bool {
    let mask = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    mask & (1 << (signal as i32 - 1)) != 0
}

/// The service `wrapped`, with a stop grace of `stop_grace`: a wrapper
/// shell (the group's leader) runs `worker.sh` in the background and waits
/// for it. The worker traps SIGTERM with `on_term`, writes its pid to
/// `worker.pid`, then loops. Returns the service directory.
fn wrapped_worker(setup: &Setup, stop_grace: &str, on_term: &str) -> PathBuf {
    let dir = setup.service(
        "wrapped",
        &format!(
            "{}stop-grace = \"{stop_grace}\"\n",
            command(&["sh", "-c", "sh ./worker.sh & wait"])
        ),
    );
    std::fs::write(
        dir.join("worker.sh"),
        format!(
            "trap '{on_term}' TERM\n\
             echo $$ > worker.pid\n\
             while :; do sleep 0.1; done\n"
        ),
    )
    .expect("write worker.sh");
    dir
}

/// The pid of [`wrapped_worker`]'s worker, once it has written it.
fn worker_pid(dir: &Path) -> i32 {
    let pid_file = dir.join("worker.pid");
    wait_until("the worker runs", SOON, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    });
    std::fs::read_to_string(&pid_file)
        .expect("worker.pid")
        .trim()
        .parse()
        .expect("a pid")
}

/// The stop grace is the whole process group's, not only its leader's: a
/// wrapper shell (the leader) dies at once on SIGTERM, while the worker it
/// started takes half a second to finish its work; the worker gets that
/// time (its grace is 5 s), and vigil journals `quit` only once the group
/// is gone.
#[test]
fn stop_grace_covers_the_whole_group() {
    let setup = Setup::new("group-grace");
    let dir = wrapped_worker(&setup, "5s", "sleep 0.5; echo flushed > flushed; exit 0");
    let mut vigil = setup.run();
    vigil.wait_kind(0, "wrapped", "spawned");
    let worker = worker_pid(&dir);

    let status = vigil.terminate();
    assert!(status.success(), "{status}\n{}", vigil.diagnostics());
    assert!(
        dir.join("flushed").exists(),
        "the worker was killed before the end of its grace\n{}",
        vigil.diagnostics()
    );
    assert!(!alive(worker), "the worker outlived vigil");
    let journal = vigil.journal();
    assert!(
        journal.iter().all(|e| e["kind"] != "killed"),
        "nothing needed SIGKILL\n{}",
        vigil.diagnostics()
    );
    let quit = journal.last().expect("journal");
    assert_eq!(
        quit["kind"],
        "quit",
        "quit must come last, after the group is gone\n{}",
        vigil.diagnostics()
    );
    assert_eq!(quit["clean"], true);
}

/// A service that double-forks (a daemon re-parented to vigil, the
/// subreaper) leaves no zombie once stopped, and the reaped orphan is
/// journaled. A leader that exits at once, leaving its daemon behind, has
/// the daemon stopped like the service (its stop signal, journaled as
/// `killed`) and reaped; the service's `exited` comes once the group is
/// gone, after the daemon's `orphan-reaped`.
#[test]
fn double_forking_service_leaves_no_zombie() {
    let setup = Setup::new("doublefork");
    setup.service(
        "forker",
        &command(&["sh", "-c", "(sleep 311 &); exec sleep 312"]),
    );
    // Classic daemonizing: fork into the background, parent exits 0.
    setup.service(
        "daemon",
        &format!(
            "{}restart = \"never\"\n",
            command(&["sh", "-c", "(sleep 313 &); exit 0"])
        ),
    );
    let vigil = setup.run();

    let (_, leader) = vigil.wait_spawned(0, "forker");
    // The grandchild re-parents to vigil (subreaper), in the leader's group.
    let mut orphan = None;
    wait_until("the orphan re-parents to vigil", SOON, || {
        orphan = all_processes()
            .into_iter()
            .find(|p| p.pgrp == leader && p.pid != leader && cmdline(p.pid) == "sleep 311");
        orphan.is_some_and(|p| p.ppid == vigil.pid)
    });
    let orphan = orphan.expect("orphan").pid;

    // The daemonizing service: the leader exits, its daemon is killed and
    // reaped (journaled as an orphan), no zombie.
    let (exited_at, daemon_exit) = vigil.wait_kind(0, "daemon", "exited");
    assert_eq!(daemon_exit["code"], 0, "{daemon_exit}");
    let daemon_pgid = pid_of(&daemon_exit);
    let (killed_at, killed) = vigil.wait_kind(0, "daemon", "stopping");
    assert_eq!(
        (pid_of(&killed), &killed["signal"], &killed["cause"]),
        (daemon_pgid, &"SIGTERM".into(), &"leader-exited".into()),
        "{killed}"
    );
    let (reaped_at, reaped) = vigil.wait_event_from(0, |e| e["kind"] == "orphan-reaped", SOON);
    assert!(reaped["service"].is_null(), "{reaped}");
    assert_eq!(
        reaped["signal"], "SIGTERM",
        "the daemon left behind got the stop signal: {reaped}"
    );
    assert!(
        killed_at < reaped_at && reaped_at < exited_at,
        "stopping, orphan-reaped, then exited\n{}",
        vigil.diagnostics()
    );
    wait_until("the daemon's group is gone", SOON, || {
        all_processes().iter().all(|p| p.pgrp != daemon_pgid)
    });

    // Stop the forking service (remove it): leader and orphan both go.
    std::fs::remove_dir_all(setup.checks.join("forker")).expect("remove forker");
    let (exited_at, exited) = vigil.wait_kind(0, "forker", "exited");
    assert_eq!(pid_of(&exited), leader);
    // The service's `exited` counts the whole group: the orphan comes first.
    let (reaped_at, reaped) = vigil.wait_event_from(
        0,
        |e| e["kind"] == "orphan-reaped" && pid_of(e) == orphan,
        SOON,
    );
    assert_eq!(
        reaped["signal"], "SIGTERM",
        "the stop signal reached it: {reaped}"
    );
    assert!(reaped_at < exited_at, "{}", vigil.diagnostics());
    wait_until("no process of the stopped service is left", SOON, || {
        all_processes().iter().all(|p| p.pgrp != leader)
    });
    assert!(!alive(orphan));
    // And vigil holds no zombie children at all.
    wait_until("vigil has no zombie children", SOON, || {
        !all_processes()
            .iter()
            .any(|p| p.ppid == vigil.pid && p.state == 'Z')
    });
}

/// vigil SIGKILLed: its children die with it (PDEATHSIG). What PDEATHSIG
/// cannot reach (a grandchild left in the child's group) is stopped by the
/// next `vigil run` on the same state directory, before it spawns
/// anything, and journaled as `recovered`; a torn last journal line (a
/// write cut by the kill) is truncated with a warning, never fatal.
#[test]
fn killed_vigil_leaves_no_child_and_the_next_run_recovers() {
    let setup = Setup::new("vigil-killed");
    setup.service("direct", &command(&["sleep", "321"]));
    setup.service("tree", &command(&["sh", "-c", "sleep 322 & wait"]));
    let mut first = setup.run();
    let (_, direct) = first.wait_spawned(0, "direct");
    let (_, tree) = first.wait_spawned(0, "tree");
    let mut grandchild = None;
    wait_until("the tree service's sleep runs", SOON, || {
        grandchild = all_processes()
            .into_iter()
            .find(|p| p.pgrp == tree && cmdline(p.pid) == "sleep 322")
            .map(|p| p.pid);
        grandchild.is_some()
    });
    let grandchild = grandchild.expect("grandchild");

    first.kill();
    // Every direct child dies with vigil.
    wait_until("vigil's direct children die with it", SOON, || {
        !alive(direct) && !alive(tree)
    });
    assert!(
        alive(grandchild),
        "the grandchild is out of PDEATHSIG's reach (if this changed, update the test)"
    );
    // A kill in the middle of a journal write leaves a torn line.
    let journal_path = first.journal_path();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .expect("open journal")
        .write_all(b"{\"ts\":\"2025-01-01T00:00:")
        .expect("tear the journal");
    let old_lines = first.journal().len();

    let second = setup.run();
    let (acquired_at, _) = second.wait_event_from(
        old_lines,
        |e| e["kind"] == "acquired" && e["pid"] == second.pid,
        SOON,
    );
    second.wait_event_from(
        acquired_at,
        |e| e["kind"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains("torn")),
        SOON,
    );
    let (recovered_at, recovered) = second.wait_kind(acquired_at, "tree", "recovered");
    assert_eq!(pid_of(&recovered), tree, "{recovered}");
    wait_until("the grandchild is stopped", SOON, || !alive(grandchild));
    // Then the services start again, after the recovery.
    let (spawned_at, direct_again) = second.wait_spawned(acquired_at, "direct");
    let (tree_at, _) = second.wait_spawned(acquired_at, "tree");
    assert!(
        recovered_at < spawned_at && recovered_at < tree_at,
        "{}",
        second.diagnostics()
    );
    assert!(alive(direct_again));
    // Only what was alive is "recovered" (a child found alive and
    // stopped): the direct child died with the first vigil. Where nobody
    // reaps orphans (a container whose pid 1 does not wait), it lingers as
    // a zombie with its pid and start time: still not alive, nothing to
    // stop.
    let recovered: Vec<_> = second
        .journal()
        .into_iter()
        .filter(|e| e["kind"] == "recovered")
        .collect();
    assert_eq!(
        recovered.len(),
        1,
        "only the tree service had a live process left (direct {direct} is {}): {recovered:?}",
        proc_state(direct)
    );
    // (second first: dropping the first guard kills what the shared
    // journal lists, which includes the second instance's children)
    drop(second);
    drop(first);
    assert!(!alive(grandchild));
}

/// vigil SIGKILLed while a stopping service's group outlives its leader
/// (the wrapper shell died of the stop signal; its worker, which shrugs off
/// the first SIGTERM, still had grace left): the group has not `exited`,
/// so the next run finds it by its pgid alone, the leader being gone, and
/// stops it with the service's stop signal before spawning anything.
#[test]
fn a_group_outliving_its_leader_is_recovered_after_vigil_is_killed() {
    let setup = Setup::new("linger-killed");
    let dir = wrapped_worker(
        &setup,
        "60s",
        "if [ -e got-term ]; then exit 0; fi; echo once > got-term",
    );
    let mut first = setup.run();
    let (_, leader) = first.wait_spawned(0, "wrapped");
    let worker = worker_pid(&dir);

    // Shutdown: the leader dies of SIGTERM, the worker lives on in its grace.
    first.signal(Signal::SIGTERM);
    wait_until("the worker got the stop signal", SOON, || {
        dir.join("got-term").exists()
    });
    wait_until("the leader is gone", SOON, || !alive(leader));
    assert!(alive(worker), "{}", first.diagnostics());
    first.kill();
    assert!(
        first
            .events("wrapped")
            .iter()
            .all(|e| e["kind"] != "exited"),
        "the group was not gone, so the service had not exited\n{}",
        first.diagnostics()
    );
    assert!(alive(worker), "the worker is out of PDEATHSIG's reach");
    let old_lines = first.journal().len();

    let second = setup.run();
    let (recovered_at, recovered) = second.wait_kind(old_lines, "wrapped", "recovered");
    assert_eq!(pid_of(&recovered), leader, "{recovered}");
    wait_until("the worker obeyed the second SIGTERM", SOON, || {
        !alive(worker)
    });
    let (spawned_at, _) = second.wait_spawned(old_lines, "wrapped");
    assert!(recovered_at < spawned_at, "{}", second.diagnostics());
    drop(second);
    drop(first);
}

/// A second SIGTERM during a slow graceful shutdown kills every child at
/// once.
#[test]
fn second_signal_forces_shutdown() {
    let setup = Setup::new("shutdown-forced");
    setup.service(
        "stubborn",
        &format!(
            "{}stop-grace = \"60s\"\n",
            command(&["sh", "-c", "trap '' TERM; sleep 300"])
        ),
    );
    let mut vigil = setup.run();
    let (_, pid) = vigil.wait_spawned(0, "stubborn");
    wait_until("the trap is installed", SOON, || {
        ignores(pid, Signal::SIGTERM)
    });
    wait_socket(&vigil);
    vigil.signal(Signal::SIGTERM);
    // The graceful stop is under way (vigil says so) and ignored: the
    // child outlives it.
    wait_status(&vigil, "stubborn", |s| s["state"] == "stopping");
    let stopping = vigil.journal().len();
    assert!(alive(pid), "{}", vigil.diagnostics());
    assert!(
        vigil
            .events("stubborn")
            .iter()
            .all(|e| e["kind"] != "exited")
    );
    vigil.signal(Signal::SIGTERM);
    let status = vigil
        .wait_exit(SOON)
        .unwrap_or_else(|| panic!("vigil ignored the second SIGTERM\n{}", vigil.diagnostics()));
    assert!(status.success(), "{status}\n{}", vigil.diagnostics());
    assert!(!alive(pid));
    let (second, _) = vigil.wait_event_from(
        stopping,
        |e| e["kind"] == "warning" && e["message"].as_str().is_some_and(|m| m.contains("second")),
        SOON,
    );
    let (exited_at, exited) = vigil.wait_kind(0, "stubborn", "exited");
    assert_eq!(exited["signal"], "SIGKILL");
    // Nothing ended the child between the two signals: its exit comes
    // after the second one's warning (journaled before the kill).
    assert!(exited_at > second, "{}", vigil.diagnostics());
    // Each step says why: the shutdown's stop, then its forced kill.
    assert_eq!(exited["cause"], "shutdown", "{exited}");
    let killed = vigil.wait_kind(0, "stubborn", "killed").1;
    assert_eq!(
        (&killed["signal"], &killed["cause"]),
        (&"SIGKILL".into(), &"shutdown".into()),
        "{killed}"
    );
}
