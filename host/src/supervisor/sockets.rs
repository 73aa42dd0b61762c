//! Listening sockets held by Vigil for its services.
//!
//! A service's `[sockets.*]` are bound when its first child is about to be
//! spawned, and kept open (close-on-exec, in Vigil) for Vigil's whole
//! life: every child gets duplicates at fd 3, 4, ... ([`spawn::Command`]'s
//! `listen`). Since the listening socket outlives any one child,
//! connections that arrive while a child restarts wait in the backlog
//! instead of being refused, and two children of one service (a replace)
//! accept from the same queue.
//!
//! A reload keeps a socket whose spec is unchanged (the same open file
//! description, so nothing queued is lost); a changed one is closed and
//! bound again at the next spawn; a removed one is closed by Vigil at the
//! next spawn (or when the service is removed), and the last child's copy
//! goes with that child.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
};

use super::spawn::ListenFd;
use crate::config::{Listen, Service, SocketSpec, sockets::group_exists, sockets::user_exists};
use crate::sync::LockExt;

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen} (socket `{name}`): {what}: {source}{}", holder_note(.holder))]
pub struct BindError {
    pub name: String,
    pub listen: String,
    what: &'static str,
    #[source]
    source: std::io::Error,
    /// Who holds the address, when it is in use and /proc tells.
    pub holder: Option<String>,
}

fn holder_note(holder: &Option<String>) -> String {
    match holder {
        Some(h) => format!("; held by {h}"),
        None => String::new(),
    }
}

/// One socket Vigil holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub spec: SocketSpec,
    pub fd: Arc<OwnedFd>,
    /// The address the kernel gave it (a port 0 resolved), as `listen` is
    /// written.
    pub bound: String,
}

/// Every service's held sockets.
#[derive(Debug, Default)]
pub struct Sockets {
    held: Mutex<BTreeMap<String, Vec<Held>>>,
}

impl Sockets {
    /// The sockets `service`'s next child gets, in declared order: those
    /// held with the same spec are kept, the rest closed, the missing ones
    /// bound. On an error nothing held before is lost (except what the
    /// service no longer declares).
    pub fn acquire(&self, service: &Service) -> Result<Vec<ListenFd>, BindError> {
        let mut map = self.held.lock_unpoisoned();
        let mut old = map.remove(&service.name).unwrap_or_default();
        // Changed or removed ones go first: a changed spec at the same
        // address could not be bound while the old one is open.
        old.retain(|h| service.sockets.list.contains(&h.spec));
        let mut new = Vec::with_capacity(service.sockets.list.len());
        for spec in &service.sockets.list {
            if let Some(i) = old.iter().position(|h| &h.spec == spec) {
                new.push(old.swap_remove(i));
                continue;
            }
            match bind_socket(spec) {
                Ok(h) => new.push(h),
                Err(mut e) => {
                    if e.holder.is_none() && e.source.raw_os_error() == Some(libc::EADDRINUSE) {
                        e.holder = held_by_vigil(&map, spec).or_else(|| holder_of(&spec.listen));
                    }
                    new.append(&mut old);
                    map.insert(service.name.clone(), new);
                    return Err(e);
                }
            }
        }
        let fds = new
            .iter()
            .map(|h| ListenFd {
                fd: h.fd.clone(),
                name: h.spec.name.clone(),
            })
            .collect();
        map.insert(service.name.clone(), new);
        Ok(fds)
    }

