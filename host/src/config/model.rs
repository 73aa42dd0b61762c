//! The resolved form of a service directory: what the rest of Vigil sees.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::identity::{EnvFileError, Identity, LogSpec};
pub use super::limits::Limits;
use super::sockets::SocketsSpec;
use crate::wasm::{CheckSource, GrantError, Grants, Phase};

/// File name of a service manifest inside a service directory.
pub const MANIFEST: &str = "service.toml";
/// File name of a service's loader component.
pub const LOADER: &str = "loader.wasm";

/// A validated service, ready to supervise.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Directory name under the checks directory.
    pub name: String,
    /// Absolute service directory.
    pub dir: PathBuf,
    /// What to run; `None` when `loader.wasm` provides the command.
    pub command: Option<Vec<String>>,
    /// Explicit environment, applied after `inherit_env`.
    pub env: Vec<(String, String)>,
    /// Names of variables copied from Vigil's own environment.
    pub inherit_env: Vec<String>,
    /// Working directory (absolute; defaults to the service directory).
    pub cwd: PathBuf,
    pub stop_signal: Signal,
    pub stop_grace: Duration,
    pub restart: RestartPolicy,
    /// Services that must be ready before this one starts, every time it
    /// starts (first start, a restart by policy, reload or operator).
    /// Includes every entry of `requires`.
    pub after: Vec<String>,
    /// Services this one cannot run without (systemd's `BindsTo=`): when
    /// one stops or its child dies, this one is stopped (cause
    /// `dependency`), and started again once it is ready.
    pub requires: Vec<String>,
    /// `notify = true`: the child speaks systemd's notify protocol
    /// (`READY=1`, `WATCHDOG=1`, `STATUS=`) on its own `NOTIFY_SOCKET`.
    pub notify: Option<NotifySpec>,
    /// What its checks may touch, resolved at load.
    pub grants: GrantSpec,
    pub checks: Checks,
    pub loader: Option<LoaderSpec>,
    /// `user`, `group`, `umask`, `env-file`, `credentials`.
    pub identity: Identity,
    /// `[log]`: how its output is kept.
    pub log: LogSpec,
    /// `autostart = false`: loaded and validated, but started only by
    /// `vigil start` (or as an `after` dependency of a service it starts).
    pub autostart: bool,
    /// An executable file as the service (config/kinds.rs): which version
    /// of it runs, so that an edit restarts it.
    pub executable: Option<super::kinds::ExecStamp>,
    /// `every = "..."`: a scheduled job (config/schedule.rs), started by
    /// its schedule rather than at load.
    pub job: Option<super::schedule::JobSpec>,
    /// `[hooks.*]`: commands or checks around each start and stop.
    pub hooks: super::hooks::Hooks,
    /// `memory-max`, `cpu-max`, `pids-max`, `limits`.
    pub limits: Limits,
    /// `[sockets.*]`, `start`, `replace-timeout`: listening sockets Vigil
    /// holds and passes to every child (see `config/sockets.rs`).
    pub sockets: SocketsSpec,
    /// `instances = N`: which replica of its service directory this is
    /// (config/replicas.rs).
    pub replica: Option<super::replicas::Replica>,
    /// The binary its `embedded:` checks or embedded loader come from, as
    /// built when loaded; `None` when it uses none.
    pub program_build: Option<super::embedded::ProgramBuild>,
}

#[cfg(test)]
impl Service {
    /// A service with every other key at its default (SIGTERM, a 3 s grace,
    /// the default restart policy, nothing else): the one literal tests
    /// build on (`Service { stop_grace, ..Service::for_test(...) }`), so
    /// that a new manifest key is added here once.
    pub(crate) fn for_test(name: &str, dir: PathBuf, argv: &[&str]) -> Service {
        Service {
            name: name.into(),
            cwd: dir.clone(),
            dir,
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
            env: vec![],
            inherit_env: vec![],
            stop_signal: Signal::SIGTERM,
            stop_grace: Duration::from_secs(3),
            restart: RestartPolicy::default(),
            after: vec![],
            requires: vec![],
            notify: None,
            grants: GrantSpec::default(),
            checks: Checks::default(),
            loader: None,
            identity: Default::default(),
            log: Default::default(),
            autostart: true,
            executable: None,
            job: None,
            hooks: Default::default(),
            limits: Default::default(),
            sockets: Default::default(),
            replica: None,
            program_build: None,
        }
    }
}

impl Service {
    /// True when `other` differs in anything that requires restarting the
    /// child (argv, environment, working directory, loader command source).
    pub fn needs_restart_for(&self, other: &Service) -> bool {
        self.command != other.command
            || self.env != other.env
            || self.inherit_env != other.inherit_env
            || self.cwd != other.cwd
            || self.loader.is_some() != other.loader.is_some()
            // The child's NOTIFY_SOCKET and WATCHDOG_USEC.
            || self.notify != other.notify
            // Who it runs as, and its environment from env files (as read
            // at load: an edited file is a changed environment).
            || self.identity != other.identity
            // A new version of an executable service's file.
            || self.executable != other.executable
            // Applied at the spawn (the cgroup's and the rlimits).
            || self.limits != other.limits
            // A socket added, removed or changed: the child's fds.
            || self.sockets.list != other.sockets.list
            // A new build of the binary that carries its checks.
            || self.program_build != other.program_build
    }

