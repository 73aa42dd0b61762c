//! Vigil as a service of systemd (`Type=notify`): the client side of the
//! notify protocol.
//!
//! With `NOTIFY_SOCKET` set (a path, or `@name` for the abstract
//! namespace), Vigil sends `READY=1` once it is up, `STATUS=` lines as its
//! services change, `WATCHDOG=1` every half `WATCHDOG_USEC` when systemd
//! asks for it, and `STOPPING=1` when it shuts down. Each message is one
//! datagram of `KEY=VALUE` lines. This is about forty lines, so no crate.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
#[error("NOTIFY_SOCKET={socket}: {source}")]
pub struct NotifyError {
    socket: String,
    #[source]
    source: std::io::Error,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; `None` when it is unset or empty (not run by
    /// a service manager).
    pub fn from_env() -> Option<Result<Notifier, NotifyError>> {
        let value = std::env::var("NOTIFY_SOCKET").ok()?;
        if value.is_empty() {
            return None;
        }
        Some(Notifier::new(&value))
    }

    /// `socket` as systemd writes it: a path, or `@name` (abstract).
    pub fn new(socket: &str) -> Result<Notifier, NotifyError> {
        let err = |source| NotifyError {
            socket: socket.to_string(),
            source,
        };
        let addr = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).map_err(err)?
            }
            None => SocketAddr::from_pathname(socket).map_err(err)?,
        };
        let socket_fd = UnixDatagram::unbound().map_err(err)?;
        socket_fd.set_nonblocking(true).map_err(err)?;
        Ok(Notifier {
            socket: socket_fd,
            addr,
        })
    }

    /// Send one message (`KEY=VALUE` lines). Never blocks: a full socket
    /// buffer drops the message, as a busy manager would rather than stall
    /// the supervisor.
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// and `WATCHDOG_PID` is unset or ours (as `sd_watchdog_enabled` decides).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid.filter(|p| !p.is_empty())
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    Some(Duration::from_micros(usec) / 2)
}

/// Tell the service manager about `sup` until the task is dropped:
/// `STATUS=` whenever the summary line changes, `READY=1` once (when every
/// startup gate has passed), `WATCHDOG=1` every `watchdog` if set. Send
/// `STOPPING=1` yourself when the shutdown begins.
pub async fn report(
    sup: crate::supervisor::Supervisor,
    notifier: std::sync::Arc<Notifier>,
    watchdog: Option<Duration>,
) {
    let mut changes = sup.changes();
    let mut ticker = watchdog.map(|w| {
        let mut t = tokio::time::interval(w);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut ready_sent = false;
    let mut last_status = String::new();
    loop {
        let startup = sup.startup();
        let status = startup.status_line();
        let mut message = String::new();
        if status != last_status {
            message.push_str(&format!("STATUS={status}\n"));
            last_status = status;
        }
        if !ready_sent && startup.is_up() {
            message.push_str("READY=1\n");
            ready_sent = true;
        }
        if !message.is_empty()
            && let Err(e) = notifier.send(&message)
        {
            tracing::warn!("cannot notify the service manager: {e}");
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tick(&mut ticker) => {
                if let Err(e) = notifier.send("WATCHDOG=1") {
                    tracing::warn!("cannot send WATCHDOG=1: {e}");
                }
            }
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_us() {
        let half = Some(Duration::from_secs(1));
        assert_eq!(watchdog_interval_from(Some("2000000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn messages_reach_a_path_and_an_abstract_socket() {
        let scratch = crate::test_support::TempDir::new("sdn");
        let dir = scratch.0.clone();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).expect("bind");
        Notifier::new(path.to_str().expect("utf-8"))
            .expect("notifier")
            .send("READY=1\nSTATUS=up")
            .expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("vigil-sdn-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let server = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        Notifier::new(&format!("@{name}"))
            .expect("notifier")
            .send("STOPPING=1")
            .expect("send");
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
