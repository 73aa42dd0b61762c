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
//! The sender's process group is read from /proc when the datagram is
//! received, before the next one, so a sender that waits for
//! `BARRIER=1` (as `systemd-notify` does) is still alive. The barrier's
//! descriptor is closed once every earlier datagram is handled, which is
//! what the barrier protocol asks.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// File name of the socket inside the state directory.
pub const FILE: &str = "notify.sock";

/// systemd's limit for one message.
const MAX_MESSAGE: usize = 4096;

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
}

/// One received datagram.
#[derive(Debug)]
pub struct Message {
    /// The sender's pid (kernel-checked credentials).
    pub pid: i32,
    /// Its process group when the datagram was received; `None` when it
    /// was already gone.
    pub pgid: Option<i32>,
    pub notification: Notification,
    /// Descriptors that came with it (`BARRIER=1`'s pipe): drop them once
    /// the message is handled.
    pub fds: Vec<OwnedFd>,
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
    /// drop privileges). Needs a tokio runtime.
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

    /// The next datagram that carries credentials.
    pub async fn recv(&self) -> std::io::Result<Message> {
        loop {
            let got = self
                .socket
                .async_io(Interest::READABLE, || receive(self.socket.as_raw_fd()))
                .await?;
            if let Some(message) = got {
                return Ok(message);
            }
        }
    }
}

impl Drop for NotifyServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One `recvmsg`; `Ok(None)` for a datagram to drop (no credentials,
/// truncated).
fn receive(fd: RawFd) -> std::io::Result<Option<Message>> {
    let mut buf = [0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; 16]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_TRUNC,
    )
    .map_err(std::io::Error::from)?;
    let mut pid = None;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        match c {
            ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
            ControlMessageOwned::ScmRights(raw) => {
                // SAFETY: the kernel just installed these descriptors in
                // our table for us; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
            _ => {}
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.bytes > MAX_MESSAGE;
    let len = msg.bytes.min(MAX_MESSAGE);
    let Some(pid) = pid.filter(|&p| p > 0) else {
        tracing::debug!("notify datagram without credentials dropped");
        return Ok(None);
    };
    if truncated {
        tracing::warn!(pid, "notify message over {MAX_MESSAGE} bytes dropped");
        return Ok(None);
    }
    Ok(Some(Message {
        pid,
        pgid: process_group(pid),
        notification: Notification::parse(&buf[..len]),
        fds,
    }))
}

/// Receive and route notify messages for `sup` until the task is dropped.
/// Each message is handled before the next is read, and its descriptors
/// (a `BARRIER=1` pipe) are closed only then.
pub async fn serve(server: NotifyServer, sup: crate::supervisor::Supervisor) {
    loop {
        let message = match server.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("notify socket {}: {e}", server.path().display());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        match sup.notify(&message).await {
            Ok(service) => tracing::debug!(%service, ?message.notification, "notify"),
            Err(reason) => tracing::warn!("notify message dropped: {reason}"),
        }
        drop(message);
    }
}

/// Field 5 of /proc/PID/stat (after the parenthesised command name, which
/// may itself contain spaces and parentheses).
pub fn process_group(pid: i32) -> Option<i32> {
    stat_fields(pid).and_then(|f| f.get(2).and_then(|s| s.parse().ok()))
}

/// The parent pid (field 4 of /proc/PID/stat).
pub fn parent_pid(pid: i32) -> Option<i32> {
    stat_fields(pid).and_then(|f| f.get(1).and_then(|s| s.parse().ok()))
}

/// The fields after the command name: state, ppid, pgrp, ...
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn process_group_of_ourselves() {
        let me = std::process::id() as i32;
        assert_eq!(process_group(me), Some(nix::unistd::getpgrp().as_raw()));
        assert_eq!(parent_pid(me), Some(nix::unistd::getppid().as_raw()));
        assert_eq!(process_group(i32::MAX), None);
    }

    #[tokio::test]
    async fn credentials_and_barrier_fds_come_with_each_datagram() {
        let dir = std::env::temp_dir().join(format!("vigil-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(FILE);
        let server = NotifyServer::bind(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o666);

        let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
        client.send_to(b"READY=1\nSTATUS=hi", &path).expect("send");
        let m = server.recv().await.expect("recv");
        assert_eq!(m.pid, std::process::id() as i32);
        assert_eq!(m.pgid, Some(nix::unistd::getpgrp().as_raw()));
        assert!(m.notification.ready);
        assert_eq!(m.notification.status.as_deref(), Some("hi"));

        // BARRIER=1: a pipe's write end rides along; the client sees EOF
        // once we drop it.
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let fds = [w.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(b"BARRIER=1")];
        let addr = nix::sys::socket::UnixAddr::new(&path).expect("addr");
        nix::sys::socket::sendmsg(
            client.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            Some(&addr),
        )
        .expect("sendmsg");
        drop(w);
        let m = server.recv().await.expect("recv barrier");
        assert_eq!(m.fds.len(), 1);
        drop(m);
        let mut buf = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut buf).expect("read"), 0);
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
