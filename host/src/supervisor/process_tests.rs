//! Tests with real processes: spawn, reap, stop.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::reaper::Reaper;
use super::spawn::{Command, Output, SpawnError, Spawned, Spawner};
use super::stop::{ForeignGroup, stop_foreign_group};
use crate::procfs;
use crate::sync::LockExt;
use crate::test_support::{SOON, wait_until};
use crate::wasm::ExitStatus;

fn spawner() -> &'static Spawner {
    static S: OnceLock<Spawner> = OnceLock::new();
    S.get_or_init(|| {
        let reaper = Reaper::global().expect("reaper");
        reaper
            .registry()
            .set_orphan_handler(Box::new(|pid, status| {
                orphans().lock_unpoisoned().push((pid, status));
            }));
        Spawner::new(reaper.registry().clone()).expect("spawner")
    })
}

fn orphans() -> &'static Mutex<Vec<(Pid, ExitStatus)>> {
    static O: OnceLock<Mutex<Vec<(Pid, ExitStatus)>>> = OnceLock::new();
    O.get_or_init(Default::default)
}

fn sh(script: &str) -> Command {
    Command::new(&["sh", "-c", script])
}

/// Spawn with the shared spawner; the exit status arrives on the receiver.
fn run(cmd: Command) -> (Spawned, mpsc::Receiver<ExitStatus>) {
    run_with(spawner(), cmd).expect("spawn")
}

fn run_with(
    sp: &Spawner,
    cmd: Command,
) -> Result<(Spawned, mpsc::Receiver<ExitStatus>), SpawnError> {
    let (tx, rx) = mpsc::channel();
    let spawned = sp.spawn_blocking(
        cmd,
        Box::new(move |s| {
            let _ = tx.send(s);
        }),
    )?;
    Ok((spawned, rx))
}

/// The first line a child writes to its piped stdout (a pid, usually).
fn first_line(stdout: Option<std::os::fd::OwnedFd>) -> String {
    let mut line = String::new();
    BufReader::new(std::fs::File::from(stdout.expect("pipe")))
        .read_line(&mut line)
        .expect("read");
    line
}

async fn run_async(cmd: Command) -> (Spawned, mpsc::Receiver<ExitStatus>) {
    let (tx, rx) = mpsc::channel();
    let spawned = spawner()
        .spawn(
            cmd,
            Box::new(move |s| {
                let _ = tx.send(s);
            }),
        )
        .await
        .expect("spawn");
    (spawned, rx)
}

fn wait(rx: &mpsc::Receiver<ExitStatus>) -> ExitStatus {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("exit status within 10s")
}

fn gone_or_reaped(pid: i32) -> bool {
    procfs::stat(pid).is_none()
}

#[test]
fn exit_codes_and_signals_are_routed() {
    let (_s, rx) = run(sh("exit 7"));
    assert_eq!(wait(&rx), ExitStatus::Code(7));
    let (_s, rx) = run(sh("kill -USR1 $$"));
    assert_eq!(wait(&rx), ExitStatus::Signal(libc::SIGUSR1));
}

#[test]
fn immediate_exit_is_never_lost() {
    // Children exiting before the spawner registers them: many at once.
    let rxs: Vec<_> = (0..40)
        .map(|i| run(Command::new(&["sh", "-c", &format!("exit {}", i % 5)])).1)
        .collect();
    for (i, rx) in rxs.iter().enumerate() {
        assert_eq!(wait(rx), ExitStatus::Code((i % 5) as i32));
    }
}

#[test]
fn argv_env_cwd_and_pipes() {
    let dir = std::env::temp_dir();
    let mut cmd = sh("printf '%s|%s|%s' \"$0\" \"$GREETING\" \"$(pwd -P)\"; echo oops >&2");
    cmd.argv.push("zero".into());
    cmd.env.push(("GREETING".into(), "hello world".into()));
    cmd.cwd = dir.clone();
    cmd.stdout = Output::Pipe;
    cmd.stderr = Output::Pipe;
    let (s, rx) = run(cmd);
    let mut out = String::new();
    std::fs::File::from(s.stdout.expect("stdout pipe"))
        .read_to_string(&mut out)
        .expect("read");
    let mut err = String::new();
    std::fs::File::from(s.stderr.expect("stderr pipe"))
        .read_to_string(&mut err)
        .expect("read");
    assert_eq!(wait(&rx), ExitStatus::Code(0));
    let real = std::fs::canonicalize(&dir).expect("canonicalize");
    assert_eq!(out, format!("zero|hello world|{}", real.display()));
    assert_eq!(err, "oops\n");
}

