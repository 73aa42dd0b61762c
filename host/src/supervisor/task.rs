//! The task of one service, which performs what its reducer decides.
//!
//! It owns the reducer's state, feeds it messages, timers and notify
//! datagrams, performs the effects it returns and publishes the service's
//! snapshot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use super::notify::{Groups, Inbox, Notification};
use super::service::{Effect, Event, HookKind, Notify, ReplaceEvent, ServiceState, TimerKind};
use super::state::Status;
use super::timers::{self, Timers};
use super::{
    CheckResult, ProbeTarget, Shared, Snapshot, hooks, identity, logs, reaper, spawn, stop,
};
use crate::cgroup::Cgroup;
use crate::config::Service;
use crate::journal;
use crate::journal::Event as Journal;

/// What a service task is sent: by the facade, the reaper, the check and
/// loader calls it started, and its own group watchers.
pub(super) enum Msg {
    Event(Event),
    Update(Arc<Service>),
    /// Notify messages, per sender's process group (credentials checked:
    /// each group was a `notify = true` child's when its message came).
    Notify(Vec<(i32, Notification)>),
    /// A child of this service was reaped: the current one, a replace's
    /// new one, or the one a replace took over from, told apart by the
    /// pid the spawn stored in `pid` (before this is handled).
    Reaped {
        pid: Arc<std::sync::atomic::AtomicI32>,
        status: crate::wasm::ExitStatus,
        uptime: Duration,
    },
    /// A check finished (sent just before its [`Event::Check`]).
    Measured {
        epoch: u64,
        result: CheckResult,
    },
    /// Answered once every message before it is handled and its snapshot
    /// published.
    Sync(tokio::sync::oneshot::Sender<()>),
    /// A scheduled job's next due time, monotonic and wall clock
    /// (supervisor/schedule.rs).
    NextDue(tokio::time::Instant, SystemTime),
    /// The service was removed: the task ends once its child is gone.
    /// Dropping the handle is not enough, the task holds a sender of its
    /// own (for check and loader answers).
    Retire,
    /// `start = "on-demand"`: bind the sockets now and start the service
    /// at the first connection on one of them (any start, stop or restart
    /// before that cancels the wait).
    StartOnDemand,
}

/// How the facade reaches a service's task, and what it sees of it.
pub(super) struct Handle {
    pub(super) service: Arc<Service>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) snapshot: watch::Receiver<Snapshot>,
}

/// How often a lingering group's watcher checks that its service still exists.
const GROUP_POLL: Duration = Duration::from_secs(1);

