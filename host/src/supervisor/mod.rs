//! Keeping services alive: the [`Supervisor`] facade over one task per
//! service, and the modules that do the work.
//!
//! One tokio task per service ([`task`]) owns its
//! [`service::ServiceState`] and performs the effects the reducer returns:
//! spawning through the [`spawn::Spawner`] thread, signals to process
//! groups, timers, checks and loader calls through [`Probes`], journal
//! lines. Exit statuses come from the one [`reaper::Reaper`]. Dependencies
//! are propagated between tasks whenever a service's status changes. What
//! a reload and a shutdown do is planned by pure functions
//! ([`reload_plan`], [`shutdown`]) and applied here.

pub mod history;
mod hooks;
pub mod hot_reload;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod probes;
pub mod reaper;
pub mod recover;
mod reload_plan;
pub mod replicas;
mod schedule;
pub mod service;
mod shutdown;
mod snapshot;
pub mod sockets;
pub mod spawn;
pub mod state;
pub mod stop;
mod task;
mod timers;

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod process_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use crate::config::Service;
use crate::journal::{Cause, Event as Journal, Journal as JournalFile, JournalHandle};
use crate::supervisor::notify::Groups;
use crate::sync::RwLockExt;
use crate::wasm::{Phase, Verdict};
pub use schedule::{JobView, LastRun};
use service::{Action, Event, History, LoaderEvent, ServiceState, Why};
pub use snapshot::{CheckResult, Snapshot, Startup};
use state::Status;
use task::{Handle, Local, Msg};

/// In the foreground, a journal event as one terminal line beside the
/// services' own `TIME name | line` output: `TIME name * kind field=value ...`,
/// escaped ([`crate::untrusted`]; the journal itself stays exact).
fn echo_event(service: Option<&str>, event: &Journal) {
    eprintln!("{}", logs::event_echo(service, event));
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
    /// The service's recent output (the `output` capability).
    pub output: Option<Arc<crate::wasm::host::output::OutputRing>>,
}

/// Checks, loader decisions and commands: the wasm engine in production
/// ([`probes::WasmProbes`]), closures in tests.
pub trait Probes: Send + Sync + 'static {
    /// Run `service`'s check for `phase`. Never fails: problems are outcomes.
    fn check(&self, service: Arc<Service>, phase: Phase, target: ProbeTarget)
    -> BoxFuture<Verdict>;
    /// Ask the service's loader. `Err` falls back to the built-in policy.
    fn decide(
        &self,
        service: Arc<Service>,
        event: LoaderEvent,
        history: History,
    ) -> BoxFuture<Result<Action, String>>;
    /// Ask the service's loader about a step of a replace: `None` when it
    /// has no `replace-policy` export (WIT 0.1.2), so it is not asked.
    fn decide_replace(
        &self,
        service: Arc<Service>,
        event: service::ReplaceQuestion,
        history: History,
    ) -> BoxFuture<Result<Option<service::ReplaceAnswer>, String>> {
        let _ = (service, event, history);
        Box::pin(async move { Ok(None) })
    }
    /// The command to spawn: the manifest's, or the loader's `spawn`.
    fn command(
        &self,
        service: Arc<Service>,
        restarts: u32,
    ) -> BoxFuture<Result<spawn::Command, String>> {
        let _ = restarts;
        Box::pin(async move { manifest_command(&service) })
    }
    /// Run `service`'s check hook `hook` once, within `timeout`. Never
    /// fails: problems are outcomes.
    fn hook_check(
        &self,
        service: Arc<Service>,
        hook: service::HookKind,
        target: ProbeTarget,
        timeout: Duration,
    ) -> BoxFuture<Verdict> {
        let _ = (service, target, timeout);
        Box::pin(async move { Verdict::Error(format!("no wasm engine to run the {hook} hook")) })
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
    let mut command = spawn::Command {
        argv,
        env: service.child_env().map_err(|e| e.to_string())?,
        cwd: service.cwd.clone(),
        stdout: spawn::Output::Pipe,
        stderr: spawn::Output::Pipe,
        run_as: None,
        umask: None,
        cgroup_into: None,
        cgroup_procs: Vec::new(),
        rlimits: Vec::new(),
        listen: Vec::new(),
    };
    identity::apply(service, &mut command);
    Ok(command)
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
    /// Where services' `credentials` are copied for their children (see
    /// [`identity::credentials_root`]); `None`: services with credentials
    /// cannot start.
    pub credentials_dir: Option<PathBuf>,
    /// The instance's cgroup tree: each service runs in a cgroup of its
    /// own under it. `None`: process groups only.
    pub cgroups: Option<Arc<crate::cgroup::Tree>>,
}

