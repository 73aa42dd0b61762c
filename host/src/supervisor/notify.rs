//! Vigil as a notify server for its children: programs written for
//! systemd's `Type=notify` work unchanged under a `notify = true` service.
//!
//! One datagram socket, `notify.sock` in the state directory, is every
//! notify service's `NOTIFY_SOCKET`. `SO_PASSCRED` makes the kernel attach
//! the sender's pid to each datagram; the sender must be in the process
//! group of a `notify = true` service's current child (the process Vigil
//! started, or any descendant that did not leave its group). So a child
//! cannot speak for another service, and `systemd-notify` (which sends
//! from its own pid, a child of the service's shell) works without
//! `NotifyAccess=all` tricks. A process with CAP_SYS_ADMIN can forge the
//! pid it sends, as with systemd itself.
//!
//! The socket is shared, and so is its kernel queue: 11 datagrams with
//! the default `net.unix.max_dgram_qlen` of 10, whatever `SO_RCVBUF` says
//! (measured; so Vigil does not set it). A sender waits while the queue is
//! full, so one service's flood holds up another's `WATCHDOG=1` for as long
//! as Vigil takes to empty the queue, and a single datagram Vigil waited
//! on would hold up everyone's. So the queue is drained by a thread of its
//! own, in batches, with constant and small work per datagram:
//!
//! - attribution at once, from what the kernel gives: the pid from
//!   `SCM_CREDENTIALS`, then that process's group from one read of
//!   /proc/PID/stat (none for a current child itself, whose group is its
//!   pid), looked up in [`Groups`], the table of current children that the
//!   supervisor keeps. A sender that is gone, or in no listed group (a
//!   process that left its group with `setsid`, an orphan Vigil adopted as
//!   subreaper), is dropped and counted, never waited for. A child is
//!   listed before its program runs ([`crate::supervisor::spawn::Announce`]),
//!   so its first `READY=1` is never early.
//! - routing into the service's [`Inbox`], which keeps only what matters
//!   per process group: flags accumulate (`READY=1` is never lost),
//!   `STATUS=` keeps the newest text. A flood costs its service's task a
//!   wake-up, not memory, and no other service anything.
//! - `BARRIER=1`: its descriptor is closed once the datagram (and so every
//!   earlier one) is routed, which is what the barrier protocol asks; the
//!   sender (`systemd-notify` waits for it) is alive when its group is read.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, MultiHeaders, RecvMsg, UnixCredentials, recvmmsg, setsockopt,
    sockopt,
};
use nix::unistd::Pid;

use crate::procfs;
use crate::supervisor::spawn::Announce;
use crate::sync::LockExt;

/// File name of the socket inside the state directory.
pub const FILE: &str = "notify.sock";

/// systemd's limit for one message.
const MAX_MESSAGE: usize = 4096;

/// Datagrams taken per `recvmmsg`: more than the kernel queue holds by
/// default, so one call usually empties it.
const BATCH: usize = 16;

/// Room for every descriptor one datagram can carry (the kernel's
/// `SCM_MAX_FD`), so that control data is never cut short: the kernel
/// would install the descriptors that fit and nix would not hand them
/// over, leaking them. `BARRIER=1` sends one.
const MAX_FDS: usize = 253;

/// A parsed notify message (`KEY=VALUE` lines; unknown keys are ignored,
/// as systemd does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub ready: bool,
    pub stopping: bool,
    pub reloading: bool,
    /// `WATCHDOG=1`.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`.
    pub watchdog_trigger: bool,
    /// `STATUS=`: free text for `vigil status`.
    pub status: Option<String>,
    /// `ERRNO=`.
    pub errno: Option<i32>,
}

impl Notification {
    pub fn parse(bytes: &[u8]) -> Notification {
        let mut n = Notification::default();
        for line in String::from_utf8_lossy(bytes).lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match (key, value) {
                ("READY", "1") => n.ready = true,
                ("STOPPING", "1") => n.stopping = true,
                ("RELOADING", "1") => n.reloading = true,
                ("WATCHDOG", "1") => n.watchdog = true,
                ("WATCHDOG", "trigger") => n.watchdog_trigger = true,
                ("STATUS", text) => n.status = Some(text.chars().take(512).collect()),
                ("ERRNO", errno) => n.errno = errno.trim().parse().ok(),
                _ => {}
            }
        }
        n
    }

    /// Fold a later message into this one, as the service task would see
    /// both: every flag said stays said (a `READY=1` survives any number of
    /// later `WATCHDOG=1`), and text fields keep the newest value.
    pub fn merge(&mut self, later: Notification) {
        self.ready |= later.ready;
        self.stopping |= later.stopping;
        self.reloading |= later.reloading;
        self.watchdog |= later.watchdog;
        self.watchdog_trigger |= later.watchdog_trigger;
        if later.status.is_some() {
            self.status = later.status;
        }
        if later.errno.is_some() {
            self.errno = later.errno;
        }
    }
}