/// The task of `svc`: handles its messages until it is retired (or every
/// sender is gone), publishing a snapshot after each.
pub(super) async fn service_task(
    shared: Arc<Shared>,
    mut svc: Arc<Service>,
    mut state: ServiceState,
    mut local: Local,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    snap_tx: watch::Sender<Snapshot>,
) {
    let sink = logs::LogSink::with_spec(
        &svc.name,
        shared.options.log_dir.as_deref(),
        shared.options.echo,
        svc.log,
    );
    sink.output().set_enabled(svc.grants.resolved().output());
    let mut retiring = false;
    // While `start = "on-demand"` waits for its first connection.
    let mut demand: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = None;
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            () = async { demand.as_mut().expect("guarded").await }, if demand.is_some() => {
                demand = None;
                local.awaiting_connection = false;
                tracing::info!(service = %svc.name, "first connection: starting (start = on-demand)");
                Msg::Event(Event::Start)
            },
            timer = local.timers.next() => Msg::Event(Event::Timer(timer)),
            () = local.inbox.wait() => Msg::Notify(local.inbox.take()),
        };
        let mut queue = VecDeque::new();
        let pid_before = state.pid();
        if let Msg::Event(Event::Start | Event::Stop(_) | Event::Restart(_)) = &msg {
            // The operator (or a reload) decided before any connection did.
            demand = None;
            local.awaiting_connection = false;
        }
        match msg {
            Msg::Retire => retiring = true,
            Msg::NextDue(at, wall) => {
                let job = local.job.get_or_insert_default();
                job.next_due = Some((wall, at));
                job.schedule = svc.job.as_ref().map(|j| j.describe()).unwrap_or_default();
            }
            Msg::StartOnDemand => match shared.sockets.acquire(&svc) {
                Ok(_) => {
                    demand = Some(Box::pin(super::sockets::wait_for_demand(
                        shared.sockets.duplicates(&svc.name),
                    )));
                    local.awaiting_connection = true;
                }
                // The spawn reports the bind error as its own.
                Err(_) => queue.push_back(Event::Start),
            },
            Msg::Event(e) => queue.push_back(e),
            Msg::Reaped {
                pid,
                status,
                uptime,
            } => {
                let pid = Some(pid.load(std::sync::atomic::Ordering::Acquire));
                let event = if pid == state.successor_pid()
                    && let Some(seq) = state.successor_seq()
                {
                    Event::Replacement(ReplaceEvent::Exited { seq, status })
                } else if pid == state.predecessor_pid() && pid != state.pid() {
                    Event::Replacement(ReplaceEvent::OldExited { status, uptime })
                } else {
                    Event::Exited { status, uptime }
                };
                queue.push_back(event);
            }
            Msg::Update(s) => {
                svc = s;
                sink.set_spec(svc.log);
                sink.output().set_enabled(svc.grants.resolved().output());
                for effect in state.update(Instant::now(), &svc) {
                    if let Some(follow) =
                        perform(&shared, &svc, &state, &tx, &sink, &mut local, effect).await
                    {
                        queue.push_back(follow);
                    }
                }
            }
            Msg::Notify(messages) => {
                for (group, n) in messages {
                    if svc.notify.is_some()
                        && Some(group) == state.successor_pid()
                        && let Some(seq) = state.successor_seq()
                    {
                        if n.ready {
                            queue.push_back(Event::Replacement(ReplaceEvent::Ready { seq }));
                        }
                        continue;
                    }
                    if !from_current_child(group, state.pid(), &svc) {
                        tracing::debug!(service = %svc.name, group, "notify from a former child dropped");
                        continue;
                    }
                    tracing::debug!(service = %svc.name, ?n, "notify");
                    let events = notify_events(&n);
                    if n.status.is_some() {
                        local.status_text = n.status;
                    }
                    queue.extend(events.map(Event::Notify));
                }
            }
            Msg::Measured { epoch, result } => {
                shared.metrics.observe(&svc.name, &result);
                if epoch == state.epoch() {
                    local.last_check = Some(result);
                }
            }
            Msg::Sync(done) => {
                let _ = done.send(());
                continue;
            }
        }
        while let Some(event) = queue.pop_front() {
            let effects = state.handle(Instant::now(), event);
            for effect in effects {
                if let Some(follow) =
                    perform(&shared, &svc, &state, &tx, &sink, &mut local, effect).await
                {
                    queue.push_back(follow);
                }
            }
        }
        if state.pid() != pid_before {
            // STATUS= belongs to the child that sent it.
            local.status_text = None;
        }
        if state.pid() != pid_before
            && state.pid().is_some()
            && state.predecessor_pid() == pid_before
            && pid_before.is_some()
        {
            // A replace's new child took over.
            local.predecessor_wall = local.started_wall;
            local.started_wall = local.successor_wall;
        }
        local.list_group(&shared.groups, state.pid().filter(|_| svc.notify.is_some()));
        if local.successor_group != state.successor_pid()
            && let Some(g) = local.successor_group.take()
            && Some(g) != local.notify_group
        {
            shared.groups.remove(g, &local.inbox);
        }
        local.sockets = shared.sockets.list(&svc.name);
        let waiting_for = if state.status() == Status::Waiting {
            shared.unsatisfied_deps(&svc)
        } else {
            Vec::new()
        };
        if !waiting_for.is_empty() && waiting_for != local.waiting_for {
            // Said once when it begins to wait, again when what it waits
            // for changes: "web: waiting for db" is the answer to "why is
            // it not running?".
            shared.journal(
                Some(&svc.name),
                &journal::Event::Waiting {
                    waiting_for: waiting_for.clone(),
                },
            );
        }
        local.waiting_for = waiting_for;
        if state.status() != Status::Stopped {
            local.held = false;
        }
        let snap = Snapshot::of(&state, &local);
        let old = snap_tx.borrow().clone();
        if old != snap {
            snap_tx.send_replace(snap.clone());
            // Check results change far more often than what the watchers
            // of `changes` (sd_notify) and dependents look at.
            let moved = old.status != snap.status
                || old.pid != snap.pid
                || old.restarts != snap.restarts
                || old.status_text != snap.status_text
                || old.satisfies_after != snap.satisfies_after;
            if moved {
                shared.changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            if old.satisfies_after != snap.satisfies_after || old.status != snap.status {
                shared.notify_dependents(&svc.name);
            }
            // Its child is going (a stop) or gone (an exit, a crash, a
            // quick restart): what `requires` it stops too. After the
            // dependents heard it is not ready, so their restart waits.
            let gone = (old.pid.is_some() && old.pid != snap.pid)
                || (snap.status == Status::Stopping && old.status != Status::Stopping);
            if gone {
                shared.dependency_gone(&svc.name);
            }
        }
        // Removed by a reload: the task ends once nothing of its child is
        // left (a stop that outlasted the reload's wait is still seen
        // through to the exit).
        if retiring && state.pid().is_none() && state.group().is_none() {
            break;
        }
    }
    local.list_group(&shared.groups, None);
    identity::remove_credentials(&shared.options, &svc.name);
    if retiring && let Some(cgroup) = &local.cgroup {
        // Removed by a reload, and empty: its cgroup goes too (the kernel
        // refuses while anything is in it).
        cgroup.remove();
    }
}