    /// Close `service`'s sockets (it was removed), unlinking unix ones.
    pub fn release(&self, service: &str) {
        let gone = self.held.lock_unpoisoned().remove(service);
        for h in gone.into_iter().flatten() {
            if let crate::config::Listen::Unix(path) = &h.spec.listen {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// What `service` holds now: (name, address as bound).
    pub fn list(&self, service: &str) -> Vec<(String, String)> {
        self.held
            .lock_unpoisoned()
            .get(service)
            .map(|v| {
                v.iter()
                    .map(|h| (h.spec.name.clone(), h.bound.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Duplicates of `service`'s sockets, to wait on for a connection
    /// (`start = "on-demand"`) without touching the held ones.
    pub fn duplicates(&self, service: &str) -> Vec<OwnedFd> {
        self.held
            .lock_unpoisoned()
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|h| h.fd.as_fd().try_clone_to_owned().ok())
            .collect()
    }
}

/// Another service of this Vigil holding `spec`'s address.
fn held_by_vigil(map: &BTreeMap<String, Vec<Held>>, spec: &SocketSpec) -> Option<String> {
    map.iter().find_map(|(name, v)| {
        v.iter().any(|h| h.spec.listen == spec.listen).then(|| {
            format!(
                "this vigil (pid {}), for service `{name}`",
                std::process::id()
            )
        })
    })
}

fn err<'a, E: Into<std::io::Error>>(
    spec: &'a SocketSpec,
    what: &'static str,
) -> impl FnOnce(E) -> BindError + 'a {
    move |e| BindError {
        name: spec.name.clone(),
        listen: spec.listen.to_string(),
        what,
        source: e.into(),
        holder: None,
    }
}

/// `setsockopt` of an int option.
fn set_int(fd: &OwnedFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: `fd` is an open socket for the whole call; the option value
    // points at a live i32 and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `bind` to an IPv4 or IPv6 address.
fn bind_inet(fd: &OwnedFd, addr: &SocketAddr) -> std::io::Result<()> {
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sin` is a complete sockaddr_in alive for the call,
            // and the length passed is its size.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: `sin6` is a complete sockaddr_in6 alive for the
            // call, and the length passed is its size.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Bind and listen on `spec` (close-on-exec in Vigil).
pub fn bind_socket(spec: &SocketSpec) -> Result<Held, BindError> {
    let (family, ty) = match &spec.listen {
        Listen::Tcp(a) => (inet_family(a), SockType::Stream),
        Listen::Udp(a) => (inet_family(a), SockType::Datagram),
        Listen::Unix(_) => (AddressFamily::Unix, SockType::Stream),
    };
    let fd = socket(family, ty, SockFlag::SOCK_CLOEXEC, None).map_err(err(spec, "socket"))?;
    match &spec.listen {
        Listen::Tcp(a) | Listen::Udp(a) => {
            if matches!(spec.listen, Listen::Tcp(_)) {
                set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
                    .map_err(err(spec, "SO_REUSEADDR"))?;
                if spec.nodelay {
                    set_int(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
                        .map_err(err(spec, "TCP_NODELAY"))?;
                }
            }
            if spec.reuseport {
                set_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
                    .map_err(err(spec, "SO_REUSEPORT"))?;
            }
            if let (Some(v6only), true) = (spec.v6only, a.is_ipv6()) {
                set_int(
                    &fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    i32::from(v6only),
                )
                .map_err(err(spec, "IPV6_V6ONLY"))?;
            }
            bind_inet(&fd, a).map_err(err(spec, "bind"))?;
        }
        Listen::Unix(path) => bind_unix(&fd, spec, path)?,
    }
    if ty == SockType::Stream {
        let backlog =
            Backlog::new(spec.backlog.min(i32::MAX as u32) as i32).unwrap_or(Backlog::MAXCONN);
        listen(&fd, backlog).map_err(err(spec, "listen"))?;
    }
    let (fd, bound) = match &spec.listen {
        Listen::Tcp(_) | Listen::Udp(_) => {
            // getsockname through std: a bound socket of either kind
            // answers it the same way.
            let probe = std::net::TcpListener::from(fd);
            let local = probe.local_addr().map_err(err(spec, "getsockname"))?;
            let fd = OwnedFd::from(probe);
            match spec.listen {
                Listen::Udp(_) => (fd, format!("udp:{local}")),
                _ => (fd, local.to_string()),
            }
        }
        Listen::Unix(_) => (fd, spec.listen.to_string()),
    };
    Ok(Held {
        spec: spec.clone(),
        fd: Arc::new(fd),
        bound,
    })
}

fn inet_family(a: &SocketAddr) -> AddressFamily {
    if a.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// Bind a unix socket at `path`: a stale socket file (nobody accepting on
/// it) is replaced; a live one is a conflict; any other file is refused.
/// Then the mode and owner.
fn bind_unix(fd: &OwnedFd, spec: &SocketSpec, path: &Path) -> Result<(), BindError> {
    let inuse = |source: std::io::Error, holder: Option<String>| BindError {
        name: spec.name.clone(),
        listen: spec.listen.to_string(),
        what: "bind",
        source,
        holder,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(inuse(
                std::io::Error::from_raw_os_error(libc::EEXIST),
                Some("a file that is not a socket".into()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(inuse(
                std::io::Error::from_raw_os_error(libc::EADDRINUSE),
                holder_of(&spec.listen),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let addr = UnixAddr::new(path).map_err(err(spec, "address"))?;
    bind(fd.as_raw_fd(), &addr).map_err(err(spec, "bind"))?;
    if let Some(mode) = spec.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| inuse_io(spec, "chmod", e))?;
    }
    if let Some(owner) = &spec.owner {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        let uid = user_exists(user).map_err(|m| inuse_io(spec, "chown", other(m)))?;
        let gid = group
            .map(group_exists)
            .transpose()
            .map_err(|m| inuse_io(spec, "chown", other(m)))?;
        std::os::unix::fs::chown(path, Some(uid), gid).map_err(|e| inuse_io(spec, "chown", e))?;
    }
    Ok(())
}

fn other(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

fn inuse_io(spec: &SocketSpec, what: &'static str, source: std::io::Error) -> BindError {
    BindError {
        name: spec.name.clone(),
        listen: spec.listen.to_string(),
        what,
        source,
        holder: None,
    }
}

/// The process holding `listen`, from /proc/net and /proc/*/fd: `pid 123
/// (python3)`. `None` when nothing is found (or /proc hides it).
pub fn holder_of(listen: &Listen) -> Option<String> {
    let inodes = socket_inodes(listen);
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let comm = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                let who = if pid == me {
                    " (this vigil)".to_string()
                } else {
                    String::new()
                };
                return Some(format!(
                    "pid {pid} ({}){who}",
                    crate::untrusted::line(&comm)
                ));
            }
        }
    }
    Some(format!(
        "a socket in another network namespace or hidden from /proc (inode {})",
        inodes[0]
    ))
}

/// Inodes of sockets bound to `listen`'s address (a wildcard on either
/// side matches), from /proc/net/{tcp,tcp6,udp,udp6,unix}.
fn socket_inodes(listen: &Listen) -> Vec<u64> {
    match listen {
        Listen::Unix(path) => {
            let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
                return Vec::new();
            };
            let want = path.to_string_lossy();
            text.lines()
                .skip(1)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() >= 8 && f[7] == want)
                        .then(|| f[6].parse().ok())
                        .flatten()
                })
                .collect()
        }
        Listen::Tcp(a) | Listen::Udp(a) => {
            let udp = matches!(listen, Listen::Udp(_));
            let files: &[&str] = if udp {
                &["/proc/net/udp", "/proc/net/udp6"]
            } else {
                &["/proc/net/tcp", "/proc/net/tcp6"]
            };
            let mut out = Vec::new();
            for file in files {
                let Ok(text) = std::fs::read_to_string(file) else {
                    continue;
                };
                for line in text.lines().skip(1) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() < 10 {
                        continue;
                    }
                    // TCP: LISTEN only (0A); UDP: any bound socket.
                    if !udp && f[3] != "0A" {
                        continue;
                    }
                    let Some((ip, port)) = parse_proc_addr(f[1]) else {
                        continue;
                    };
                    let same_ip = ip == a.ip() || ip.is_unspecified() || a.ip().is_unspecified();
                    if port == a.port()
                        && same_ip
                        && let Ok(inode) = f[9].parse::<u64>()
                        && inode != 0
                    {
                        out.push(inode);
                    }
                }
            }
            out
        }
    }
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in
/// host byte order, as /proc/net/tcp* writes them.
fn parse_proc_addr(text: &str) -> Option<(std::net::IpAddr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some((
            std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into(),
            port,
        )),
        16 => {
            let arr: [u8; 16] = bytes.try_into().ok()?;
            Some((std::net::Ipv6Addr::from(arr).into(), port))
        }
        _ => None,
    }
}

