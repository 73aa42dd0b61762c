//! On-disk cache of compiled components.
//!
//! Key: SHA-256 of the component bytes (two halves in parallel for large
//! components, see `content_digest`) plus the engine's compatibility hash
//! (wasmtime version and every setting that changes code generation), so a
//! changed engine never loads stale code. Writes go to a temporary file,
//! fsync, then rename, so readers see whole files.
//!
//! # What the cache trusts
//!
//! Loading an artifact maps its native code into this process and runs
//! it; wasmtime checks only its header. So the cache loads nothing it
//! cannot tell it wrote itself, and anything it cannot vouch for is a miss
//! (compiled again), never an error. Trusted are our effective uid and
//! root, who could change this process anyway; nobody else.
//!
//! - **The directory chain.** The cache directory is opened from `/` one
//!   name at a time, `openat(previous, name, O_PATH | O_DIRECTORY |
//!   O_NOFOLLOW)`, and each directory is `fstat`ed through its descriptor:
//!   every ancestor belongs to root or to us and is writable by nobody
//!   else unless it is sticky (like `/tmp`: others cannot rename or delete
//!   our entry in it); the cache directory itself is a real directory
//!   owned by us and writable by nobody else. A symlink among the
//!   ancestors (`~/.cache` moved to another disk, `/home` on Silverblue)
//!   is followed, by us, under the same rules, when root or we own it: its
//!   directory passed, so nobody else can replace it. A symlink as the
//!   cache directory itself is refused: vigil creates that directory and
//!   never makes it a link. Every later access goes through the final
//!   descriptor (`openat`), so nothing checked can be swapped by renaming
//!   a directory on the path. A cache refused here is said once in the
//!   log, with the fix, and components are compiled in memory.
//! - **Files.** Artifacts, tags, memos and the secret are opened with
//!   `openat(dir, name, O_NOFOLLOW)` and `fstat`ed through that
//!   descriptor: a regular file owned by us and writable by nobody else
//!   (the secret: not readable by anybody else either). The artifact is
//!   hashed and deserialized through that same descriptor
//!   ([`deserialize_from`]), never opened again by name.
//! - **Tags.** Each cache directory holds a secret: 32 random bytes in
//!   `secret`, mode 0600, created under a temporary name with `O_EXCL` and
//!   linked into place, so concurrent first starts agree on one. Next to
//!   each artifact `KEY.cwasm`, `KEY.mac` holds HMAC-SHA256(secret, KEY,
//!   digest of the artifact); each memo of an unchanged file (see
//!   [`FileIdentity`]) holds its key, the identity of its artifact (below)
//!   and HMAC-SHA256(secret, memo name, key, artifact identity). A file
//!   made without the secret never verifies, a genuine artifact or memo
//!   moved to another name neither, and a torn or corrupt one is rebuilt. The tag is over the bytes, so a
//!   cache copied with its secret (a container image warmed at build time)
//!   still verifies.
//! - **Unchanged artifacts.** Checking an artifact's tag hashes all of it:
//!   a 35 MB Python artifact costs 30-100 ms of SHA-256 on these machines,
//!   against 11 ms for the whole cached load before. So a memo also
//!   records the identity (device, inode, size, times to the nanosecond)
//!   its artifact had when this cache wrote or verified it, under the
//!   memo's tag; an artifact that still has it is mapped without being
//!   read. Nobody else can write to it (checked above), and any write moves
//!   its times (the change time cannot be set back). Otherwise its tag is
//!   checked as above.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact from disk.
    Hit,
    /// Compiled and stored.
    Compiled,
    /// Compiled; the cache could not be used (see the warning logged).
    Uncached,
}

/// What tells an unchanged file from a changed one without reading it:
/// device, inode, size, and modification and change times in nanoseconds
/// (a rewrite, a rename over it or a `touch` changes one of them; the
/// change time cannot be set back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity(String);

