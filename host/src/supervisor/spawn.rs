//! Spawning children from one dedicated, long-lived thread.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child dies,
//! not the process, so forking from a tokio blocking thread (which tokio
//! retires when idle) would kill children at random. The [`Spawner`] owns
//! one thread for its whole life; requests come in over a channel and the
//! pid (or the error) goes back over a oneshot.
//!
//! The child, between `fork` and `execve`, only makes async-signal-safe
//! calls on data prepared before the fork: `setsid` (its pid becomes its
//! process group and session), `prctl(PR_SET_PDEATHSIG, SIGKILL)` and a
//! re-check of `getppid()`, every signal disposition back to default and an
//! empty signal mask, stdio, `chdir`, `execve`. An exec failure travels
//! back as an errno over a close-on-exec pipe.
//!
//! Exit statuses are not collected here: the pid is registered with the
//! [`Registry`] under the registry lock held across `fork`, and the reaper
//! delivers the status to the request's route.

use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use nix::unistd::{ForkResult, Pid};

use super::proc;
use super::reaper::{Registry, Route};

/// Where a child's stdout or stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// /dev/null.
    #[default]
    Null,
    /// Vigil's own stdout/stderr.
    Inherit,
    /// A pipe; the read end is returned in [`Spawned`].
    Pipe,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// argv; argv[0] is looked up in the child's PATH when it has no slash.
    pub argv: Vec<String>,
    /// The child's whole environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub stdout: Output,
    pub stderr: Output,
}

impl Command {
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Command {
        Command {
            argv: argv.iter().map(|a| a.as_ref().to_string()).collect(),
            env: std::env::var("PATH")
                .map(|p| vec![("PATH".into(), p)])
                .unwrap_or_default(),
            cwd: PathBuf::from("/"),
            stdout: Output::Null,
            stderr: Output::Null,
        }
    }
}

/// A child that was spawned.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group and session id.
    pub pid: Pid,
    /// From /proc/<pid>/stat, to tell it from a later process with the
    /// same pid.
    pub start_time: Option<u64>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("empty command")]
    Empty,
    #[error("argument, variable or path contains a NUL byte: {0:?}")]
    Nul(String),
    #[error("`{0}` not found in PATH")]
    NotFound(String),
    #[error("cannot run `{program}`: {source}")]
    Exec {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the spawner thread is gone")]
    Gone,
}

fn os(what: &'static str) -> impl FnOnce(nix::Error) -> SpawnError {
    move |e| SpawnError::Os {
        what,
        source: std::io::Error::from(e),
    }
}

type Reply = tokio::sync::oneshot::Sender<Result<Spawned, SpawnError>>;

struct Job {
    command: Command,
    route: Route,
    reply: Reply,
}

