//! `vigil run --checks DIR`: supervise every service in DIR until told to
//! stop.

use std::path::PathBuf;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::Exit;
use crate::app::{RunError, RunOptions, default_state_dir, run as supervise};
use crate::cli::RunArgs;
use crate::daemon::pidfile::{self, Pidfile, PidfileError};
use crate::daemon::{Daemonize, Handshake, Role, control_probe};
use crate::journal::JournalError;
use crate::untrusted;
use crate::wasm::{Engine, EngineOptions};

pub async fn run(args: RunArgs) -> Exit {
    let checks_dir = absolute(args.checks);
    let explicit_state_dir = args.state_dir.is_some();
    let state_dir = absolute(args.state_dir.unwrap_or_else(default_state_dir));
    let pidfile_path = args
        .pidfile
        .map(absolute)
        .unwrap_or_else(|| state_dir.join(pidfile::FILE));
    let daemon = Daemonize::new(DAEMON_ENV);
    if args.daemon && !daemon.is_daemon() {
        let socket = args
            .socket
            .clone()
            .map(absolute)
            .unwrap_or_else(|| crate::control::socket_path(&state_dir));
        return launch_daemon(
            daemon,
            &checks_dir,
            &state_dir,
            &pidfile_path,
            &socket,
            args.ready_timeout,
            explicit_state_dir,
        )
        .await;
    }
    // First, so that a second instance hears "already running" before
    // anything else (the journal has its own lock; see below).
    let _pidfile = match Pidfile::acquire(&pidfile_path) {
        Ok(p) => p,
        Err(err @ PidfileError::AlreadyRunning { .. }) => {
            eprintln!("vigil run: {err}");
            return Exit::AlreadyRunning;
        }
        Err(err) => {
            eprintln!("vigil run: {err}");
            return Exit::Failed;
        }
    };
    let http_token = match args
        .http_token_file
        .as_deref()
        .map(crate::control::page::read_token)
    {
        None => None,
        Some(Ok(token)) => Some(token),
        Some(Err(problem)) => {
            eprintln!("vigil run: {problem}");
            return Exit::Usage;
        }
    };
    prepare_process();
    crate::supervisor::logs::set_timestamps(!args.no_timestamps);
    let engine = match Engine::new(EngineOptions::default()) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil run: {err}");
            return Exit::Failed;
        }
    };
    let options = RunOptions {
        checks_dir,
        state_dir,
        // A daemon's stdio is /dev/null.
        echo: !args.quiet && !args.daemon,
        socket: args.socket.map(absolute),
        http: args.http,
        grpc: args.grpc,
        http_token,
        compile_progress: super::compile::Notices::on_terminal("run"),
    };
    match supervise(options, engine).await {
        Ok(()) => Exit::Ok,
        Err(RunError::Invalid(report)) => {
            refuse_invalid(&report);
            Exit::Usage
        }
        // Same state directory, another --pidfile: the journal's lock
        // catches it.
        Err(RunError::Journal(err @ JournalError::Locked { .. })) => {
            eprintln!("vigil run: already running: {err}");
            Exit::AlreadyRunning
        }
        Err(err) => {
            eprintln!("vigil run: {err}");
            Exit::Failed
        }
    }
}

/// Marks the background copy of `vigil run --daemon`.
pub const DAEMON_ENV: &str = "VIGIL_DAEMONIZED";

