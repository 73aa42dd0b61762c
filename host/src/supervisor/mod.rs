//! Keeping services alive: spawning children, reaping them, stopping
//! process groups, and the per-service state machine.
//!
//! One tokio task per service owns its [`service::ServiceState`] and
//! performs the effects the reducer returns: spawning through the
//! [`spawn::Spawner`] thread, signals to process groups, timers, checks and
//! loader calls through [`Probes`], journal lines. Exit statuses come from
//! the one [`reaper::Reaper`]. Dependencies are propagated between tasks
//! whenever a service's status changes.

pub mod hot_reload;
pub mod logs;
pub mod notify;
pub mod probes;
pub mod proc;
pub mod reaper;
pub mod service;
pub mod spawn;
pub mod state;
pub mod stop;
mod timers;

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod process_tests;

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use crate::config::{Phase, Service};
use crate::journal::{Cause, Event as Journal, Journal as JournalFile, JournalHandle};
use crate::supervisor::notify::{Groups, Inbox, Notification};
use service::{
    Action, Effect, Event, History, LoaderEvent, Notify, Outcome, ServiceState, TimerKind, Why,
};
use state::Status;
use timers::Timers;

/// In the foreground, a journal event as one terminal line beside the
/// services' own `name | line` output: `name * kind field=value ...`,
/// escaped ([`crate::untrusted`]; the journal itself stays exact).
fn echo_event(service: Option<&str>, event: &Journal) {
    let fields = event.fields_text();
    let service = crate::untrusted::line(service.unwrap_or("vigil"));
    // No trailing space after a kind without fields (`web * ready`).
    let sep = if fields.is_empty() { "" } else { " " };
    eprintln!("{service} * {}{sep}{fields}", event.kind());
}

/// A boxed future, as returned by [`Probes`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a check is told about the child it judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    pub pid: Option<u32>,
    pub started_at: SystemTime,
    pub attempt: u32,
    pub restarts: u32,
}

/// Checks, loader decisions and commands: the wasm engine in production
/// ([`probes::WasmProbes`]), closures in tests.
pub trait Probes: Send + Sync + 'static {
    /// Run `service`'s check for `phase`. Never fails: problems are outcomes.
    fn check(&self, service: Arc<Service>, phase: Phase, target: ProbeTarget)
    -> BoxFuture<Outcome>;
    /// Ask the service's loader. `Err` falls back to the built-in policy.
    fn decide(
        &self,
        service: Arc<Service>,
        event: LoaderEvent,
        history: History,
    ) -> BoxFuture<Result<Action, String>>;
    /// The command to spawn: the manifest's, or the loader's `spawn`.
    fn command(
        &self,
        service: Arc<Service>,
        restarts: u32,
    ) -> BoxFuture<Result<spawn::Command, String>> {
        let _ = restarts;
        Box::pin(async move { manifest_command(&service) })
    }
    /// Forget anything cached for `service` (its checks or loader changed).
    fn forget(&self, service: &str) {
        let _ = service;
    }
}

/// The command from the manifest: argv, environment, cwd, piped output.
pub fn manifest_command(service: &Service) -> Result<spawn::Command, String> {
    let argv = service
        .command
        .clone()
        .ok_or_else(|| format!("{}: no command (and no loader)", service.name))?;
    Ok(spawn::Command {
        argv,
        env: service.child_env(),
        cwd: service.cwd.clone(),
        stdout: spawn::Output::Pipe,
        stderr: spawn::Output::Pipe,
    })
}

/// A service's state as others see it (dependents, the control API,
/// `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub status: Status,
    pub pid: Option<i32>,
    /// The child's process group while any of it may be alive; it outlives
    /// `pid` when members linger after the leader.
    pub group: Option<i32>,
    pub restarts: u32,
    /// Dependents may start (ready, or a one-shot that exited cleanly).
    pub satisfies_after: bool,
    /// The current child's spawn (monotonic, for uptime), while it runs.
    pub since: Option<Instant>,
    /// The current child's spawn (wall clock), while it runs.
    pub started_at: Option<SystemTime>,
    /// The startup check passed (or there is none) for the current child.
    pub startup_passed: bool,
    /// The latest check result of the current child, any phase.
    pub last_check: Option<CheckResult>,
    /// `STATUS=` from a notify child.
    pub status_text: Option<String>,
}