/// What a service task keeps beside the reducer's state: what the
/// snapshot shows that the reducer does not know, and the task's own
/// timers and notify inbox.
pub(super) struct Local {
    /// When the current child was spawned, wall clock.
    pub(super) started_wall: SystemTime,
    /// The latest check result of the current child, any phase.
    pub(super) last_check: Option<CheckResult>,
    /// `STATUS=` from the current (notify) child.
    pub(super) status_text: Option<String>,
    /// While `waiting`: the services of `after` not ready yet.
    pub(super) waiting_for: Vec<String>,
    /// When the last restart delay (backoff) ends.
    pub(super) restart_at: Option<tokio::time::Instant>,
    /// `autostart = false` and not started yet: status shows why it is
    /// stopped, and `vigil start` of a dependent starts it too.
    pub(super) held: bool,
    /// A scheduled job's next due time and last runs.
    pub(super) job: Option<super::schedule::JobView>,
    timers: Timers,
    /// Where the notify socket puts this service's messages.
    inbox: Arc<Inbox>,
    /// The process group listed for this service in the notify table.
    notify_group: Option<i32>,
    /// The service's cgroup, once a child was spawned into it (none where
    /// the instance has no cgroups: process groups only).
    cgroup: Option<Cgroup>,
    /// The same, as snapshots show it (usage is read at each request).
    pub(super) cgroup_view: Option<Arc<Cgroup>>,
    /// The cgroup's OOM kills when the current child was spawned.
    oom_base: u64,
    /// The sockets held for it: (name, address as bound).
    pub(super) sockets: Vec<(String, String)>,
    /// `start = "on-demand"` waits for its first connection.
    pub(super) awaiting_connection: bool,
    /// A replace's new child, as listed in the notify table.
    successor_group: Option<i32>,
    /// When that child was spawned, wall clock.
    successor_wall: SystemTime,
    /// When the child a replace took over from was spawned, wall clock.
    predecessor_wall: SystemTime,
}