#[test]
fn child_has_own_session_clean_signals_and_start_time() {
    let (s, rx) = run(Command::new(&["sleep", "100"]));
    let pid = s.pid.as_raw();
    let st = procfs::stat(pid).expect("alive");
    assert_eq!(st.session, pid, "own session");
    assert_eq!(st.pgrp, pid, "own process group");
    assert_eq!(Some(st.start_time), s.start_time);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    for field in ["SigBlk:", "SigIgn:"] {
        let line = status.lines().find(|l| l.starts_with(field)).expect(field);
        let mask = line[field.len()..].trim();
        assert!(mask.chars().all(|c| c == '0'), "{line}");
    }
    nix::sys::signal::kill(s.pid, Signal::SIGTERM).expect("kill");
    assert_eq!(wait(&rx), ExitStatus::Signal(libc::SIGTERM));
}

#[test]
fn spawn_errors_are_reported_without_a_stray_exit() {
    assert!(matches!(
        run_with(spawner(), Command::new(&["no-such-program-xyz"])),
        Err(SpawnError::NotFound(_))
    ));
    let mut cmd = Command::new(&["sleep", "1"]);
    cmd.cwd = "/no/such/dir".into();
    match run_with(spawner(), cmd) {
        Err(SpawnError::Exec { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT))
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
    // Not executable: EACCES from execve itself.
    let not_exec = std::env::temp_dir().join(format!("vigil-not-exec-{}", std::process::id()));
    std::fs::write(&not_exec, "#!/bin/sh\n").expect("write");
    let result = run_with(spawner(), Command::new(&[not_exec.to_string_lossy()]));
    let _ = std::fs::remove_file(&not_exec);
    match result {
        Err(SpawnError::Exec { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EACCES))
        }
        other => panic!("expected an exec error, got {other:?}"),
    }
    assert!(matches!(
        run_with(spawner(), Command::new::<&str>(&[])),
        Err(SpawnError::Empty)
    ));
}

#[test]
fn double_forking_child_leaves_no_zombie() {
    // The grandchild outlives its parent, re-parents to us (subreaper) and
    // must be reaped as an orphan.
    let mut cmd = sh("sh -c 'echo $$; exec sleep 0.3' & exit 0");
    cmd.stdout = Output::Pipe;
    let (s, rx) = run(cmd);
    let line = first_line(s.stdout);
    let grandchild: i32 = line.trim().parse().expect("pid");
    assert_eq!(wait(&rx), ExitStatus::Code(0));
    wait_until("grandchild reaped, not a zombie", SOON, || {
        gone_or_reaped(grandchild)
    });
    wait_until("orphan reported", SOON, || {
        orphans()
            .lock_unpoisoned()
            .iter()
            .any(|(pid, st)| pid.as_raw() == grandchild && *st == ExitStatus::Code(0))
    });
}

/// Every child gets its start time, even one that exits at once: the
/// spawner holds off reaping until it has read /proc.
#[test]
fn a_child_that_exits_at_once_still_has_its_start_time() {
    for _ in 0..200 {
        let (s, rx) = run(Command::new(&["true"]));
        assert!(s.start_time.is_some(), "no start time for pid {}", s.pid);
        assert_eq!(wait(&rx), ExitStatus::Code(0));
    }
}

#[test]
fn children_die_with_their_spawner_thread() {
    let own = Spawner::new(Reaper::global().expect("reaper").registry().clone()).expect("spawner");
    let (s, rx) = run_with(&own, Command::new(&["sleep", "100"])).expect("spawn");
    assert!(procfs::stat(s.pid.as_raw()).is_some());
    drop(own); // the forking thread exits: PDEATHSIG
    assert_eq!(wait(&rx), ExitStatus::Signal(libc::SIGKILL));
}

