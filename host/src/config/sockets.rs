//! `[sockets.NAME]`, `start` and `replace-timeout`: the listening sockets
//! Vigil holds for a service and passes to each of its children the way
//! systemd does (`LISTEN_FDS`), so that a restart or a replace never
//! refuses a connection.
//!
//! The sockets keep their declared order (the child finds them at fd 3,
//! 4, ... in that order), which a TOML table does not: the order is read
//! from the manifest's text ([`declared_order`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::problems::Collector;
use crate::units::parse_duration;

/// At most this many sockets per service (the child's fds 3..3+N are set
/// up from a fixed array on the spawner's child stack).
pub const MAX_SOCKETS: usize = 64;

/// Default `replace-timeout`: how long a replacing child may take to get
/// ready before it is killed and the old one kept.
pub const DEFAULT_REPLACE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default `backlog` of a stream socket (systemd's `Backlog=` default is
/// SOMAXCONN; the kernel caps it at net.core.somaxconn anyway).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// `[sockets.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSocket {
    pub listen: Option<String>,
    pub backlog: Option<u32>,
    pub reuseport: Option<bool>,
    pub v6only: Option<bool>,
    pub nodelay: Option<bool>,
    pub mode: Option<String>,
    pub owner: Option<String>,
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Listen {
    /// `"127.0.0.1:8080"`, `"[::]:8443"`: a TCP stream socket.
    Tcp(SocketAddr),
    /// `"udp:127.0.0.1:5353"`: a datagram socket.
    Udp(SocketAddr),
    /// `"unix:/run/web.sock"`: a Unix stream socket at an absolute path
    /// (a relative one in the manifest is resolved against the service
    /// directory).
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Udp(a) => write!(f, "udp:{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl Listen {
    /// Parse `listen`; a relative unix path is resolved against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Listen, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a path".into());
            }
            if path.len() >= 108 {
                return Err(format!(
                    "a unix socket path is at most 107 bytes, `{path}` has {}",
                    path.len()
                ));
            }
            return Ok(Listen::Unix(dir.join(path)));
        }
        let (udp, addr) = match text.strip_prefix("udp:") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("tcp:").unwrap_or(text)),
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address with a port"))?;
        Ok(if udp {
            Listen::Udp(addr)
        } else {
            Listen::Tcp(addr)
        })
    }
}

/// One socket held by Vigil for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// The table's name: the child's `LISTEN_FDNAMES` entry.
    pub name: String,
    pub listen: Listen,
    /// `listen(2)` backlog (stream sockets).
    pub backlog: u32,
    /// `SO_REUSEPORT` (off by default: another process could then bind
    /// the same port and take half of the connections).
    pub reuseport: bool,
    /// `IPV6_V6ONLY` for an IPv6 address; `None` keeps the system's default.
    pub v6only: Option<bool>,
    /// `TCP_NODELAY` on the listening socket (accepted connections inherit it).
    pub nodelay: bool,
    /// Unix sockets: the file's permission bits.
    pub mode: Option<u32>,
    /// Unix sockets: `user` or `user:group` owning the file.
    pub owner: Option<String>,
}

/// When a service's first child is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// As soon as Vigil starts it (and its `after` list is ready).
    #[default]
    Immediate,
    /// `start = "on-demand"`: at the first connection (or datagram) on one
    /// of its sockets (systemd's `Accept=no` socket activation). Vigil
    /// binds the sockets at once and waits without accepting.
    OnDemand,
}

/// A service's sockets and what goes with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketsSpec {
    /// In declared order: the child gets `list[i]` as fd `3 + i`.
    pub list: Vec<SocketSpec>,
    pub start: StartMode,
    /// `replace-timeout`: how long `vigil replace` waits for the new child
    /// to get ready before it kills it and keeps the old one.
    pub replace_timeout: Duration,
}

impl Default for SocketsSpec {
    fn default() -> Self {
        SocketsSpec {
            list: Vec::new(),
            start: StartMode::Immediate,
            replace_timeout: DEFAULT_REPLACE_TIMEOUT,
        }
    }
}