/// A service's notify messages that its task has not taken yet, merged
/// per process group ([`Notification::merge`]): however fast a service's
/// processes send, this holds one entry per group, and the receiver never
/// waits for the task.
#[derive(Debug, Default)]
pub struct Inbox {
    pending: Mutex<Vec<(i32, Notification)>>,
    wake: tokio::sync::Notify,
}

/// Groups an inbox keeps apart. Only a service's current child is listed
/// in [`Groups`], so one is the rule; the task takes the entries at its
/// next turn, before a second child could be listed.
const INBOX_GROUPS: usize = 4;

impl Inbox {
    pub fn new() -> Arc<Inbox> {
        Arc::default()
    }

    /// Add what `group` said and wake the service's task.
    pub fn put(&self, group: i32, notification: Notification) {
        {
            let mut pending = self.pending.lock_unpoisoned();
            match pending.iter_mut().find(|(g, _)| *g == group) {
                Some((_, earlier)) => earlier.merge(notification),
                None => {
                    if pending.len() >= INBOX_GROUPS {
                        pending.remove(0);
                    }
                    pending.push((group, notification));
                }
            }
        }
        self.wake.notify_one();
    }

    /// Everything put since the last call, per process group.
    pub fn take(&self) -> Vec<(i32, Notification)> {
        std::mem::take(&mut *self.pending.lock_unpoisoned())
    }

    /// Wait until something may have been put (at once if something was
    /// put since the last wait ended).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }
}

/// Who may speak on the notify socket: the process group of the current
/// child of every `notify = true` service (its pid: children are spawned
/// with `setsid`), each with its service's [`Inbox`]. The supervisor keeps
/// it up to date; the receiver reads it once or twice per datagram.
#[derive(Debug, Default)]
pub struct Groups {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_group: HashMap<i32, Arc<Inbox>>,
    /// Children between clone and their listing in `by_group` (one at a
    /// time per spawner thread).
    spawning: Vec<Arc<Spawning>>,
}

#[derive(Debug)]
struct Spawning {
    /// The child's pid, stored by the child itself just before `execve`;
    /// 0 until then.
    pid: AtomicI32,
    inbox: Arc<Inbox>,
}

impl Groups {
    pub fn new() -> Arc<Groups> {
        Arc::default()
    }

    /// List `group` as `inbox`'s service's (replacing whatever it was:
    /// a group id is a live pid, so an older entry is stale).
    pub fn insert(&self, group: i32, inbox: Arc<Inbox>) {
        self.table.lock_unpoisoned().by_group.insert(group, inbox);
    }

    /// Unlist `group` if it is still `inbox`'s.
    pub fn remove(&self, group: i32, inbox: &Arc<Inbox>) {
        let mut table = self.table.lock_unpoisoned();
        if table
            .by_group
            .get(&group)
            .is_some_and(|i| Arc::ptr_eq(i, inbox))
        {
            table.by_group.remove(&group);
        }
    }

    /// The inbox of the service whose current child leads `group`, or the
    /// child being spawned if it is that group.
    pub fn lookup(&self, group: i32) -> Option<Arc<Inbox>> {
        // Not a group a child could lead (and 0 is an unset slot's value).
        if group <= 0 {
            return None;
        }
        let table = self.table.lock_unpoisoned();
        if let Some(inbox) = table.by_group.get(&group) {
            return Some(inbox.clone());
        }
        table
            .spawning
            .iter()
            .find(|s| s.pid.load(Ordering::Acquire) == group)
            .map(|s| s.inbox.clone())
    }

    /// What the spawner is given for a child of the service with `inbox`:
    /// the child is listed from just before its `execve` on.
    pub fn announce(self: &Arc<Groups>, inbox: Arc<Inbox>) -> Announcement {
        Announcement {
            groups: self.clone(),
            spawning: Arc::new(Spawning {
                pid: AtomicI32::new(0),
                inbox,
            }),
        }
    }
}

