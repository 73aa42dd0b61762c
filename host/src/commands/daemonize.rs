//! `vigil daemonize [--check X] -- CMD ARGS...`: start any program
//! detached and exit 0 only once a wasm check says it is ready; otherwise
//! kill its process group and exit 1 with the check's reason.
//!
//! This process never supervises (no reaper), so it may spawn with
//! std::process (see [`crate::daemon::launch`]).

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::SystemTime;

use super::Exit;
use crate::cli::DaemonizeArgs;
use crate::daemon::pidfile::{Pidfile, PidfileError};
use crate::daemon::{Handshake, Health, launch};
use crate::untrusted;
use crate::wasm::{Phase, Sandbox, Target, Verdict};

/// The check used without `--check`: ready while the program runs.
pub const DEFAULT_CHECK: &str = "builtin:process";

pub async fn run(args: DaemonizeArgs) -> Exit {
    let Some(program) = args.command.first().cloned() else {
        eprintln!("vigil daemonize: no command (give it after `--`)");
        return Exit::Usage;
    };
    let check = args.check.as_deref().unwrap_or(DEFAULT_CHECK);
    // Load (and compile) before starting anything: a bad check is a usage
    // error, not a failed start.
    let (source, grants, checker) =
        match super::load_one_shot("daemonize", check, &args.inputs).await {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let mut pidfile = match args.pidfile.as_deref().map(Pidfile::lock).transpose() {
        Ok(p) => p,
        Err(err @ PidfileError::AlreadyRunning { .. }) => {
            eprintln!("vigil daemonize: {err}");
            return Exit::AlreadyRunning;
        }
        Err(err) => {
            eprintln!("vigil daemonize: {err}");
            return Exit::Failed;
        }
    };
    let output = match &args.log {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(file) => Some(file),
            Err(err) => {
                eprintln!(
                    "vigil daemonize: cannot open --log {}: {err}",
                    path.display()
                );
                return Exit::Failed;
            }
        },
        None => None,
    };
    let mut command = std::process::Command::new(&program);
    command.args(&args.command[1..]).stdin(Stdio::null());
    match output {
        Some(file) => match file.try_clone() {
            Ok(copy) => {
                command.stdout(copy).stderr(file);
            }
            Err(err) => {
                eprintln!("vigil daemonize: --log: {err}");
                return Exit::Failed;
            }
        },
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let handshake = Handshake {
        timeout: args.timeout,
        poll: args.interval,
        ..Handshake::default()
    };
    // The program inherits the locked pid file: the lock lives as long as
    // it does, after we are gone.
    let keep_fds = pidfile.iter().map(|p| p.file().as_raw_fd()).collect();
    let mut sandbox = Sandbox::new(grants, args.check_timeout, Sandbox::DEFAULT_MEMORY);
    if let Ok(cwd) = std::env::current_dir() {
        sandbox = sandbox.with_base_dir(cwd);
    }
    let sandbox = std::sync::Arc::new(sandbox);
    let label = source.to_string();
    let started_at = SystemTime::now();
    let mut attempt = 0;
    let mut pid_error = None;
    let result = launch(command, handshake, keep_fds, |pid| {
        attempt += 1;
        if attempt == 1
            && let Some(p) = pidfile.as_mut()
            && let Err(err) = p.write_pid(pid)
        {
            pid_error = Some(err.to_string());
        }
        let target = Target {
            service: program.clone(),
            phase: Phase::Startup,
            pid: Some(pid),
            started_at,
            attempt,
            restarts: 0,
            config: args.inputs.config.clone(),
            output: None,
        };
        let checker = checker.clone();
        let sandbox = sandbox.clone();
        let failed = pid_error.clone();
        let label = label.clone();
        async move {
            if let Some(err) = failed {
                return Health::Error(err);
            }
            match checker.check(&target, &sandbox).await.verdict {
                Verdict::Ok => Health::Ok,
                Verdict::Error(reason) => Health::Error(format!("{label}: {reason}")),
                other => Health::Retry(format!("{label}: {other}")),
            }
        }
    })
    .await;
    match result {
        Ok(pid) => {
            println!("{pid}");
            if let Some(p) = pidfile {
                // Our descriptor closes at exit; the program's keeps the lock.
                p.leak();
            }
            Exit::Ok
        }
        Err(err) => {
            // The reason quotes the check's: escaped ([`untrusted`]).
            let problem = format!("{program}: {err}");
            eprintln!("vigil daemonize: {}", untrusted::line(&problem));
            Exit::Failed
        }
    }
}