/// The names of the `[sockets.*]` tables in the order they appear in
/// `text` (empty when the text does not parse: that is reported elsewhere).
pub(super) fn declared_order(text: &str) -> Vec<String> {
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return Vec::new();
    };
    let Some(sockets) = doc
        .get_ref()
        .iter()
        .find(|(k, _)| &**k.get_ref() == "sockets")
        .map(|(_, v)| v)
    else {
        return Vec::new();
    };
    let toml::de::DeValue::Table(table) = sockets.get_ref() else {
        return Vec::new();
    };
    let mut names: Vec<(usize, String)> = table
        .iter()
        .map(|(k, _)| (k.span().start, k.get_ref().to_string()))
        .collect();
    names.sort();
    names.into_iter().map(|(_, n)| n).collect()
}

/// A name a child can see in `LISTEN_FDNAMES` (colon-separated there).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Resolve `[sockets.*]`, `start` and `replace-timeout`.
pub(super) fn resolve_sockets(
    dir: &Path,
    raw: Option<BTreeMap<String, RawSocket>>,
    order: &[String],
    start: Option<String>,
    replace_timeout: Option<String>,
    c: &mut Collector<'_>,
) -> SocketsSpec {
    let mut raw = raw.unwrap_or_default();
    // Declared order first; any name the text scan missed after them.
    let mut names: Vec<String> = order
        .iter()
        .filter(|n| raw.contains_key(*n))
        .cloned()
        .collect();
    for n in raw.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut list = Vec::new();
    for name in names {
        let Some(r) = raw.remove(&name) else { continue };
        if let Some(spec) = resolve_one(dir, &name, r, c) {
            list.push(spec);
        }
    }
    if list.len() > MAX_SOCKETS {
        c.push(
            "sockets",
            format!("{} sockets, at most {MAX_SOCKETS}", list.len()),
            "split the service",
        );
    }
    for (i, a) in list.iter().enumerate() {
        if list[..i].iter().any(|b| b.listen == a.listen) {
            c.push(
                format!("sockets.{}.listen", a.name),
                format!("`{}` is listed twice", a.listen),
                "give each socket its own address",
            );
        }
    }
    let start = match start.as_deref() {
        None | Some("immediate") => StartMode::Immediate,
        Some("on-demand") => {
            if list.is_empty() {
                c.push(
                    "start",
                    "`on-demand` needs a socket to wait on",
                    "add a [sockets.NAME] table, or remove `start`",
                );
            }
            StartMode::OnDemand
        }
        Some(other) => {
            c.push(
                "start",
                format!("unknown start mode `{other}`"),
                "use \"immediate\" (the default) or \"on-demand\"",
            );
            StartMode::Immediate
        }
    };
    let replace_timeout = match replace_timeout {
        None => DEFAULT_REPLACE_TIMEOUT,
        Some(t) => match parse_duration(&t) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                c.push("replace-timeout", "must be above zero", "e.g. \"30s\"");
                DEFAULT_REPLACE_TIMEOUT
            }
            Err(e) => {
                c.push("replace-timeout", e.to_string(), "e.g. \"30s\"");
                DEFAULT_REPLACE_TIMEOUT
            }
        },
    };
    SocketsSpec {
        list,
        start,
        replace_timeout,
    }
}