/// One finished check run, as the shell measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub phase: Phase,
    pub outcome: Outcome,
    /// Time from the call to its outcome (queueing for an engine slot included).
    pub latency: Duration,
}

/// What the service task knows besides the reducer's state.
#[derive(Debug, Default)]
struct Shell {
    started_wall: Option<SystemTime>,
    last_check: Option<CheckResult>,
    status_text: Option<String>,
}

impl Snapshot {
    fn of(state: &ServiceState, shell: &Shell) -> Snapshot {
        let running = state.pid().is_some();
        Snapshot {
            status: state.status(),
            pid: state.pid(),
            group: state.group(),
            restarts: state.restarts(),
            satisfies_after: state.satisfies_after(),
            since: state.started_at().filter(|_| running),
            started_at: shell.started_wall.filter(|_| running),
            startup_passed: state.has_passed_startup(),
            last_check: shell.last_check.clone(),
            status_text: shell.status_text.clone(),
        }
    }

    /// How long the current child has been up.
    pub fn uptime(&self) -> Option<Duration> {
        self.since.map(|t| t.elapsed())
    }
}

enum Msg {
    Event(Event),
    Update(Arc<Service>),
    /// Notify messages, per sender's process group (credentials checked:
    /// each group was a `notify = true` child's when its message came).
    Notify(Vec<(i32, Notification)>),
    /// A check finished (sent just before its [`Event::Check`]).
    Measured {
        epoch: u64,
        result: CheckResult,
    },
    /// Answered once every message before it is handled and its snapshot
    /// published.
    Sync(tokio::sync::oneshot::Sender<()>),
    /// The service was removed: the task ends once its child is gone.
    /// Dropping the handle is not enough, the task holds a sender of its
    /// own (for check and loader answers).
    Retire,
}

struct Handle {
    service: Arc<Service>,
    tx: mpsc::UnboundedSender<Msg>,
    snapshot: watch::Receiver<Snapshot>,
}

/// How far the start of every service has come (see [`Supervisor::startup`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    pub total: usize,
    pub ready: usize,
    /// Services whose startup gate has not passed yet.
    pub waiting: Vec<String>,
    /// Services with a startup gate that gave up (`failed`).
    pub failed: Vec<String>,
}

impl Startup {
    /// Every startup gate passed.
    pub fn is_up(&self) -> bool {
        self.waiting.is_empty() && self.failed.is_empty()
    }

    /// `3/4 services ready`, for systemd's `STATUS=`.
    pub fn status_line(&self) -> String {
        let mut line = format!("{}/{} services ready", self.ready, self.total);
        if !self.failed.is_empty() {
            line.push_str(&format!("; failed: {}", self.failed.join(", ")));
        } else if !self.waiting.is_empty() {
            line.push_str(&format!("; starting: {}", self.waiting.join(", ")));
        }
        line
    }
}

/// Settings of a [`Supervisor`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where `<service>.log` files go; `None` keeps no log files.
    pub log_dir: Option<PathBuf>,
    /// Echo children's output as `name | line` and transitions to stdout.
    pub echo: bool,
    /// The notify socket given to `notify = true` services as
    /// `NOTIFY_SOCKET` (see [`crate::supervisor::notify`]).
    pub notify_socket: Option<PathBuf>,
}

struct Shared {
    journal: JournalHandle,
    spawner: spawn::Spawner,
    /// The reaper's registry, to [`settle`](reaper::Registry::settle) it.
    reaper: Arc<reaper::Registry>,
    probes: Arc<dyn Probes>,
    services: RwLock<BTreeMap<String, Handle>>,
    options: Options,
    /// Bumped whenever any service's snapshot changes.
    changes: watch::Sender<u64>,
    metrics: Arc<crate::control::metrics::CheckMetrics>,
    /// Who may speak on the notify socket: each `notify = true` service's
    /// current child's group, kept by the service tasks.
    groups: Arc<Groups>,
}

