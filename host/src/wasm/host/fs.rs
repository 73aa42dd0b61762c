//! `vigil:health/fs`: stat and read of granted paths only.
//!
//! A call goes through four steps, each closing a hole:
//!
//! 1. The grant is decided lexically, before anything touches the file
//!    system ([`Grants::check_path`](crate::wasm::Grants::check_path)). A
//!    denial says `denied` and the path as the guest gave it, nothing
//!    else, so it cannot tell what exists or where a link points
//!    (`/proc/self/exe`, `/proc/PID/cwd`, `/etc/hostname/..`).
//! 2. The granted root, resolved when the grant was parsed, is opened with
//!    `openat2(RESOLVE_NO_SYMLINKS)`: it held no symlink then, so one found
//!    in it now was put there since, and the call fails rather than follow
//!    it.
//! 3. The rest of the path is opened beneath the root's descriptor in one
//!    step, `openat2(O_PATH, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
//!    The kernel refuses any component that leaves the root, so swapping a
//!    directory for a symlink during the call cannot walk the check out
//!    (the race of resolving a path, then opening it again by name).
//!
//!    The symlink rule: a symlink beneath the root is followed when its
//!    target stays beneath the root (a relative `current -> releases/42`);
//!    an absolute target, a target climbing out with `..`, and the magic
//!    links of /proc (`fd/N`, `cwd`, `exe`, `root`, even under a granted
//!    /proc) are `denied`.
//! 4. `stat` answers from `fstat` of that O_PATH descriptor. `read` opens
//!    only a regular file, by reopening the pinned inode through
//!    /proc/self/fd/N, so a FIFO or device in a granted directory is never
//!    opened (a FIFO blocks an open; opening /dev/watchdog arms it).
//!
//! Without openat2 (Linux before 5.6, or a seccomp filter refusing it)
//! every fs call fails: there is no safe fallback. All of it runs on the
//! blocking pool under the call's deadline.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Once, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, fstat};

use super::{HostError, blocking};
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::fs::{self, Kind, Metadata};
use crate::wasm::grants::{GrantedPath, PathDenied};
use crate::wasm::store::{HostState, MAX_TRANSFER};

/// How often a resolution is retried when the kernel could not prove it
/// safe (`EAGAIN`: a rename raced the `..` of a symlink's target beneath
/// the root). Past that the call fails.
const RESOLVE_ATTEMPTS: usize = 8;

impl HostState {
    /// The grant decision; see the module documentation, step 1.
    fn granted_path(&self, path: &str) -> Result<GrantedPath, ErrorCode> {
        self.caps
            .grants
            .check_path(path, self.caps.base_dir.as_deref())
            .map_err(|denied| match denied {
                PathDenied::NotGranted => ErrorCode::Denied(format!(
                    "{path}: {denied}: {}",
                    crate::wasm::grants::path_grant_fix(path)
                )),
                PathDenied::Invalid(why) => ErrorCode::Invalid(format!("{path}: {why}")),
            })
    }
}

/// A granted path opened as O_PATH: the inode is pinned, nothing is
/// opened for I/O.
struct Opened {
    fd: OwnedFd,
    stat: FileStat,
}

/// Steps 2 and 3 of the module documentation. `given` is the guest's
/// spelling, the only path an error may name.
fn open_granted(granted: &GrantedPath, given: &str) -> Result<Opened, ErrorCode> {
    // The common case in one walk: with no symlink anywhere on the way
    // (the kernel refuses one, ELOOP) and only plain components in `rest`
    // (no `..`: it was normalized lexically), the path cannot leave the
    // root. A symlink on the way takes the two-step path below, which
    // follows it only while it stays beneath the root.
    if !granted.rest.as_os_str().is_empty() {
        match open_path(
            AT_FDCWD,
            &granted.root.join(&granted.rest),
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        ) {
            Ok(fd) => {
                let stat = fstat(&fd).map_err(|errno| io_error(errno, given))?;
                return Ok(Opened { fd, stat });
            }
            Err(Errno::ELOOP) => {}
            Err(errno) => return Err(open_error(errno, given)),
        }
    }
    let root = open_path(AT_FDCWD, &granted.root, ResolveFlag::RESOLVE_NO_SYMLINKS)
        .map_err(|errno| open_error(errno, given))?;
    let fd = if granted.rest.as_os_str().is_empty() {
        root
    } else {
        open_path(
            &root,
            &granted.rest,
            ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(|errno| open_error(errno, given))?
    };
    let stat = fstat(&fd).map_err(|errno| io_error(errno, given))?;
    Ok(Opened { fd, stat })
}

fn open_path(dir: impl AsFd, path: &Path, resolve: ResolveFlag) -> nix::Result<OwnedFd> {
    let mut attempts = 1;
    loop {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(resolve);
        match openat2(dir.as_fd(), path, how) {
            Err(Errno::EAGAIN) if attempts < RESOLVE_ATTEMPTS => attempts += 1,
            result => return result,
        }
    }
}

/// What a failed open of a granted path tells the guest. The path is
/// granted, so saying "not found" gives nothing away.
fn open_error(errno: Errno, given: &str) -> ErrorCode {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => ErrorCode::NotFound,
        // EXDEV: the walk left the root. ELOOP: a symlink where none may
        // be (in the root itself, a /proc magic link) or a symlink loop.
        Errno::EXDEV | Errno::ELOOP => ErrorCode::Denied(format!(
            "{given}: leaves [grants] paths through a symlink: grant where the link points, or remove the link"
        )),
        Errno::ENOSYS | Errno::EPERM => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    %errno,
                    "openat2 is unavailable (Linux 5.6 or later, and a seccomp policy that allows it, are needed): every fs call of every check fails"
                );
            });
            ErrorCode::Io("fs is unavailable on this host: openat2 is not permitted".into())
        }
        other => io_error(other, given),
    }
}