impl FileIdentity {
    /// The identity of `path`, or `None` when it cannot be read or changed
    /// in the last two seconds: a second write within the file system's
    /// timestamp granularity could go unnoticed (git's "racy" entries), so
    /// such a file is read and hashed every time until it settles.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        let meta = std::fs::metadata(path).ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let now = i64::try_from(now).ok()?;
        if !meta.is_file() || now - meta.ctime() < 2 || now - meta.mtime() < 2 {
            return None;
        }
        Some(FileIdentity(format!(
            "{} {} {} {}.{:09} {}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )))
    }
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Warnings already logged: a refused cache is said once, not once per
    /// component of a thousand services.
    said: Arc<Mutex<HashSet<String>>>,
}

/// Feeds `Hash` output into SHA-256, for a stable engine fingerprint.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // never read: the digest is taken from the inner state
    }
}

/// `$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .map(|base| base.join("vigil").join("components"))
}

/// Why a directory or file of the cache is not trusted.
#[derive(Debug, thiserror::Error)]
enum Refusal {
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
    fn fix(&self) -> String {
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
enum CacheError {
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
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A secret per cache directory, the key of every tag.
type Secret = [u8; 32];
/// HMAC-SHA256.
type Tag = [u8; 32];

const SECRET: &str = "secret";
const MEMOS: &str = "files";
/// Flags of every directory opened: a descriptor that only names it (no
/// read permission needed), never through a symlink.
const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const GROUP_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;
const FILE_TYPE: u32 = 0o170000;
const SYMLINK: u32 = 0o120000;
/// Symbolic links followed while opening the cache directory (Linux's own
/// limit).
const MAX_LINKS: usize = 40;

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Checks a directory of the chain through its descriptor: see the module
/// doc for the rules of an ancestor and of the cache directory itself.
fn check_dir(fd: &OwnedFd, path: &Path, is_cache_dir: bool) -> Result<(), CacheError> {
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
fn names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|part| match part {
        std::path::Component::Normal(name) => Some(name.to_owned()),
        std::path::Component::ParentDir => Some("..".into()),
        _ => None,
    })
}

/// Opens the cache directory `path` (creating what is missing with mode
/// 0700 when `create`), checking every directory on the way from `/`.
fn open_cache_dir(path: &Path, create: bool) -> Result<Dir, CacheError> {
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
fn open_subdir(dir: &Dir, name: &str, create: bool) -> Result<Dir, CacheError> {
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
fn open_ours(dir: &Dir, name: &str, private: bool) -> Result<File, CacheError> {
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

/// The first `limit` bytes of a small file (tag, memo) as text.
fn read_small(file: File, limit: u64) -> Option<String> {
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text).ok()?;
    Some(text)
}

fn parse_tag(hex_text: &str) -> Option<Tag> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut tag).ok()?;
    Some(tag)
}

/// Equality that takes as long for any two tags of one length.
fn same_tag(a: &Tag, b: &Tag) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`: ten lines
/// instead of a crate.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Tag {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The tag of the artifact stored under `key` whose bytes have `digest`
/// ([`content_digest`]).
fn artifact_tag(secret: &Secret, key: &str, digest: &[u8; 32]) -> Tag {
    hmac_sha256(
        secret,
        &[b"vigil-cache-artifact-v1\0", key.as_bytes(), b"\0", digest],
    )
}

/// The tag of the memo named `memo` that remembers `key` and the
/// identity its artifact had when this cache wrote or verified it.
fn memo_tag(secret: &Secret, memo: &str, key: &str, artifact: &str) -> Tag {
    hmac_sha256(
        secret,
        &[
            b"vigil-cache-memo-v1\0",
            memo.as_bytes(),
            b"\0",
            key.as_bytes(),
            b"\0",
            artifact.as_bytes(),
        ],
    )
}

/// What tells an artifact unchanged since it was written or verified:
/// device, inode, size, and modification and change times to the
/// nanosecond. Any write to the file moves both times, and the change time
/// cannot be set back (short of root setting the clock back).
fn artifact_identity(file: &File) -> Option<String> {
    let meta = file.metadata().ok()?;
    Some(format!(
        "{}:{}:{}:{}.{:09}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

/// Fills `buf` from the kernel's random source.
fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, exclusively borrowed buffer of exactly
        // `rest.len()` writable bytes, and getrandom writes at most that
        // many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// The secret of `dir`, made when missing and `create`.
fn secret(dir: &Dir, create: bool) -> Result<Secret, CacheError> {
    let path = dir.path.join(SECRET);
    let mut made = false;
    loop {
        match open_ours(dir, SECRET, true) {
            Ok(mut file) => {
                let mut secret = [0u8; 32];
                let mut extra = [0u8; 1];
                let exact =
                    file.read_exact(&mut secret).is_ok() && matches!(file.read(&mut extra), Ok(0));
                return if exact {
                    Ok(secret)
                } else {
                    Err(Refusal::SecretMalformed { path }.into())
                };
            }
            Err(CacheError::Missing) if create && !made => {
                made = true;
                make_secret(dir).map_err(|source| CacheError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Writes a new secret under a temporary name and links it into place: if
/// another process made one first, the link fails and theirs is used.
fn make_secret(dir: &Dir) -> std::io::Result<()> {
    let mut secret = [0u8; 32];
    fill_random(&mut secret)?;
    let (tmp, mut file) = create_temporary(dir, SECRET)?;
    let written = file
        .write_all(&secret)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            match nix::unistd::linkat(&dir.fd, tmp.as_str(), &dir.fd, SECRET, AtFlags::empty()) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(errno) => Err(errno.into()),
            }
        });
    let _ = nix::unistd::unlinkat(&dir.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    written
}

/// A new file in `dir` with a name unique to this call (`O_EXCL`, never
/// through a link), mode 0600.
fn create_temporary(dir: &Dir, name: &str) -> std::io::Result<(String, File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = format!("{name}.tmp.{}.{n}", std::process::id());
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        &dir.fd,
        tmp.as_str(),
        flags,
        Mode::from_bits_truncate(0o600),
    )?;
    Ok((tmp, File::from(fd)))
}

/// Write through a temporary file unique to this call, then rename: two
/// services of one process that name the same component store the same
/// key at once, and a temporary name shared between them (pid only) let
/// one truncate the file the other was renaming into place. Returns the
/// (write-only) descriptor of the file now named `name`.
fn write_atomically(dir: &Dir, name: &str, contents: &[u8]) -> std::io::Result<File> {
    let (tmp, mut file) = create_temporary(dir, name)?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            nix::fcntl::renameat(&dir.fd, tmp.as_str(), &dir.fd, name).map_err(Into::into)
        });
    if written.is_err() {
        let _ = nix::unistd::unlinkat(&dir.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written.map(|()| file)
}

/// `/proc/self/fd/N` of `file` when it names the very inode `file` is
/// open on (procfs mounted): wasmtime maps a component only from a path,
/// and this path reaches the descriptor, not a directory entry.
fn descriptor_path(file: &File) -> Option<PathBuf> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let (via_proc, direct) = (std::fs::metadata(&path).ok()?, file.metadata().ok()?);
    (via_proc.dev() == direct.dev() && via_proc.ino() == direct.ino()).then_some(path)
}

/// Deserializes the artifact open as `file`, checked by the caller: mapped
/// through its descriptor (as fast as `deserialize_file`), or, without
/// procfs, from `bytes` when the caller has them, else read through it.
///
/// # Safety
///
/// `file` must be open on a regular file owned by our euid and writable by
/// nobody else that this cache wrote from `precompile_component` of an
/// engine: just stored, or proven by its tag, or by a tagged memo of its
/// identity (see [`ComponentCache::load_unchanged`]).
unsafe fn deserialize_from(
    engine: &wasmtime::Engine,
    file: &File,
    bytes: Option<&[u8]>,
) -> wasmtime::Result<Component> {
    if let Some(path) = descriptor_path(file) {
        // SAFETY: `path` leads to the inode `file` is open on (same device
        // and inode, just compared; `file` stays open and borrowed for the
        // whole call, so its number cannot name anything else), which the
        // caller guarantees we wrote from `precompile_component`. Artifacts
        // are never written in place (a store renames a new inode over
        // the name), and only our euid or root could write this one, who
        // can change this process anyway, so the mapping stays what was
        // verified. wasmtime still checks the header, version and engine
        // settings.
        return unsafe { Component::deserialize_file(engine, &path) };
    }
    let read;
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => {
            let mut all = Vec::new();
            let mut reader = file;
            reader.read_to_end(&mut all)?;
            read = all;
            &read
        }
    };
    // SAFETY: these bytes were read through `file` (or are the very bytes
    // written to it), which the caller guarantees is an artifact this
    // cache wrote from `precompile_component`; wasmtime checks the header,
    // version and engine settings.
    unsafe { Component::deserialize(engine, bytes) }
}

impl ComponentCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            said: Arc::default(),
        }
    }

    /// The engine's fingerprint: wasmtime version and code-generation
    /// settings.
    fn engine_digest(engine: &wasmtime::Engine) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hex::encode(&hasher.0.finalize()[..8])
    }

    fn key(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
        format!(
            "{}-{}",
            hex::encode(content_digest(bytes)),
            Self::engine_digest(engine)
        )
    }

    /// The name under which the key of an unchanged file is remembered.
    fn memo_name(engine: &wasmtime::Engine, file: &FileIdentity) -> String {
        let name = Sha256::digest(format!("{} {}", file.0, Self::engine_digest(engine)));
        format!("{}.key", hex::encode(name))
    }

    /// Logs `message` at warning level unless it was said before.
    fn warn_once(&self, message: String) {
        let mut said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
        if !said.contains(&message) {
            tracing::warn!("{message}");
            said.insert(message);
        }
    }

    /// Says why the cache directory `path` is not used: a refusal with its
    /// fix, once.
    fn refuse_dir(&self, path: &Path, err: CacheError) {
        match err {
            CacheError::Missing => {}
            CacheError::Refused(refusal) => self.warn_once(format!(
                "component cache {} not used, compiling in memory: {refusal}; fix: {}",
                path.display(),
                refusal.fix()
            )),
            CacheError::Io { .. } => self.warn_once(format!(
                "component cache {} unavailable, compiling in memory: {err}",
                path.display()
            )),
        }
    }

    /// Says why an entry of the cache is not used; it is compiled again
    /// (and replaced, if the cache can store).
    fn refuse_entry(&self, err: CacheError) {
        match err {
            CacheError::Missing => {}
            CacheError::Refused(refusal) => self.warn_once(format!(
                "component cache entry ignored, compiling again: {refusal}"
            )),
            CacheError::Io { .. } => tracing::debug!("component cache entry unreadable: {err}"),
        }
    }

    /// The cache directory and its secret, both made when missing and
    /// `create`; `None` (said once) when the cache is not to be used.
    fn open(&self, create: bool) -> Option<(Dir, Secret)> {
        let path = self.dir.as_ref()?;
        let opened = open_cache_dir(path, create).and_then(|dir| {
            let secret = secret(&dir, create)?;
            Ok((dir, secret))
        });
        opened.map_err(|err| self.refuse_dir(path, err)).ok()
    }

    /// The compiled artifact of a file this cache loaded before and that
    /// has not changed since (see [`FileIdentity`]), without reading or
    /// hashing the component again: for a 20 MB Python check that is most
    /// of a start's cost. `None` when unknown, changed or not verified;
    /// then load it with [`Self::load`].
    pub fn load_unchanged(
        &self,
        engine: &wasmtime::Engine,
        file: &FileIdentity,
    ) -> Option<Component> {
        let (dir, secret) = self.open(false)?;
        let memos = open_subdir(&dir, MEMOS, false)
            .map_err(|err| self.refuse_entry(err))
            .ok()?;
        let name = Self::memo_name(engine, file);
        let memo = open_ours(&memos, &name, false)
            .map_err(|err| self.refuse_entry(err))
            .ok()?;
        let text = read_small(memo, 512)?;
        let mut fields = text.split_whitespace();
        let verified = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(key), Some(identity), Some(tag), None) => parse_tag(tag)
                .filter(|tag| same_tag(&memo_tag(&secret, &name, key, identity), tag))
                .map(|_| (key, identity)),
            // A memo of an older vigil (a key alone): replaced at the next
            // load, not worth a warning.
            (Some(_), None, None, None) => return None,
            _ => None,
        };
        let Some((key, identity)) = verified else {
            self.warn_once(format!(
                "component cache memo {} does not verify (not written by this installation); reading the file again",
                memos.path.join(&name).display()
            ));
            return None;
        };
        let artifact = self.open_artifact(&dir, key)?;
        if artifact_identity(&artifact).as_deref() == Some(identity) {
            // SAFETY: the memo's tag, which only the holder of this cache's
            // secret can make, says this cache wrote or verified (tag
            // checked through the descriptor) the artifact of `key` when it
            // had `identity`; `artifact` was opened without following links
            // and checked through its descriptor to be a regular file of our
            // euid that nobody else can write, in a directory chain nobody
            // else can change (`open_cache_dir`), and it still has that
            // identity: same inode, size and times, so nobody wrote to it
            // since.
            return match unsafe { deserialize_from(engine, &artifact, None) } {
                Ok(component) => Some(component),
                Err(err) => {
                    tracing::warn!(key, "cached component rejected ({err}); compiling again");
                    None
                }
            };
        }
        // Replaced since (another process stored it again): check its tag.
        let component = self.load_verified(engine, &dir, &secret, key, &artifact)?;
        self.remember(engine, &dir, &secret, file, key, &artifact);
        Some(component)
    }

    /// Loads `bytes` as a component, from the cache when possible. With
    /// `file`, the identity of the file the bytes were read from (taken
    /// before reading), the key is remembered for [`Self::load_unchanged`].
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        file: Option<&FileIdentity>,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some((dir, secret)) = self.open(true) else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Uncached));
        };
        let key = Self::key(engine, bytes);
        let remember = |artifact: &File| {
            if let Some(file) = file {
                self.remember(engine, &dir, &secret, file, &key, artifact);
            }
        };
        if let Some(artifact) = self.open_artifact(&dir, &key)
            && let Some(component) = self.load_verified(engine, &dir, &secret, &key, &artifact)
        {
            remember(&artifact);
            return Ok((component, CacheOutcome::Hit));
        }
        let compiled = engine.precompile_component(bytes)?;
        match Self::store(&dir, &secret, &key, &compiled) {
            Ok(stored) => {
                remember(&stored);
                // SAFETY: `stored` is the file `store` just wrote with
                // `compiled`, from `precompile_component` of this engine,
                // created by us with mode 0600 in the checked directory.
                let component =
                    unsafe { deserialize_from(engine, &stored, Some(compiled.as_slice())) }?;
                Ok((component, CacheOutcome::Compiled))
            }
            Err(err) => {
                self.warn_once(format!(
                    "component cache {} unavailable: {err}",
                    dir.path.display()
                ));
                // SAFETY: these bytes come from `precompile_component` of
                // this very engine a moment ago, never from disk.
                let component = unsafe { Component::deserialize(engine, &compiled) }?;
                Ok((component, CacheOutcome::Uncached))
            }
        }
    }

    /// Remembers that the unchanged `file` has `key`, whose `artifact`
    /// this cache has just written or verified, with the artifact's
    /// identity and their tag.
    fn remember(
        &self,
        engine: &wasmtime::Engine,
        dir: &Dir,
        secret: &Secret,
        file: &FileIdentity,
        key: &str,
        artifact: &File,
    ) {
        let name = Self::memo_name(engine, file);
        let Some(identity) = artifact_identity(artifact) else {
            return;
        };
        let tag = memo_tag(secret, &name, key, &identity);
        let memo = format!("{key} {identity} {}\n", hex::encode(tag));
        let written = open_subdir(dir, MEMOS, true)
            .map_err(|err| err.to_string())
            .and_then(|memos| {
                write_atomically(&memos, &name, memo.as_bytes()).map_err(|err| err.to_string())
            });
        if let Err(err) = written {
            tracing::debug!(dir = %dir.path.display(), "cannot remember a file's cache key: {err}");
        }
    }

    /// The artifact stored under `key`, if it is a file of ours (see
    /// [`open_ours`]).
    fn open_artifact(&self, dir: &Dir, key: &str) -> Option<File> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        open_ours(dir, &format!("{key}.cwasm"), false)
            .map_err(|err| self.refuse_entry(err))
            .ok()
    }

    /// The component in `artifact` (from [`Self::open_artifact`] of
    /// `key`), if its tag verifies.
    fn load_verified(
        &self,
        engine: &wasmtime::Engine,
        dir: &Dir,
        secret: &Secret,
        key: &str,
        artifact: &File,
    ) -> Option<Component> {
        let path = dir.path.join(format!("{key}.cwasm"));
        // No tag: an entry of an older vigil, or a store cut short.
        let tag = open_ours(dir, &format!("{key}.mac"), false)
            .map_err(|err| self.refuse_entry(err))
            .ok()
            .and_then(|file| read_small(file, 128))
            .and_then(|text| parse_tag(&text))?;
        let verified = artifact
            .metadata()
            .and_then(|meta| file_digest(artifact, meta.len()))
            .is_ok_and(|digest| same_tag(&artifact_tag(secret, key, &digest), &tag));
        if !verified {
            self.warn_once(format!(
                "cached component {} does not verify (corrupt, or not written by this installation); compiling again",
                path.display()
            ));
            return None;
        }
        // SAFETY: `artifact` was opened without following links and checked
        // through its descriptor to be a regular file of our euid that
        // nobody else can write, in a directory chain nobody else can
        // change (`open_cache_dir`), and its bytes, read through that same
        // descriptor, carry a tag only the holder of this cache's secret
        // could make: this cache wrote it from `precompile_component`.
        match unsafe { deserialize_from(engine, artifact, None) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), "cached component rejected ({err}); compiling again");
                None
            }
        }
    }

    /// Writes the artifact, then its tag; returns the artifact's descriptor.
    fn store(dir: &Dir, secret: &Secret, key: &str, compiled: &[u8]) -> std::io::Result<File> {
        let artifact = write_atomically(dir, &format!("{key}.cwasm"), compiled)?;
        let tag = artifact_tag(secret, key, &content_digest(compiled));
        write_atomically(
            dir,
            &format!("{key}.mac"),
            format!("{}\n", hex::encode(tag)).as_bytes(),
        )?;
        Ok(artifact)
    }
}

/// Above this size, a digest is taken as two halves on two threads.
const SPLIT_ABOVE: usize = 1 << 20;

/// SHA-256 of the component bytes. A large component (a Python or
/// JavaScript runtime is 10-20 MB) is hashed as two halves on two threads,
/// then the halves' digests with the length: as collision-resistant as one
/// pass, in half the time, which matters at every start of a service.
fn content_digest(bytes: &[u8]) -> [u8; 32] {
    if bytes.len() <= SPLIT_ABOVE {
        return Sha256::digest(bytes).into();
    }
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Sha256::digest(first));
        let b = Sha256::digest(second);
        (a.join(), b)
    });
    let a = match a {
        Ok(digest) => digest,
        // Hashing does not panic; if the thread could not run, hash here.
        Err(_) => Sha256::digest(first),
    };
    combine_halves(bytes.len() as u64, &a.into(), &b.into())
}

fn combine_halves(len: u64, a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut outer = Sha256::new();
    outer.update(b"vigil-split-sha256\0");
    outer.update(len.to_le_bytes());
    outer.update(a);
    outer.update(b);
    outer.finalize().into()
}

/// [`content_digest`] of the first `len` bytes of `file`, read through
/// its descriptor (positional reads into a small buffer: a compiled Python
/// component is 30+ MB, and one fresh allocation of it costs more in page
/// faults than the hash), the halves on two threads.
fn file_digest(file: &File, len: u64) -> std::io::Result<[u8; 32]> {
    let whole = usize::try_from(len).map_err(std::io::Error::other)?;
    if whole <= SPLIT_ABOVE {
        return digest_range(file, 0, len);
    }
    let half = (whole / 2) as u64;
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| digest_range(file, 0, half));
        let b = digest_range(file, half, len);
        (a.join(), b)
    });
    let a = match a {
        Ok(digest) => digest?,
        Err(_) => digest_range(file, 0, half)?,
    };
    Ok(combine_halves(len, &a, &b?))
}

/// SHA-256 of bytes `start..end` of `file`.
fn digest_range(file: &File, start: u64, end: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut at = start;
    while at < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - at).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buffer[..want], at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buffer[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// Threads storing the same key at once (two services naming one
    /// component) each leave a whole file, and none fails.
    #[test]
    fn concurrent_writes_of_one_path_stay_whole() {
        let scratch = TempDir::new("cache-race");
        let path = scratch.0.clone();
        let dir = open_cache_dir(&path, true).expect("trusted dir");
        let contents: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..10 {
            std::thread::scope(|scope| {
                let writers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| write_atomically(&dir, "artifact.cwasm", &contents)))
                    .collect();
                for writer in writers {
                    writer.join().expect("writer thread").expect("write");
                }
            });
            assert!(
                std::fs::read(path.join("artifact.cwasm")).expect("read back") == contents,
                "torn file"
            );
        }
    }

    /// RFC 4231 test cases 1, 2 (split across parts) and 6 (a key longer
    /// than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        let tag = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(
            hex::encode(tag),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let tag = hmac_sha256(b"Jefe", &[b"what do ya", b" want for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let tag = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// The digest read through a descriptor is the one taken of the bytes
    /// when storing, below and above the split.
    #[test]
    fn file_digest_is_the_content_digest() {
        let scratch = TempDir::new("cache-digest");
        let dir = scratch.0.clone();
        for len in [0, 1000, SPLIT_ABOVE, SPLIT_ABOVE + 1, 3 * SPLIT_ABOVE + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let path = dir.join("file");
            std::fs::write(&path, &bytes).expect("write");
            let file = File::open(&path).expect("open");
            assert_eq!(
                file_digest(&file, len as u64).expect("digest"),
                content_digest(&bytes),
                "{len} bytes"
            );
        }
    }

    /// The secret is made once, private, and shared by later opens; a
    /// secret others can read is refused with its fix.
    #[test]
    fn the_secret_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = TempDir::new("cache-secret");
        let path = scratch.0.clone();
        let dir = open_cache_dir(&path, true).expect("trusted dir");
        let first = secret(&dir, true).expect("made");
        let meta = std::fs::metadata(path.join(SECRET)).expect("secret file");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        assert_eq!(secret(&dir, true).expect("kept"), first);
        assert_ne!(first, [0u8; 32]);
        std::fs::set_permissions(path.join(SECRET), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = secret(&dir, true).expect_err("readable secret");
        assert!(
            matches!(err, CacheError::Refused(Refusal::SecretReadable { .. })),
            "{err}"
        );
    }

    /// A log sink for one test's thread.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A refused cache is said once, with the fix, however many
    /// components load; they compile in memory and nothing is stored.
    #[test]
    fn a_refused_cache_is_said_once() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = TempDir::new("cache-said-once");
        let path = scratch.0.clone();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let log = Captured::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        // The empty component: a preamble and nothing else.
        let empty = b"\0asm\x0d\0\x01\0";
        let engine = wasmtime::Engine::default();
        let cache = ComponentCache::new(Some(path.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                let (_, outcome) = cache.clone().load(&engine, empty, None).expect("load");
                assert_eq!(outcome, CacheOutcome::Uncached);
            }
        });
        let log = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
        let fix = format!("fix: chmod go-w {}", path.display());
        assert_eq!(log.matches(&fix).count(), 1, "{log}");
        assert_eq!(std::fs::read_dir(&path).expect("dir").count(), 0);
    }
}