fn resolve_one(dir: &Path, name: &str, r: RawSocket, c: &mut Collector<'_>) -> Option<SocketSpec> {
    let key = |k: &str| format!("sockets.{name}.{k}");
    if !valid_name(name) {
        c.push(
            format!("sockets.{name}"),
            "a socket name is letters, digits, `_`, `-` and `.`",
            "rename the table: the child sees the name in LISTEN_FDNAMES",
        );
    }
    let Some(text) = r.listen else {
        c.push(
            key("listen"),
            "missing",
            "e.g. listen = \"127.0.0.1:8080\", \"[::]:8443\", \"unix:/run/web.sock\" or \"udp:127.0.0.1:5353\"",
        );
        return None;
    };
    let listen = match Listen::parse(&text, dir) {
        Ok(l) => l,
        Err(e) => {
            c.push(
                key("listen"),
                e,
                "e.g. \"127.0.0.1:8080\", \"[::]:8443\", \"unix:/run/web.sock\" or \"udp:127.0.0.1:5353\"",
            );
            return None;
        }
    };
    let only = |k: &str, what: &str, set: bool, fits: bool, c: &mut Collector<'_>| {
        if set && !fits {
            c.push(
                key(k),
                format!("only applies to {what}, not `{listen}`"),
                format!("remove `{k}`"),
            );
        }
    };
    let is_ip6 = matches!(&listen, Listen::Tcp(a) | Listen::Udp(a) if a.is_ipv6());
    let is_unix = matches!(listen, Listen::Unix(_));
    let is_udp = matches!(listen, Listen::Udp(_));
    only("backlog", "stream sockets", r.backlog.is_some(), !is_udp, c);
    only(
        "reuseport",
        "TCP and UDP sockets",
        r.reuseport.is_some(),
        !is_unix,
        c,
    );
    only("v6only", "IPv6 addresses", r.v6only.is_some(), is_ip6, c);
    only(
        "nodelay",
        "TCP sockets",
        r.nodelay.is_some(),
        matches!(listen, Listen::Tcp(_)),
        c,
    );
    only("mode", "unix sockets", r.mode.is_some(), is_unix, c);
    only("owner", "unix sockets", r.owner.is_some(), is_unix, c);
    if r.backlog == Some(0) {
        c.push(key("backlog"), "must be above zero", "e.g. 1024");
    }
    let mode = r.mode.and_then(
        |m| match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o7777 => Some(v),
            _ => {
                c.push(
                    key("mode"),
                    format!("`{m}` is not an octal mode"),
                    "e.g. \"0660\"",
                );
                None
            }
        },
    );
    if let Some(owner) = &r.owner {
        let (user, group) = match owner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (owner.as_str(), None),
        };
        if user_exists(user).is_err() {
            c.push(
                key("owner"),
                format!("no user `{user}`"),
                "name an existing user, or `user:group`",
            );
        }
        if let Some(g) = group
            && group_exists(g).is_err()
        {
            c.push(
                key("owner"),
                format!("no group `{g}`"),
                "name an existing group",
            );
        }
    }
    Some(SocketSpec {
        name: name.to_string(),
        listen,
        backlog: r.backlog.unwrap_or(DEFAULT_BACKLOG).max(1),
        reuseport: r.reuseport.unwrap_or(false),
        v6only: r.v6only,
        nodelay: r.nodelay.unwrap_or(false),
        mode,
        owner: r.owner,
    })
}

/// The uid of `user` (a name or a number).
pub fn user_exists(user: &str) -> Result<u32, String> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("no user `{user}`")),
    }
}

