//! Single instance: a pid file held with `flock` for the life of the
//! process.
//!
//! The file is opened without truncation, locked with
//! `flock(LOCK_EX | LOCK_NB)`, and only then truncated and given our pid
//! (fsynced). There is no check-then-write race: whoever holds the lock is
//! the running instance, whatever the file says. A file left by a crashed
//! instance is unlocked, so it is harmless: the next instance takes it
//! over. The descriptor is close-on-exec (std opens every file with
//! `O_CLOEXEC`), so services never inherit the lock and cannot keep it
//! after Vigil is gone.
//!
//! The file is never unlinked: removing it while another instance waits
//! on the old inode would let two instances each hold "the" lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// File name of the pid file inside the state directory.
pub const FILE: &str = "vigil.pid";

#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    /// Another process holds the lock; `pid` is what its file says.
    #[error("already running (pid {}): {} is locked", .pid.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into()), .path.display())]
    AlreadyRunning { pid: Option<u32>, path: PathBuf },
    #[error("pid file: cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A pid file we hold locked. Dropping it empties the file (while still
/// holding the lock) and releases the lock.
#[derive(Debug)]
pub struct Pidfile {
    path: PathBuf,
    file: Flock<File>,
}

impl Pidfile {
    /// Lock `path` (created, with its directory, if needed) and write our
    /// own pid into it.
    pub fn acquire(path: &Path) -> Result<Pidfile, PidfileError> {
        Pidfile::acquire_for(path, std::process::id())
    }

    /// Lock `path` and write `pid` into it (`vigil daemonize` records the
    /// program it launched).
    pub fn acquire_for(path: &Path, pid: u32) -> Result<Pidfile, PidfileError> {
        let mut pidfile = Pidfile::lock(path)?;
        pidfile.write_pid(pid)?;
        Ok(pidfile)
    }

    /// Lock `path` without writing anything yet (see [`Pidfile::write_pid`]).
    pub fn lock(path: &Path) -> Result<Pidfile, PidfileError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| PidfileError::Io { op, path, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("open"))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => Ok(Pidfile {
                path: path.to_path_buf(),
                file,
            }),
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Err(PidfileError::AlreadyRunning {
                    pid: text.trim().parse().ok(),
                    path: path.to_path_buf(),
                })
            }
            Err((_, e)) => Err(io("lock")(std::io::Error::from(e))),
        }
    }

    /// Replace the file's content with `pid` and fsync it.
    pub fn write_pid(&mut self, pid: u32) -> Result<(), PidfileError> {
        let io = |op| {
            let path = self.path.clone();
            move |source| PidfileError::Io { op, path, source }
        };
        self.file.set_len(0).map_err(io("truncate"))?;
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| writeln!(self.file, "{pid}"))
            .map_err(io("write"))?;
        self.file.sync_all().map_err(io("sync"))
    }

    /// The locked file's descriptor (to hand the lock to a child).
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the lock for the rest of the process's life without emptying
    /// the file (the lock goes with the descriptor, e.g. to a child that
    /// inherited it).
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        // Nobody runs any more: say so before letting go of the lock.
        let _ = self.file.set_len(0);
    }
}

/// Whether the pid file at `path` is held by a running instance, without
/// keeping it: `Err(AlreadyRunning)` if so.
pub fn probe(path: &Path) -> Result<(), PidfileError> {
    // Dropping empties the file, which is right: nobody holds it.
    Pidfile::lock(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let scratch = TempDir::new("second");
        let dir = scratch.0.clone();
        let path = dir.join("sub").join(FILE);
        let first = Pidfile::acquire(&path).expect("first");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open in
        // the same process conflicts like another process would.
        match Pidfile::acquire(&path) {
            Err(PidfileError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()))
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(first);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
        let again = Pidfile::acquire_for(&path, 42).expect("free again");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "42\n");
        drop(again);
    }

    #[test]
    fn a_stale_file_is_taken_over() {
        let scratch = TempDir::new("stale");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(FILE);
        std::fs::write(&path, "999999999 and some junk\n").expect("write");
        probe(&path).expect("an unlocked file is not an instance");
        let held = Pidfile::acquire(&path).expect("take over");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read").trim(),
            std::process::id().to_string()
        );
        drop(held);
    }
}