impl Local {
    pub(super) fn new() -> Local {
        Local {
            started_wall: SystemTime::now(),
            last_check: None,
            status_text: None,
            waiting_for: Vec::new(),
            restart_at: None,
            held: false,
            job: None,
            timers: Timers::default(),
            inbox: Inbox::new(),
            notify_group: None,
            cgroup: None,
            cgroup_view: None,
            oom_base: 0,
            sockets: Vec::new(),
            awaiting_connection: false,
            successor_group: None,
            successor_wall: SystemTime::now(),
            predecessor_wall: SystemTime::now(),
        }
    }

    /// Make `group` the one listed for this service in the notify table:
    /// the current child's, only while the service is `notify = true`.
    fn list_group(&mut self, groups: &Groups, group: Option<i32>) {
        if self.notify_group == group {
            return;
        }
        if let Some(old) = self.notify_group.take() {
            groups.remove(old, &self.inbox);
        }
        if let Some(new) = group {
            groups.insert(new, self.inbox.clone());
        }
        self.notify_group = group;
    }
}

/// Carry out one effect of the reducer; an event it leads to at once
/// (spawned, spawn failed, a zero-delay timer, ...) is handed back.
async fn perform(
    shared: &Arc<Shared>,
    svc: &Arc<Service>,
    state: &ServiceState,
    tx: &mpsc::UnboundedSender<Msg>,
    sink: &Arc<logs::LogSink>,
    local: &mut Local,
    effect: Effect,
) -> Option<Event> {
    match effect {
        Effect::Spawn { restarts } => {
            match spawn_child(shared, svc, tx, sink, local, restarts, false).await {
                Ok((pid, start_time)) => Some(Event::Spawned { pid, start_time }),
                Err(e) => Some(Event::SpawnFailed(e)),
            }
        }
        Effect::SpawnSuccessor { seq, restarts } => {
            let event = match spawn_child(shared, svc, tx, sink, local, restarts, true).await {
                Ok((pid, start_time)) => ReplaceEvent::Spawned {
                    seq,
                    pid,
                    start_time,
                },
                Err(error) => ReplaceEvent::SpawnFailed { seq, error },
            };
            Some(Event::Replacement(event))
        }
        Effect::RunSuccessorCheck {
            seq,
            phase,
            pid,
            attempt,
        } => {
            let target = ProbeTarget {
                pid: Some(pid.unsigned_abs()),
                started_at: local.successor_wall,
                attempt,
                restarts: state.restarts(),
                output: Some(sink.output().clone()),
            };
            let fut = shared.probes.check(svc.clone(), phase, target);
            let tx = tx.clone();
            tokio::spawn(async move {
                let outcome = fut.await;
                let _ = tx.send(Msg::Event(Event::Replacement(ReplaceEvent::Check {
                    seq,
                    phase,
                    outcome,
                })));
            });
            None
        }
        Effect::Signal { pgid, signal } => {
            // Cgroup-wide only for the current child's group with no other
            // child of the service alive (a replace's, or an orphaned
            // replace spawn killed as it answers).
            let whole = Some(pgid) == state.group() && !two_children(state);
            let cgroup = local.cgroup.as_ref().filter(|_| whole);
            if let Err(e) = stop::signal_service(Pid::from_raw(pgid), cgroup, signal) {
                shared.journal(
                    Some(&svc.name),
                    &Journal::Warning {
                        message: format!("cannot send {signal} to group {pgid}: {e}"),
                    },
                );
            }
            None
        }
        Effect::WatchGroup { pgid, epoch } => {
            // Cheap test first: usually the group died with its leader and
            // no /proc scan or watcher is needed.
            // With a cgroup, the child is gone when both its group and
            // its cgroup are empty (what left the group is still in the
            // cgroup).
            let group = Pid::from_raw(pgid);
            let cgroup = local.cgroup.clone().filter(|_| !two_children(state));
            let base = local.oom_base;
            let oom = move |cgroup: Option<&Cgroup>| {
                cgroup.and_then(Cgroup::oom_kills).is_some_and(|n| n > base)
            };
            if !stop::service_alive(group, cgroup.as_ref()) {
                shared.reaper.settle();
                return Some(Event::GroupGone {
                    epoch,
                    oom: oom(cgroup.as_ref()),
                });
            }
            let live = stop::live_members(pgid) || cgroup.as_ref().is_some_and(Cgroup::populated);
            let (tx, shared) = (tx.clone(), shared.clone());
            tokio::spawn(async move {
                // Members are stopped (and SIGKILLed after the grace) by the
                // reducer; this only reports the end. It gives up when the
                // service is gone (its channel closed).
                while !stop::wait_service_gone(
                    group,
                    cgroup.as_ref(),
                    Some(tokio::time::Instant::now() + GROUP_POLL),
                )
                .await
                {
                    if tx.is_closed() {
                        return;
                    }
                }
                shared.reaper.settle();
                let oom = oom(cgroup.as_ref());
                let _ = tx.send(Msg::Event(Event::GroupGone { epoch, oom }));
            });
            Some(Event::GroupLingers { epoch, live })
        }
        Effect::Schedule {
            timer,
            after,
            spread,
            jitter: may_jitter,
        } => {
            let is_check = matches!(timer.kind, TimerKind::Check(_));
            let now = tokio::time::Instant::now();
            let deadline = timers::deadline(now, after, spread, may_jitter, is_check);
            if timer.kind == TimerKind::Backoff {
                local.restart_at = Some(deadline.unwrap_or(now));
            }
            let Some(deadline) = deadline else {
                // No timer round trip (tokio's timers tick in whole
                // milliseconds): a zero backoff restarts at once.
                return Some(Event::Timer(timer));
            };
            local.timers.add(deadline, timer);
            None
        }
        Effect::RunCheck {
            phase,
            epoch,
            attempt,
        } => {
            let target = ProbeTarget {
                pid: state.pid().map(i32::unsigned_abs),
                started_at: local.started_wall,
                attempt,
                restarts: state.restarts(),
                output: Some(sink.output().clone()),
            };
            let fut = shared.probes.check(svc.clone(), phase, target);
            let tx = tx.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let outcome = fut.await;
                let result = CheckResult {
                    phase,
                    outcome: outcome.clone(),
                    latency: t0.elapsed(),
                };
                let _ = tx.send(Msg::Measured { epoch, result });
                let _ = tx.send(Msg::Event(Event::Check {
                    epoch,
                    phase,
                    outcome,
                }));
            });
            None
        }
        Effect::Decide {
            epoch,
            seq,
            event,
            history,
        } => {
            let fut = shared.probes.decide(svc.clone(), event, history);
            let tx = tx.clone();
            tokio::spawn(async move {
                let action = fut.await;
                let _ = tx.send(Msg::Event(Event::Decision { epoch, seq, action }));
            });
            None
        }
        Effect::Journal(event) => {
            if svc.job.is_some() {
                let job = local.job.get_or_insert_default();
                job.ended(svc, &event, SystemTime::now());
            }
            shared.journal(Some(&svc.name), &event);
            None
        }
        Effect::RunHook { hook, epoch } => {
            let child = hooks::Child {
                pid: state.pid(),
                started_at: local.started_wall,
                restarts: state.restarts(),
            };
            let answer = move |result| Event::Hook {
                epoch,
                hook,
                result,
            };
            hooks::run(shared, svc, sink, tx, child, hook, answer);
            None
        }
        Effect::RunReplaceHook { hook, seq, pid } => {
            let started_at = match hook {
                HookKind::PreStart | HookKind::PostStart => local.successor_wall,
                HookKind::PreStop | HookKind::PostStop => local.predecessor_wall,
            };
            let child = hooks::Child {
                pid,
                started_at,
                restarts: state.restarts(),
            };
            let answer = move |result| Event::Replacement(ReplaceEvent::Hook { seq, hook, result });
            hooks::run(shared, svc, sink, tx, child, hook, answer);
            None
        }
        Effect::DecideReplace {
            question,
            event,
            history,
        } => {
            let fut = shared.probes.decide_replace(svc.clone(), event, history);
            let tx = tx.clone();
            tokio::spawn(async move {
                let answer = fut.await;
                let _ = tx.send(Msg::Event(Event::Replacement(ReplaceEvent::Decided {
                    question,
                    answer,
                })));
            });
            None
        }
        Effect::WatchReplaced { pgid, seq } => {
            // By process group only: the new child shares the cgroup.
            let group = Pid::from_raw(pgid);
            let gone = Event::Replacement(ReplaceEvent::OldGroupGone { seq });
            if !stop::service_alive(group, None) {
                return Some(gone);
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                // Its members are SIGKILLed at the end of its grace by
                // the reducer; this only reports the end.
                while !stop::wait_service_gone(
                    group,
                    None,
                    Some(tokio::time::Instant::now() + GROUP_POLL),
                )
                .await
                {
                    if tx.is_closed() {
                        return;
                    }
                }
                let _ = tx.send(Msg::Event(gone));
            });
            None
        }
        Effect::Status(status) => {
            tracing::debug!(service = %svc.name, %status, "status");
            None
        }
    }
}

