//! Health-checked daemonizing: start a program detached (own session,
//! stdio on /dev/null) and return only once a checker says it is up.
//!
//! The checker answers like a wasm check: [`Health::Retry`] (not yet, ask
//! again), [`Health::Ok`] (up: the launcher is done) or [`Health::Error`]
//! (it will never be up). On an error, an early exit of the program, or
//! the deadline, the program's process group gets SIGTERM, then SIGKILL
//! after a grace, and the caller gets the reason.
//!
//! # The launcher never supervises
//! The launching side spawns with [`std::process::Command`] and waits with
//! `try_wait`. That is only sound in a process whose reaper
//! ([`crate::supervisor::reaper`]) has not started: the reaper's
//! `waitpid(-1)` would steal the program's status. The launcher is
//! short-lived and exits (or returns) once the handshake is over; the
//! *launched* side is the one that may supervise. [`launch`] refuses to run
//! once the reaper is started.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A checker's answer (the daemonize seed's contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Up: the handshake succeeded.
    Ok,
    /// Not yet; the reason is reported if the deadline passes.
    Retry(String),
    /// It will never be up.
    Error(String),
}

/// Why a launch failed. The program is gone in every case.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "cannot launch from a process that has started its reaper (its waitpid(-1) would take the program's exit status)"
    )]
    ReaperRunning,
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error("it exited before it was ready ({status})")]
    Exited { status: ExitStatus },
    #[error("not ready within {timeout:?} (last check: {last})")]
    Timeout { timeout: Duration, last: String },
}

/// Settings of the handshake.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// Give up (and kill the program) after this long.
    pub timeout: Duration,
    /// Pause between two checks.
    pub poll: Duration,
    /// Between SIGTERM and SIGKILL when the handshake fails.
    pub stop_grace: Duration,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(50),
            stop_grace: Duration::from_secs(10),
        }
    }
}

/// Start `command` in a new session and poll `checker` with its pid until
/// it is up. Returns the pid, leaving the program running (and, once the
/// caller exits, no longer its child). Its stdio is set to /dev/null
/// unless the caller set it.
///
/// `extra_fds` are kept open across exec (e.g. a locked pid file, so that
/// the lock lives as long as the program).
pub async fn launch<C, F>(
    mut command: Command,
    handshake: Handshake,
    keep_fds: Vec<std::os::fd::RawFd>,
    mut checker: C,
) -> Result<u32, LaunchError>
where
    C: FnMut(u32) -> F,
    F: Future<Output = Health>,
{
    if crate::supervisor::reaper::Reaper::started() {
        return Err(LaunchError::ReaperRunning);
    }
    let program = command.get_program().to_string_lossy().into_owned();
    // SAFETY: between fork and exec the closure only calls setsid and
    // fcntl, both async-signal-safe, on descriptors owned by the caller.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            for &fd in &keep_fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|source| LaunchError::Spawn { program, source })?;
    let pid = child.id();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            stop_group(&mut child, handshake.stop_grace).await;
            return Err(LaunchError::Exited { status });
        }
        let last = match checker(pid).await {
            Health::Ok => return Ok(pid),
            Health::Error(reason) => {
                stop_group(&mut child, handshake.stop_grace).await;
                return Err(LaunchError::Failed(reason));
            }
            Health::Retry(reason) => reason,
        };
        if t0.elapsed() >= handshake.timeout {
            stop_group(&mut child, handshake.stop_grace).await;
            return Err(LaunchError::Timeout {
                timeout: handshake.timeout,
                last,
            });
        }
        tokio::time::sleep(handshake.poll).await;
    }
}