#[tokio::test]
async fn foreign_groups_are_stopped_only_when_they_match() {
    let (s, rx) = run_async(Command::new(&["sleep", "100"])).await;
    let start = s.start_time.expect("start time");
    let wrong = ForeignGroup {
        pgid: s.pid.as_raw(),
        start_time: start + 1,
    };
    assert!(!stop_foreign_group(&wrong, Signal::SIGTERM, Duration::from_millis(100)).await);
    assert!(
        procfs::stat(s.pid.as_raw()).is_some(),
        "a reused pid is left alone"
    );
    let right = ForeignGroup {
        pgid: s.pid.as_raw(),
        start_time: start,
    };
    assert!(stop_foreign_group(&right, Signal::SIGTERM, Duration::from_secs(2)).await);
    assert_eq!(wait(&rx), ExitStatus::Signal(libc::SIGTERM));
}

#[test]
fn inherited_descriptors_do_not_leak_into_children() {
    // Fds without close-on-exec, as a careless parent of Vigil might leave.
    let fds: Vec<std::os::fd::OwnedFd> = (0..8)
        .map(|_| {
            nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
            )
            .expect("open")
        })
        .collect();
    let raw = std::os::fd::AsRawFd::as_raw_fd(fds.last().expect("fd"));
    let mut cmd = sh("ls /proc/self/fd");
    cmd.stdout = Output::Pipe;
    let (s, rx) = run(cmd);
    let mut out = String::new();
    std::fs::File::from(s.stdout.expect("pipe"))
        .read_to_string(&mut out)
        .expect("read");
    assert_eq!(wait(&rx), ExitStatus::Code(0));
    let seen: Vec<i32> = out
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert!(!seen.contains(&raw), "fd {raw} leaked: {seen:?}");
    assert!(
        seen.iter().all(|f| *f <= 3),
        "only stdio (and ls's own directory fd): {seen:?}"
    );
    drop(fds);
}

/// A group whose leader is gone is identified by its pgid alone: it is
/// ours when every member is in the leader's session and none predates
/// the recorded leader; then the whole group is stopped.
#[tokio::test]
async fn a_leaderless_group_is_ours_only_by_session_and_age() {
    // The leader lives until told, so that its start time can be read (a
    // leader that exits at once may be reaped before the spawner reads it).
    let go = std::env::temp_dir().join(format!("vigil-leaderless-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let mut cmd = sh(&format!(
        "sleep 100 & echo $!; while [ ! -e '{}' ]; do sleep 0.01; done",
        go.display()
    ));
    cmd.stdout = Output::Pipe;
    let (s, rx) = run_async(cmd).await;
    let line = first_line(s.stdout);
    let member: i32 = line.trim().parse().expect("member pid");
    let start = procfs::start_time(s.pid.as_raw()).expect("the leader is alive");
    std::fs::write(&go, "").expect("flag");
    let exited = tokio::task::spawn_blocking(move || wait(&rx))
        .await
        .expect("join");
    let _ = std::fs::remove_file(&go);
    assert_eq!(exited, ExitStatus::Code(0), "the leader is gone");
    let member_start = procfs::start_time(member).expect("member alive");
    // A "leader" recorded as younger than a member: not ours.
    let younger = ForeignGroup {
        pgid: s.pid.as_raw(),
        start_time: member_start + 1,
    };
    assert!(!younger.is_ours());
    assert!(!stop_foreign_group(&younger, Signal::SIGTERM, Duration::from_secs(2)).await);
    assert!(procfs::stat(member).is_some_and(|st| st.state != 'Z'));
    let ours = ForeignGroup {
        pgid: s.pid.as_raw(),
        start_time: start,
    };
    assert!(ours.is_ours());
    assert!(stop_foreign_group(&ours, Signal::SIGTERM, Duration::from_secs(30)).await);
    wait_until("the member is stopped", SOON, || gone_or_reaped(member));
}