/// Spawn a child of `svc` (the current one, or a replace's new one when
/// `successor`): its command, `NOTIFY_SOCKET`, the held sockets, output
/// capture, and a route that reports its exit by pid.
async fn spawn_child(
    shared: &Arc<Shared>,
    svc: &Arc<Service>,
    tx: &mpsc::UnboundedSender<Msg>,
    sink: &Arc<logs::LogSink>,
    local: &mut Local,
    restarts: u32,
    successor: bool,
) -> Result<(i32, Option<u64>), String> {
    let mut command = shared.probes.command(svc.clone(), restarts).await?;
    if let (Some(notify), Some(socket)) = (svc.notify, &shared.options.notify_socket) {
        notify_env(&mut command.env, socket, notify.watchdog);
    }
    // Who it runs as, its env files and credentials: for a normal start
    // and a replace's new child alike.
    for message in identity::prepare_start(&shared.options, svc, &mut command)? {
        shared.journal(Some(&svc.name), &Journal::Warning { message });
    }
    command.rlimits = svc.limits.rlimit_pairs();
    if let Some(tree) = &shared.options.cgroups {
        // A replace's new child joins the same cgroup as the old one (the
        // service's one cgroup); while both live, signals and the watch of
        // the group go by process group only (see `perform`).
        let cgroup = local.cgroup.get_or_insert_with(|| tree.service(&svc.name));
        let join = cgroup
            .prepare(&svc.limits.cgroup)
            .map_err(|e| format!("cannot set up cgroup {}: {e}", cgroup.path().display()))?;
        command.cgroup_into = join.into;
        command.cgroup_procs = join.procs;
        if !successor {
            local.oom_base = cgroup.oom_kills().unwrap_or(0);
        }
        if local.cgroup_view.as_deref() != Some(cgroup) {
            local.cgroup_view = Some(Arc::new(cgroup.clone()));
        }
    }
    // Bound at the first spawn, kept after; a bind error is this
    // service's spawn error.
    command.listen = shared.sockets.acquire(svc).map_err(|e| e.to_string())?;
    let exit_tx = tx.clone();
    let t0 = Instant::now();
    let reaped_pid = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let route_pid = reaped_pid.clone();
    let route: reaper::Route = Box::new(move |status| {
        let _ = exit_tx.send(Msg::Reaped {
            pid: route_pid,
            status,
            uptime: t0.elapsed(),
        });
    });
    // A notify child is listed from just before its `execve`: it may send
    // `READY=1` before the spawn is even returned here.
    let announce = svc
        .notify
        .map(|_| Box::new(shared.groups.announce(local.inbox.clone())) as Box<dyn spawn::Announce>);
    let child = shared
        .spawner
        .spawn_announced(command, route, announce)
        .await
        .map_err(|e| e.to_string())?;
    let pid = child.pid.as_raw();
    // Before any message of this task is handled: the route's exit report
    // is told apart by it.
    reaped_pid.store(pid, std::sync::atomic::Ordering::Release);
    if successor {
        local.successor_wall = SystemTime::now();
        if svc.notify.is_some() {
            local.successor_group = Some(pid);
        }
    } else {
        if svc.notify.is_some() {
            // Listed by the announcement; unlisted by `list_group` once
            // the service moves on.
            let old = local.notify_group.replace(pid);
            if let Some(old) = old.filter(|&o| o != pid) {
                shared.groups.remove(old, &local.inbox);
            }
        }
        local.started_wall = SystemTime::now();
    }
    let streams = [
        (child.stdout, logs::Stream::Stdout),
        (child.stderr, logs::Stream::Stderr),
    ];
    for (fd, stream) in streams {
        if let Some(fd) = fd {
            logs::capture_stream(fd, sink.clone(), stream);
        }
    }
    Ok((pid, child.start_time))
}

