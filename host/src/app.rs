//! `vigil run --checks DIR` as a library call: validate, lock the journal,
//! stop what a previous instance left behind, start every service, then
//! serve signals until a clean shutdown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cgroup;
use crate::config::{Loaded, Problem, Service, ValidationReport, load_dir};
use crate::control::{self, ServeOptions, Servers};
use crate::daemon::sd_notify::{self, Notifier, NotifyError};
use crate::journal::{self, Event as Journal, Journal as JournalFile, JournalError};
use crate::signals::{Request, Signals};
use crate::supervisor::hot_reload::{Changes, Watcher};
use crate::supervisor::identity;
use crate::supervisor::notify::{self as notify_server, NotifyServer, NotifyServerError};
use crate::supervisor::recover::{self, recover_previous};
use crate::supervisor::{Options, Supervisor, SupervisorError, probes::WasmProbes};
use crate::wasm::{CheckSource, Compiled, Engine, LoadError, Phase, Progress, compile_all};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub checks_dir: PathBuf,
    /// Journal, logs; see [`default_state_dir`].
    pub state_dir: PathBuf,
    /// Foreground: echo `name | line` and transitions.
    pub echo: bool,
    /// The control socket; `None`: `control.sock` in the state directory.
    pub socket: Option<PathBuf>,
    /// The read-only `/livez` `/readyz` `/metrics` listener (`--http`).
    pub http: Option<std::net::SocketAddr>,
    /// The read-only `grpc.health.v1` listener (`--grpc`).
    pub grpc: Option<std::net::SocketAddr>,
    /// The bearer token that enables the status page's actions.
    pub http_token: Option<String>,
    /// Told while components are compiled before the first spawn (see
    /// [`compile_before_start`]); `None`: nobody is watching.
    pub compile_progress: Option<Arc<dyn Progress>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Invalid(ValidationReport),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    NotifySocket(#[from] NotifyServerError),
    #[error(transparent)]
    SystemdNotify(#[from] NotifyError),
    #[error(transparent)]
    Control(#[from] crate::control::server::ServerError),
}

/// `$XDG_STATE_HOME/vigil`, else `~/.local/state/vigil`, else `/var/lib/vigil`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("vigil");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/vigil");
    }
    PathBuf::from("/var/lib/vigil")
}

