//! Writing cache files whole (temporary name, fsync, rename) and mapping a verified artifact.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;
use wasmtime::component::Component;

use super::trust::Dir;

/// The first `limit` bytes of a small file (tag, memo) as text.
pub(super) fn read_small(file: File, limit: u64) -> Option<String> {
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text).ok()?;
    Some(text)
}
/// A new file in `dir` with a name unique to this call (`O_EXCL`, never
/// through a link), mode 0600.
pub(super) fn create_temporary(dir: &Dir, name: &str) -> std::io::Result<(String, File)> {
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

/// Removes what a store cut short (a `vigil compile` killed midway) left
/// in `dir`: temporary files (`NAME.tmp.PID.N`) of processes that are
/// gone. No load ever reads them (only final names, which a rename makes
/// whole), so they are not a danger, only waste: a Python artifact is
/// 35 MB. A process alive under that pid, even an unrelated one, keeps
/// its files until a later sweep.
pub(super) fn sweep_temporaries(dir: &Dir) {
    // The directory the descriptor is open on, not whatever its path names now.
    let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.fd.as_raw_fd()));
    let Ok(entries) = std::fs::read_dir(&listing) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        match temporary_owner(name) {
            Some(pid) if pid != me && !alive(pid) => {
                let _ = nix::unistd::unlinkat(&dir.fd, name, UnlinkatFlags::NoRemoveDir);
            }
            _ => {}
        }
    }
}

/// The pid in a name [`create_temporary`] made.
fn temporary_owner(name: &str) -> Option<u32> {
    let (_, rest) = name.rsplit_once(".tmp.")?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether a process `pid` exists (ours or not: `EPERM` says it does).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
}

/// Write through a temporary file unique to this call, then rename: two
/// services of one process that name the same component store the same
/// key at once, and a temporary name shared between them (pid only) let
/// one truncate the file the other was renaming into place. Returns the
/// (write-only) descriptor of the file now named `name`.
pub(super) fn write_atomically(dir: &Dir, name: &str, contents: &[u8]) -> std::io::Result<File> {
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
pub(super) fn descriptor_path(file: &File) -> Option<PathBuf> {
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
pub(super) unsafe fn deserialize_from(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file of a process that is gone is removed; one of a
    /// live process (here: this one) and anything not temporary stay.
    #[test]
    fn sweep_removes_only_temporaries_of_dead_processes() {
        let path = std::env::temp_dir().join(format!("vigil-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = super::super::trust::open_cache_dir(&path, true).expect("trusted dir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        // Another test's reaper (waitpid(-1)) may collect it first: it is
        // dead either way.
        match child.wait() {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {}
            Err(e) => panic!("reap: {e}"),
        }
        let names = [
            format!("a.cwasm.tmp.{dead}.0"),
            format!("a.cwasm.tmp.{}.3", std::process::id()),
            "a.cwasm".to_owned(),
            "a.cwasm.tmp.notapid.1".to_owned(),
        ];
        for name in &names {
            std::fs::write(path.join(name), b"x").expect("write");
        }
        sweep_temporaries(&dir);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(path.join(name).exists(), i != 0, "{name}");
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}