impl Shared {
    fn journal(&self, service: Option<&str>, event: &Journal) {
        tracing::info!(
            service = service.unwrap_or("vigil"),
            kind = event.kind(),
            "{event:?}"
        );
        if self.options.echo {
            echo_event(service, event);
        }
        self.journal.record(service, event);
    }

    fn send(&self, name: &str, event: Event) -> bool {
        let services = self.services.read().unwrap_or_else(|p| p.into_inner());
        services
            .get(name)
            .is_some_and(|h| h.tx.send(Msg::Event(event)).is_ok())
    }

    fn deps_satisfied(&self, service: &Service) -> bool {
        let services = self.services.read().unwrap_or_else(|p| p.into_inner());
        service.after.iter().all(|d| {
            services
                .get(d)
                .is_some_and(|h| h.snapshot.borrow().satisfies_after)
        })
    }

    /// `name` changed: tell every service waiting on it.
    fn notify_dependents(&self, name: &str) {
        let dependents: Vec<Arc<Service>> = {
            let services = self.services.read().unwrap_or_else(|p| p.into_inner());
            services
                .values()
                .filter(|h| h.service.after.iter().any(|a| a == name))
                .map(|h| h.service.clone())
                .collect()
        };
        for d in dependents {
            let ready = self.deps_satisfied(&d);
            self.send(&d.name, Event::Dependencies(ready));
        }
    }
}

/// Errors starting a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start the reaper: {0}")]
    Reaper(std::io::Error),
    #[error("cannot start the spawner thread: {0}")]
    Spawner(std::io::Error),
    #[error("cannot start the journal writer: {0}")]
    Journal(std::io::Error),
}

/// Supervises a set of services. Must live inside a tokio runtime.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
}

impl Supervisor {
    /// Start the reaper (process-wide, once) and a spawner thread. Orphans
    /// reaped from now on are journaled as `orphan-reaped`.
    pub fn new(
        journal: JournalFile,
        probes: Arc<dyn Probes>,
        options: Options,
    ) -> Result<Supervisor, SupervisorError> {
        let reaper = reaper::Reaper::global().map_err(SupervisorError::Reaper)?;
        let spawner =
            spawn::Spawner::new(reaper.registry().clone()).map_err(SupervisorError::Spawner)?;
        let journal = journal.into_writer().map_err(SupervisorError::Journal)?;
        let orphan_journal = journal.clone();
        reaper
            .registry()
            .set_orphan_handler(Box::new(move |pid, status| {
                let event = Journal::OrphanReaped {
                    pid: pid.as_raw(),
                    code: status.code(),
                    signal: status.signal().map(signal_name),
                };
                orphan_journal.record(None, &event);
            }));
        Ok(Supervisor {
            shared: Arc::new(Shared {
                journal,
                spawner,
                reaper: reaper.registry().clone(),
                probes,
                services: RwLock::new(BTreeMap::new()),
                options,
                changes: watch::channel(0).0,
                metrics: Arc::default(),
                groups: Groups::new(),
            }),
        })
    }

    /// Record an event in the journal.
    pub fn journal(&self, service: Option<&str>, event: &Journal) {
        self.shared.journal(service, event);
    }

