//! Raw form -> [`Service`]: every value checked, one function per manifest section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::checks::resolve_checks;
use super::identity::{RawIdentity, resolve_identity, resolve_log};
use super::model::{
    DEFAULT_NOTIFY_TIMEOUT, GiveUp, GrantSpec, LOADER, LoaderSpec, NotifySpec, RestartMode,
    RestartPolicy, Service,
};
use super::problems::{Collector, did_you_mean};
use super::raw::{RawGiveUp, RawGrants, RawLoader, RawService};
use super::schedule::{RawJob, resolve_job};
use crate::units::{parse_duration, parse_size};
use crate::wasm::{CheckSource, GrantError, Grants, Phase};

/// Resolve one manifest. Returns a service even when `c` collected
/// problems (broken fields take their defaults), so that cross-service
/// checks can still look at its `after` list.
pub(super) fn resolve(
    name: &str,
    dir: &Path,
    raw: RawService,
    has_loader: bool,
    embedded_loader: Option<&Path>,
    c: &mut Collector<'_>,
) -> Service {
    let has_loader = has_loader || embedded_loader.is_some();
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let RawService {
        command,
        shell,
        env,
        inherit_env,
        cwd,
        stop_signal,
        stop_grace,
        restart,
        backoff,
        stable_uptime,
        give_up,
        success_codes,
        after,
        requires,
        notify,
        watchdog_sec,
        notify_timeout,
        grants,
        checks,
        loader,
        user,
        group,
        umask,
        env_file,
        credentials,
        log,
        autostart,
        every,
        schedule,
        timezone,
        catch_up,
        overlap,
        timeout,
        hooks,
        memory_max,
        cpu_max,
        pids_max,
        limits,
        sockets,
        start,
        replace_timeout,
        // Taken by `replicas::take` before (the replicas are made after).
        instances: _,
        sockets_order,
    } = raw;
    let restart_written = restart.clone();

    // cwd first: relative commands resolve against it.
    let cwd = resolve_cwd(&dir, cwd, c);
    let shell_set = shell.is_some();
    let command = resolve_command(command, shell, has_loader, &cwd, c);
    // The binary `embedded:` checks come from: the command's program (a
    // `shell` command's is /bin/sh), or the one carrying the loader.
    let program = match (&command, embedded_loader) {
        (_, Some(binary)) => Some(binary.to_path_buf()),
        (Some(argv), None) if !shell_set => argv
            .first()
            .and_then(|p| super::embedded::program_path(p, &cwd)),
        _ => None,
    };
    let (env, inherit_env) = resolve_env(env, inherit_env, c);
    let (stop_signal, stop_grace) = resolve_stop(stop_signal, stop_grace, c);
    let mut restart = resolve_restart(restart, backoff, stable_uptime, give_up, success_codes, c);
    let job = resolve_job(
        RawJob {
            every,
            schedule,
            timezone,
            overlap,
            timeout,
            catch_up,
        },
        restart_written.as_deref(),
        &mut restart,
        c,
    );
    let requires = resolve_after(name, "requires", requires, c);
    let mut after = resolve_after(name, "after", after, c);
    // What a service requires it also starts after.
    for r in &requires {
        if !after.contains(r) {
            after.push(r.clone());
        }
    }
    let grants = resolve_grants(&dir, grants, c);
    let checks = resolve_checks(&dir, checks, program.as_deref(), shell_set, c);
    let hooks = super::hooks::resolve_hooks(&dir, &cwd, hooks, c);
    let loader = resolve_loader(&dir, has_loader, embedded_loader, loader, c);
    let uses_embedded = embedded_loader.is_some()
        || Phase::ALL.into_iter().any(|phase| {
            checks
                .get(phase)
                .is_some_and(|spec| matches!(spec.check, CheckSource::Embedded { .. }))
        });
    let program_build = program
        .as_deref()
        .filter(|_| uses_embedded)
        .map(super::embedded::ProgramBuild::of);
    let notify = resolve_notify(&notify, &watchdog_sec, &notify_timeout, c);
    let identity = resolve_identity(
        &dir,
        RawIdentity {
            user,
            group,
            umask,
            env_file,
            credentials,
        },
        c,
    );
    let log = resolve_log(log, c);
    let limits = super::limits::resolve_limits(memory_max, cpu_max, pids_max, limits, c);
    let sockets =
        super::sockets::resolve_sockets(&dir, sockets, &sockets_order, start, replace_timeout, c);

    Service {
        name: name.to_string(),
        cwd,
        command,
        env,
        inherit_env,
        stop_signal,
        stop_grace,
        restart,
        after,
        requires,
        notify,
        grants,
        checks,
        loader,
        identity,
        log,
        autostart: autostart.unwrap_or(true),
        executable: None,
        job,
        hooks,
        limits,
        sockets,
        replica: None,
        program_build,
        dir,
    }
}

