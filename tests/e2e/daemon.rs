//! Daemon mode and single instance (README "Daemon mode"): the daemonize
//! library's handshake, `vigil daemonize` on real programs, `vigil run
//! --daemon`, and the pid file that refuses a second instance.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use vigil::daemon::{Handshake, Health, LaunchError, launch};

use crate::support::*;

// -- the library (this test process never starts a reaper) -------------------

#[tokio::test]
async fn launch_a_program_that_dies_early_is_an_error() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 7"]);
    let err = launch(cmd, Handshake::default(), Vec::new(), |_| async {
        Health::Retry("starting".into())
    })
    .await
    .expect_err("exited");
    assert!(
        matches!(&err, LaunchError::Exited { status } if status.code() == Some(7)),
        "{err}"
    );
}

#[tokio::test]
async fn launch_an_error_kills_the_whole_group() {
    let mut cmd = Command::new("sh");
    // A member of the group that ignores SIGTERM: SIGKILL after the grace.
    cmd.args(["-c", "trap '' TERM; sleep 1000 & wait"]);
    let handshake = Handshake {
        stop_grace: Duration::from_millis(300),
        ..Handshake::default()
    };
    let mut seen = None;
    let err = launch(cmd, handshake, Vec::new(), |pid| {
        seen = Some(pid);
        async { Health::Error("broken".into()) }
    })
    .await
    .expect_err("error");
    assert_eq!(err.to_string(), "broken");
    let pgid = i32::try_from(seen.expect("checked")).expect("pid");
    wait_until("the group is gone", SOON, || live_members(pgid).is_empty());
}

#[tokio::test]
async fn launch_ok_leaves_the_program_running_in_its_own_session() {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    let mut calls = 0;
    let pid = launch(cmd, Handshake::default(), Vec::new(), |_| {
        calls += 1;
        let answer = if calls < 3 {
            Health::Retry("not yet".into())
        } else {
            Health::Ok
        };
        async move { answer }
    })
    .await
    .expect("up");
    assert_eq!(calls, 3);
    let raw = Pid::from_raw(i32::try_from(pid).expect("pid"));
    assert_eq!(nix::unistd::getsid(Some(raw)).expect("sid"), raw);
    let _ = killpg(raw, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(raw, None);
}

#[tokio::test]
async fn launch_the_deadline_reports_the_last_retry() {
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    let handshake = Handshake {
        timeout: Duration::from_millis(200),
        ..Handshake::default()
    };
    let err = launch(cmd, handshake, Vec::new(), |_| async {
        Health::Retry("still warming up".into())
    })
    .await
    .expect_err("timeout");
    assert!(err.to_string().contains("still warming up"), "{err}");
}

/// Members of process group `pgid` that are not zombies.
fn live_members(pgid: i32) -> Vec<i32> {
    vigil::procfs::group_members(pgid)
        .into_iter()
        .filter(|s| s.state != 'Z')
        .map(|s| s.pid)
        .collect()
}

/// Live processes whose command line contains `marker`.
fn with_marker(marker: &str) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|s| s.state != 'Z' && cmdline(s.pid).contains(marker))
        .map(|s| s.pid)
        .collect()
}

/// A unique word to find a test's processes by their command line.
fn marker(name: &str) -> String {
    format!("vigil-e2e-{name}-{}", std::process::id())
}

// -- `vigil daemonize` ----------------------------------------------------------