/// Lists a child in [`Groups`] as it is spawned (see
/// [`Groups::announce`]).
#[derive(Debug)]
pub struct Announcement {
    groups: Arc<Groups>,
    spawning: Arc<Spawning>,
}

impl Announce for Announcement {
    fn cloning(&self) -> &AtomicI32 {
        self.spawning.pid.store(0, Ordering::Relaxed);
        self.groups
            .table
            .lock_unpoisoned()
            .spawning
            .push(self.spawning.clone());
        &self.spawning.pid
    }

    fn cloned(&self, pid: Option<Pid>) {
        let mut table = self.groups.table.lock_unpoisoned();
        table.spawning.retain(|s| !Arc::ptr_eq(s, &self.spawning));
        if let Some(pid) = pid {
            table
                .by_group
                .insert(pid.as_raw(), self.spawning.inbox.clone());
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("notify socket {}: cannot {op}: {source}", .path.display())]
pub struct NotifyServerError {
    op: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The bound socket.
#[derive(Debug)]
pub struct NotifyServer {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifyServer {
    /// Bind `path` (a socket left by a previous instance is replaced: the
    /// caller holds the single-instance lock), writable by anyone, since
    /// the sender's credentials decide, not the file mode (a service may
    /// drop privileges).
    pub fn bind(path: &Path) -> Result<NotifyServer, NotifyServerError> {
        let err = |op| {
            let path = path.to_path_buf();
            move |source| NotifyServerError { op, path, source }
        };
        if path.as_os_str().len() > 107 {
            return Err(err("bind")(std::io::Error::other(format!(
                "the path is {} bytes, over the 107-byte limit of Unix socket paths; use a shorter --state-dir",
                path.as_os_str().len()
            ))));
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("remove the old socket")(e)),
        }
        let socket = UnixDatagram::bind(path).map_err(err("bind"))?;
        setsockopt(&socket, sockopt::PassCred, &true)
            .map_err(|e| err("set SO_PASSCRED")(e.into()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(err("chmod"))?;
        Ok(NotifyServer {
            socket,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receive and route datagrams on a thread of their own until the
    /// returned handle is dropped.
    pub fn serve(self, groups: Arc<Groups>) -> Result<Serving, NotifyServerError> {
        let err = |op| {
            let path = self.path.clone();
            move |source| NotifyServerError { op, path, source }
        };
        let socket = self.socket.try_clone().map_err(err("duplicate"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut receiver = Receiver {
            groups,
            stop: stop.clone(),
            dropped: Drops {
                total: dropped.clone(),
                since_log: 0,
                last_log: None,
            },
        };
        let thread = std::thread::Builder::new()
            .name("vigil-notify".into())
            .spawn(move || receiver.run(&socket))
            .map_err(err("start the receiver thread"))?;
        Ok(Serving {
            server: self,
            thread: Some(thread),
            stop,
            dropped,
        })
    }
}

impl Drop for NotifyServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The receiver thread's handle: dropping it stops the thread and removes
/// the socket.
#[derive(Debug)]
pub struct Serving {
    server: NotifyServer,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Serving {
    pub fn path(&self) -> &Path {
        self.server.path()
    }

    /// Datagrams dropped so far (no credentials, too long, sender gone or
    /// in no listed group).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocked receive: it returns an empty read from now on.
        let _ = nix::sys::socket::shutdown(
            self.server.socket.as_raw_fd(),
            nix::sys::socket::Shutdown::Read,
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy)]
enum Rejected {
    NoCredentials,
    TooLong,
    SenderGone,
    NoGroup,
}

/// Dropped datagrams: counted, and logged at most once a second (a flood
/// must not become a flood of log lines).
#[derive(Debug)]
struct Drops {
    total: Arc<AtomicU64>,
    since_log: u64,
    last_log: Option<Instant>,
}

impl Drops {
    fn count(&mut self, why: Rejected, pid: Option<i32>, group: Option<i32>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.since_log += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        let dropped = std::mem::take(&mut self.since_log);
        self.last_log = Some(now);
        match why {
            Rejected::TooLong => tracing::warn!(
                pid,
                dropped,
                "notify message over {MAX_MESSAGE} bytes dropped"
            ),
            Rejected::NoCredentials => {
                tracing::debug!(dropped, "notify datagram without credentials dropped")
            }
            Rejected::SenderGone => tracing::debug!(
                pid,
                dropped,
                "notify datagram dropped: the sender exited before it was read"
            ),
            Rejected::NoGroup => tracing::debug!(
                pid,
                group,
                dropped,
                "notify datagram dropped: the sender is not in the process group of a notify = true service's current child"
            ),
        }
    }
}

/// The receiver thread's state.
struct Receiver {
    groups: Arc<Groups>,
    stop: Arc<AtomicBool>,
    dropped: Drops,
}

impl Receiver {
    fn run(&mut self, socket: &UnixDatagram) {
        // Process-directed signals go to the runtime's threads; a receive
        // is never interrupted.
        if let Err(e) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None) {
            tracing::warn!("notify receiver: cannot block signals: {e}");
        }
        let mut buffers = vec![[0u8; MAX_MESSAGE]; BATCH];
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.receive_batch(socket.as_raw_fd(), &mut buffers) {
                if e == nix::errno::Errno::EINTR {
                    continue;
                }
                tracing::warn!("notify socket: {e}");
                // Not a retry loop on a busy socket: errors here are rare
                // (out of memory) and must not spin.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Wait for a datagram, then take it and whatever else is queued (up
    /// to [`BATCH`]), and route each.
    fn receive_batch(&mut self, fd: RawFd, buffers: &mut [[u8; MAX_MESSAGE]]) -> nix::Result<()> {
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = buffers
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        // Fresh headers per batch: the kernel shrinks each header's
        // control length to what it used.
        let mut headers = MultiHeaders::<()>::preallocate(
            iovs.len(),
            Some(nix::cmsg_space!(UnixCredentials, [RawFd; MAX_FDS])),
        );
        let received = recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE | MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC,
            None,
        )?;
        for message in received {
            self.route(message);
        }
        Ok(())
    }

    /// Attribute one datagram and put it in its service's inbox, or drop
    /// it. Its descriptors (a `BARRIER=1` pipe) are closed on return.
    fn route(&mut self, message: RecvMsg<'_, '_, ()>) {
        let mut pid = None;
        let mut fds = Vec::new();
        // `Err` only for truncated control data, which MAX_FDS rules out.
        if let Ok(cmsgs) = message.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                    ControlMessageOwned::ScmRights(raw) => {
                        // SAFETY: the kernel just installed these
                        // descriptors in our table for us; nothing else
                        // owns them.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                    _ => {}
                }
            }
        }
        let Some(pid) = pid.filter(|&p| p > 0) else {
            return self.dropped.count(Rejected::NoCredentials, None, None);
        };
        if message.flags.contains(MsgFlags::MSG_TRUNC) || message.bytes > MAX_MESSAGE {
            return self.dropped.count(Rejected::TooLong, Some(pid), None);
        }
        let Some((group, inbox)) = self.attribute(pid) else {
            return;
        };
        let bytes = message.iovs().next().unwrap_or(&[]);
        inbox.put(group, Notification::parse(bytes));
        drop(fds);
    }

    /// The sender's group and its service's inbox; `None` (counted) when
    /// it has none.
    fn attribute(&mut self, pid: i32) -> Option<(i32, Arc<Inbox>)> {
        // A current child itself: a session leader, whose group is its pid
        // for good, so /proc need not be read.
        if let Some(inbox) = self.groups.lookup(pid) {
            return Some((pid, inbox));
        }
        let Some(group) = procfs::process_group(pid) else {
            self.dropped.count(Rejected::SenderGone, Some(pid), None);
            return None;
        };
        match self.groups.lookup(group) {
            Some(inbox) => Some((group, inbox)),
            None => {
                self.dropped
                    .count(Rejected::NoGroup, Some(pid), Some(group));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::wait_until;

    /// The receiver is another thread: what it does shows up soon.
    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn parses_the_keys_vigil_acts_on() {
        let n = Notification::parse(
            b"READY=1\nSTATUS=Ready to accept connections\nWATCHDOG=1\nMAINPID=7\nnonsense\n",
        );
        assert!(n.ready && n.watchdog && !n.stopping && !n.watchdog_trigger);
        assert_eq!(n.status.as_deref(), Some("Ready to accept connections"));
        let n = Notification::parse(b"WATCHDOG=trigger\nSTOPPING=1\nERRNO=2");
        assert!(n.watchdog_trigger && n.stopping && !n.watchdog);
        assert_eq!(n.errno, Some(2));
        assert_eq!(Notification::parse(b"READY=0"), Notification::default());
    }

    #[test]
    fn merged_messages_keep_every_flag_and_the_newest_text() {
        let mut n = Notification::parse(b"READY=1\nSTATUS=starting");
        n.merge(Notification::parse(b"WATCHDOG=1\nSTATUS=up"));
        n.merge(Notification::parse(b"WATCHDOG=1"));
        assert!(n.ready && n.watchdog && !n.watchdog_trigger);
        assert_eq!(n.status.as_deref(), Some("up"));

        // An inbox holds one merged entry per group, however many came.
        let inbox = Inbox::new();
        inbox.put(7, Notification::parse(b"READY=1"));
        for _ in 0..10_000 {
            inbox.put(7, Notification::parse(b"WATCHDOG=1\nSTATUS=busy"));
        }
        inbox.put(8, Notification::parse(b"STATUS=other"));
        let taken = inbox.take();
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(taken[0].0, 7);
        assert!(taken[0].1.ready && taken[0].1.watchdog);
        assert_eq!(taken[1].1.status.as_deref(), Some("other"));
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn a_child_being_spawned_is_known_by_the_pid_it_stored() {
        let groups = Groups::new();
        let inbox = Inbox::new();
        let announcement = groups.announce(inbox.clone());
        let slot = announcement.cloning();
        // Before the child stores its pid, nothing matches (not even 0).
        assert!(groups.lookup(4242).is_none());
        assert!(groups.lookup(0).is_none());
        slot.store(4242, Ordering::Release);
        let found = groups.lookup(4242).expect("the spawning child");
        assert!(Arc::ptr_eq(&found, &inbox));
        announcement.cloned(Some(Pid::from_raw(4242)));
        let found = groups.lookup(4242).expect("listed");
        assert!(Arc::ptr_eq(&found, &inbox));
        assert!(groups.table.lock_unpoisoned().spawning.is_empty());
        groups.remove(4242, &inbox);
        assert!(groups.lookup(4242).is_none());

        // A spawn that failed leaves nothing behind.
        let announcement = groups.announce(inbox);
        announcement.cloning().store(4343, Ordering::Release);
        announcement.cloned(None);
        assert!(groups.lookup(4343).is_none());
    }

    fn send_barrier(client: &std::os::unix::net::UnixDatagram, path: &Path) -> OwnedFd {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let fds = [w.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(b"BARRIER=1")];
        let addr = nix::sys::socket::UnixAddr::new(path).expect("addr");
        nix::sys::socket::sendmsg(
            client.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&addr),
        )
        .expect("sendmsg");
        r
    }

    /// Blocks until every write end of the pipe is closed.
    fn eof(r: &OwnedFd) -> bool {
        let mut buf = [0u8; 1];
        nix::unistd::read(r, &mut buf).expect("read") == 0
    }

    #[tokio::test]
    async fn datagrams_reach_the_inbox_of_their_senders_group_and_others_are_dropped() {
        let dir = std::env::temp_dir().join(format!("vigil-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(FILE);
        let server = NotifyServer::bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        let groups = Groups::new();
        let inbox = Inbox::new();
        let ours = nix::unistd::getpgrp().as_raw();
        groups.insert(ours, inbox.clone());
        let serving = server.serve(groups.clone()).expect("serve");

        let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
        client.send_to(b"READY=1\nSTATUS=hi", &path).expect("send");
        inbox.wait().await;
        let taken = inbox.take();
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].0, ours);
        assert!(taken[0].1.ready);
        assert_eq!(taken[0].1.status.as_deref(), Some("hi"));

        // BARRIER=1: a pipe's write end rides along; the client sees EOF
        // once it is routed (with everything sent before it).
        client.send_to(b"WATCHDOG=1", &path).expect("send");
        let r = send_barrier(&client, &path);
        assert!(eof(&r));
        let taken = inbox.take();
        assert!(taken.len() == 1 && taken[0].1.watchdog, "{taken:?}");

        // Not a listed group: dropped and counted, its barrier released.
        groups.remove(ours, &inbox);
        client.send_to(b"READY=1", &path).expect("send");
        let r = send_barrier(&client, &path);
        assert!(eof(&r));
        wait_until("two drops", WAIT, || serving.dropped() == 2);
        assert!(inbox.take().is_empty());

        // Over systemd's 4096 bytes: dropped.
        groups.insert(ours, inbox.clone());
        let long = format!("READY=1\nSTATUS={}", "x".repeat(MAX_MESSAGE));
        client.send_to(long.as_bytes(), &path).expect("send");
        wait_until("the long message dropped", WAIT, || serving.dropped() == 3);
        assert!(inbox.take().is_empty());

        drop(serving);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