/// `cwd`, relative to the service directory (its default).
fn resolve_cwd(dir: &Path, cwd: Option<String>, c: &mut Collector<'_>) -> PathBuf {
    match cwd {
        None => dir.to_path_buf(),
        Some(s) => {
            let p = dir.join(s);
            if !p.is_dir() {
                c.push(
                    "cwd",
                    format!("`{}` is not a directory", p.display()),
                    "create it or fix the path (relative paths start at the service directory)",
                );
            }
            p
        }
    }
}

/// `command` or `shell`, or neither when loader.wasm gives the command.
fn resolve_command(
    command: Option<Vec<String>>,
    shell: Option<String>,
    has_loader: bool,
    cwd: &Path,
    c: &mut Collector<'_>,
) -> Option<Vec<String>> {
    match (command, shell, has_loader) {
        (Some(_), Some(_), _) => {
            c.push(
                "command",
                "both `command` and `shell` are set",
                "keep one: `command` is an argv list, `shell` a sh -c string",
            );
            None
        }
        (Some(argv), None, loader) => {
            if loader {
                c.push(
                    "command",
                    "the command of a service with loader.wasm comes from the loader's `spawn`",
                    "remove `command` or loader.wasm",
                );
            }
            if argv.is_empty() || argv[0].is_empty() {
                c.push(
                    "command",
                    "empty command",
                    "give the program and its arguments, e.g. [\"sleep\", \"100\"]",
                );
            } else {
                check_program(&argv[0], cwd, c);
            }
            Some(argv)
        }
        (None, Some(script), loader) => {
            if loader {
                c.push(
                    "shell",
                    "the command of a service with loader.wasm comes from the loader's `spawn`",
                    "remove `shell` or loader.wasm",
                );
            }
            if script.trim().is_empty() {
                c.push(
                    "shell",
                    "empty shell command",
                    "write the command, or use `command = [...]`",
                );
            }
            Some(vec!["/bin/sh".into(), "-c".into(), script])
        }
        (None, None, false) => {
            c.push(
                "command",
                "no command",
                "add `command = [\"program\", \"arg\"]` (or `shell = \"...\"`, or a loader.wasm)",
            );
            None
        }
        (None, None, true) => None,
    }
}

/// `env` and `inherit-env`.
fn resolve_env(
    raw_env: Option<BTreeMap<String, String>>,
    inherit_env: Option<Vec<String>>,
    c: &mut Collector<'_>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in raw_env.unwrap_or_default() {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            c.push(
                format!("env.{k}"),
                "invalid environment variable",
                "names must be non-empty without `=`; no NUL bytes",
            );
        }
        env.push((k, v));
    }
    let inherit_env = inherit_env.unwrap_or_default();
    for k in &inherit_env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            c.push(
                "inherit-env",
                format!("`{k}` is not a variable name"),
                "list names only, e.g. [\"PATH\", \"HOME\"]",
            );
        }
    }
    (env, inherit_env)
}

/// `stop-signal` and `stop-grace`.
fn resolve_stop(
    raw_signal: Option<String>,
    grace: Option<String>,
    c: &mut Collector<'_>,
) -> (Signal, Duration) {
    let stop_signal = match raw_signal.as_deref() {
        None => Signal::SIGTERM,
        Some(s) => parse_signal(s).unwrap_or_else(|e| {
            c.push(
                "stop-signal",
                e,
                "use a name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"",
            );
            Signal::SIGTERM
        }),
    };
    if matches!(stop_signal, Signal::SIGKILL | Signal::SIGSTOP) && raw_signal.is_some() {
        // SIGKILL is allowed (no grace) but SIGSTOP would never stop anything.
        if stop_signal == Signal::SIGSTOP {
            c.push(
                "stop-signal",
                "SIGSTOP does not stop a service",
                "use SIGTERM (the default) or SIGKILL",
            );
        }
    }
    let stop_grace = duration_field(c, "stop-grace", grace.as_deref(), Duration::from_secs(3));
    (stop_signal, stop_grace)
}

