//! Running a service's lifecycle hooks, for its task
//! ([`super::service::Effect::RunHook`]).
//!
//! A command hook is the service's own command with the hook's argv
//! ([`manifest_command`]), so it runs through the one spawn path with the
//! service's cwd, environment and whatever that path applies to the
//! service (user, limits), in a cgroup of its own beside the service's
//! ([`crate::cgroup::Tree::hook`]); its output goes to the service's log,
//! each line marked with the hook's name, and its whole process group and
//! cgroup are SIGKILLed at its timeout and when it exits (a hook leaves
//! nothing behind). A check hook is one call of the check through [`Probes`], in
//! the sandbox and with the grants of the service's checks, targeting the
//! service's child. Either way the run is journaled (`hook`) before the
//! reducer hears of it, so the journal shows a hook before what it caused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::service::{Event, HookKind, ms};
use super::task::Msg;
use super::{ProbeTarget, Shared, logs, manifest_command, reaper, spawn, stop};
use crate::cgroup::Cgroup;
use crate::config::{HookAction, Service};
use crate::journal::Event as Journal;
use crate::sync::LockExt;
use crate::wasm::{ExitStatus, Verdict};

/// How much of a hook's output the journal keeps: its end.
pub const OUTPUT_KEPT: usize = 2048;

/// Once a hook's process has exited, how long its output may still take to
/// drain (a process that escaped its group may hold the pipe open).
const DRAIN: Duration = Duration::from_secs(1);

/// The longest line of a hook's output (the rest of a longer one is a
/// line of its own), as the service's log bounds its lines.
const MAX_LINE: u64 = 16 << 10;

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed(String),
    Timeout(Duration),
}

impl Outcome {
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Timeout(_) => "timeout",
        }
    }

    fn reason(&self) -> Option<String> {
        match self {
            Outcome::Ok => None,
            Outcome::Failed(r) => Some(r.clone()),
            Outcome::Timeout(t) => Some(format!("did not finish within {t:?}")),
        }
    }
}

/// What the task knows of its child when a hook is asked for.
pub(super) struct Child {
    pub(super) pid: Option<i32>,
    pub(super) started_at: SystemTime,
    pub(super) restarts: u32,
}

/// Run `hook` of `svc` in the background; journal it, then answer the
/// task with the event `answer` makes of its result ([`Event::Hook`] for
/// the current life, a replace's own for a replace's children).
pub(super) fn run(
    shared: &Arc<Shared>,
    svc: &Arc<Service>,
    sink: &Arc<logs::LogSink>,
    tx: &mpsc::UnboundedSender<Msg>,
    child: Child,
    hook: HookKind,
    answer: impl FnOnce(Result<(), String>) -> Event + Send + 'static,
) {
    let (shared, svc, sink, tx) = (shared.clone(), svc.clone(), sink.clone(), tx.clone());
    tokio::spawn(async move {
        let t0 = Instant::now();
        let (outcome, output) = match svc.hooks.get(hook).cloned() {
            None => (
                Outcome::Failed("the hook is no longer configured".into()),
                None,
            ),
            Some(spec) => {
                // A pre-stop hook lives within the stop grace.
                let timeout = match hook {
                    HookKind::PreStop => spec.timeout.min(svc.stop_grace),
                    _ => spec.timeout,
                };
                match spec.action {
                    HookAction::Command(argv) => {
                        run_command(&shared, &svc, &sink, argv, hook, child.pid, timeout).await
                    }
                    HookAction::Check { .. } => {
                        let target = ProbeTarget {
                            pid: child.pid.map(i32::unsigned_abs),
                            started_at: child.started_at,
                            attempt: 1,
                            restarts: child.restarts,
                            output: Some(sink.output().clone()),
                        };
                        let call = shared.probes.hook_check(svc.clone(), hook, target, timeout);
                        // The sandbox holds the deadline; this only guards it.
                        let verdict = tokio::time::timeout(timeout + DRAIN, call)
                            .await
                            .unwrap_or_else(|_| Verdict::timed_out(Some(timeout)));
                        let outcome = match verdict {
                            Verdict::Ok => Outcome::Ok,
                            Verdict::TimedOut(_) => Outcome::Timeout(timeout),
                            other => Outcome::Failed(format!(
                                "{}: {}",
                                other.kind(),
                                other.reason().unwrap_or_default()
                            )),
                        };
                        (outcome, None)
                    }
                }
            }
        };
        shared.journal(
            Some(&svc.name),
            &Journal::Hook {
                hook: hook.as_str().into(),
                outcome: outcome.kind().into(),
                duration_ms: ms(t0.elapsed()),
                reason: outcome.reason(),
                output,
            },
        );
        let result = match outcome {
            Outcome::Ok => Ok(()),
            other => Err(other.reason().unwrap_or_default()),
        };
        let _ = tx.send(Msg::Event(answer(result)));
    });
}

/// Run a command hook to its end or its timeout; the outcome and the end
/// of its output.
async fn run_command(
    shared: &Arc<Shared>,
    svc: &Arc<Service>,
    sink: &Arc<logs::LogSink>,
    argv: Vec<String>,
    hook: HookKind,
    service_pid: Option<i32>,
    timeout: Duration,
) -> (Outcome, Option<String>) {
    // The service's own command with the hook's argv: the same cwd,
    // environment and spawn settings.
    let mut as_service = (**svc).clone();
    as_service.command = Some(argv);
    let mut command = match manifest_command(&as_service) {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed(e), None),
    };
    command.env.push(("VIGIL_SERVICE".into(), svc.name.clone()));
    command
        .env
        .push(("VIGIL_HOOK".into(), hook.as_str().into()));
    if let Some(pid) = service_pid {
        command
            .env
            .push(("VIGIL_SERVICE_PID".into(), pid.to_string()));
    }
    command.rlimits = svc.limits.rlimit_pairs();
    let cgroup = match hook_cgroup(shared, svc, hook, &mut command) {
        Ok(cgroup) => cgroup,
        Err(e) => return (Outcome::Failed(e), None),
    };
    let (outcome, output) =
        run_spawned(shared, sink, command, hook, timeout, cgroup.as_ref()).await;
    if let Some(cgroup) = cgroup {
        end_cgroup(&cgroup).await;
    }
    (outcome, output)
}