#[test]
fn daemonize_returns_once_the_check_passes_and_leaves_the_program_detached() {
    let root = crate::support::scratch("daemonize-ok");
    let port = crate::support::closed_port();
    let pidfile = root.join("http.pid");
    let out = vigil_command()
        .current_dir(&root)
        .args(["daemonize", "--check", "builtin:http"])
        .args(["--config", &format!("url=http://127.0.0.1:{port}/")])
        .args(["--allow-host", &format!("http://127.0.0.1:{port}")])
        .args(["--timeout", "30s", "--pidfile", "http.pid", "--"])
        .args(["python3", "-m", "http.server", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .expect("run vigil daemonize");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let pid: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the pid on stdout");
    let _cleanup = KillGroup(pid);
    // Ready means answering: the check said so before we returned.
    assert!(crate::support::listening(port));
    let stat = vigil::procfs::stat(pid).expect("still running");
    assert_eq!(stat.session, pid, "its own session");
    assert_ne!(stat.ppid, std::process::id() as i32);
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("pid file").trim(),
        pid.to_string()
    );

    // The program holds the pid file's lock after vigil is gone.
    let out = vigil_command()
        .current_dir(&root)
        .args(["daemonize", "--pidfile", "http.pid", "--", "sleep", "1000"])
        .output()
        .expect("run vigil daemonize again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("already running (pid {pid})")),
        "{stderr}"
    );
}

#[test]
fn daemonize_kills_a_program_that_never_gets_ready_and_says_why() {
    let root = crate::support::scratch("daemonize-timeout");
    let port = crate::support::closed_port();
    let mark = marker("never-ready");
    let out = vigil_command()
        .current_dir(&root)
        .args(["daemonize", "--check", "builtin:tcp"])
        .args(["--config", &format!("port={port}")])
        .args(["--allow-host", &format!("127.0.0.1:{port}")])
        .args(["--timeout", "1s", "--pidfile", "p.pid", "--"])
        // A group member that ignores SIGTERM must go too.
        .args([
            "sh",
            "-c",
            &format!("trap '' TERM; sleep 1000 & sleep 1001; : {mark}"),
        ])
        .output()
        .expect("run vigil daemonize");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not ready within 1s"), "{stderr}");
    assert!(stderr.contains("builtin:tcp"), "{stderr}");
    wait_until("nothing of the program is left", SOON, || {
        with_marker(&mark).is_empty()
    });
    // A failed launch leaves the pid file empty and unlocked.
    assert_eq!(
        std::fs::read_to_string(root.join("p.pid")).expect("pid file"),
        ""
    );
}

#[test]
fn daemonize_stops_at_a_check_error_or_an_early_exit() {
    let root = crate::support::scratch("daemonize-error");
    let mark = marker("check-error");
    let out = vigil_command()
        .current_dir(&root)
        .args([
            "daemonize",
            "--check",
            "builtin:http",
            "--config",
            "url=not a url",
        ])
        .args(["--", "sh", "-c", &format!("sleep 1000; : {mark}")])
        .output()
        .expect("run vigil daemonize");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("builtin:http: "), "{stderr}");
    wait_until("the program is gone", SOON, || {
        with_marker(&mark).is_empty()
    });

    let port = crate::support::closed_port();
    let out = vigil_command()
        .args(["daemonize", "--check", "builtin:tcp"])
        .args(["--config", &format!("port={port}")])
        .args(["--allow-host", &format!("127.0.0.1:{port}")])
        .args(["--", "sh", "-c", "sleep 0.2; exit 4"])
        .output()
        .expect("run vigil daemonize");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exited before it was ready"), "{stderr}");

    // A check that cannot load is bad usage, and nothing is started.
    let out = vigil_command()
        .args([
            "daemonize",
            "--check",
            "missing.wasm",
            "--",
            "sleep",
            "1000",
        ])
        .output()
        .expect("run vigil daemonize");
    assert_eq!(out.status.code(), Some(2));
}

/// Kills a test's detached program group on drop.
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

// -- single instance ------------------------------------------------------------