/// The gid of `group` (a name or a number).
pub fn group_exists(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!("no group `{group}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_by_prefix() {
        let dir = Path::new("/srv/web");
        assert_eq!(
            Listen::parse("127.0.0.1:8080", dir),
            Ok(Listen::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("[::]:8443", dir),
            Ok(Listen::Tcp("[::]:8443".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("udp:127.0.0.1:5353", dir),
            Ok(Listen::Udp("127.0.0.1:5353".parse().unwrap()))
        );
        assert_eq!(
            Listen::parse("unix:/run/web.sock", dir),
            Ok(Listen::Unix("/run/web.sock".into()))
        );
        assert_eq!(
            Listen::parse("unix:web.sock", dir),
            Ok(Listen::Unix("/srv/web/web.sock".into()))
        );
        assert!(Listen::parse("localhost", dir).is_err());
        assert!(Listen::parse("unix:", dir).is_err());
        assert_eq!(
            Listen::parse("udp:127.0.0.1:5353", dir)
                .unwrap()
                .to_string(),
            "udp:127.0.0.1:5353"
        );
    }

    #[test]
    fn the_declared_order_is_kept() {
        let text = "command = [\"x\"]\n[sockets.zeta]\nlisten = \"127.0.0.1:1\"\n\
                    [sockets.alpha]\nlisten = \"127.0.0.1:2\"\n[sockets.mid]\nlisten = \"unix:a\"\n";
        assert_eq!(declared_order(text), vec!["zeta", "alpha", "mid"]);
        let inline =
            "sockets = { b = { listen = \"127.0.0.1:1\" }, a = { listen = \"127.0.0.1:2\" } }";
        assert_eq!(declared_order(inline), vec!["b", "a"]);
        assert!(declared_order("not toml [").is_empty());
    }

    fn load(manifest: &str) -> Result<super::super::Service, Vec<String>> {
        let t = crate::test_support::TempDir::new("cfg-sockets");
        let d = t.0.join("web");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(super::super::MANIFEST), manifest).expect("write");
        let mut problems = Vec::new();
        super::super::load_service(&d, &mut problems)
            .ok_or_else(|| problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn a_manifest_declares_sockets_in_order() {
        let svc = load(
            "command = [\"true\"]\nstart = \"on-demand\"\nreplace-timeout = \"5s\"\n\
             [sockets.web]\nlisten = \"[::]:8443\"\nv6only = true\nreuseport = true\n\
             [sockets.admin]\nlisten = \"unix:admin.sock\"\nmode = \"0660\"\nowner = \"root:root\"\n\
             [sockets.dns]\nlisten = \"udp:127.0.0.1:5353\"\n",
        )
        .expect("valid");
        let names: Vec<&str> = svc.sockets.list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["web", "admin", "dns"]);
        assert_eq!(svc.sockets.start, StartMode::OnDemand);
        assert_eq!(svc.sockets.replace_timeout, Duration::from_secs(5));
        assert_eq!(svc.sockets.list[0].v6only, Some(true));
        assert!(svc.sockets.list[0].reuseport);
        assert_eq!(svc.sockets.list[1].mode, Some(0o660));
        assert_eq!(
            svc.sockets.list[1].listen,
            Listen::Unix(svc.dir.join("admin.sock"))
        );
    }

    #[test]
    fn every_socket_mistake_is_reported() {
        let p = load(
            "command = [\"true\"]\nstart = \"lazily\"\nreplace-timeout = \"0s\"\n\
             [sockets.web]\nlisten = \"127.0.0.1:80\"\nmode = \"0600\"\nv6only = true\nbacklg = 5\n\
             [sockets.\"a:b\"]\nlisten = \"nowhere\"\n\
             [sockets.dns]\nlisten = \"udp:127.0.0.1:53\"\nbacklog = 5\nnodelay = true\n\
             [sockets.again]\nlisten = \"127.0.0.1:80\"\n",
        )
        .unwrap_err();
        let has = |needle: &str| p.iter().any(|l| l.contains(needle));
        assert!(has("sockets.web.backlg: unknown key"), "{p:#?}");
        assert!(has("did you mean `sockets.web.backlog`?"), "{p:#?}");
        assert!(
            has("sockets.web.mode: only applies to unix sockets"),
            "{p:#?}"
        );
        assert!(has("sockets.web.v6only: only applies to IPv6"), "{p:#?}");
        assert!(has("sockets.a:b: a socket name is"), "{p:#?}");
        assert!(
            has("sockets.a:b.listen: `nowhere` is not an address"),
            "{p:#?}"
        );
        assert!(has("sockets.dns.backlog: only applies to stream"), "{p:#?}");
        assert!(has("sockets.dns.nodelay: only applies to TCP"), "{p:#?}");
        assert!(
            has("sockets.again.listen: `127.0.0.1:80` is listed twice"),
            "{p:#?}"
        );
        assert!(has("start: unknown start mode `lazily`"), "{p:#?}");
        assert!(has("replace-timeout: must be above zero"), "{p:#?}");
        let lonely = load("command = [\"true\"]\nstart = \"on-demand\"\n").unwrap_err();
        assert!(
            lonely.iter().any(|l| l.contains("needs a socket")),
            "{lonely:#?}"
        );
        let typed = load("command = [\"true\"]\n[sockets.web]\nlisten = 80\nbacklog = \"x\"\n")
            .unwrap_err();
        assert!(
            typed.iter().any(|l| l.contains("sockets.web.listen")),
            "{typed:#?}"
        );
        assert!(
            typed.iter().any(|l| l.contains("sockets.web.backlog")),
            "{typed:#?}"
        );
    }
}