/// Run until SIGTERM/SIGINT and a clean shutdown (a second signal kills
/// every child at once). SIGHUP rescans the checks directory; an invalid
/// directory keeps the running version and journals a warning.
pub async fn run(options: RunOptions, engine: Engine) -> Result<(), RunError> {
    let started_at = std::time::SystemTime::now();
    let socket = options
        .socket
        .clone()
        .unwrap_or_else(|| control::socket_path(&options.state_dir));
    // Before anything is touched: a state directory too deep for a
    // socket path is a usage problem.
    control::server::check_path(&socket)?;
    let mut signals = Signals::new().map_err(RunError::Signals)?;
    let loaded = load_dir(&options.checks_dir).map_err(RunError::Invalid)?;
    let services = loaded.services;
    let mut journal = JournalFile::open(&options.state_dir, journal::Options::default())?;
    recover_previous(&mut journal, &services, recover::GONE_SERVICE_GRACE).await;
    let cgroups = open_cgroups(&options.state_dir, &mut journal);
    if let Some(tree) = &cgroups {
        recover::recover_cgroups(&mut journal, &services, recover::GONE_SERVICE_GRACE, tree).await;
    }
    // Before anything is spawned, so that the first check is on time. A
    // shutdown signal meanwhile ends the run: nothing was started.
    let compiler = Compiler {
        engine: engine.clone(),
        progress: options
            .compile_progress
            .clone()
            .unwrap_or_else(|| Arc::new(Silent)),
    };
    if !compiler.compile(&services, &mut signals).await {
        return Ok(());
    }
    // The notify socket of `notify = true` services (bound even without
    // one: a reload may add one).
    let notify_server = match NotifyServer::bind(&options.state_dir.join(notify_server::FILE)) {
        Ok(server) => Some(server),
        // Only fatal when a service needs it now.
        Err(e) if !services.iter().any(|s| s.notify.is_some()) => {
            let message = format!("{e}; notify = true services cannot be run");
            if let Err(e) = journal.record(None, &Journal::Warning { message }) {
                tracing::error!("{e}");
            }
            None
        }
        Err(e) => return Err(e.into()),
    };
    let systemd = Notifier::from_env().transpose()?.map(std::sync::Arc::new);
    // What a crashed run left is removed before any service starts.
    let credentials_dir = identity::credentials_root(&options.state_dir);
    identity::remove_all_credentials(&credentials_dir);
    let sup = Supervisor::new(
        journal,
        WasmProbes::new(engine.clone()),
        Options {
            log_dir: Some(options.state_dir.join("logs")),
            echo: options.echo,
            notify_socket: notify_server.as_ref().map(|n| n.path().to_path_buf()),
            credentials_dir: Some(credentials_dir.clone()),
            cgroups: cgroups.clone(),
        },
    )?;
    journal_warnings(&sup, &loaded.warnings, None);
    // Received on a thread of its own, which stops when this is dropped.
    let _notify_receiver = notify_server
        .map(|server| server.serve(sup.notify_groups()))
        .transpose()?;
    // Serve before the first spawn: `run --daemon`'s parent polls the
    // socket while services start.
    let (requests_tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let serve = ServeOptions {
        socket,
        http: options.http,
        grpc: options.grpc,
        state_dir: options.state_dir.clone(),
        started_at,
        http_token: options.http_token.clone(),
    };
    let servers = match Servers::start(serve, &sup, &engine, requests_tx).await {
        Ok(s) => s,
        Err(e) => {
            sup.journal(
                None,
                &Journal::Warning {
                    message: format!("not starting: {e}"),
                },
            );
            sup.shutdown().await;
            return Err(e.into());
        }
    };
    if let Some(addr) = servers.http_addr {
        tracing::info!("serving the status page, /livez /readyz /metrics on http://{addr}");
    }
    if let Some(addr) = servers.grpc_addr {
        tracing::info!("serving grpc.health.v1 on {addr}");
    }
    sup.start(services);
    // After `start`: every service is known, so "up" cannot come early.
    let _systemd_task = systemd.clone().map(|n| {
        AbortOnDrop(tokio::spawn(sd_notify::report(
            sup.clone(),
            n,
            sd_notify::watchdog_interval(),
        )))
    });
    let mut watcher = match Watcher::new(&options.checks_dir, RELOAD_QUIET) {
        Ok(w) => Some(w),
        Err(e) => {
            sup.journal(
                None,
                &Journal::Warning {
                    message: format!("hot reload disabled (inotify: {e}); SIGHUP still reloads"),
                },
            );
            None
        }
    };
    loop {
        tokio::select! {
            request = signals.recv() => match request {
                Request::Reload => {
                    match reload(&sup, &options.checks_dir, None, &compiler, &mut signals).await {
                        Reloaded::Applied(_) => {}
                        Reloaded::Interrupted => break,
                    }
                }
                Request::Shutdown => break,
            },
            changes = next_change(&mut watcher) => match changes {
                Some(changes) => {
                    let touched = Some(&changes.services);
                    match reload(&sup, &options.checks_dir, touched, &compiler, &mut signals).await {
                        Reloaded::Applied(_) => {}
                        Reloaded::Interrupted => break,
                    }
                }
                None => watcher = None,
            },
            Some(request) = requests.recv() => match request {
                control::Request::Reload(reply) => {
                    match reload(&sup, &options.checks_dir, None, &compiler, &mut signals).await {
                        Reloaded::Applied(result) => {
                            let _ = reply.send(result);
                        }
                        Reloaded::Interrupted => {
                            let _ = reply.send(Err("vigil is shutting down".into()));
                            break;
                        }
                    }
                }
                control::Request::Shutdown => break,
                control::Request::Ping(reply) => {
                    let _ = reply.send(());
                }
            },
        }
    }
    if let Some(n) = &systemd {
        let _ = n.send("STOPPING=1\nSTATUS=stopping every service");
    }
    servers.begin_shutdown();
    let shutdown = sup.shutdown();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            request = signals.recv() => if request == Request::Shutdown {
                sup.journal(None, &Journal::Warning { message: "second shutdown signal: killing every child".into() });
                sup.kill_all();
            },
            Some(request) = requests.recv() => match request {
                control::Request::Reload(reply) => {
                    let _ = reply.send(Err("vigil is shutting down".into()));
                }
                control::Request::Shutdown => {}
                control::Request::Ping(reply) => {
                    let _ = reply.send(());
                }
            },
        }
    }
    servers.stop(SERVER_GRACE).await;
    identity::remove_all_credentials(&credentials_dir);
    if let Some(tree) = &cgroups {
        tree.remove();
    }
    Ok(())
}

/// The instance's cgroup tree, or `None` (process groups only) with one
/// journal warning saying why.
fn open_cgroups(state_dir: &Path, journal: &mut JournalFile) -> Option<Arc<cgroup::Tree>> {
    let opened = if cgroup::switched_off() {
        Err(cgroup::Unavailable::Off)
    } else {
        let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        cgroup::Tree::create(&cgroup::detect(), &cgroup::instance_name(&state_dir))
    };
    match opened {
        Ok(tree) => {
            tracing::info!(
                "services run in cgroups under {} ({})",
                tree.path().display(),
                tree.shape().as_str()
            );
            Some(Arc::new(tree))
        }
        Err(e) => {
            let message = format!(
                "cgroups unavailable ({e}): services are tracked by process group, \
                 memory-max, cpu-max and pids-max are not enforced"
            );
            if let Err(e) = journal.record(None, &Journal::Warning { message }) {
                tracing::error!("{e}");
            }
            None
        }
    }
}