#[test]
fn a_second_vigil_run_is_refused_with_the_first_ones_pid() {
    let setup = Setup::new("second-instance");
    setup.service("sleeper", &crate::support::command(&["sleep", "1000"]));
    let first = setup.run();
    first.wait_event(|e| crate::support::is(e, "sleeper", "ready"), SOON);
    let pidfile = setup.state.join("vigil.pid");
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("pid file").trim(),
        first.pid.to_string()
    );
    let second = |extra: &[&str]| {
        setup
            .run_command()
            .args(extra)
            .arg("--quiet")
            .output()
            .expect("second vigil")
    };
    let out = second(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("already running (pid {})", first.pid)),
        "{stderr}"
    );
    // Another pid file on the same state directory: the journal's lock.
    let other = setup.root.join("other.pid");
    let out = second(&["--pidfile", other.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid)), "{stderr}");
    assert!(alive(first.pid), "the first instance is untouched");
    // The first one's lock survives the refused attempts, and a stale file
    // (content and all) does not stop the next start after it exits.
    let mut first = first;
    assert!(first.terminate().success());
    std::fs::write(&pidfile, "12345\n").expect("stale pid file");
    let from = first.journal().len();
    let again = setup.run();
    again.wait_event_from(from, |e| crate::support::is(e, "sleeper", "ready"), SOON);
    assert_eq!(
        std::fs::read_to_string(&pidfile).expect("pid file").trim(),
        again.pid.to_string()
    );
}

// -- `vigil run --daemon` --------------------------------------------------------

/// `vigil run --daemon` from `root` with relative paths.
fn run_daemon(root: &std::path::Path, extra: &[&str]) -> std::process::Output {
    vigil_command()
        .current_dir(root)
        .args([
            "run",
            "--checks",
            "checks",
            "--state-dir",
            "state",
            "--daemon",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil run --daemon")
}

#[test]
fn run_daemon_exits_0_once_up_with_relative_paths() {
    let setup = Setup::new("run-daemon-up");
    let mark = marker("daemon-up");
    setup.service(
        "sleeper",
        &crate::support::command(&["sh", "-c", &format!("sleep 1000; : {mark}")]),
    );
    let out = run_daemon(&setup.root, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let pid: i32 = std::fs::read_to_string(setup.state.join("vigil.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    let _cleanup = KillGroup(pid);
    assert!(
        stderr.contains(&format!("daemon up (pid {pid})")),
        "{stderr}"
    );
    let stat = vigil::procfs::stat(pid).expect("the daemon runs");
    assert_eq!(stat.session, pid, "its own session");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd"),
        std::path::PathBuf::from("/")
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let names: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .filter(|k| !k.is_empty())
        .collect();
    for name in &names {
        assert!(
            ["PATH", "USER", "HOME", "VIGIL_DAEMONIZED"].contains(&name.as_str()),
            "{names:?}"
        );
    }
    assert!(!with_marker(&mark).is_empty(), "the service runs");
    nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM).expect("SIGTERM");
    wait_until("the daemon and its service are gone", SOON, || {
        !alive(pid) && with_marker(&mark).is_empty()
    });
}

#[test]
fn run_daemon_fails_and_leaves_nothing_when_a_startup_check_errors() {
    let setup = Setup::new("run-daemon-fail");
    let mark = marker("daemon-fail");
    setup.service(
        "broken",
        &format!(
            // initial-delay: the child says its line before the check
            // errors and the stop comes (a lower bound, not a timing target).
            "{}restart = \"never\"\n[checks.startup]\ncheck = \"builtin:http\"\ninitial-delay = \"1s\"\n[checks.startup.config]\nurl = \"not a url\"\n",
            crate::support::command(&[
                "sh",
                "-c",
                &format!("echo listening on nothing >&2; sleep 1000; : {mark}")
            ])
        ),
    );
    let state = setup.state.to_string_lossy().into_owned();
    let out = run_daemon(&setup.root, &["--ready-timeout", "60s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("service broken failed to start"),
        "{stderr}"
    );
    // A human summary: the service, its journal lines, its log.
    assert!(stderr.contains("\nservice broken:\n"), "{stderr}");
    assert!(stderr.contains(" broken gave-up "), "{stderr}");
    let log = setup.state.join("logs/broken.log");
    assert!(
        stderr.contains(&format!("last lines of its log, {}:", log.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(" stderr listening on nothing\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("{\""), "no raw JSON: {stderr}");
    wait_until("no process is left behind", SOON, || {
        with_marker(&mark).is_empty()
            && !all_processes()
                .iter()
                .any(|s| s.state != 'Z' && cmdline(s.pid).contains(&state))
    });
}