/// The spawner thread's handle. Dropping it ends the thread; children it
/// spawned then receive SIGKILL (PDEATHSIG).
pub struct Spawner {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    /// Start the spawner thread. `registry` is the reaper's.
    pub fn new(registry: Arc<Registry>) -> std::io::Result<Spawner> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("vigil-spawner".into())
            .spawn(move || {
                let parent = nix::unistd::getpid();
                for job in rx {
                    let result = spawn_now(&registry, parent, &job.command, job.route);
                    if let Err(Ok(spawned)) = job.reply.send(result) {
                        // Nobody waits for it any more; it is still
                        // registered and will be reaped.
                        tracing::debug!(pid = %spawned.pid, "spawn reply dropped");
                    }
                }
            })?;
        Ok(Spawner {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn submit(
        &self,
        command: Command,
        route: Route,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Spawned, SpawnError>>, SpawnError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(SpawnError::Gone)?;
        tx.send(Job {
            command,
            route,
            reply,
        })
        .map_err(|_| SpawnError::Gone)?;
        Ok(rx)
    }

    /// Spawn `command`; its exit status will be passed to `route`.
    pub async fn spawn(&self, command: Command, route: Route) -> Result<Spawned, SpawnError> {
        self.submit(command, route)?
            .await
            .map_err(|_| SpawnError::Gone)?
    }

    /// Like [`Spawner::spawn`], for synchronous callers (not inside an
    /// async context).
    pub fn spawn_blocking(&self, command: Command, route: Route) -> Result<Spawned, SpawnError> {
        self.submit(command, route)?
            .blocking_recv()
            .map_err(|_| SpawnError::Gone)?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn cstring(s: impl AsRef<OsStr>) -> Result<CString, SpawnError> {
    let bytes = s.as_ref().as_bytes();
    CString::new(bytes).map_err(|_| SpawnError::Nul(String::from_utf8_lossy(bytes).into_owned()))
}

/// Resolve argv[0] against `PATH` from the child's environment (Vigil's
/// own when the child has none).
fn resolve_program(command: &Command) -> Result<PathBuf, SpawnError> {
    let program = command.argv.first().ok_or(SpawnError::Empty)?;
    if program.is_empty() {
        return Err(SpawnError::Empty);
    }
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = command
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| {
            let dir = if dir.is_relative() {
                command.cwd.join(dir)
            } else {
                dir
            };
            dir.join(program)
        })
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| SpawnError::NotFound(program.clone()))
}

/// Everything the child needs, allocated before the fork.
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    devnull: OwnedFd,
}

fn prepare(command: &Command) -> Result<Prepared, SpawnError> {
    let program = cstring(resolve_program(command)?)?;
    let argv: Vec<CString> = command.argv.iter().map(cstring).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = command
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let argv_ptrs = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp_ptrs = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| SpawnError::Os {
            what: "open /dev/null",
            source,
        })?;
    Ok(Prepared {
        program,
        argv,
        argv_ptrs,
        envp,
        envp_ptrs,
        cwd: cstring(command.cwd.as_os_str())?,
        devnull: devnull.into(),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(os("pipe"))
}

fn spawn_now(
    registry: &Registry,
    parent: Pid,
    command: &Command,
    route: Route,
) -> Result<Spawned, SpawnError> {
    let prep = prepare(command)?;
    debug_assert_eq!(prep.argv.len() + 1, prep.argv_ptrs.len());
    debug_assert_eq!(prep.envp.len() + 1, prep.envp_ptrs.len());
    let (status_r, status_w) = pipe()?;
    let stdout = match command.stdout {
        Output::Pipe => Some(pipe()?),
        _ => None,
    };
    let stderr = match command.stderr {
        Output::Pipe => Some(pipe()?),
        _ => None,
    };
    let fd_for = |output: Output, pipe: &Option<(OwnedFd, OwnedFd)>| match (output, pipe) {
        (Output::Pipe, Some((_, w))) => w.as_raw_fd(),
        (Output::Inherit, _) => -1,
        _ => prep.devnull.as_raw_fd(),
    };
    let out_fd = fd_for(command.stdout, &stdout);
    let err_fd = fd_for(command.stderr, &stderr);

    let pid = {
        // Held across fork: the reaper cannot route this pid before it is
        // registered as pending.
        let mut guard = registry.lock();
        // SAFETY: the child branch only calls async-signal-safe functions
        // (see `exec_child`) on memory prepared before the fork, and never
        // returns.
        match unsafe { nix::unistd::fork() }.map_err(os("fork"))? {
            ForkResult::Child => {
                // SAFETY: we are the freshly forked child.
                unsafe { exec_child(&prep, parent, out_fd, err_fd, status_w.as_raw_fd()) }
            }
            ForkResult::Parent { child } => {
                guard.insert_pending(child);
                child
            }
        }
    };
    drop(status_w);
    let start_time = proc::start_time(pid.as_raw());

    // Wait for exec: EOF means it happened, 4 bytes are an errno.
    let mut errno = [0u8; 4];
    let mut file = std::fs::File::from(status_r);
    let mut got = 0;
    while got < 4 {
        match file.read(&mut errno[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got == 4 {
        registry.discard(pid);
        return Err(SpawnError::Exec {
            program: command.argv[0].clone(),
            source: std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
        });
    }
    registry.claim(pid, route);
    Ok(Spawned {
        pid,
        start_time,
        stdout: stdout.map(|(r, _)| r),
        stderr: stderr.map(|(r, _)| r),
    })
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The child's side, between fork and exec.
///
/// # Safety
/// Must only be called in a freshly forked child. Only async-signal-safe
/// libc calls are made, on memory allocated before the fork.
unsafe fn exec_child(p: &Prepared, parent: Pid, out_fd: i32, err_fd: i32, status_fd: i32) -> ! {
    // SAFETY (whole block): each call below is async-signal-safe per
    // signal-safety(7) (prctl and getppid are plain syscalls); pointers come
    // from CStrings and pointer vectors owned by `p`, alive and unchanged
    // since before the fork.
    unsafe {
        let fail = |step: i32| -> ! {
            let errno = *libc::__errno_location();
            let code = if errno != 0 { errno } else { step };
            let bytes = code.to_ne_bytes();
            libc::write(status_fd, bytes.as_ptr().cast(), 4);
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail(libc::EPERM);
        }
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) < 0
        {
            fail(libc::EINVAL);
        }
        // The parent may have died before PDEATHSIG was armed.
        if libc::getppid() != parent.as_raw() {
            libc::_exit(1);
        }
        // Default dispositions (ignored signals survive exec otherwise) and
        // an empty mask (the mask always survives exec).
        // Through the raw syscall: libc's wrappers refuse the real-time
        // signals it reserves (32, 33), which may arrive here ignored.
        let dfl = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

        let null = p.devnull.as_raw_fd();
        if libc::dup2(null, 0) < 0 {
            fail(libc::EBADF);
        }
        if out_fd >= 0 && libc::dup2(out_fd, 1) < 0 {
            fail(libc::EBADF);
        }
        if err_fd >= 0 && libc::dup2(err_fd, 2) < 0 {
            fail(libc::EBADF);
        }
        // Descriptors Vigil inherited without close-on-exec (from whoever
        // started it) must not leak into services. Marking them
        // close-on-exec (not closing) keeps the exec-status pipe working;
        // kernels before 5.11 lack close_range and are left as they are.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if libc::chdir(p.cwd.as_ptr()) < 0 {
            fail(libc::ENOENT);
        }
        libc::execve(
            p.program.as_ptr(),
            p.argv_ptrs.as_ptr(),
            p.envp_ptrs.as_ptr(),
        );
        fail(libc::ENOEXEC)
    }
}
