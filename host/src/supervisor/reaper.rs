//! The one reaper: on SIGCHLD, `waitpid(-1, WNOHANG)` until nothing is
//! left, and route each `(pid, status)` to whoever registered the pid.
//!
//! Vigil is a child subreaper, so orphans of its services re-parent to it;
//! their pids are unknown to the registry and go to the orphan handler
//! (which journals `orphan-reaped`).
//!
//! The race where a child exits before its pid is registered is closed by
//! the spawner: it holds the registry lock across `fork` and inserts a
//! *pending* entry before releasing it, so the reaper can never see an
//! unknown pid of ours. A status that arrives while the entry is pending is
//! kept in it until the spawner claims the pid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::sync::LockExt;
use crate::wasm::ExitStatus;

/// Receives the exit status of one registered pid, exactly once.
pub type Route = Box<dyn FnOnce(ExitStatus) + Send>;

/// Receives every reaped pid nobody registered (re-parented orphans).
pub type OrphanHandler = Box<dyn Fn(Pid, ExitStatus) + Send + Sync>;

enum Entry {
    /// Forked, not yet claimed by the spawner; holds the status if the
    /// child already exited.
    Pending(Option<ExitStatus>),
    /// Claimed: deliver the status here.
    Routed(Route),
    /// The spawn failed (exec error): drop the status silently.
    Discard,
}

/// Who owns which pid.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<i32, Entry>>,
    orphans: Mutex<Option<OrphanHandler>>,
    /// Held from each `waitpid` until its status is delivered; see [`Registry::settle`].
    reaping: Mutex<()>,
}

/// Proof that the registry is locked; a pid inserted with it is pending.
pub struct RegistryGuard<'a>(MutexGuard<'a, HashMap<i32, Entry>>);

impl RegistryGuard<'_> {
    /// Mark `pid` as ours, not yet claimed.
    pub fn insert_pending(&mut self, pid: Pid) {
        self.0.insert(pid.as_raw(), Entry::Pending(None));
    }
}

impl Registry {
    /// Lock the registry (the spawner holds this across `fork`).
    pub fn lock(&self) -> RegistryGuard<'_> {
        RegistryGuard(self.entries.lock_unpoisoned())
    }

    /// Claim a pending pid: its status goes to `route` (at once, if it has
    /// already exited). Unknown pids are registered afresh.
    pub fn claim(&self, pid: Pid, route: Route) {
        let mut entries = self.entries.lock_unpoisoned();
        match entries.remove(&pid.as_raw()) {
            Some(Entry::Pending(Some(status))) => {
                drop(entries);
                route(status);
            }
            _ => {
                entries.insert(pid.as_raw(), Entry::Routed(route));
            }
        }
    }

    /// Give up on a pending pid (its exec failed): its status is dropped.
    pub fn discard(&self, pid: Pid) {
        let mut entries = self.entries.lock_unpoisoned();
        if let Some(Entry::Pending(None)) = entries.remove(&pid.as_raw()) {
            entries.insert(pid.as_raw(), Entry::Discard);
        }
    }

    /// Where statuses of pids nobody registered go. Without a handler they
    /// are only logged.
    pub fn set_orphan_handler(&self, handler: OrphanHandler) {
        *self.orphans.lock_unpoisoned() = Some(handler);
    }

    /// Route one reaped status.
    pub fn deliver(&self, pid: Pid, status: ExitStatus) {
        let mut entries = self.entries.lock_unpoisoned();
        match entries.remove(&pid.as_raw()) {
            Some(Entry::Pending(_)) => {
                entries.insert(pid.as_raw(), Entry::Pending(Some(status)));
            }
            Some(Entry::Routed(route)) => {
                drop(entries);
                route(status);
            }
            Some(Entry::Discard) => {}
            None => {
                drop(entries);
                tracing::debug!(%pid, %status, "reaped an orphan");
                if let Some(handler) = self.orphans.lock_unpoisoned().as_ref() {
                    handler(pid, status);
                }
            }
        }
    }

    /// Wait until every process reaped so far has been delivered (routed,
    /// or handed to the orphan handler). A reaped process vanishes from its
    /// process group inside `waitpid`, before its status is delivered; a
    /// caller that saw a group empty calls this before acting on it, so
    /// that e.g. `orphan-reaped` is journaled before the service's `exited`.
    pub fn settle(&self) {
        drop(self.reaping.lock_unpoisoned());
    }

    /// Hold off reaping while the guard lives: a child that has already
    /// exited stays a zombie, so its /proc entry can still be read. The
    /// spawner reads a new child's start time under it. (Lock order, as in
    /// [`Self::reap_all`]: this, then the registry.)
    pub fn hold_reaping(&self) -> MutexGuard<'_, ()> {
        self.reaping.lock_unpoisoned()
    }

    /// Reap every child that has exited and route its status. Returns how
    /// many were reaped.
    pub fn reap_all(&self) -> usize {
        let mut n = 0;
        loop {
            let _reaping = self.reaping.lock_unpoisoned();
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    n += 1;
                    self.deliver(pid, ExitStatus::Code(code));
                }
                Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                    n += 1;
                    self.deliver(pid, ExitStatus::Signal(sig as i32));
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return n,
                Ok(_) => {} // stopped/continued: not requested, ignore
                Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::warn!("waitpid failed: {e}");
                    return n;
                }
            }
        }
    }
}