/// A group made inside another session (as a shell's job control does)
/// whose leader died is never taken for one of ours, whatever its age.
#[tokio::test]
async fn a_leaderless_group_of_another_session_is_not_ours() {
    // The child becomes a group leader in the spawned process's session,
    // starts a member and exits.
    let script = "import os, sys, time\n\
                  pid = os.fork()\n\
                  if pid == 0:\n\
                  \x20   os.setpgid(0, 0)\n\
                  \x20   member = os.fork()\n\
                  \x20   if member == 0:\n\
                  \x20       os.execvp('sleep', ['sleep', '100'])\n\
                  \x20   print(os.getpid(), member, flush=True)\n\
                  \x20   os._exit(0)\n\
                  os.waitpid(pid, 0)\n\
                  time.sleep(100)\n";
    let mut cmd = Command::new(&["python3", "-c", script]);
    cmd.stdout = Output::Pipe;
    let (s, rx) = run_async(cmd).await;
    let line = first_line(s.stdout);
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    let (leader, member) = (pids[0], pids[1]);
    wait_until("the group's leader is gone", SOON, || {
        procfs::stat(leader).is_none()
    });
    let st = procfs::stat(member).expect("member alive");
    assert_eq!((st.pgrp, st.session), (leader, s.pid.as_raw()));
    let group = ForeignGroup {
        pgid: leader,
        start_time: 0,
    };
    assert!(!group.is_ours());
    assert!(!stop_foreign_group(&group, Signal::SIGKILL, Duration::from_secs(2)).await);
    assert!(procfs::stat(member).is_some_and(|st| st.state != 'Z'));
    nix::sys::signal::kill(Pid::from_raw(member), Signal::SIGKILL).expect("kill member");
    nix::sys::signal::kill(s.pid, Signal::SIGKILL).expect("kill python");
    let status = tokio::task::spawn_blocking(move || wait(&rx))
        .await
        .expect("join");
    assert_eq!(status, ExitStatus::Signal(libc::SIGKILL));
    wait_until("the member is reaped", SOON, || gone_or_reaped(member));
}

/// Per spawn: the pid in the slot when the clone returned, and the pid the
/// spawner announced.
type Announced = std::sync::Arc<Mutex<Vec<(i32, Option<i32>)>>>;

/// Records what an [`super::spawn::Announce`] is told.
struct Recorder {
    slot: std::sync::atomic::AtomicI32,
    seen: Announced,
}

impl super::spawn::Announce for Recorder {
    fn cloning(&self) -> &std::sync::atomic::AtomicI32 {
        &self.slot
    }

    fn cloned(&self, pid: Option<Pid>) {
        let stored = self.slot.load(std::sync::atomic::Ordering::Acquire);
        self.seen
            .lock_unpoisoned()
            .push((stored, pid.map(Pid::as_raw)));
    }
}

#[tokio::test]
async fn an_announced_child_stores_its_pid_before_its_program_runs() {
    let seen = Announced::default();
    let recorder = || {
        Some(Box::new(Recorder {
            slot: Default::default(),
            seen: seen.clone(),
        }) as Box<dyn super::spawn::Announce>)
    };
    let seen_now = || seen.lock_unpoisoned().clone();
    let child = spawner()
        .spawn_announced(sh("exit 0"), Box::new(|_| {}), recorder())
        .await
        .expect("spawn");
    let pid = child.pid.as_raw();
    assert_eq!(seen_now(), vec![(pid, Some(pid))]);

    // The exec fails after the store: told there is no child.
    let failed = spawner()
        .spawn_announced(
            Command::new(&["/nonexistent/vigil-test"]),
            Box::new(|_| {}),
            recorder(),
        )
        .await;
    assert!(matches!(failed, Err(SpawnError::Exec { .. })), "{failed:?}");
    let seen = seen_now();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].0 > 0 && seen[1].1.is_none(), "{seen:?}");

    // Refused before any clone: never announced.
    let refused = spawner()
        .spawn_announced(
            Command::new(&["vigil-no-such-program"]),
            Box::new(|_| {}),
            recorder(),
        )
        .await;
    assert!(
        matches!(refused, Err(SpawnError::NotFound(_))),
        "{refused:?}"
    );
    assert_eq!(seen_now().len(), 2);
}