/// What the facade and every service task share.
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
    metrics: Arc<metrics::CheckMetrics>,
    /// Who may speak on the notify socket: each `notify = true` service's
    /// current child's group, kept by the service tasks.
    groups: Arc<Groups>,
    /// Listening sockets held for the services (`[sockets.*]`).
    sockets: sockets::Sockets,
    /// Each service's last spawn journaled by previous instances, taken
    /// by a job's scheduler for `catch-up` (supervisor/schedule.rs).
    last_runs: std::sync::Mutex<BTreeMap<String, SystemTime>>,
    /// Told at the end of each reload: every job's scheduler reads its
    /// job again, so that a changed `schedule` or `every` takes effect at
    /// once, not after the due time it was sleeping until.
    jobs_changed: tokio::sync::Notify,
    /// `vigil scale` counts; held across a scale or a reload so that the
    /// two never interleave.
    targets: tokio::sync::Mutex<replicas::Targets>,
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
        let services = self.services.read_unpoisoned();
        services
            .get(name)
            .is_some_and(|h| h.tx.send(Msg::Event(event)).is_ok())
    }

    fn deps_satisfied(&self, service: &Service) -> bool {
        self.unsatisfied_deps(service).is_empty()
    }

    /// The services in `service`'s `after` list that do not satisfy it yet
    /// (what a `waiting` service waits for).
    /// A replicated dependency (`after = ["web"]`) waits for every one of
    /// its replicas, each listed.
    fn unsatisfied_deps(&self, service: &Service) -> Vec<String> {
        let services = self.services.read_unpoisoned();
        let mut waiting = Vec::new();
        for d in &service.after {
            if let Some(h) = services.get(d) {
                if !h.snapshot.borrow().satisfies_after {
                    waiting.push(d.clone());
                }
                continue;
            }
            let replicas: Vec<&Handle> = services
                .values()
                .filter(|h| h.service.answers_to(d))
                .collect();
            if replicas.is_empty() {
                waiting.push(d.clone());
            }
            for h in replicas {
                if !h.snapshot.borrow().satisfies_after {
                    waiting.push(h.service.name.clone());
                }
            }
        }
        waiting
    }

    /// `name`'s child is going or gone: stop every service that requires
    /// it (each starts again once its dependencies are ready).
    /// A replica stands for its group too (`requires = ["web"]`) while it
    /// is in the table: not once retired by a scale-down, the group going
    /// on without it.
    fn dependency_gone(&self, name: &str) {
        let dependents: Vec<String> = {
            let services = self.services.read_unpoisoned();
            let Some(gone) = services.get(name).map(|h| h.service.clone()) else {
                return;
            };
            services
                .values()
                .filter(|h| h.service.requires.iter().any(|r| gone.answers_to(r)))
                .map(|h| h.service.name.clone())
                .collect()
        };
        for d in dependents {
            self.send(&d, Event::DependencyGone(name.to_string()));
        }
    }

    /// `name` changed: tell every service waiting on it.
    /// `name` may be a replica (its group's dependents are told) or one
    /// just retired (no longer in the table).
    fn notify_dependents(&self, name: &str) {
        let group = crate::config::replicas::split_name(name).map(|(parent, _)| parent);
        let dependents: Vec<Arc<Service>> = {
            let services = self.services.read_unpoisoned();
            services
                .values()
                .filter(|h| {
                    h.service
                        .after
                        .iter()
                        .any(|a| a == name || Some(a.as_str()) == group)
                })
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
        let last_runs = std::sync::Mutex::new(journal.last_spawns());
        let journal = journal.into_writer().map_err(SupervisorError::Journal)?;
        let orphan_journal = journal.clone();
        reaper
            .registry()
            .set_orphan_handler(Box::new(move |pid, status| {
                let event = Journal::OrphanReaped {
                    pid: pid.as_raw(),
                    code: status.code(),
                    signal: status.signal().map(service::signal_name),
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
                sockets: sockets::Sockets::default(),
                last_runs,
                jobs_changed: tokio::sync::Notify::new(),
                targets: tokio::sync::Mutex::default(),
            }),
        })
    }

    /// The instance's cgroup tree, when services run in cgroups.
    pub fn cgroups(&self) -> Option<&Arc<crate::cgroup::Tree>> {
        self.shared.options.cgroups.as_ref()
    }

    /// Record an event in the journal.
    pub fn journal(&self, service: Option<&str>, event: &Journal) {
        self.shared.journal(service, event);
    }

    /// Add services and start them (each once its `after` list is satisfied).
    pub fn start(&self, services: Vec<Service>) {
        let mut added = Vec::new();
        {
            let mut map = self.shared.services.write_unpoisoned();
            for svc in services {
                if map.contains_key(&svc.name) {
                    continue;
                }
                let svc = Arc::new(svc);
                let (tx, rx) = mpsc::unbounded_channel();
                let state = ServiceState::new(&svc);
                let mut local = Local::new();
                local.held = !svc.autostart;
                let (snap_tx, snap_rx) = watch::channel(Snapshot::of(&state, &local));
                map.insert(
                    svc.name.clone(),
                    Handle {
                        service: svc.clone(),
                        tx: tx.clone(),
                        snapshot: snap_rx,
                    },
                );
                added.push((svc, state, local, tx, rx, snap_tx));
            }
        }
        for (svc, state, local, tx, rx, snap_tx) in added {
            let ready = self.shared.deps_satisfied(&svc);
            let _ = tx.send(Msg::Event(Event::Dependencies(ready)));
            if svc.job.is_some() {
                // Its schedule starts it (supervisor/schedule.rs).
                tokio::spawn(schedule::run(self.clone(), svc.name.clone(), tx.clone()));
            } else if svc.autostart {
                let start = match svc.sockets.start {
                    crate::config::StartMode::Immediate => Msg::Event(Event::Start),
                    crate::config::StartMode::OnDemand => Msg::StartOnDemand,
                };
                let _ = tx.send(start);
            }
            tokio::spawn(task::service_task(
                self.shared.clone(),
                svc,
                state,
                local,
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

    /// `vigil start NAME` of a service: start first every service of its
    /// `after` list, transitively, that `autostart = false` holds stopped
    /// (never started yet). A dependency an operator stopped stays
    /// stopped, as before. Returns the services started.
    pub fn start_held_dependencies(&self, name: &str) -> Vec<String> {
        let mut started = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            let Some(svc) = self.service(&n) else {
                continue;
            };
            // A replicated dependency (`after = ["web"]`): each replica.
            let deps = svc.after.iter().flat_map(|d| self.members(d));
            for dep in deps.map(|d| d.name.clone()) {
                if !seen.insert(dep.clone()) {
                    continue;
                }
                let held = self
                    .watcher(&dep)
                    .is_some_and(|rx| rx.borrow().note.is_some());
                if held && self.send(&dep, Event::Start) {
                    started.push(dep.clone());
                }
                todo.push(dep);
            }
        }
        started
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
        let services = self.shared.services.read_unpoisoned();
        services
            .values()
            .map(|h| (h.service.clone(), h.snapshot.borrow().clone()))
            .collect()
    }

    /// Whether Vigil is up: every service with a startup gate (a startup
    /// check, or `notify = true` waiting for `READY=1`) has passed it.
    /// `systemd`'s `READY=1` and `vigil run --daemon` wait for this.
    pub fn startup(&self) -> Startup {
        let services = self.services();
        Startup::tally(services.iter().map(|(svc, snap)| {
            // A service held by `autostart = false` does not hold vigil's
            // own start up.
            let gated = (svc.checks.startup.is_some() || svc.notify.is_some())
                && svc.autostart
                && svc.job.is_none();
            (svc.name.as_str(), gated, snap.status)
        }))
    }

    /// Send `event` to `name` and wait until the service has handled it
    /// and published its snapshot. False when there is no such service.
    pub async fn send_and_sync(&self, name: &str, event: Event) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = {
            let services = self.shared.services.read_unpoisoned();
            services.get(name).is_some_and(|h| {
                h.tx.send(Msg::Event(event)).is_ok() && h.tx.send(Msg::Sync(done)).is_ok()
            })
        };
        sent && wait.await.is_ok()
    }

    /// The definition `name` runs with.
    pub fn service(&self, name: &str) -> Option<Arc<Service>> {
        let services = self.shared.services.read_unpoisoned();
        services.get(name).map(|h| h.service.clone())
    }

    /// Every journal line written from now on (`vigil journal -f`).
    pub fn subscribe_journal(&self) -> tokio::sync::broadcast::Receiver<crate::journal::Line> {
        self.shared.journal.subscribe()
    }

    /// Check durations and outcomes, for `/metrics`.
    pub fn check_metrics(&self) -> &Arc<metrics::CheckMetrics> {
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
        let services = self.shared.services.read_unpoisoned();
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
    ///
    /// A group `vigil scale` scaled keeps its count unless the manifest's
    /// `instances` changed (see [`replicas::retarget`]).
    pub async fn reload(&self, services: Vec<Service>, touched: Option<&BTreeSet<String>>) {
        let mut targets = self.shared.targets.lock().await;
        let (services, problems) = replicas::retarget(&mut targets, services);
        for p in problems {
            let service = p
                .path
                .parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string);
            let message = format!("vigil scale's count cannot be kept: {p}");
            self.journal(service.as_deref(), &Journal::Warning { message });
        }
        let current: BTreeMap<String, (Arc<Service>, Status)> = {
            let map = self.shared.services.read_unpoisoned();
            map.iter()
                .map(|(k, h)| (k.clone(), (h.service.clone(), h.snapshot.borrow().status)))
                .collect()
        };
        let mut new = Vec::new();
        for action in reload_plan::plan(&current, services, touched) {
            if let Some(change) = action.change() {
                self.journal(Some(action.name()), &Journal::Reloaded { change });
            }
            match action {
                reload_plan::Action::Add(svc) => new.push(svc),
                reload_plan::Action::Forget { name, .. } => self.shared.probes.forget(&name),
                reload_plan::Action::Update {
                    service,
                    restart,
                    command_changed,
                } => {
                    self.shared.probes.forget(&service.name);
                    // Judged on the new `after` list (before the write lock:
                    // this reads the others' snapshots): a service waiting
                    // for a dependency the edit removed starts now.
                    let ready = self.shared.deps_satisfied(&service);
                    let svc = Arc::new(service);
                    let mut map = self.shared.services.write_unpoisoned();
                    if let Some(h) = map.get_mut(&svc.name) {
                        if svc.job.is_some() && h.service.job.is_none() {
                            // Became a job: its schedule starts from now.
                            let tx = h.tx.clone();
                            tokio::spawn(schedule::run(self.clone(), svc.name.clone(), tx));
                        }
                        // A service with sockets whose sockets stay as they
                        // are is replaced (new child beside the old one),
                        // not restarted: no connection waits for it.
                        let replace = !svc.sockets.list.is_empty()
                            && h.service.sockets.list == svc.sockets.list;
                        h.service = svc.clone();
                        let _ = h.tx.send(Msg::Update(svc.clone()));
                        let _ = h.tx.send(Msg::Event(Event::Dependencies(ready)));
                        if restart {
                            let what = command_changed.unwrap_or_default();
                            let why = Why::new(Cause::Reload, what);
                            let event = if replace {
                                Event::Replace(why)
                            } else {
                                Event::Restart(why)
                            };
                            let _ = h.tx.send(Msg::Event(event));
                        }
                    }
                }
                reload_plan::Action::Remove { name }
                    if crate::config::replicas::split_name(&name).is_some()
                        && current.get(&name).is_some_and(|(s, _)| s.replica.is_some()) =>
                {
                    // A replica the manifest's `instances` no longer asks for.
                    let why = Why::new(Cause::Removed, "removed by a reload");
                    self.retire(&[name], why).await;
                }
                reload_plan::Action::Remove { name } => {
                    let why = Why::new(Cause::Removed, "removed by a reload");
                    self.stop_and_wait(&name, Duration::from_secs(60), why)
                        .await;
                    let handle = self.shared.services.write_unpoisoned().remove(&name);
                    if let Some(handle) = handle {
                        let _ = handle.tx.send(Msg::Retire);
                    }
                    self.shared.sockets.release(&name);
                    self.shared.probes.forget(&name);
                }
            }
        }
        self.start(new);
        self.shared.jobs_changed.notify_waiters();
        drop(targets);
    }

    async fn stop_and_wait(&self, name: &str, timeout: Duration, why: Why) {
        if self.send(name, Event::Stop(why)) {
            self.wait_for(name, timeout, |s| s.status.is_down()).await;
        }
    }

    /// Stop every service, dependents before what they depend on, each
    /// within its grace. Journals `quit`.
    pub async fn shutdown(&self) {
        let services: Vec<Arc<Service>> = {
            let map = self.shared.services.read_unpoisoned();
            map.values().map(|h| h.service.clone()).collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for stop in shutdown::plan(&services) {
            let me = self.clone();
            set.spawn(async move {
                let deadline = tokio::time::Instant::now() + stop.wait_dependents;
                for d in &stop.dependents {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    me.wait_for(d, left, |s| s.status.is_down()).await;
                }
                me.stop_and_wait(&stop.name, stop.limit, Why::shutdown())
                    .await;
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
                let cgroup = s.cgroup.as_deref();
                let _ = stop::signal_service(Pid::from_raw(pgid), cgroup, Signal::SIGKILL);
            }
        }
    }
}
#[cfg(test)]
mod fuzz_tests;
