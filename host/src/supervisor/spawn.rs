//! Spawning children from one dedicated, long-lived thread.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child dies,
//! not the process, so forking from a tokio blocking thread (which tokio
//! retires when idle) would kill children at random. The [`Spawner`] owns
//! one thread for its whole life; requests come in over a channel and the
//! pid (or the error) goes back over a oneshot.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as
//! `posix_spawn` does: it borrows Vigil's address space instead of copying
//! its page tables (a `fork` of a process with wasmtime's large mappings
//! costs over a millisecond), and the spawner thread sleeps until the child
//! has exec'd or exited. Between `clone` and `execve` the child only makes
//! async-signal-safe calls on data prepared before the clone, on its own
//! small stack: `setsid` (its pid becomes its process group and session),
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)` and a re-check of `getppid()`, every
//! signal disposition back to default, stdio, `chdir`, an empty signal
//! mask, `execve`. The spawner thread keeps every signal blocked, so no
//! handler of Vigil's can run in the child on the shared memory before the
//! dispositions are reset. An exec failure is reported as an errno in a
//! slot the parent reads once the child is gone from its memory.
//!
//! Exit statuses are not collected here: the pid is registered with the
//! [`Registry`] under the registry lock held across `fork`, and the reaper
//! delivers the status to the request's route.
//!
//! A request may carry an [`Announce`]: the child stores its own pid in the
//! announcer's slot just before `execve`, so another thread (the notify
//! socket's receiver) knows the child before its program can say anything,
//! though the clone has not returned yet.

use std::cell::UnsafeCell;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use nix::unistd::Pid;

use super::reaper::{Registry, Route};
use crate::procfs;

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
    /// `user`/`group`: who the child becomes before exec (`None`: Vigil's
    /// own identity).
    pub run_as: Option<RunAs>,
    /// `umask`, set before exec (`None`: Vigil's is inherited).
    pub umask: Option<u32>,
    /// A cgroup v2 directory the child is created in
    /// (`clone3(CLONE_INTO_CGROUP)`; see `crate::cgroup`).
    pub cgroup_into: Option<PathBuf>,
    /// `cgroup.procs` files the child writes itself into before `execve`
    /// (its service's cgroups in v1 hierarchies).
    pub cgroup_procs: Vec<PathBuf>,
    /// Resource limits (`RLIMIT_*`, soft = hard) set in the child.
    pub rlimits: Vec<(libc::c_int, u64)>,
    /// Listening sockets the child gets from fd 3 on, in this order, with
    /// `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (its own pid), as
    /// systemd's socket activation passes them. Empty: none of these.
    pub listen: Vec<ListenFd>,
}

/// Credentials a child takes between clone and exec, resolved from the
/// user database beforehand (no lookup is async-signal-safe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, replacing Vigil's.
    pub groups: Vec<u32>,
}

/// A listening socket passed to a child (see [`Command::listen`]).
#[derive(Debug, Clone)]
pub struct ListenFd {
    /// Vigil's own copy (close-on-exec); the child gets a duplicate.
    pub fd: Arc<OwnedFd>,
    /// Its `LISTEN_FDNAMES` entry.
    pub name: String,
}

impl PartialEq for ListenFd {
    /// The same socket (not merely an equal fd number) under the same name.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fd, &other.fd) && self.name == other.name
    }
}

impl Eq for ListenFd {}

/// At most this many sockets go to one child (moved aside through a fixed
/// array on the child's stack).
pub const MAX_LISTEN_FDS: usize = 64;