/// The process-wide reaper. There is exactly one per process: `waitpid(-1)`
/// would otherwise steal statuses from a second one.
pub struct Reaper {
    registry: Arc<Registry>,
}

static REAPER: OnceLock<Result<Reaper, String>> = OnceLock::new();

impl Reaper {
    /// The reaper, started on first use: makes this process a child
    /// subreaper and starts the `vigil-reaper` thread, which waits for
    /// SIGCHLD (tokio's signal handling on its own small runtime) and reaps.
    pub fn global() -> std::io::Result<&'static Reaper> {
        REAPER
            .get_or_init(|| Reaper::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| std::io::Error::other(e.clone()))
    }

    /// True once [`Reaper::global`] has started the reaper in this process
    /// (then nothing else may wait for children).
    pub fn started() -> bool {
        REAPER.get().is_some_and(|r| r.is_ok())
    }

    fn start() -> std::io::Result<Reaper> {
        nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
        let registry = Arc::new(Registry::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        let reg = registry.clone();
        std::thread::Builder::new()
            .name("vigil-reaper".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let mut sigchld = match signal(SignalKind::child()) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    loop {
                        // Reap first: children may have exited before the
                        // handler was installed.
                        reg.reap_all();
                        if sigchld.recv().await.is_none() {
                            return;
                        }
                    }
                });
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("reaper thread died"))??;
        Ok(Reaper { registry })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_pending_pids_are_kept_until_claimed() {
        let r = Registry::default();
        let pid = Pid::from_raw(999_999);
        r.lock().insert_pending(pid);
        r.deliver(pid, ExitStatus::Code(3));
        let (tx, rx) = std::sync::mpsc::channel();
        r.claim(pid, Box::new(move |s| tx.send(s).expect("send")));
        assert_eq!(rx.try_recv(), Ok(ExitStatus::Code(3)));

        // Discarded pids swallow their status; unknown ones are orphans.
        let (otx, orx) = std::sync::mpsc::channel();
        let otx = Mutex::new(otx);
        r.set_orphan_handler(Box::new(move |pid, s| {
            let _ = otx.lock_unpoisoned().send((pid, s));
        }));
        r.lock().insert_pending(pid);
        r.discard(pid);
        r.deliver(pid, ExitStatus::Code(1));
        assert!(orx.try_recv().is_err());
        r.deliver(pid, ExitStatus::Signal(9));
        assert_eq!(orx.try_recv(), Ok((pid, ExitStatus::Signal(9))));
    }
}