    /// The environment a child gets, each source overriding the ones
    /// before it: `inherit-env` (from Vigil's own environment), then
    /// `USER`/`LOGNAME`/`HOME` of `user`, then the `env-file`s in order
    /// (read now: a start gets the files as they are), then `env`.
    pub fn child_env(&self) -> Result<Vec<(String, String)>, EnvFileError> {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for name in &self.inherit_env {
            if let Ok(value) = std::env::var(name) {
                env.insert(name.clone(), value);
            }
        }
        env.extend(self.identity.user_env());
        for file in &self.identity.env_files {
            env.extend(file.read()?.unwrap_or_default());
        }
        for (k, v) in &self.env {
            env.insert(k.clone(), v.clone());
        }
        Ok(env.into_iter().collect())
    }
}

/// How a `notify = true` service is judged by its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifySpec {
    /// `watchdog-sec`: a `WATCHDOG=1` must arrive at least this often once
    /// the service is started, or it is restarted as a liveness failure.
    pub watchdog: Option<Duration>,
    /// `notify-timeout`: how long `READY=1` may take when no startup check
    /// bounds the start (a startup check's `startup-timeout` does then).
    pub timeout: Duration,
}

/// Default `notify-timeout`, as the default `startup-timeout`.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// When to restart a child that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    Always,
    OnFailure,
    Never,
}

/// Restart policy of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub mode: RestartMode,
    /// Delays before successive restarts; the last one repeats. Never empty.
    pub backoff: Vec<Duration>,
    /// A child up this long resets the backoff index.
    pub stable_uptime: Duration,
    pub give_up: Option<GiveUp>,
    /// Exit codes that count as a clean exit for `on-failure`.
    pub success_codes: Vec<i32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::Always,
            backoff: default_backoff(),
            stable_uptime: Duration::from_secs(60),
            give_up: None,
            success_codes: vec![0],
        }
    }
}

pub(super) fn default_backoff() -> Vec<Duration> {
    [0, 5, 15, 60]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

/// Give up (state `failed`) after more than `restarts` restarts within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp {
    pub restarts: u32,
    pub window: Duration,
}

/// What the service's checks may touch.
/// What the service's checks may touch, resolved once when the manifest is
/// loaded: the sandbox enforces [`GrantSpec::resolved`], never the text.
///
/// The text is kept beside the typed grants because equality (which
/// decides whether a reload changed a service) and display go by what the
/// operator wrote; the typed form is a function of it. Only the config
/// module builds one from text, so the two cannot drift apart.
#[derive(Debug, Clone, Default)]
pub struct GrantSpec {
    pub(super) hosts: Vec<String>,
    /// Absolute paths (relative ones are resolved against the service dir).
    pub(super) paths: Vec<PathBuf>,
    pub(super) resolved: Grants,
    /// Memory cap per check instance, bytes.
    pub memory: u64,
}

impl GrantSpec {
    /// Parse host grants and resolve path grants (which must be absolute),
    /// reporting every grant that is wrong, not only the first.
    pub fn new(
        hosts: Vec<String>,
        paths: Vec<PathBuf>,
        memory: u64,
    ) -> Result<GrantSpec, Vec<GrantError>> {
        let resolved = Grants::parse(&hosts, &paths)?;
        Ok(GrantSpec {
            hosts,
            paths,
            resolved,
            memory,
        })
    }

    /// Host grants as written.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Path grants as written, made absolute against the service directory.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The grants as the sandbox enforces them.
    pub fn resolved(&self) -> &Grants {
        &self.resolved
    }
}

impl PartialEq for GrantSpec {
    /// By the written form: the typed grants follow from it.
    fn eq(&self, other: &Self) -> bool {
        self.hosts == other.hosts && self.paths == other.paths && self.memory == other.memory
    }
}

/// One check of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    pub check: CheckSource,
    pub period: Duration,
    pub timeout: Duration,
    pub initial_delay: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    /// Startup only: how long `retry` may keep the service starting.
    pub startup_timeout: Duration,
    /// Startup only: after this many consecutive failed checks (`retry`,
    /// a trap or a timeout, one period apart) the start fails, as
    /// Kubernetes' `failureThreshold` of a startup probe; whichever of this
    /// and `startup_timeout` comes first ends it. `None` (the key absent):
    /// only the timeout does.
    pub startup_failures: Option<u32>,
    pub config: Vec<(String, String)>,
}

impl CheckSpec {
    pub(super) fn defaults(phase: Phase, check: CheckSource) -> CheckSpec {
        CheckSpec {
            check,
            period: match phase {
                Phase::Startup => Duration::from_secs(1),
                Phase::Readiness => Duration::from_secs(5),
                Phase::Liveness => Duration::from_secs(10),
            },
            timeout: Duration::from_secs(1),
            initial_delay: Duration::ZERO,
            failure_threshold: 3,
            success_threshold: 1,
            startup_timeout: Duration::from_secs(60),
            startup_failures: None,
            config: Vec::new(),
        }
    }
}

/// The checks of a service, by phase.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checks {
    pub startup: Option<CheckSpec>,
    pub readiness: Option<CheckSpec>,
    pub liveness: Option<CheckSpec>,
}

impl Checks {
    pub fn get(&self, phase: Phase) -> Option<&CheckSpec> {
        match phase {
            Phase::Startup => self.startup.as_ref(),
            Phase::Readiness => self.readiness.as_ref(),
            Phase::Liveness => self.liveness.as_ref(),
        }
    }
}

/// The service's `loader.wasm` and its `[loader.config]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderSpec {
    /// loader.wasm, or with `embedded` the binary carrying the loader.
    pub path: PathBuf,
    pub config: Vec<(String, String)>,
    /// The loader is the `loader` role embedded in the binary `path`.
    pub embedded: bool,
}

impl LoaderSpec {
    /// Where the engine loads it from.
    pub fn source(&self) -> CheckSource {
        if self.embedded {
            CheckSource::Embedded {
                binary: self.path.clone(),
                role: "loader".into(),
            }
        } else {
            CheckSource::File(self.path.clone())
        }
    }
}