/// The foreground side of `vigil run --daemon`: refuse early what the
/// daemon would refuse (a held pid file, an invalid directory), then
/// re-execute in the background and wait until it is up.
async fn launch_daemon(
    daemon: Daemonize,
    checks_dir: &std::path::Path,
    state_dir: &std::path::Path,
    pidfile_path: &std::path::Path,
    socket: &std::path::Path,
    timeout: std::time::Duration,
    explicit_state_dir: bool,
) -> Exit {
    if let Err(err) = pidfile::probe(pidfile_path) {
        eprintln!("vigil run: {err}");
        return match err {
            PidfileError::AlreadyRunning { .. } => Exit::AlreadyRunning,
            _ => Exit::Failed,
        };
    }
    if let Err(report) = crate::config::load_dir(checks_dir) {
        refuse_invalid(&report);
        return Exit::Usage;
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut args = crate::daemon::launch::absolutize_flags(&args, &path_flags());
    if !explicit_state_dir {
        // The daemon's environment has no XDG_STATE_HOME: give it the
        // state directory this side resolved (and polls).
        let mut flag = std::ffi::OsString::from("--state-dir=");
        flag.push(state_dir);
        args.push(flag);
    }
    let daemon = daemon.args(args).handshake(Handshake {
        timeout,
        ..Handshake::default()
    });
    let socket = socket.to_path_buf();
    let journal = state_dir.join(crate::journal::FILE);
    let journal_start = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
    match daemon
        .start(|pid| {
            let socket = socket.clone();
            async move { control_probe::probe(&socket, pid).await }
        })
        .await
    {
        Ok(Role::Launcher { pid }) => {
            eprintln!("vigil run: daemon up (pid {pid})");
            Exit::Ok
        }
        Ok(Role::Daemon) => Exit::Ok, // not reached: checked by the caller
        Err(err) => {
            // The reason quotes a check's, and JSON leaves C1 and bidi
            // controls raw: both escaped ([`untrusted`]).
            let err = err.to_string();
            eprintln!(
                "vigil run: the daemon did not come up: {}",
                untrusted::line(&err)
            );
            let lines = journal_since(&journal, journal_start);
            eprint!("{}", failure_summary(&lines, &state_dir.join("logs")));
            eprintln!(
                "(the whole journal: vigil journal --state-dir {})",
                state_dir.display()
            );
            Exit::Failed
        }
    }
}

/// Print why the checks directory is refused. Its problems quote
/// directory names, which may hold anything: escaped ([`untrusted`]).
fn refuse_invalid(report: &crate::config::ValidationReport) {
    let report = report.to_string();
    eprint!(
        "vigil run: refusing to start, the checks directory is invalid: {}",
        untrusted::block(&report)
    );
}

/// `--flag`s of `vigil run` whose values are paths (by their value
/// parser), so that the re-exec in `/` gets them absolute.
fn path_flags() -> Vec<String> {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let path = clap::builder::ValueParser::path_buf().type_id();
    cli.find_subcommand("run")
        .map(|run| {
            run.get_arguments()
                .filter(|a| a.get_value_parser().type_id() == path)
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .collect()
        })
        .unwrap_or_default()
}

/// The journal lines written since `from` (bytes), parsed; what does not
/// parse is skipped.
fn journal_since(path: &std::path::Path, from: u64) -> Vec<crate::journal::Line> {
    let text = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(&text[start..])
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Lines of the journal and of a log shown for each service in trouble.
const SUMMARY_LINES: usize = 5;

/// Why a daemon did not come up, for a human: each service that gave up,
/// could not spawn, exited or failed a check during the attempt, with its
/// journal lines, its log path and the last lines of its log; the daemon's
/// own warnings; or, when nothing stands out, the last journal lines. All
/// of it escaped ([`untrusted`]: reasons and output are the services').
fn failure_summary(lines: &[crate::journal::Line], logs: &std::path::Path) -> String {
    use crate::journal::Event;
    let trouble = |e: &Event| match e {
        Event::GaveUp { .. } | Event::SpawnError { .. } | Event::Warning { .. } => true,
        Event::Exited { code, .. } => *code != Some(0),
        Event::Check { outcome, .. } | Event::Hook { outcome, .. } => outcome != "ok",
        _ => false,
    };
    let mut services: Vec<&str> = Vec::new();
    for line in lines.iter().filter(|l| trouble(&l.event)) {
        if let Some(name) = line.service.as_deref()
            && !services.contains(&name)
        {
            services.push(name);
        }
    }
    let mut out = String::new();
    let shown = |l: &crate::journal::Line| format!("  {}\n", super::journal::format_line(l));
    let vigil: Vec<&crate::journal::Line> = lines
        .iter()
        .filter(|l| l.service.is_none() && trouble(&l.event))
        .collect();
    if services.is_empty() && vigil.is_empty() {
        let last = &lines[lines.len().saturating_sub(2 * SUMMARY_LINES)..];
        if !last.is_empty() {
            out.push_str("last journal lines:\n");
            out.extend(last.iter().map(shown));
        }
        return out;
    }
    for l in vigil.iter().rev().take(SUMMARY_LINES).rev() {
        out.push_str(&shown(l));
    }
    for name in services {
        out.push_str(&format!("service {}:\n", untrusted::line(name)));
        let about: Vec<&crate::journal::Line> = lines
            .iter()
            .filter(|l| l.service.as_deref() == Some(name))
            .collect();
        for l in &about[about.len().saturating_sub(SUMMARY_LINES)..] {
            out.push_str(&shown(l));
        }
        let path = crate::supervisor::logs::log_path(logs, name);
        let log = super::logs::files(logs, name)
            .map(|f| crate::tail::last(f.read_all(), SUMMARY_LINES))
            .unwrap_or_default();
        if log.is_empty() {
            out.push_str(&format!("  its log is empty: {}\n", path.display()));
        } else {
            out.push_str(&format!("  last lines of its log, {}:\n", path.display()));
            for line in log {
                let line = format!("    {}", untrusted::line(&line));
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    out
}

/// Process-wide settings a supervisor needs before its first child.
fn prepare_process() {
    // Orphans of our services (double-forking daemons) re-parent to us
    // instead of init, so they are reaped and journaled, and can be killed.
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become a child subreaper: {err}; orphans of services will go to init"
        );
    }
    // Every service holds two pipe ends and its checks open sockets: 1,000
    // services exceed the usual soft limit of 1,024 descriptors.
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {err}");
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!("cannot read the open-file limit: {err}"),
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use crate::journal::{Event, Line};

    fn line(service: Option<&str>, event: Event) -> Line {
        Line {
            ts: "2030-01-01T00:00:00.000Z".into(),
            service: service.map(str::to_string),
            event,
        }
    }

    #[test]
    fn the_failure_summary_names_the_services_in_trouble() {
        let logs = std::env::temp_dir().join(format!("vigil-summary-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("dir");
        std::fs::write(
            logs.join("db.log"),
            "2030-01-01T00:00:00.000Z stderr \x1b[2Jno disk\n",
        )
        .expect("log");
        let lines = [
            line(None, Event::Acquired { pid: 1 }),
            line(Some("web"), Event::Ready),
            line(
                Some("db"),
                Event::GaveUp {
                    reason: "exited 3 times".into(),
                },
            ),
        ];
        let text = super::failure_summary(&lines, &logs);
        let _ = std::fs::remove_dir_all(&logs);
        assert!(text.starts_with("service db:\n"), "{text}");
        assert!(!text.contains("web"), "{text}");
        assert!(
            text.contains(" db gave-up reason=exited 3 times\n"),
            "{text}"
        );
        assert!(
            text.contains("stderr \\x1b[2Jno disk\n"),
            "escaped: {text:?}"
        );
        // Nothing stands out: the last lines.
        let text = super::failure_summary(&lines[..2], &logs);
        assert!(text.starts_with("last journal lines:\n"), "{text}");
    }

    #[test]
    fn path_flags_are_found_by_their_value_parser() {
        let flags = super::path_flags();
        for flag in ["--checks", "--state-dir", "--pidfile"] {
            assert!(flags.iter().any(|f| f == flag), "{flag} in {flags:?}");
        }
        assert!(!flags.iter().any(|f| f == "--ready-timeout"), "{flags:?}");
    }
}