/// Whether a replace has two children of the service alive at once (a new
/// one beside the current, or the old one still stopping). Both are in the
/// service's one cgroup, so signals and the end of a group then go by
/// process group only: a cgroup-wide signal or `cgroup.kill` aimed at one
/// child would hit the other. (What one of them left outside its process
/// group is then found by the next cgroup-wide stop.)
fn two_children(state: &ServiceState) -> bool {
    state.successor_pid().is_some() || state.predecessor_group().is_some()
}

/// What systemd gives a `Type=notify` service: `NOTIFY_SOCKET`, and
/// `WATCHDOG_USEC` with a watchdog (no `WATCHDOG_PID`: the pid is unknown
/// before the fork, and `sd_watchdog_enabled` accepts its absence).
fn notify_env(
    env: &mut Vec<(String, String)>,
    socket: &std::path::Path,
    watchdog: Option<Duration>,
) {
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "NOTIFY_SOCKET" | "WATCHDOG_USEC" | "WATCHDOG_PID"
        )
    });
    env.push(("NOTIFY_SOCKET".into(), socket.display().to_string()));
    if let Some(w) = watchdog {
        env.push(("WATCHDOG_USEC".into(), w.as_micros().to_string()));
    }
}

/// Whether a notify message from process group `group` speaks for the
/// service now: its current child's, while it is `notify = true`. Others
/// come from a child the service has since moved on from (the group was
/// listed when the datagram came) and are dropped.
fn from_current_child(group: i32, pid: Option<i32>, service: &Service) -> bool {
    Some(group) == pid && service.notify.is_some()
}