/// SIGTERM to the program's group (it leads its own session), SIGKILL to
/// what is left after `grace`, and reap the leader.
async fn stop_group(child: &mut Child, grace: Duration) {
    let Ok(raw) = i32::try_from(child.id()) else {
        return;
    };
    let group = Pid::from_raw(raw);
    let _ = killpg(group, Signal::SIGTERM);
    let _ = killpg(group, Signal::SIGCONT);
    let t0 = Instant::now();
    let mut leader_done = false;
    while t0.elapsed() < grace {
        if !leader_done {
            leader_done = matches!(child.try_wait(), Ok(Some(_)));
        }
        // The leader may be reaped while members of its group live on.
        if leader_done && killpg(group, None).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
    // Reap without blocking the runtime's thread: `Child::wait` would park
    // every task of a current-thread runtime until the kernel is done with
    // the leader (a SIGKILLed process still has to leave an uninterruptible
    // sleep first).
    while !matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Build the re-exec of the running program: `/proc/self/exe` with `args`
/// (argv[0] kept), the environment reduced to PATH, USER, HOME and
/// `envkey=1`, cwd `/`, stdio on /dev/null.
pub fn reexec_command(envkey: &str, args: &[OsString]) -> Command {
    let mut command = Command::new("/proc/self/exe");
    if let Some(argv0) = std::env::args_os().next() {
        command.arg0(argv0);
    }
    command.args(args).env_clear();
    for key in ["PATH", "USER", "HOME"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
        .env(envkey, "1")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Make the values of the given path flags absolute (`--flag VALUE` and
/// `--flag=VALUE`), so that a re-exec in `/` still finds them.
pub fn absolutize_flags(args: &[OsString], path_flags: &[String]) -> Vec<OsString> {
    let absolute = |value: &std::ffi::OsStr| -> OsString {
        std::path::absolute(value)
            .map(OsString::from)
            .unwrap_or_else(|_| value.to_os_string())
    };
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_path = false;
    let mut after_dashes = false;
    for arg in args {
        if next_is_path {
            out.push(absolute(arg));
            next_is_path = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if after_dashes || !text.starts_with("--") {
            after_dashes |= text == "--";
            out.push(arg.clone());
            continue;
        }
        if text == "--" {
            after_dashes = true;
            out.push(arg.clone());
            continue;
        }
        match text.split_once('=') {
            Some((flag, value)) if path_flags.iter().any(|f| f == flag) => {
                let mut joined = OsString::from(format!("{flag}="));
                joined.push(absolute(std::ffi::OsStr::new(value)));
                out.push(joined);
            }
            None if path_flags.iter().any(|f| *f == text) => {
                next_is_path = true;
                out.push(arg.clone());
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// Which role [`Daemonize::start`] left this process in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// This is the background process: carry on as the daemon.
    Daemon,
    /// This is the launcher and the daemon (this pid) is up: exit 0.
    Launcher { pid: u32 },
}

/// The daemonize seed's handshake for a Rust program: re-execute itself in
/// the background and wait until a checker says the background copy is up.
///
/// ```no_run
/// use vigil::daemon::{Daemonize, Health, Role};
///
/// # async fn serve() {}
/// #[tokio::main]
/// async fn main() {
///     let role = Daemonize::new("MYAPP_DAEMON")
///         .start(|pid| async move {
///             // e.g. connect to the daemon's socket and ask it
///             if std::path::Path::new("/run/myapp.sock").exists() {
///                 Health::Ok
///             } else {
///                 Health::Retry(format!("pid {pid}: no socket yet"))
///             }
///         })
///         .await;
///     match role {
///         Ok(Role::Daemon) => serve().await,
///         Ok(Role::Launcher { pid }) => println!("started, pid {pid}"),
///         Err(err) => {
///             eprintln!("myapp: {err}");
///             std::process::exit(1);
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Daemonize {
    envkey: String,
    args: Vec<OsString>,
    handshake: Handshake,
}

impl Daemonize {
    /// `envkey` marks the background copy (set to `1` in its environment);
    /// the arguments default to this process's own.
    pub fn new(envkey: &str) -> Daemonize {
        Daemonize {
            envkey: envkey.to_string(),
            args: std::env::args_os().skip(1).collect(),
            handshake: Handshake::default(),
        }
    }

    /// The arguments of the background copy (without argv[0]). Relative
    /// paths must be absolute already: it runs in `/`
    /// (see [`absolutize_flags`]).
    pub fn args(mut self, args: Vec<OsString>) -> Daemonize {
        self.args = args;
        self
    }

    pub fn handshake(mut self, handshake: Handshake) -> Daemonize {
        self.handshake = handshake;
        self
    }

    /// True in the background copy.
    pub fn is_daemon(&self) -> bool {
        std::env::var_os(&self.envkey).is_some_and(|v| !v.is_empty())
    }

    /// In the background copy: `Ok(Role::Daemon)` at once. In the
    /// launcher: re-execute, poll `checker` with the copy's pid, and return
    /// `Ok(Role::Launcher)` once it says ok, or the error (the copy is
    /// killed).
    pub async fn start<C, F>(self, checker: C) -> Result<Role, LaunchError>
    where
        C: FnMut(u32) -> F,
        F: Future<Output = Health>,
    {
        if self.is_daemon() {
            return Ok(Role::Daemon);
        }
        let command = reexec_command(&self.envkey, &self.args);
        let pid = launch(command, self.handshake, Vec::new(), checker).await?;
        Ok(Role::Launcher { pid })
    }
}

/// [`Daemonize`] with its defaults, as in the seed: returns `Ok(())` in the
/// background copy; the launcher exits 0 once the copy is up, or returns
/// the error (the copy is killed).
pub async fn daemonize<C, F>(envkey: &str, checker: C) -> Result<(), LaunchError>
where
    C: FnMut(u32) -> F,
    F: Future<Output = Health>,
{
    match Daemonize::new(envkey).start(checker).await? {
        Role::Daemon => Ok(()),
        Role::Launcher { .. } => std::process::exit(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn path_flags_become_absolute_in_both_forms() {
        let cwd = std::env::current_dir().expect("cwd");
        let flags = vec!["--checks".to_string(), "--state-dir".to_string()];
        let out = absolutize_flags(
            &os(&[
                "run",
                "--checks",
                "svc",
                "--state-dir=st",
                "--quiet",
                "--other",
                "rel",
                "--",
                "--checks",
                "x",
            ]),
            &flags,
        );
        assert_eq!(
            out,
            vec![
                OsString::from("run"),
                OsString::from("--checks"),
                cwd.join("svc").into_os_string(),
                OsString::from(format!("--state-dir={}", cwd.join("st").display())),
                OsString::from("--quiet"),
                OsString::from("--other"),
                OsString::from("rel"),
                OsString::from("--"),
                OsString::from("--checks"),
                OsString::from("x"),
            ]
        );
    }
}