/// `LISTEN_PID=` and room for any pid and the NUL.
const LISTEN_PID_LEN: usize = 32;
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

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
            run_as: None,
            umask: None,
            cgroup_into: None,
            cgroup_procs: Vec::new(),
            rlimits: Vec::new(),
            listen: Vec::new(),
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
    #[error("cannot become {what} {id} before exec: {source}")]
    Identity {
        what: &'static str,
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot join its cgroup: {0}")]
    Cgroup(#[source] std::io::Error),
    #[error("cannot set its resource limits: {0}")]
    Rlimit(#[source] std::io::Error),
    #[error("cannot pass its listening sockets (LISTEN_FDS): {0}")]
    Listen(#[source] std::io::Error),
    #[error("{0} listening sockets, at most {MAX_LISTEN_FDS} can be passed")]
    TooManySockets(usize),
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
    announce: Option<Box<dyn Announce>>,
}

/// Told about a child before its program runs. A `notify = true` child may
/// send `READY=1` within microseconds of `execve`, before the spawner
/// thread wakes from the clone, and the notify socket must attribute it at
/// once, without waiting for the spawn to be published.
pub trait Announce: Send {
    /// Called on the spawner thread just before the clone. The child
    /// stores its own pid (its process group too: it has called `setsid`)
    /// in the returned slot, with release ordering, just before `execve`.
    fn cloning(&self) -> &AtomicI32;
    /// After the clone: the child's pid once it has exec'd, `None` when no
    /// child was started (the slot's value is then meaningless).
    fn cloned(&self, pid: Option<Pid>);
}

/// Calls [`Announce::cloned`] on every way out of a spawn.
struct Announced<'a> {
    announce: &'a dyn Announce,
    pid: Option<Pid>,
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        self.announce.cloned(self.pid);
    }
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
        let mut ctx = SpawnContext::new()?;
        let thread = std::thread::Builder::new()
            .name("vigil-spawner".into())
            .spawn(move || {
                let parent = nix::unistd::getpid();
                // Every signal stays blocked on this thread (the process's
                // signals go to the other threads): a child shares Vigil's
                // memory until it execs and must not run Vigil's handlers.
                if let Err(e) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None)
                {
                    tracing::error!("spawner: cannot block signals: {e}");
                    return;
                }
                for job in rx {
                    let result = spawn_now(
                        &registry,
                        parent,
                        &mut ctx,
                        &job.command,
                        job.route,
                        job.announce.as_deref(),
                    );
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
        announce: Option<Box<dyn Announce>>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Spawned, SpawnError>>, SpawnError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let tx = self.tx.as_ref().ok_or(SpawnError::Gone)?;
        tx.send(Job {
            command,
            route,
            reply,
            announce,
        })
        .map_err(|_| SpawnError::Gone)?;
        Ok(rx)
    }

    /// Spawn `command`; its exit status will be passed to `route`.
    pub async fn spawn(&self, command: Command, route: Route) -> Result<Spawned, SpawnError> {
        self.spawn_announced(command, route, None).await
    }

    /// [`Spawner::spawn`], telling `announce` the child's pid before its
    /// program runs.
    pub async fn spawn_announced(
        &self,
        command: Command,
        route: Route,
        announce: Option<Box<dyn Announce>>,
    ) -> Result<Spawned, SpawnError> {
        self.submit(command, route, announce)?
            .await
            .map_err(|_| SpawnError::Gone)?
    }

    /// Like [`Spawner::spawn`], for synchronous callers (not inside an
    /// async context).
    pub fn spawn_blocking(&self, command: Command, route: Route) -> Result<Spawned, SpawnError> {
        self.submit(command, route, None)?
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
    run_as: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    umask: Option<libc::mode_t>,
    /// The v2 cgroup to clone into: its directory, and its `cgroup.procs`
    /// for a kernel without `clone3(CLONE_INTO_CGROUP)` (5.7+).
    cgroup_into: Option<(OwnedFd, OwnedFd)>,
    /// Open (close-on-exec) `cgroup.procs` files of the child's cgroups.
    cgroup_procs: Vec<OwnedFd>,
    rlimits: Vec<(libc::c_int, libc::rlimit64)>,
    /// Vigil's fds of [`Command::listen`], in order.
    listen: Vec<i32>,
    /// `LISTEN_PID=` + the child's pid, written by the child (the pid is
    /// not known before the clone); `envp_ptrs` points at it.
    listen_pid: Option<Box<UnsafeCell<[u8; LISTEN_PID_LEN]>>>,
}

/// What the spawner thread keeps between spawns.
struct SpawnContext {
    /// /dev/null, opened once (close-on-exec): stdin, and unpiped output.
    devnull: OwnedFd,
    /// The child's stack from `clone` to `execve`. Only one child uses it
    /// at a time: the spawner sleeps until the child has left it.
    stack: Vec<u8>,
}

/// Room for `exec_child`'s frames (a few hundred bytes) many times over.
const CHILD_STACK: usize = 64 << 10;

impl SpawnContext {
    fn new() -> std::io::Result<SpawnContext> {
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        Ok(SpawnContext {
            devnull: devnull.into(),
            stack: vec![0; CHILD_STACK],
        })
    }
}

fn prepare(command: &Command) -> Result<Prepared, SpawnError> {
    let program = cstring(resolve_program(command)?)?;
    let argv: Vec<CString> = command.argv.iter().map(cstring).collect::<Result<_, _>>()?;
    let passing = !command.listen.is_empty();
    if command.listen.len() > MAX_LISTEN_FDS {
        return Err(SpawnError::TooManySockets(command.listen.len()));
    }
    let mut envp: Vec<CString> = command
        .env
        .iter()
        // Ours replace any the service inherited.
        .filter(|(k, _)| !(passing && k.starts_with("LISTEN_")))
        .map(|(k, v)| cstring(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let listen_pid = if passing {
        let names: Vec<&str> = command.listen.iter().map(|l| l.name.as_str()).collect();
        envp.push(cstring(format!("LISTEN_FDS={}", command.listen.len()))?);
        envp.push(cstring(format!("LISTEN_FDNAMES={}", names.join(":")))?);
        let mut slot = [0u8; LISTEN_PID_LEN];
        slot[..LISTEN_PID_PREFIX.len()].copy_from_slice(LISTEN_PID_PREFIX);
        Some(Box::new(UnsafeCell::new(slot)))
    } else {
        None
    };
    let argv_ptrs = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp_ptrs = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(listen_pid.as_ref().map(|b| b.get() as *const libc::c_char))
        .chain([std::ptr::null()])
        .collect();
    let open = |path: &std::path::Path, write: bool| {
        let mut options = std::fs::OpenOptions::new();
        if write {
            options.write(true);
        } else {
            options.read(true);
        }
        options.open(path).map(OwnedFd::from).map_err(|e| {
            SpawnError::Cgroup(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })
    };
    let cgroup_into = match &command.cgroup_into {
        Some(dir) => Some((open(dir, false)?, open(&dir.join("cgroup.procs"), true)?)),
        None => None,
    };
    let cgroup_procs = command
        .cgroup_procs
        .iter()
        .map(|path| open(path, true))
        .collect::<Result<_, _>>()?;
    let rlimits = command
        .rlimits
        .iter()
        .map(|&(resource, value)| {
            (
                resource,
                libc::rlimit64 {
                    rlim_cur: value,
                    rlim_max: value,
                },
            )
        })
        .collect();
    Ok(Prepared {
        program,
        argv,
        argv_ptrs,
        envp,
        envp_ptrs,
        cwd: cstring(command.cwd.as_os_str())?,
        run_as: command
            .run_as
            .as_ref()
            .map(|r| (r.uid, r.gid, r.groups.clone())),
        umask: command.umask,
        cgroup_into,
        cgroup_procs,
        rlimits,
        listen: command.listen.iter().map(|l| l.fd.as_raw_fd()).collect(),
        listen_pid,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(os("pipe"))
}

fn spawn_now(
    registry: &Registry,
    parent: Pid,
    ctx: &mut SpawnContext,
    command: &Command,
    route: Route,
    announce: Option<&dyn Announce>,
) -> Result<Spawned, SpawnError> {
    let prep = prepare(command)?;
    debug_assert_eq!(prep.argv.len() + 1, prep.argv_ptrs.len());
    debug_assert_eq!(
        prep.envp.len() + usize::from(prep.listen_pid.is_some()) + 1,
        prep.envp_ptrs.len()
    );
    let stdout = match command.stdout {
        Output::Pipe => Some(pipe()?),
        _ => None,
    };
    let stderr = match command.stderr {
        Output::Pipe => Some(pipe()?),
        _ => None,
    };
    let null = ctx.devnull.as_raw_fd();
    let fd_for = |output: Output, pipe: &Option<(OwnedFd, OwnedFd)>| match (output, pipe) {
        (Output::Pipe, Some((_, w))) => w.as_raw_fd(),
        (Output::Inherit, _) => -1,
        _ => null,
    };
    let fds = ChildFds {
        stdin: null,
        stdout: fd_for(command.stdout, &stdout),
        stderr: fd_for(command.stderr, &stderr),
    };
    // The child's errno when it fails before or in execve; 0 otherwise.
    let failure = AtomicI32::new(0);
    let pid_slot = announce.map(|a| a.cloning());
    let mut announced = announce.map(|announce| Announced {
        announce,
        pid: None,
    });

    // Until the start time is read: a child that exits at once is not
    // reaped before, so the start time is known for every child (recovery
    // needs it to claim what a leader left in its group).
    let reaping = registry.hold_reaping();
    let pid = {
        // Held across clone: the reaper cannot route this pid before it is
        // registered as pending.
        let mut guard = registry.lock();
        let args = ChildArgs {
            prep: &prep,
            parent,
            fds,
            failure: &failure,
            pid_slot,
            join_into: false,
        };
        // Into its v2 cgroup at the clone: no migration (see clone_into).
        let into = match &prep.cgroup_into {
            Some((dir, _)) => clone_into(dir, &mut ctx.stack, &args),
            None => None,
        };
        let child = Box::new(|| -> isize {
            // SAFETY: runs in the child made by the clone below, which
            // shares our memory and never returns (execve or _exit).
            unsafe {
                exec_child(&ChildArgs {
                    join_into: true,
                    ..args
                })
            }
        });
        // SAFETY: CLONE_VM | CLONE_VFORK suspends this thread until the
        // child has exec'd or exited, so the child has our memory to itself
        // meanwhile: it runs on `ctx.stack` (nobody else's), reads `prep`
        // and `fds`, and writes only the atomics `failure` and `pid_slot`
        // (borrowed from `announce`, alive for this whole call). It only
        // makes async-signal-safe calls (see `exec_child`), and no signal
        // handler can run in it before the dispositions are reset, since
        // this thread (whose mask it inherits) blocks every signal.
        let pid = match into {
            Some(pid) => pid,
            None => unsafe {
                nix::sched::clone(
                    child,
                    &mut ctx.stack,
                    CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
                    Some(libc::SIGCHLD),
                )
            }
            .map_err(os("clone"))?,
        };
        guard.insert_pending(pid);
        pid
    };
    // Our write ends of the pipes must go, or readers never see EOF.
    let stdout = stdout.map(|(r, _)| r);
    let stderr = stderr.map(|(r, _)| r);

    let code = failure.load(Ordering::Acquire);
    if code != 0 {
        registry.discard(pid);
        let (step, errno) = (code >> STEP_SHIFT, code & ((1 << STEP_SHIFT) - 1));
        let source = std::io::Error::from_raw_os_error(errno);
        let run_as = command.run_as.as_ref();
        let (uid, gid) = run_as.map_or((0, 0), |r| (r.uid, r.gid));
        return Err(match step {
            STEP_CGROUP => SpawnError::Cgroup(source),
            STEP_RLIMIT => SpawnError::Rlimit(source),
            STEP_LISTEN => SpawnError::Listen(source),
            STEP_GROUPS => SpawnError::Identity {
                what: "the supplementary groups",
                id: format!("{:?}", run_as.map(|r| &r.groups)),
                source,
            },
            STEP_GID => SpawnError::Identity {
                what: "gid",
                id: gid.to_string(),
                source,
            },
            STEP_UID => SpawnError::Identity {
                what: "uid",
                id: uid.to_string(),
                source,
            },
            _ => SpawnError::Exec {
                program: command.argv[0].clone(),
                source,
            },
        });
    }
    if let Some(a) = announced.as_mut() {
        a.pid = Some(pid);
    }
    drop(announced);
    let start_time = procfs::start_time(pid.as_raw());
    drop(reaping);
    registry.claim(pid, route);
    Ok(Spawned {
        pid,
        start_time,
        stdout,
        stderr,
    })
}

/// Which step of the child failed, in the failure slot above the errno
/// (0: any other step, reported as an exec failure).
const STEP_SHIFT: i32 = 16;
const STEP_CGROUP: i32 = 1;
const STEP_RLIMIT: i32 = 2;
const STEP_GROUPS: i32 = 3;
const STEP_GID: i32 = 4;
const STEP_UID: i32 = 5;
const STEP_LISTEN: i32 = 6;
/// What the child gets, by reference into the spawner's frame.
#[derive(Clone, Copy)]
struct ChildArgs<'a> {
    prep: &'a Prepared,
    parent: Pid,
    fds: ChildFds,
    failure: &'a AtomicI32,
    pid_slot: Option<&'a AtomicI32>,
    /// Write into the v2 cgroup's `cgroup.procs` (the clone did not put
    /// the child there).
    join_into: bool,
}

/// `CLONE_INTO_CGROUP` (linux/sched.h; not in every libc crate).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args`, up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

// `clone3` with a new stack returns in the child on that stack, where no
// Rust frame can continue: this trampoline calls `entry(arg)` there (as
// glibc's clone does) and returns only in the parent, with the raw result
// (a pid, or -errno). Arguments: args, size, entry, arg.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".globl vigil_spawn_clone3",
    "vigil_spawn_clone3:",
    "mov r8, rdx",
    "mov r9, rcx",
    "mov eax, 435",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    "xor ebp, ebp",
    "and rsp, -16",
    "mov rdi, r9",
    "call r8",
    "ud2",
    "2:",
    "ret",
);
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".globl vigil_spawn_clone3",
    "vigil_spawn_clone3:",
    "mov x9, x2",
    "mov x10, x3",
    "mov x8, #435",
    "svc #0",
    "cbnz x0, 2f",
    "mov x0, x10",
    "blr x9",
    "brk #0",
    "2:",
    "ret",
);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe extern "C" {
    fn vigil_spawn_clone3(
        args: *mut CloneArgs,
        size: usize,
        entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
        arg: *mut libc::c_void,
    ) -> libc::c_long;
}

/// The child's first frame after `clone3`.
extern "C" fn clone3_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` that `clone_into` passed, alive in
    // the parent's frame, which sleeps (CLONE_VFORK) until we exec or exit.
    unsafe { exec_child(&*(arg as *const ChildArgs)) }
}

/// The child made with `clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP)`:
/// created in the cgroup `dir`, so it never migrates (a write to
/// `cgroup.procs` is a migration, which takes the kernel's global
/// threadgroup lock for writing: after a quiet spell, an RCU grace period,
/// 10-20 ms here, at every restart). `None` when the kernel refuses (older
/// than 5.7, or an architecture without the trampoline): the caller clones
/// as before and the child writes `cgroup.procs` itself.
fn clone_into(dir: &OwnedFd, stack: &mut [u8], args: &ChildArgs<'_>) -> Option<Pid> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // 16-byte aligned top of the stack, as both ABIs want.
        let base = stack.as_mut_ptr() as usize;
        let top = (base + stack.len()) & !15;
        let mut clone = CloneArgs {
            flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            stack: base as u64,
            stack_size: (top - base) as u64,
            cgroup: dir.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: as for the clone in `spawn_now`: CLONE_VM | CLONE_VFORK
        // suspends this thread until the child has exec'd or exited; the
        // child runs `clone3_entry` on `stack` (nobody else's), reads
        // `args` (alive in our frame), and the trampoline never returns in
        // it. The kernel reads `clone` only during the call.
        let ret = unsafe {
            vigil_spawn_clone3(
                &mut clone,
                std::mem::size_of::<CloneArgs>(),
                clone3_entry,
                args as *const ChildArgs as *mut libc::c_void,
            )
        };
        (ret > 0).then(|| Pid::from_raw(ret as i32))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (dir, stack, args);
        None
    }
}

/// The child's standard descriptors (-1: keep Vigil's).
#[derive(Clone, Copy)]
struct ChildFds {
    stdin: i32,
    stdout: i32,
    stderr: i32,
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// The child's side, between clone and exec.
///
/// # Safety
/// Must only be called in a child made by `clone(CLONE_VM | CLONE_VFORK)`
/// from a thread that blocks every signal, while its parent thread sleeps.
/// Only async-signal-safe libc calls are made, on memory allocated before
/// the clone; the only writes to shared memory are `failure` and
/// `pid_slot`.
unsafe fn exec_child(args: &ChildArgs<'_>) -> ! {
    let ChildArgs {
        prep: p,
        parent,
        fds,
        failure,
        pid_slot,
        join_into,
    } = *args;
    // SAFETY (whole block): each call below is async-signal-safe per
    // signal-safety(7) (prctl, getppid and close_range are plain syscalls);
    // pointers come from CStrings and pointer vectors owned by `p`, alive
    // and unchanged until the parent resumes after our execve or _exit;
    // the one write through them is to `listen_pid`, which nothing else
    // touches until then.
    unsafe {
        let fail = |step: i32| -> ! {
            let errno = *libc::__errno_location();
            let code = if errno != 0 { errno } else { step };
            failure.store(code, Ordering::Release);
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail(libc::EPERM);
        }

        // A failed step reports which (above the errno) for a clear error.
        let step = |s: i32| -> ! {
            let errno = *libc::__errno_location();
            failure.store((s << STEP_SHIFT) | errno.max(1), Ordering::Release);
            libc::_exit(127)
        };

        // ---- cgroup and rlimits ----
        // Into the service's cgroups before anything of the service runs,
        // and before the identity drops the right to (a v1 `cgroup.procs`
        // is root's; raising a hard rlimit needs CAP_SYS_RESOURCE):
        // `0` names the writer (cgroup v1 and v2 alike). The files were
        // opened before the clone; the errno goes back with its stage.
        let into = p
            .cgroup_into
            .as_ref()
            .filter(|_| join_into)
            .map(|(_, procs)| procs);
        for fd in into.into_iter().chain(&p.cgroup_procs) {
            if libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                step(STEP_CGROUP);
            }
        }
        for (resource, limit) in &p.rlimits {
            if libc::syscall(
                libc::SYS_prlimit64,
                0,
                *resource,
                limit as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            ) < 0
            {
                step(STEP_RLIMIT);
            }
        }
        // ---- end of cgroup and rlimits ----

        // ---- identity: user, group, supplementary groups, umask ----
        // Right after the cgroup, so that nothing after it runs with Vigil's
        // privileges, and before PR_SET_PDEATHSIG, which the kernel clears
        // when the credentials change. Raw syscalls, not libc's setgroups/
        // setgid/setuid: glibc's wrappers change every thread of the
        // process by signalling them (setxid), and this child shares
        // Vigil's memory, thread list included; the raw syscalls change
        // this task only, which is all it is. Groups first, then the gid,
        // then the uid (which drops the right to change the other two).
        if let Some((uid, gid, groups)) = &p.run_as {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0 {
                step(STEP_GROUPS);
            }
            if libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid) < 0 {
                step(STEP_GID);
            }
            if libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid) < 0 {
                step(STEP_UID);
            }
        }
        if let Some(mask) = p.umask {
            // This child's own: without CLONE_FS it has its own umask and
            // cwd, so Vigil's stay as they are.
            libc::umask(mask);
        }
        // ---- end of identity ----

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
        // Default dispositions (ignored signals survive exec otherwise, and
        // handlers must not run here); the mask is emptied just before
        // execve, once no handler is left.
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

        if libc::dup2(fds.stdin, 0) < 0 {
            fail(libc::EBADF);
        }
        if fds.stdout >= 0 && libc::dup2(fds.stdout, 1) < 0 {
            fail(libc::EBADF);
        }
        if fds.stderr >= 0 && libc::dup2(fds.stderr, 2) < 0 {
            fail(libc::EBADF);
        }
        // Descriptors Vigil inherited without close-on-exec (from whoever
        // started it) must not leak into services. Kernels before 5.11
        // lack close_range and are left as they are.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        // --- sockets (LISTEN_FDS): begin ---
        // After close_range, which would mark them close-on-exec again
        // (so after the cgroup, the identity and PDEATHSIG); a failure
        // reports STEP_LISTEN with its errno.
        // Vigil's copy of socket i may sit anywhere, also in 3..3+n where
        // an earlier dup2 would overwrite it: every such one is first
        // moved above that range (close-on-exec, so the move is gone after
        // execve), then each is dup2'd into place, which leaves the new fd
        // without FD_CLOEXEC.
        let n = p.listen.len();
        if n > 0 {
            let first_free = 3 + n as i32;
            let mut moved = [0i32; MAX_LISTEN_FDS];
            for (i, &fd) in p.listen.iter().enumerate() {
                moved[i] = if fd < first_free {
                    let d = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first_free);
                    if d < 0 {
                        step(STEP_LISTEN);
                    }
                    d
                } else {
                    fd
                };
            }
            for (i, &fd) in moved[..n].iter().enumerate() {
                if libc::dup2(fd, 3 + i as i32) < 0 {
                    step(STEP_LISTEN);
                }
            }
            if let Some(slot) = &p.listen_pid {
                write_pid(slot.get(), libc::getpid());
            }
        }
        // --- sockets (LISTEN_FDS): end ---
        if libc::chdir(p.cwd.as_ptr()) < 0 {
            fail(libc::ENOENT);
        }
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        // After `setsid`: our pid is our process group, the key the
        // notify socket attributes datagrams by. Whatever the program
        // sends comes after `execve`, so after this store.
        if let Some(slot) = pid_slot {
            slot.store(libc::getpid(), Ordering::Release);
        }
        libc::execve(
            p.program.as_ptr(),
            p.argv_ptrs.as_ptr(),
            p.envp_ptrs.as_ptr(),
        );
        fail(libc::ENOEXEC)
    }
}

/// Write `LISTEN_PID=<pid>` and a NUL into `slot` without allocating
/// (async-signal-safe: the child's side of a clone calls it).
///
/// # Safety
/// `slot` must be valid for writes and not read by anyone else meanwhile.
unsafe fn write_pid(slot: *mut [u8; LISTEN_PID_LEN], pid: i32) {
    let mut digits = [0u8; 12];
    let mut len = 0;
    let mut v = pid.unsigned_abs();
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // SAFETY: the caller's contract; the prefix (11 bytes) plus at most
    // 10 digits and a NUL fit in LISTEN_PID_LEN (32).
    let out = unsafe { &mut *slot };
    let mut at = LISTEN_PID_PREFIX.len();
    out[..at].copy_from_slice(LISTEN_PID_PREFIX);
    for &d in digits[..len].iter().rev() {
        out[at] = d;
        at += 1;
    }
    out[at] = 0;
}

#[cfg(test)]
mod listen_tests {
    use super::*;

    #[test]
    fn the_pid_is_written_in_decimal() {
        for pid in [1, 9, 10, 4242, i32::MAX] {
            let cell = UnsafeCell::new([0xffu8; LISTEN_PID_LEN]);
            // SAFETY: `cell` is ours alone.
            unsafe { write_pid(cell.get(), pid) };
            let bytes = cell.into_inner();
            let text = std::ffi::CStr::from_bytes_until_nul(&bytes).unwrap();
            assert_eq!(text.to_str().unwrap(), format!("LISTEN_PID={pid}"));
        }
    }
}