/// What a notify message tells the reducer, in this order: `READY=1`,
/// `WATCHDOG=1`, `WATCHDOG=trigger` (`STATUS=` is only shown, the rest is
/// ignored, as systemd does for a service).
fn notify_events(n: &Notification) -> impl Iterator<Item = Notify> + use<> {
    [
        (n.ready, Notify::Ready),
        (n.watchdog, Notify::Watchdog),
        (n.watchdog_trigger, Notify::WatchdogTrigger),
    ]
    .into_iter()
    .filter_map(|(set, e)| set.then_some(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NotifySpec;
    use crate::supervisor::loop_tests::service;

    #[test]
    fn a_notify_message_is_its_events_in_order() {
        let all = Notification::parse(b"WATCHDOG=trigger\nSTATUS=up\nWATCHDOG=1\nREADY=1\n");
        assert_eq!(
            notify_events(&all).collect::<Vec<_>>(),
            vec![Notify::Ready, Notify::Watchdog, Notify::WatchdogTrigger]
        );
        let status_only = Notification::parse(b"STATUS=loading\nSTOPPING=1\nERRNO=2\n");
        assert_eq!(notify_events(&status_only).count(), 0);
    }

    #[test]
    fn only_the_current_notify_child_is_heard() {
        let mut svc = service("n", &["true"]);
        assert!(!from_current_child(42, Some(42), &svc), "not notify = true");
        svc.notify = Some(NotifySpec {
            watchdog: None,
            timeout: Duration::from_secs(1),
        });
        assert!(from_current_child(42, Some(42), &svc));
        assert!(!from_current_child(41, Some(42), &svc), "a former child");
        assert!(!from_current_child(42, None, &svc), "no child now");
    }
}