/// The cgroup of this run of `hook` (see [`crate::cgroup::Tree::hook`]),
/// made with the service's limits, and `command` set to be created in it;
/// `None` without cgroups.
fn hook_cgroup(
    shared: &Arc<Shared>,
    svc: &Service,
    hook: HookKind,
    command: &mut spawn::Command,
) -> Result<Option<Cgroup>, String> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let Some(tree) = &shared.options.cgroups else {
        return Ok(None);
    };
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut cgroup = tree.hook(&svc.name, &format!("{hook}-{run}"));
    let join = cgroup.prepare(&svc.limits.cgroup).map_err(|e| {
        format!(
            "cannot set up the hook's cgroup {}: {e}",
            cgroup.path().display()
        )
    })?;
    command.cgroup_into = join.into;
    command.cgroup_procs = join.procs;
    Ok(Some(cgroup))
}

/// The hook's cgroup is removed once empty (its processes were killed by
/// [`kill_rest`]) (bounded by [`DRAIN`]; a cgroup the kernel still
/// counts as populated is left for the instance's removal at shutdown).
async fn end_cgroup(cgroup: &Cgroup) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    while cgroup.populated() {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cgroup.remove();
}

/// Spawn a command hook and run it to its end or its timeout.
async fn run_spawned(
    shared: &Arc<Shared>,
    sink: &Arc<logs::LogSink>,
    command: spawn::Command,
    hook: HookKind,
    timeout: Duration,
    cgroup: Option<&Cgroup>,
) -> (Outcome, Option<String>) {
    let (exit_tx, mut exit_rx) = tokio::sync::oneshot::channel();
    let route: reaper::Route = Box::new(move |status| {
        let _ = exit_tx.send(status);
    });
    let spawned = match shared.spawner.spawn(command, route).await {
        Ok(s) => s,
        Err(e) => return (Outcome::Failed(format!("cannot run it: {e}")), None),
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut pumps = Vec::new();
    for (fd, stream) in [
        (spawned.stdout, logs::Stream::Stdout),
        (spawned.stderr, logs::Stream::Stderr),
    ] {
        if let Some(fd) = fd {
            pumps.push(pump(fd, sink.clone(), stream, hook, tail.clone()));
        }
    }
    let group = spawned.pid;
    let status = match tokio::time::timeout(timeout, &mut exit_rx).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = stop::signal_group(group, Signal::SIGKILL);
            // SIGKILL cannot be caught: the reaper delivers soon.
            let _ = tokio::time::timeout(Duration::from_secs(5), exit_rx).await;
            kill_rest(group, cgroup);
            drain(pumps).await;
            return (Outcome::Timeout(timeout), tail.lock_unpoisoned().text());
        }
    };
    kill_rest(group, cgroup);
    drain(pumps).await;
    let output = tail.lock_unpoisoned().text();
    let outcome = match status {
        Some(ExitStatus::Code(0)) => Outcome::Ok,
        Some(other) => Outcome::Failed(other.to_string()),
        None => Outcome::Failed("its exit status was lost".into()),
    };
    (outcome, output)
}

/// What a hook left in its process group, and in its cgroup (a process
/// that called `setsid` and may hold its output pipe open), goes with it.
fn kill_rest(group: Pid, cgroup: Option<&Cgroup>) {
    let _ = stop::signal_group(group, Signal::SIGKILL);
    if let Some(cgroup) = cgroup {
        cgroup.kill();
    }
}

/// Wait (bounded) for the output pumps to reach the end of their pipes.
async fn drain(pumps: Vec<tokio::task::JoinHandle<()>>) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    for p in pumps {
        let _ = tokio::time::timeout_at(deadline, p).await;
    }
}

/// The end of a hook's output, bounded.
#[derive(Default)]
struct Tail(String);

impl Tail {
    fn push(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
        if self.0.len() > 2 * OUTPUT_KEPT {
            let mut cut = self.0.len() - OUTPUT_KEPT;
            while !self.0.is_char_boundary(cut) {
                cut += 1;
            }
            self.0.drain(..cut);
        }
    }

    fn text(&self) -> Option<String> {
        let text = self.0.trim_end();
        let mut start = text.len().saturating_sub(OUTPUT_KEPT);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let text = &text[start..];
        (!text.trim().is_empty()).then(|| text.to_string())
    }
}

/// Copy a hook's `stream` into the service's log (each line marked
/// `[hook]`) and into `tail`, until the pipe closes.
fn pump(
    fd: std::os::fd::OwnedFd,
    sink: Arc<logs::LogSink>,
    stream: logs::Stream,
    hook: HookKind,
    tail: Arc<Mutex<Tail>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let receiver = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot capture a hook's output: {e}");
                return;
            }
        };
        let mut reader = BufReader::new(receiver);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Lines are bounded like the service's own (a hook writing no
            // newline is cut at the log's line limit).
            match (&mut reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut buf)
                .await
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim_end_matches('\n');
            sink.line(stream, &format!("[{hook}] {line}"));
            tail.lock_unpoisoned().push(line);
        }
    })
}