fn io_error(errno: Errno, given: &str) -> ErrorCode {
    match errno {
        Errno::EACCES => ErrorCode::Denied(format!("{given}: permission denied")),
        Errno::ENAMETOOLONG => ErrorCode::Invalid(format!("{given}: name too long")),
        other => ErrorCode::Io(format!("{given}: {}", other.desc())),
    }
}

fn file_type(stat: &FileStat) -> libc::mode_t {
    stat.st_mode & libc::S_IFMT
}

fn metadata(stat: &FileStat) -> Metadata {
    let kind = match file_type(stat) {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Directory,
        _ => Kind::Other,
    };
    // Times before the epoch, or too far ahead to represent, read as the
    // epoch: the file's owner chooses them.
    let modified = u64::try_from(stat.st_mtime)
        .ok()
        .and_then(|secs| {
            let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0) % 1_000_000_000;
            UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
        })
        .unwrap_or(UNIX_EPOCH);
    Metadata {
        kind,
        size: u64::try_from(stat.st_size).unwrap_or(0),
        modified_ms: millis_since_epoch(modified),
        age_ms: SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64,
    }
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// Whether /proc is procfs, so that `/proc/self/fd/N` is the kernel's
/// own link to a descriptor (anything else mounted there is refused).
fn proc_is_procfs() -> bool {
    static PROCFS: OnceLock<bool> = OnceLock::new();
    *PROCFS.get_or_init(|| {
        use nix::sys::statfs::{PROC_SUPER_MAGIC, statfs};
        statfs("/proc/self/fd").is_ok_and(|fs| fs.filesystem_type() == PROC_SUPER_MAGIC)
    })
}

/// Step 4: reads at most `limit` bytes of a regular file.
fn read_regular(opened: &Opened, given: &str, limit: usize) -> Result<Vec<u8>, ErrorCode> {
    if file_type(&opened.stat) != libc::S_IFREG {
        return Err(ErrorCode::Invalid(format!("{given}: not a regular file")));
    }
    // Opening /proc/self/fd/N reopens the very inode the O_PATH descriptor
    // holds, without resolving the guest's path again; it is a regular
    // file, so the open has no side effect. That holds for procfs only,
    // which is checked once (not per call: a call's cost is microseconds).
    if !proc_is_procfs() {
        return Err(ErrorCode::Io(
            "fs reads need procfs mounted at /proc on this host".into(),
        ));
    }
    let pinned = format!("/proc/self/fd/{}", opened.fd.as_raw_fd());
    let fd = nix::fcntl::open(
        pinned.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    )
    .map_err(|errno| io_error(errno, given))?;
    let file = File::from(fd);
    let mut contents = Vec::with_capacity(limit.min(64 * 1024));
    file.take(limit as u64)
        .read_to_end(&mut contents)
        .map_err(|err| match err.raw_os_error() {
            Some(code) => io_error(Errno::from_raw(code), given),
            None => ErrorCode::Io(format!("{given}: {err}")),
        })?;
    Ok(contents)
}

impl fs::Host for HostState {
    async fn stat(&mut self, path: String) -> Result<Metadata, HostError> {
        let granted = self.granted_path(&path)?;
        let timeout = self.caps.call_timeout(None);
        blocking(timeout, move || {
            open_granted(&granted, &path).map(|opened| metadata(&opened.stat))
        })
        .await
    }

    async fn read(&mut self, path: String, max_bytes: u32) -> Result<Vec<u8>, HostError> {
        let granted = self.granted_path(&path)?;
        let timeout = self.caps.call_timeout(None);
        let limit = (max_bytes as usize).min(MAX_TRANSFER);
        blocking(timeout, move || {
            let opened = open_granted(&granted, &path)?;
            read_regular(&opened, &path, limit)
        })
        .await
    }
}
