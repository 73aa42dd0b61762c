//! Trusting the cache's directories and files: the `O_NOFOLLOW` chain from `/` and the `fstat` checks.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;

/// Why a directory or file of the cache is not trusted.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("{} is writable by group or others (mode {mode:04o})", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("{} belongs to uid {owner}, not to uid {euid} that runs vigil", path.display())]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("{} is a symbolic link", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a {expected}", path.display())]
    Kind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{} is readable by group or others (mode {mode:04o})", path.display())]
    SecretReadable { path: PathBuf, mode: u32 },
    #[error("{} is not a 32-byte secret", path.display())]
    SecretMalformed { path: PathBuf },
    #[error("{}: too many symbolic links", path.display())]
    Links { path: PathBuf },
}

impl Refusal {
    /// What the operator runs to make the cache usable again.
    pub(super) fn fix(&self) -> String {
        match self {
            Refusal::Writable { path, .. } => format!("chmod go-w {}", path.display()),
            Refusal::Owner { path, euid, .. } => format!(
                "chown {euid} {}, or set XDG_CACHE_HOME to a directory of uid {euid}",
                path.display()
            ),
            Refusal::Symlink { .. } | Refusal::Links { .. } => {
                "set XDG_CACHE_HOME to the real directory".to_owned()
            }
            Refusal::Kind { path, .. } => format!("remove {}", path.display()),
            Refusal::SecretReadable { path, .. } | Refusal::SecretMalformed { path } => format!(
                "rm {} (a new secret is made; cached components compile again)",
                path.display()
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum CacheError {
    /// Not created yet: a plain miss.
    #[error("not there")]
    Missing,
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CacheError {
    fn io(path: &Path) -> impl FnOnce(Errno) -> CacheError + '_ {
        move |errno| CacheError::Io {
            path: path.to_owned(),
            source: errno.into(),
        }
    }
}

/// An opened, trusted directory of the cache: every access to what is in
/// it goes through `fd`; `path` is for messages only.
pub(super) struct Dir {
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
}

/// Flags of every directory opened: a descriptor that only names it (no
/// read permission needed), never through a symlink.
pub(super) const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
pub(super) const GROUP_OTHER_WRITE: u32 = 0o022;
pub(super) const STICKY: u32 = 0o1000;
pub(super) const FILE_TYPE: u32 = 0o170000;
pub(super) const SYMLINK: u32 = 0o120000;
/// Symbolic links followed while opening the cache directory (Linux's own
/// limit).
pub(super) const MAX_LINKS: usize = 40;

pub(super) fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Checks a directory of the chain through its descriptor: see the module
/// doc (`wasm::cache`) for the rules of an ancestor and of the cache directory itself.
pub(super) fn check_dir(fd: &OwnedFd, path: &Path, is_cache_dir: bool) -> Result<(), CacheError> {
    let stat = nix::sys::stat::fstat(fd).map_err(CacheError::io(path))?;
    let (owner, mode, euid) = (stat.st_uid, stat.st_mode, euid());
    let owner_ok = owner == euid || (!is_cache_dir && owner == 0);
    if !owner_ok {
        return Err(Refusal::Owner {
            path: path.to_owned(),
            owner,
            euid,
        }
        .into());
    }
    let sticky_ok = !is_cache_dir && mode & STICKY != 0;
    if mode & GROUP_OTHER_WRITE != 0 && !sticky_ok {
        return Err(Refusal::Writable {
            path: path.to_owned(),
            mode: mode & 0o7777,
        }
        .into());
    }
    Ok(())
}

/// The names of `path`, `..` kept (resolved against the directories
/// actually opened, as the kernel does).
pub(super) fn names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|part| match part {
        std::path::Component::Normal(name) => Some(name.to_owned()),
        std::path::Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

/// Opens the cache directory `path` (creating what is missing with mode
/// 0700 when `create`), checking every directory on the way from `/`.
pub(super) fn open_cache_dir(path: &Path, create: bool) -> Result<Dir, CacheError> {
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        let cwd = std::env::current_dir().map_err(|source| CacheError::Io {
            path: path.to_owned(),
            source,
        })?;
        cwd.join(path)
    };
    let root = PathBuf::from("/");
    let root_fd =
        nix::fcntl::open(&root, DIR_FLAGS, Mode::empty()).map_err(CacheError::io(&root))?;
    check_dir(&root_fd, &root, false)?;
    // The opened directories from `/` down; `..` pops one.
    let mut chain = vec![Dir {
        fd: root_fd,
        path: root,
    }];
    let mut pending: VecDeque<OsString> = names(&path).collect();
    let mut steps = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        let Some(parent) = chain.last() else {
            break; // never empty: `/` is not popped
        };
        let here = parent.path.join(&name);
        match nix::fcntl::openat(&parent.fd, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => {
                check_dir(&fd, &here, false)?;
                chain.push(Dir { fd, path: here });
            }
            Err(Errno::ENOENT) if create && steps < MAX_LINKS => {
                steps += 1;
                match nix::sys::stat::mkdirat(
                    &parent.fd,
                    name.as_os_str(),
                    Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => pending.push_front(name),
                    Err(errno) => return Err(CacheError::io(&here)(errno)),
                }
            }
            Err(Errno::ENOENT) => return Err(CacheError::Missing),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let stat = nix::sys::stat::fstatat(
                    &parent.fd,
                    name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(CacheError::io(&here))?;
                if stat.st_mode & FILE_TYPE != SYMLINK {
                    return Err(Refusal::Kind {
                        path: here,
                        expected: "directory",
                    }
                    .into());
                }
                if pending.is_empty() {
                    return Err(Refusal::Symlink { path: here }.into());
                }
                if stat.st_uid != euid() && stat.st_uid != 0 {
                    return Err(Refusal::Owner {
                        path: here,
                        owner: stat.st_uid,
                        euid: euid(),
                    }
                    .into());
                }
                steps += 1;
                if steps > MAX_LINKS {
                    return Err(Refusal::Links { path: here }.into());
                }
                let target = PathBuf::from(
                    nix::fcntl::readlinkat(&parent.fd, name.as_os_str())
                        .map_err(CacheError::io(&here))?,
                );
                for name in names(&target).rev() {
                    pending.push_front(name);
                }
                if target.is_absolute() {
                    chain.truncate(1);
                }
            }
            Err(errno) => return Err(CacheError::io(&here)(errno)),
        }
    }
    let dir = chain.pop().ok_or(CacheError::Missing)?;
    check_dir(&dir.fd, &dir.path, true)?;
    Ok(dir)
}

/// Opens `name` in `dir` (creating it when `create`) under the rules of
/// the cache directory.
pub(super) fn open_subdir(dir: &Dir, name: &str, create: bool) -> Result<Dir, CacheError> {
    let path = dir.path.join(name);
    let fd = match nix::fcntl::openat(&dir.fd, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::ENOENT) if create => {
            match nix::sys::stat::mkdirat(&dir.fd, name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(CacheError::io(&path)(errno)),
            }
            nix::fcntl::openat(&dir.fd, name, DIR_FLAGS, Mode::empty())
        }
        opened => opened,
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Err(CacheError::Missing),
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            return Err(Refusal::Kind {
                path,
                expected: "directory",
            }
            .into());
        }
        Err(errno) => return Err(CacheError::io(&path)(errno)),
    };
    check_dir(&fd, &path, true)?;
    Ok(Dir { fd, path })
}

/// Opens `name` in `dir` for reading if it is a regular file of ours that
/// nobody else can write (`private`: nor read), checked through the
/// descriptor returned.
pub(super) fn open_ours(dir: &Dir, name: &str, private: bool) -> Result<File, CacheError> {
    let path = dir.path.join(name);
    // O_NONBLOCK: a FIFO must not hang the open; it is refused just below.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let file = match nix::fcntl::openat(&dir.fd, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(Errno::ENOENT) => return Err(CacheError::Missing),
        Err(Errno::ELOOP) => return Err(Refusal::Symlink { path }.into()),
        Err(errno) => return Err(CacheError::io(&path)(errno)),
    };
    let meta = file.metadata().map_err(|source| CacheError::Io {
        path: path.clone(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(Refusal::Kind {
            path,
            expected: "regular file",
        }
        .into());
    }
    let euid = euid();
    if meta.uid() != euid {
        return Err(Refusal::Owner {
            path,
            owner: meta.uid(),
            euid,
        }
        .into());
    }
    let mode = meta.mode() & 0o7777;
    if private && mode & 0o077 != 0 {
        return Err(Refusal::SecretReadable { path, mode }.into());
    }
    if mode & GROUP_OTHER_WRITE != 0 {
        return Err(Refusal::Writable { path, mode }.into());
    }
    Ok(file)
}