/// `restart`, `backoff`, `stable-uptime`, `give-up` and `success-codes`.
fn resolve_restart(
    restart: Option<String>,
    backoff: Option<Vec<String>>,
    stable_uptime: Option<String>,
    give_up: Option<RawGiveUp>,
    success_codes: Option<Vec<i32>>,
    c: &mut Collector<'_>,
) -> RestartPolicy {
    let defaults = RestartPolicy::default();
    let mode = match restart.as_deref() {
        None | Some("always") => RestartMode::Always,
        Some("on-failure") => RestartMode::OnFailure,
        Some("never") => RestartMode::Never,
        Some(other) => {
            let fix = match did_you_mean(other, &["always", "on-failure", "never"]) {
                Some(m) => format!("did you mean \"{m}\"?"),
                None => "use \"always\", \"on-failure\" or \"never\"".into(),
            };
            c.push("restart", format!("unknown restart policy `{other}`"), fix);
            RestartMode::Always
        }
    };
    let backoff = match backoff {
        None => defaults.backoff.clone(),
        Some(list) if list.is_empty() => {
            c.push(
                "backoff",
                "empty backoff list",
                "give at least one delay, e.g. [\"0s\", \"5s\"]",
            );
            defaults.backoff.clone()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| duration_field(c, &format!("backoff[{i}]"), Some(s), Duration::ZERO))
            .collect(),
    };
    let stable_uptime = duration_field(
        c,
        "stable-uptime",
        stable_uptime.as_deref(),
        defaults.stable_uptime,
    );
    let give_up = give_up.map(|g| {
        let restarts = g.restarts.unwrap_or_else(|| {
            c.push(
                "give-up.restarts",
                "missing",
                "add `restarts = N` (give up after N restarts within the window)",
            );
            0
        });
        let window = match g.window.as_deref() {
            None => {
                c.push("give-up.window", "missing", "add `window = \"60s\"`");
                Duration::from_secs(60)
            }
            Some(s) => duration_field(c, "give-up.window", Some(s), Duration::from_secs(60)),
        };
        if window.is_zero() {
            c.push(
                "give-up.window",
                "zero window",
                "use a positive duration, e.g. \"60s\"",
            );
        }
        GiveUp { restarts, window }
    });
    let success_codes = success_codes.unwrap_or_else(|| vec![0]);
    for code in &success_codes {
        if !(0..=255).contains(code) {
            c.push(
                "success-codes",
                format!("{code} is not an exit code"),
                "exit codes are 0..=255",
            );
        }
    }
    RestartPolicy {
        mode,
        backoff,
        stable_uptime,
        give_up,
        success_codes,
    }
}

/// `after` or `requires` (`key`): each dependency once, never the service
/// itself (the names are checked across services by the graph).
fn resolve_after(
    name: &str,
    key: &str,
    after: Option<Vec<String>>,
    c: &mut Collector<'_>,
) -> Vec<String> {
    let after = after.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for a in &after {
        let replica_of_itself =
            super::replicas::split_name(a).is_some_and(|(parent, _)| parent == name);
        if a == name || replica_of_itself {
            c.push(
                key,
                "a service cannot wait for itself",
                format!("remove \"{a}\" from `{key}`"),
            );
        }
        if !seen.insert(a) {
            c.push(
                key,
                format!("\"{a}\" is listed twice"),
                "list each dependency once",
            );
        }
    }
    after
}

/// `[grants]`, resolved here once into the typed grants the sandbox
/// enforces.
fn resolve_grants(dir: &Path, grants: Option<RawGrants>, c: &mut Collector<'_>) -> GrantSpec {
    let g = grants.unwrap_or_default();
    let hosts = g.hosts.unwrap_or_default();
    for h in &hosts {
        if h.trim().is_empty() || h.contains(char::is_whitespace) {
            c.push(
                "grants.hosts",
                format!("`{h}` is not a host pattern"),
                "use host:port patterns such as \"127.0.0.1:8080\" or \"http://localhost:*\"",
            );
        }
    }
    let paths: Vec<PathBuf> = g
        .paths
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            if p.is_empty() {
                c.push("grants.paths", "empty path", "remove it or give a path");
            }
            dir.join(p)
        })
        .collect();
    let memory = match g.memory.as_deref() {
        None => 64 << 20,
        Some(s) => parse_size(s).unwrap_or_else(|e| {
            c.push(
                "grants.memory",
                e.to_string(),
                "use a size such as \"64MiB\"",
            );
            64 << 20
        }),
    };
    if memory < (1 << 20) {
        c.push(
            "grants.memory",
            "below 1MiB, no check can run in that",
            "use at least \"1MiB\", e.g. \"64MiB\"",
        );
    }
    let resolved = Grants::parse(&hosts, &paths)
        .unwrap_or_else(|errors| {
            for e in errors {
                let field = match e {
                    GrantError::Host { .. } => "grants.hosts",
                    GrantError::Path { .. } => "grants.paths",
                };
                c.push(field, e.to_string(), "fix or remove the grant");
            }
            // The service is invalid and never supervised; it only takes part
            // in the cross-service checks.
            Grants::none()
        })
        .with_output(g.output.unwrap_or(false));
    GrantSpec {
        hosts,
        paths,
        resolved,
        memory,
    }
}