    /// Add services and start them (each once its `after` list is satisfied).
    pub fn start(&self, services: Vec<Service>) {
        let mut added = Vec::new();
        {
            let mut map = self
                .shared
                .services
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for svc in services {
                if map.contains_key(&svc.name) {
                    continue;
                }
                let svc = Arc::new(svc);
                let (tx, rx) = mpsc::unbounded_channel();
                let state = ServiceState::new(&svc);
                let (snap_tx, snap_rx) = watch::channel(Snapshot::of(&state, &Shell::default()));
                map.insert(
                    svc.name.clone(),
                    Handle {
                        service: svc.clone(),
                        tx: tx.clone(),
                        snapshot: snap_rx,
                    },
                );
                added.push((svc, state, tx, rx, snap_tx));
            }
        }
        for (svc, state, tx, rx, snap_tx) in added {
            let ready = self.shared.deps_satisfied(&svc);
            let _ = tx.send(Msg::Event(Event::Dependencies(ready)));
            let _ = tx.send(Msg::Event(Event::Start));
            tokio::spawn(service_task(
                self.shared.clone(),
                svc,
                state,
                tx,
                rx,
                snap_tx,
            ));
        }
    }

    /// Send an event (start, stop, restart, ...) to a service. False when
    /// there is no such service.
    pub fn send(&self, name: &str, event: Event) -> bool {
        self.shared.send(name, event)
    }

    /// Changes whenever any service's snapshot does (the value counts them).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// The table the notify socket attributes datagrams by (see
    /// [`crate::supervisor::notify`]): the process group of every
    /// `notify = true` service's current child, listed from just before the
    /// child's `execve` until the service moves on from it.
    pub fn notify_groups(&self) -> Arc<Groups> {
        self.shared.groups.clone()
    }

