//! `vigil run --checks DIR`: supervise every service in DIR until told to
//! stop.

use std::path::PathBuf;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::cli::RunArgs;
use crate::daemon::pidfile::{self, EXIT_ALREADY_RUNNING, Pidfile, PidfileError};
use crate::journal::JournalError;
use crate::supervisor::run::{RunError, RunOptions, default_state_dir, run as supervise};
use crate::wasm::{Engine, EngineOptions};

pub async fn run(args: RunArgs) -> i32 {
    let checks_dir = absolute(args.checks);
    let state_dir = absolute(args.state_dir.unwrap_or_else(default_state_dir));
    let pidfile_path = args
        .pidfile
        .map(absolute)
        .unwrap_or_else(|| state_dir.join(pidfile::FILE));
    // First, so that a second instance hears "already running" before
    // anything else (the journal has its own lock; see below).
    let _pidfile = match Pidfile::acquire(&pidfile_path) {
        Ok(p) => p,
        Err(err @ PidfileError::AlreadyRunning { .. }) => {
            eprintln!("vigil run: {err}");
            return EXIT_ALREADY_RUNNING;
        }
        Err(err) => {
            eprintln!("vigil run: {err}");
            return 1;
        }
    };
    prepare_process();
    let engine = match Engine::new(EngineOptions::default()) {
        Ok(engine) => engine,
        Err(err) => {
            eprintln!("vigil run: {err}");
            return 1;
        }
    };
    let options = RunOptions {
        checks_dir,
        state_dir,
        echo: !args.quiet,
    };
    match supervise(options, engine).await {
        Ok(()) => 0,
        Err(RunError::Invalid(report)) => {
            eprint!("vigil run: refusing to start, the checks directory is invalid: {report}");
            2
        }
        // Same state directory, another --pidfile: the journal's lock
        // catches it.
        Err(RunError::Journal(err @ JournalError::Locked { .. })) => {
            eprintln!("vigil run: already running: {err}");
            EXIT_ALREADY_RUNNING
        }
        Err(err) => {
            eprintln!("vigil run: {err}");
            1
        }
    }
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