/// Compiles checks and loaders into the cache ahead of their first call:
/// a Python check takes 15-26 s of Cranelift on a cold cache, which would
/// otherwise fall into its first check (running out a startup timeout, and
/// showing as that check's latency). Later loads find it in the cache in
/// milliseconds. A component that does not load is left to its first
/// check, which reports it as it always has.
struct Compiler {
    engine: Engine,
    progress: Arc<dyn Progress>,
}

impl Compiler {
    /// Compiles what `services` name; `false` when a shutdown signal came
    /// first (what is being compiled finishes in the background).
    async fn compile<'a>(
        &self,
        services: impl IntoIterator<Item = &'a Service>,
        signals: &mut Signals,
    ) -> bool {
        let sources: Vec<CheckSource> = services.into_iter().flat_map(sources_of).collect();
        let compiling = compile_all(&self.engine, sources, self.progress.clone());
        tokio::pin!(compiling);
        loop {
            tokio::select! {
                results = &mut compiling => {
                    for err in results.into_iter().filter_map(Result::err) {
                        tracing::debug!("not compiled ahead: {err}");
                    }
                    return true;
                }
                request = signals.recv() => if request == Request::Shutdown {
                    return false;
                },
            }
        }
    }
}

/// The checks and the loader `service` names, as the engine loads them.
pub fn sources_of(service: &Service) -> impl Iterator<Item = CheckSource> + '_ {
    let checks = Phase::ALL
        .into_iter()
        .filter_map(|phase| service.checks.get(phase))
        .map(|spec| spec.check.clone());
    let loader = service.loader.iter().map(|spec| spec.source());
    checks.chain(loader)
}

/// A manifest's warnings (a program not installed yet: the service runs
/// and its spawn fails by its restart policy), each filed under its
/// service so that `vigil journal NAME` shows it; on a reload, only those
/// of the services whose files changed (`touched`, `None`: all).
fn journal_warnings(sup: &Supervisor, warnings: &[Problem], touched: Option<&BTreeSet<String>>) {
    for warning in warnings {
        let service = warning
            .path
            .parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str());
        if service.is_some_and(|s| touched.is_some_and(|t| !t.contains(s))) {
            continue;
        }
        let message = warning.to_string();
        sup.journal(service, &Journal::Warning { message });
    }
}

/// Progress nobody watches.
#[derive(Debug)]
struct Silent;

impl Progress for Silent {
    fn compiling(&self, _: &CheckSource, _: usize) {}
    fn done(&self, _: &CheckSource, _: &Result<Compiled, LoadError>) {}
}

/// Aborts a background task when the run ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long in-flight control requests may take once vigil is done.
const SERVER_GRACE: Duration = Duration::from_secs(5);

/// Quiet period of the reload debounce.
pub const RELOAD_QUIET: Duration = Duration::from_millis(300);

async fn next_change(watcher: &mut Option<Watcher>) -> Option<Changes> {
    match watcher {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// What a reload came to.
enum Reloaded {
    /// Applied (`Ok`), or refused with the reason, the running version kept.
    Applied(Result<(), String>),
    /// A shutdown signal came while the new checks were compiling; nothing
    /// was applied.
    Interrupted,
}

/// Rescan `dir` and apply it, or keep the running version (and say why).
/// `touched`: services whose files changed (`None`: all). Their checks and
/// loaders are compiled first, so that a changed Python check is not
/// compiled inside its first call.
async fn reload(
    sup: &Supervisor,
    dir: &Path,
    touched: Option<&BTreeSet<String>>,
    compiler: &Compiler,
    signals: &mut Signals,
) -> Reloaded {
    match load_dir(dir) {
        Ok(Loaded { services, warnings }) => {
            journal_warnings(sup, &warnings, touched);
            let changed = services
                .iter()
                .filter(|s| touched.is_none_or(|t| t.contains(s.group())));
            if !compiler.compile(changed, signals).await {
                return Reloaded::Interrupted;
            }
            sup.reload(services, touched).await;
            Reloaded::Applied(Ok(()))
        }
        Err(report) => {
            // Filed under each service whose files are wrong, so that
            // `vigil journal NAME` shows them.
            crate::supervisor::hot_reload::journal_refusal(sup, dir, &report);
            Reloaded::Applied(Err(format!(
                "reload refused, keeping the running version: {report}"
            )))
        }
    }
}