/// `[loader]`, which needs a loader.wasm beside the manifest.
fn resolve_loader(
    dir: &Path,
    has_loader: bool,
    embedded_loader: Option<&Path>,
    loader: Option<RawLoader>,
    c: &mut Collector<'_>,
) -> Option<LoaderSpec> {
    if let Some(binary) = embedded_loader {
        // No manifest, so no `[loader.config]`: the loader learns where
        // its binary is (to name it in `spawn`) from `program`.
        return Some(LoaderSpec {
            path: binary.to_path_buf(),
            config: vec![("program".into(), binary.display().to_string())],
            embedded: true,
        });
    }
    match (has_loader, loader) {
        (true, l) => Some(LoaderSpec {
            path: dir.join(LOADER),
            config: l
                .and_then(|l| l.config)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            embedded: false,
        }),
        (false, Some(_)) => {
            c.push(
                "loader",
                "`[loader]` is set but there is no loader.wasm",
                "add loader.wasm to the service directory or remove `[loader]`",
            );
            None
        }
        (false, None) => None,
    }
}

/// `notify`, `watchdog-sec` and `notify-timeout`; the last two only mean
/// something with `notify = true`.
fn resolve_notify(
    notify: &Option<bool>,
    watchdog: &Option<String>,
    timeout: &Option<String>,
    c: &mut Collector<'_>,
) -> Option<NotifySpec> {
    let watchdog = watchdog.as_deref().map(|s| {
        let d = duration_field(c, "watchdog-sec", Some(s), Duration::ZERO);
        if d.is_zero() && parse_duration(s).is_ok() {
            c.push(
                "watchdog-sec",
                "a zero watchdog would fail at once",
                "give the longest silence to allow, e.g. \"5s\", or remove it",
            );
        }
        d
    });
    let timeout = duration_field(
        c,
        "notify-timeout",
        timeout.as_deref(),
        DEFAULT_NOTIFY_TIMEOUT,
    );
    if *notify != Some(true) {
        for (field, set) in [
            ("watchdog-sec", watchdog.is_some()),
            ("notify-timeout", timeout != DEFAULT_NOTIFY_TIMEOUT),
        ] {
            if set {
                c.push(
                    field,
                    "only used by services that send notify messages",
                    "add `notify = true` (the program speaks sd_notify) or remove it",
                );
            }
        }
        return None;
    }
    Some(NotifySpec {
        watchdog: watchdog.filter(|d| !d.is_zero()),
        timeout,
    })
}

/// The program of `command` exists and is executable: relative to `cwd`
/// when it has a `/`, else somewhere in Vigil's `PATH`. Only a warning: it
/// may be installed later, and a missing program is a runtime condition of
/// that one service (DESIGN.md), not a manifest error.
fn check_program(program: &str, cwd: &Path, c: &mut Collector<'_>) {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = cwd.join(program);
        if !executable(&p) {
            c.warn(
                "command",
                format!("`{}` is not an executable file", p.display()),
                "fix the path (relative paths start at `cwd`) or `chmod +x` it",
            );
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if !std::env::split_paths(&path).any(|d| executable(&d.join(program))) {
            c.warn(
                "command",
                format!("`{program}` is not in PATH"),
                "install it or give its absolute path",
            );
        }
    }
}

/// A duration key, or `default` when it is absent or wrong (reported).
pub(super) fn duration_field(
    c: &mut Collector<'_>,
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            c.push(
                field,
                e.to_string(),
                "use a number with a unit: \"500ms\", \"3s\", \"1m30s\", \"1h\" (or \"0\")",
            );
            default
        }),
    }
}

/// Parse "SIGTERM", "TERM" or "sigterm".
pub(super) fn parse_signal(s: &str) -> Result<Signal, String> {
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("`{s}` is not a signal name"))
}