    /// Every service's definition and current state.
    pub fn services(&self) -> Vec<(Arc<Service>, Snapshot)> {
        let services = self
            .shared
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner());
        services
            .values()
            .map(|h| (h.service.clone(), h.snapshot.borrow().clone()))
            .collect()
    }

    /// Whether Vigil is up: every service with a startup gate (a startup
    /// check, or `notify = true` waiting for `READY=1`) has passed it.
    /// `systemd`'s `READY=1` and `vigil run --daemon` wait for this.
    pub fn startup(&self) -> Startup {
        let mut s = Startup::default();
        for (svc, snap) in self.services() {
            s.total += 1;
            if snap.status == Status::Ready {
                s.ready += 1;
            }
            let gated = svc.checks.startup.is_some() || svc.notify.is_some();
            if !gated {
                continue;
            }
            match snap.status {
                Status::Running | Status::Ready | Status::Exited => {}
                Status::Failed => s.failed.push(svc.name.clone()),
                _ => s.waiting.push(svc.name.clone()),
            }
        }
        s
    }

    /// Send `event` to `name` and wait until the service has handled it
    /// and published its snapshot. False when there is no such service.
    pub async fn send_and_sync(&self, name: &str, event: Event) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = {
            let services = self
                .shared
                .services
                .read()
                .unwrap_or_else(|p| p.into_inner());
            services.get(name).is_some_and(|h| {
                h.tx.send(Msg::Event(event)).is_ok() && h.tx.send(Msg::Sync(done)).is_ok()
            })
        };
        sent && wait.await.is_ok()
    }

    /// The definition `name` runs with.
    pub fn service(&self, name: &str) -> Option<Arc<Service>> {
        let services = self
            .shared
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner());
        services.get(name).map(|h| h.service.clone())
    }

    /// Every journal line written from now on (`vigil journal -f`).
    pub fn subscribe_journal(&self) -> tokio::sync::broadcast::Receiver<crate::journal::Line> {
        self.shared.journal.subscribe()
    }

    /// Check durations and outcomes, for `/metrics`.
    pub fn check_metrics(&self) -> &Arc<crate::control::metrics::CheckMetrics> {
        &self.shared.metrics
    }

    /// Every service's current state.
    pub fn snapshots(&self) -> BTreeMap<String, Snapshot> {
        self.services()
            .into_iter()
            .map(|(service, snapshot)| (service.name.clone(), snapshot))
            .collect()
    }

    fn watcher(&self, name: &str) -> Option<watch::Receiver<Snapshot>> {
        let services = self
            .shared
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner());
        services.get(name).map(|h| h.snapshot.clone())
    }

    /// Wait until `name`'s snapshot satisfies `pred`, up to `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Option<Snapshot> {
        let mut rx = self.watcher(name)?;
        tokio::time::timeout(timeout, async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if pred(&s) {
                        return Some(s.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Apply a new set of valid services: new ones start, removed ones
    /// stop, changed ones are updated in place (checks, loader, policy) and
    /// restarted when argv, environment or cwd changed.
    ///
    /// `touched` names services whose files changed on disk (a `.wasm` may
    /// have changed under the same manifest): their checks and loader are
    /// reloaded without touching the child. `None` reloads every one.
    pub async fn reload(
        &self,
        services: Vec<Service>,
        touched: Option<&std::collections::BTreeSet<String>>,
    ) {
        let current: BTreeMap<String, Arc<Service>> = {
            let map = self
                .shared
                .services
                .read()
                .unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|(k, h)| (k.clone(), h.service.clone()))
                .collect()
        };
        let mut new = Vec::new();
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        for svc in services {
            match current.get(&svc.name) {
                None => {
                    self.journal(
                        Some(&svc.name),
                        &Journal::Reloaded {
                            change: "added".into(),
                        },
                    );
                    new.push(svc);
                }
                Some(old) if **old == svc => {
                    let was_touched = touched.is_none_or(|t| t.contains(&svc.name));
                    if was_touched {
                        self.shared.probes.forget(&svc.name);
                    }
                    if touched.is_some() && was_touched {
                        self.journal(
                            Some(&svc.name),
                            &Journal::Reloaded {
                                change: "checks or loader reloaded".into(),
                            },
                        );
                    }
                }
                Some(old) => {
                    let restart = old.needs_restart_for(&svc);
                    let what = hot_reload::restart_change(old, &svc);
                    self.shared.probes.forget(&svc.name);
                    let change = if restart {
                        format!("{what}: restarting")
                    } else {
                        "checks or policy changed".to_string()
                    };
                    self.journal(Some(&svc.name), &Journal::Reloaded { change });
                    let svc = Arc::new(svc);
                    let mut map = self
                        .shared
                        .services
                        .write()
                        .unwrap_or_else(|p| p.into_inner());
                    if let Some(h) = map.get_mut(&svc.name) {
                        h.service = svc.clone();
                        let _ = h.tx.send(Msg::Update(svc.clone()));
                        // An operator's stop holds across reloads.
                        let stopped = h.snapshot.borrow().status == Status::Stopped;
                        if restart && !stopped {
                            let why = Why::new(Cause::Reload, what);
                            let _ = h.tx.send(Msg::Event(Event::Restart(why)));
                        }
                    }
                }
            }
        }
        for name in current.keys().filter(|n| !names.contains(n)) {
            self.journal(
                Some(name),
                &Journal::Reloaded {
                    change: "removed: stopping".into(),
                },
            );
            let why = Why::new(Cause::Removed, "removed by a reload");
            self.stop_and_wait(name, Duration::from_secs(60), why).await;
            let handle = self
                .shared
                .services
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            if let Some(handle) = handle {
                let _ = handle.tx.send(Msg::Retire);
            }
            self.shared.probes.forget(name);
        }
        self.start(new);
    }

    async fn stop_and_wait(&self, name: &str, timeout: Duration, why: Why) {
        if self.send(name, Event::Stop(why)) {
            self.wait_for(name, timeout, |s| s.status.is_down()).await;
        }
    }

    /// Stop every service, dependents before what they depend on, each
    /// within its grace. Journals `quit`.
    pub async fn shutdown(&self) {
        let handles: Vec<(Arc<Service>, Vec<String>)> = {
            let map = self
                .shared
                .services
                .read()
                .unwrap_or_else(|p| p.into_inner());
            map.values()
                .map(|h| {
                    let dependents = map
                        .values()
                        .filter(|d| d.service.after.contains(&h.service.name))
                        .map(|d| d.service.name.clone())
                        .collect();
                    (h.service.clone(), dependents)
                })
                .collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for (svc, dependents) in handles {
            let me = self.clone();
            set.spawn(async move {
                let limit = svc.stop_grace + Duration::from_secs(5);
                for d in &dependents {
                    me.wait_for(d, limit * 4, |s| s.status.is_down()).await;
                }
                me.stop_and_wait(&svc.name, limit, Why::shutdown()).await;
            });
        }
        while set.join_next().await.is_some() {}
        let clean = self.snapshots().values().all(|s| s.group.is_none());
        self.journal(None, &Journal::Quit { clean });
        self.shared.journal.flush().await;
    }

    /// Wait until every journal event recorded so far is on disk.
    pub async fn flush_journal(&self) {
        self.shared.journal.flush().await;
    }

    /// SIGKILL every child's process group at once (a second shutdown signal).
    pub fn kill_all(&self) {
        for (name, s) in self.snapshots() {
            if let Some(pgid) = s.group {
                let killed = Journal::Killed {
                    pid: pgid,
                    signal: "SIGKILL".into(),
                    reason: "a second shutdown signal: killing every child".into(),
                    cause: Some(Cause::Shutdown),
                };
                self.journal(Some(&name), &killed);
                let _ = stop::signal_group(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        }
    }
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

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

/// A pseudo-random number for timer jitter (xorshift, seeded by the clock):
/// spreading timers needs no cryptographic quality.
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x = SEED.load(Ordering::Relaxed) ^ u64::from(now.subsec_nanos());
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    SEED.store(x, Ordering::Relaxed);
    x
}

/// A uniformly random duration in `[0, range)`.
fn random_below(range: Duration) -> Duration {
    match u64::try_from(range.as_nanos()) {
        Ok(0) => Duration::ZERO,
        Ok(nanos) => Duration::from_nanos(random_u64() % nanos),
        Err(_) => Duration::ZERO,
    }
}

/// A little jitter for periodic checks (±10 %), so that 1,000 services
/// with the same period do not all fire in the same millisecond.
fn jitter(after: Duration) -> Duration {
    let spread = after / 10;
    (after + random_below(2 * spread)).saturating_sub(spread)
}

/// Check timers fire on grids shared by every service, a tenth of the
/// check's period (at most 100 ms, the same order as its jitter): the checks
/// of a thousand services that fall due in the same cell wake the runtime
/// once, not once each. A wake-up (epoll, futex, a parked worker) costs more
/// than a builtin check's call; at 1,000 × 1 s checks the grid takes
/// Vigil's CPU from 24 % to about 10 % of a core.
const CHECK_GRIDS: [Duration; 6] = [
    Duration::from_millis(100),
    Duration::from_millis(50),
    Duration::from_millis(25),
    Duration::from_millis(10),
    Duration::from_millis(5),
    Duration::from_millis(1),
];

/// The grid for a check that repeats every `period` (zero: none).
fn check_grid(period: Duration) -> Duration {
    let tenth = period / 10;
    CHECK_GRIDS
        .into_iter()
        .find(|grid| *grid <= tenth)
        .unwrap_or(Duration::ZERO)
}

/// A deadline no timer reaches in practice (about 30 years from `now`),
/// for a delay past the clock's range.
fn far_future(now: tokio::time::Instant) -> tokio::time::Instant {
    now + Duration::from_secs(30 * 365 * 24 * 3600)
}

/// `deadline`, rounded up to the next point of `grid` (counted from the
/// first use, so that every service shares the points).
fn on_grid(deadline: tokio::time::Instant, grid: Duration) -> tokio::time::Instant {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    let grid = grid.as_nanos();
    if grid == 0 {
        return deadline;
    }
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let rounded = u64::try_from(since.div_ceil(grid) * grid).unwrap_or(u64::MAX);
    origin + Duration::from_nanos(rounded)
}

/// How often a lingering group's watcher checks that its service still exists.
const GROUP_POLL: Duration = Duration::from_secs(1);

async fn service_task(
    shared: Arc<Shared>,
    mut svc: Arc<Service>,
    mut state: ServiceState,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    snap_tx: watch::Sender<Snapshot>,
) {
    let sink = logs::LogSink::new(
        &svc.name,
        shared.options.log_dir.as_deref(),
        shared.options.echo,
    );
    let mut local = TaskLocal {
        started_wall: SystemTime::now(),
        timers: Timers::default(),
        inbox: Inbox::new(),
        notify_group: None,
    };
    let mut shell = Shell::default();
    let mut retiring = false;
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            timer = local.timers.next() => Msg::Event(Event::Timer(timer)),
            () = local.inbox.wait() => Msg::Notify(local.inbox.take()),
        };
        let mut queue = VecDeque::new();
        let pid_before = state.pid();
        match msg {
            Msg::Retire => retiring = true,
            Msg::Event(e) => queue.push_back(e),
            Msg::Update(s) => {
                state.update(&s);
                svc = s;
            }
            Msg::Notify(messages) => {
                for (group, n) in messages {
                    // From a child the service has since moved on from
                    // (its group was listed when the datagram came).
                    if Some(group) != state.pid() || svc.notify.is_none() {
                        tracing::debug!(service = %svc.name, group, "notify from a former child dropped");
                        continue;
                    }
                    tracing::debug!(service = %svc.name, ?n, "notify");
                    if n.status.is_some() {
                        shell.status_text = n.status;
                    }
                    let events = [
                        (n.ready, Notify::Ready),
                        (n.watchdog, Notify::Watchdog),
                        (n.watchdog_trigger, Notify::WatchdogTrigger),
                    ];
                    for (_, e) in events.into_iter().filter(|(set, _)| *set) {
                        queue.push_back(Event::Notify(e));
                    }
                }
            }
            Msg::Measured { epoch, result } => {
                shared.metrics.observe(&svc.name, &result);
                if epoch == state.epoch() {
                    shell.last_check = Some(result);
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
            shell.status_text = None;
        }
        local.list_group(&shared.groups, state.pid().filter(|_| svc.notify.is_some()));
        shell.started_wall = Some(local.started_wall);
        let snap = Snapshot::of(&state, &shell);
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
        }
        // Removed by a reload: the task ends once nothing of its child is
        // left (a stop that outlasted the reload's wait is still seen
        // through to the exit).
        if retiring && state.pid().is_none() && state.group().is_none() {
            break;
        }
    }
    local.list_group(&shared.groups, None);
}

/// What a service task keeps beside the reducer's state.
struct TaskLocal {
    /// When the current child was spawned, wall clock.
    started_wall: SystemTime,
    timers: Timers,
    /// Where the notify socket puts this service's messages.
    inbox: Arc<Inbox>,
    /// The process group listed for this service in the notify table.
    notify_group: Option<i32>,
}

impl TaskLocal {
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

async fn perform(
    shared: &Arc<Shared>,
    svc: &Arc<Service>,
    state: &ServiceState,
    tx: &mpsc::UnboundedSender<Msg>,
    sink: &Arc<logs::LogSink>,
    local: &mut TaskLocal,
    effect: Effect,
) -> Option<Event> {
    match effect {
        Effect::Spawn { restarts } => {
            let mut command = match shared.probes.command(svc.clone(), restarts).await {
                Ok(c) => c,
                Err(e) => return Some(Event::SpawnFailed(e)),
            };
            if let (Some(notify), Some(socket)) = (svc.notify, &shared.options.notify_socket) {
                notify_env(&mut command.env, socket, notify.watchdog);
            }
            let exit_tx = tx.clone();
            let t0 = Instant::now();
            let route: reaper::Route = Box::new(move |status| {
                let _ = exit_tx.send(Msg::Event(Event::Exited {
                    status,
                    uptime: t0.elapsed(),
                }));
            });
            // A notify child is listed from just before its `execve`: it
            // may send `READY=1` before the spawn is even returned here.
            let announce = svc.notify.map(|_| {
                Box::new(shared.groups.announce(local.inbox.clone())) as Box<dyn spawn::Announce>
            });
            match shared
                .spawner
                .spawn_announced(command, route, announce)
                .await
            {
                Ok(child) => {
                    if svc.notify.is_some() {
                        // Listed by the announcement; unlisted by
                        // `list_group` once the service moves on.
                        let old = local.notify_group.replace(child.pid.as_raw());
                        if let Some(old) = old.filter(|&o| o != child.pid.as_raw()) {
                            shared.groups.remove(old, &local.inbox);
                        }
                    }
                    local.started_wall = SystemTime::now();
                    for fd in [child.stdout, child.stderr].into_iter().flatten() {
                        logs::capture(fd, sink.clone());
                    }
                    Some(Event::Spawned {
                        pid: child.pid.as_raw(),
                        start_time: child.start_time,
                    })
                }
                Err(e) => Some(Event::SpawnFailed(e.to_string())),
            }
        }
        Effect::Signal { pgid, signal } => {
            if let Err(e) = stop::signal_group(Pid::from_raw(pgid), signal) {
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
            let group = Pid::from_raw(pgid);
            if !stop::group_alive(group) {
                shared.reaper.settle();
                return Some(Event::GroupGone { epoch });
            }
            let live = stop::live_members(pgid);
            let (tx, shared) = (tx.clone(), shared.clone());
            tokio::spawn(async move {
                // Members are stopped (and SIGKILLed after the grace) by the
                // reducer; this only reports the end. It gives up when the
                // service is gone (its channel closed).
                while !stop::wait_group_gone(group, Some(tokio::time::Instant::now() + GROUP_POLL))
                    .await
                {
                    if tx.is_closed() {
                        return;
                    }
                }
                shared.reaper.settle();
                let _ = tx.send(Msg::Event(Event::GroupGone { epoch }));
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
            let grid = if is_check {
                check_grid(after.max(spread))
            } else {
                Duration::ZERO
            };
            let after = if may_jitter { jitter(after) } else { after } + random_below(spread);
            if after.is_zero() {
                // No timer round trip (tokio's timers tick in whole
                // milliseconds): a zero backoff restarts at once.
                return Some(Event::Timer(timer));
            }
            // Saturating: a loader may ask for any delay up to u64::MAX ms,
            // and `Instant + Duration` panics past the clock's range.
            let now = tokio::time::Instant::now();
            let deadline = on_grid(
                now.checked_add(after).unwrap_or_else(|| far_future(now)),
                grid,
            );
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
            shared.journal(Some(&svc.name), &event);
            None
        }
        Effect::Status(status) => {
            tracing::debug!(service = %svc.name, %status, "status");
            None
        }
    }
}

/// Stop children left alive by a previous instance (found in the journal
/// by pid + start time, or as a group whose leader is gone; see
/// [`stop::ForeignGroup::is_ours`]) before anything is spawned: the whole
/// process group, with the stop signal and grace of the service of that
/// name in `services` (SIGTERM and `grace` for a service that is gone),
/// all groups at once. Returns how many were stopped.
pub async fn recover_previous(
    journal: &mut JournalFile,
    services: &[Service],
    grace: Duration,
) -> usize {
    let mut stops = tokio::task::JoinSet::new();
    for child in journal.previous_children() {
        let (signal, grace) = services
            .iter()
            .find(|s| child.service.as_deref() == Some(s.name.as_str()))
            .map_or((Signal::SIGTERM, grace), |s| (s.stop_signal, s.stop_grace));
        stops.spawn(async move {
            let group = stop::ForeignGroup {
                pgid: child.pid,
                start_time: child.start_time,
            };
            let stopped = stop::stop_foreign_group(&group, signal, grace).await;
            (child, stopped)
        });
    }
    let mut stopped = 0;
    while let Some(done) = stops.join_next().await {
        let Ok((child, true)) = done else { continue };
        stopped += 1;
        let event = Journal::Recovered {
            pid: child.pid,
            start_time: child.start_time,
        };
        if let Err(e) = journal.record(child.service.as_deref(), &event) {
            tracing::error!("{e}");
        }
    }
    stopped
}