/// Wait until one of `fds` is readable: a connection queued on a listening
/// socket, or a datagram. Nothing is accepted or read. An error (the fd
/// cannot be polled) returns at once, so the service starts rather than
/// waits for ever.
pub async fn wait_for_demand(fds: Vec<OwnedFd>) {
    use tokio::io::unix::AsyncFd;
    if fds.is_empty() {
        return;
    }
    let mut waits = Vec::new();
    for fd in fds {
        // SAFETY: `fd` is an open descriptor owned by the AsyncFd until it
        // is dropped; nothing closes or replaces it meanwhile.
        match unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) } {
            Ok(afd) => waits.push(Box::pin(async move {
                let _ = afd.readable().await;
            })),
            Err(_) => {
                tracing::warn!("cannot wait on a socket, starting at once");
                return;
            }
        }
    }
    futures_util::future::select_all(waits).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(listen: &str) -> SocketSpec {
        SocketSpec {
            name: "web".into(),
            listen: Listen::parse(listen, Path::new("/")).unwrap(),
            backlog: 16,
            reuseport: false,
            v6only: None,
            nodelay: false,
            mode: None,
            owner: None,
        }
    }

    #[test]
    fn proc_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            Some(("127.0.0.1".parse().unwrap(), 8080))
        );
        assert_eq!(
            parse_proc_addr("00000000000000000000000001000000:01BB"),
            Some(("::1".parse().unwrap(), 443))
        );
        assert_eq!(parse_proc_addr("zz:1"), None);
    }

    #[test]
    fn a_port_taken_by_another_socket_names_its_holder() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind_socket(&spec(&addr.to_string())).unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::EADDRINUSE));
        let holder = holder_of(&spec(&addr.to_string()).listen).unwrap();
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
    }

    #[test]
    fn port_zero_reports_the_port_bound() {
        let h = bind_socket(&spec("127.0.0.1:0")).unwrap();
        assert!(h.bound.starts_with("127.0.0.1:"), "{}", h.bound);
        assert_ne!(h.bound, "127.0.0.1:0");
        let port: u16 = h.bound.rsplit(':').next().unwrap().parse().unwrap();
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }
}
