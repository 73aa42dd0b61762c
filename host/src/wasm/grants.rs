//! What a check may touch: outbound hosts, readable paths.
//!
//! Deny by default. A grant names a destination explicitly; anything not
//! named is `denied`. The syntax of a host grant is
//! `[SCHEME://]HOST[:PORT]`:
//!
//! | part   | forms                                                        |
//! |--------|--------------------------------------------------------------|
//! | SCHEME | `http`, `https`, `tcp`, `*`; omitted means any               |
//! | HOST   | `localhost`, `db.example.com`, `*.example.com`, `*`, an IP (`127.0.0.1`, `[::1]`) or a CIDR block (`10.0.0.0/8`) |
//! | PORT   | a number or `*`; omitted means 80 for `http`, 443 for `https`, any otherwise |
//!
//! Names are resolved by the host, and the resolved address is checked too
//! so a DNS answer cannot walk a check past its grants (DNS rebinding): a
//! name granted by name may only reach public addresses; `localhost` only
//! reaches loopback; private, loopback and link-local addresses are reached
//! only through a grant that names them (an IP, a CIDR block, `localhost`).

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// A grant that could not be parsed, with the offending text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error(
        "host grant `{grant}`: {problem} (expected [SCHEME://]HOST[:PORT], e.g. `http://localhost:8080` or `tcp://10.0.0.0/8:*`)"
    )]
    Host { grant: String, problem: String },
    #[error("path grant `{grant}`: {problem}")]
    Path { grant: String, problem: String },
}

/// Which protocol a destination is reached with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Tcp,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Localhost,
    Name(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
    Network {
        addr: IpAddr,
        prefix: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostGrant {
    scheme: Option<Scheme>,
    host: HostPattern,
    /// `None` is any port.
    port: Option<u16>,
}

/// The grants of one service, parsed and resolved.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    hosts: Vec<HostGrant>,
    /// Canonical absolute paths; everything beneath each is readable.
    paths: Vec<PathBuf>,
}

impl Grants {
    /// Parses host grants and resolves path grants (which must be absolute).
    /// Every problem is reported, not only the first.
    pub fn parse(hosts: &[String], paths: &[PathBuf]) -> Result<Grants, Vec<GrantError>> {
        let mut errors = Vec::new();
        let mut grants = Grants::default();
        for text in hosts {
            match parse_host_grant(text) {
                Ok(grant) => grants.hosts.push(grant),
                Err(problem) => errors.push(GrantError::Host {
                    grant: text.clone(),
                    problem,
                }),
            }
        }
        for path in paths {
            match resolve_path_grant(path) {
                Ok(path) => grants.paths.push(path),
                Err(problem) => errors.push(GrantError::Path {
                    grant: path.display().to_string(),
                    problem,
                }),
            }
        }
        if errors.is_empty() {
            Ok(grants)
        } else {
            Err(errors)
        }
    }

    /// No grants at all.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Whether `scheme://host:port` is granted by name, before resolution.
    pub fn allows_destination(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        let literal = host.parse::<IpAddr>().ok();
        self.hosts.iter().any(|grant| {
            grant.matches_scheme_port(scheme, port)
                && match (&grant.host, literal) {
                    (HostPattern::Any, _) => true,
                    (HostPattern::Localhost, Some(ip)) => ip.is_loopback(),
                    (HostPattern::Localhost, None) => host == "localhost",
                    (HostPattern::Network { addr, prefix }, Some(ip)) => {
                        in_network(ip, *addr, *prefix)
                    }
                    (HostPattern::Name(name), None) => *name == host,
                    (HostPattern::Suffix(suffix), None) => host.ends_with(suffix.as_str()),
                    _ => false,
                }
        })
    }

    /// Whether a connection to `ip`, resolved from `host`, is granted. This
    /// is the DNS-rebinding check: see the module documentation.
    /// `via` is the scheme and port when known; a resolver that only sees
    /// the name passes `None` (the destination was checked by name before).
    pub fn allows_address(&self, via: Option<(Scheme, u16)>, host: &str, ip: IpAddr) -> bool {
        let host = normalize_host(host);
        let literal = host.parse::<IpAddr>().is_ok();
        self.hosts.iter().any(|grant| {
            via.is_none_or(|(scheme, port)| grant.matches_scheme_port(scheme, port))
                && match &grant.host {
                    HostPattern::Network { addr, prefix } => in_network(ip, *addr, *prefix),
                    HostPattern::Localhost => ip.is_loopback(),
                    HostPattern::Any if literal => true,
                    HostPattern::Any | HostPattern::Name(_) | HostPattern::Suffix(_) => {
                        !literal && grant_host_matches_name(&grant.host, &host) && is_public(ip)
                    }
                }
        })
    }

    /// Resolves `path` (which may contain `..` and symlinks) and returns it
    /// when it lies beneath a granted path.
    pub fn resolve_path(&self, path: &str) -> Result<PathBuf, PathDenied> {
        let requested = Path::new(path);
        if !requested.is_absolute() {
            return Err(PathDenied::Invalid("path must be absolute".into()));
        }
        match std::fs::canonicalize(requested) {
            Ok(real) if self.paths.iter().any(|granted| real.starts_with(granted)) => Ok(real),
            Ok(real) => Err(PathDenied::NotGranted(real)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // Say "not found" only where the caller could have read it.
                let lexical = normalize_lexically(requested);
                if self
                    .paths
                    .iter()
                    .any(|granted| lexical.starts_with(granted))
                {
                    Err(PathDenied::NotFound)
                } else {
                    Err(PathDenied::NotGranted(lexical))
                }
            }
            Err(err) => Err(PathDenied::Io(err.to_string())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.paths.is_empty()
    }
}

/// Why a path request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PathDenied {
    NotGranted(PathBuf),
    NotFound,
    Invalid(String),
    Io(String),
}

impl HostGrant {
    fn matches_scheme_port(&self, scheme: Scheme, port: u16) -> bool {
        self.scheme.is_none_or(|s| s == scheme)
            && match self.port {
                Some(p) => p == port,
                None => true,
            }
    }
}

fn grant_host_matches_name(pattern: &HostPattern, host: &str) -> bool {
    match pattern {
        HostPattern::Any => true,
        HostPattern::Name(name) => name == host,
        HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
        _ => false,
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn parse_host_grant(text: &str) -> Result<HostGrant, String> {
    let text = text.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some(("*", rest)) => (None, rest),
        Some((scheme, rest)) => (
            Some(match scheme.to_ascii_lowercase().as_str() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                "tcp" => Scheme::Tcp,
                other => {
                    return Err(format!(
                        "unknown scheme `{other}` (use http, https, tcp or *)"
                    ));
                }
            }),
            rest,
        ),
        None => (None, text),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err("no host".into());
    }
    if rest.contains('/') && rest.parse::<IpAddr>().is_err() && !looks_like_cidr(rest) {
        return Err("a grant names a destination, not a path".into());
    }
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => match scheme {
            Some(Scheme::Http) => Some(80),
            Some(Scheme::Https) => Some(443),
            _ => None,
        },
        Some("*") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?),
    };
    Ok(HostGrant {
        scheme,
        host: parse_host_pattern(host)?,
        port,
    })
}

fn looks_like_cidr(text: &str) -> bool {
    let host = split_host_port(text).map(|(h, _)| h).unwrap_or(text);
    host.split_once('/')
        .is_some_and(|(ip, bits)| ip.parse::<IpAddr>().is_ok() && bits.parse::<u8>().is_ok())
}

/// Splits `host:port`, `[v6]:port`, `v6`, `[v6]`, `cidr:port`.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[`")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected `{after}` after `]`")),
        };
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok((text, None));
    }
    // A bare IPv6 CIDR such as `fd00::/8` has colons but no port.
    if let Some((ip, _)) = text.split_once('/')
        && ip.contains(':')
        && ip.parse::<IpAddr>().is_ok()
        && !text.contains("]:")
    {
        return Ok((text, None));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, String> {
    let host = normalize_host(host);
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "localhost" {
        return Ok(HostPattern::Localhost);
    }
    if let Some((ip, bits)) = host.split_once('/') {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("bad network address `{ip}`"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or(format!("bad prefix length `{bits}` (0-{max})"))?;
        return Ok(HostPattern::Network { addr, prefix });
    }
    if let Ok(addr) = host.parse::<IpAddr>() {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(HostPattern::Network { addr, prefix });
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        validate_name(suffix)?;
        return Ok(HostPattern::Suffix(format!(".{suffix}")));
    }
    validate_name(&host)?;
    Ok(HostPattern::Name(host))
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("bad host name `{name}`"))
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (ip >> shift) == (network >> shift)
}

/// Globally routable, by the IANA special-purpose registries (the parts
/// that matter for reaching something the operator did not mean to expose).
fn is_public(ip: IpAddr) -> bool {
    const V4_SPECIAL: &[(&str, u8)] = &[
        ("0.0.0.0", 8),
        ("10.0.0.0", 8),
        ("100.64.0.0", 10),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("172.16.0.0", 12),
        ("192.0.0.0", 24),
        ("192.168.0.0", 16),
        ("198.18.0.0", 15),
        ("224.0.0.0", 4),
        ("240.0.0.0", 4),
    ];
    const V6_SPECIAL: &[(&str, u8)] = &[
        ("::", 127),
        ("fc00::", 7),
        ("fe80::", 10),
        ("ff00::", 8),
        ("64:ff9b::", 96),
    ];
    let special = |table: &[(&str, u8)]| {
        table.iter().any(|(net, prefix)| {
            net.parse::<IpAddr>()
                .is_ok_and(|net| in_network(ip, net, *prefix))
        })
    };
    match ip {
        IpAddr::V4(_) => !special(V4_SPECIAL),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => !special(V6_SPECIAL),
        },
    }
}

fn resolve_path_grant(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    // A granted path may not exist yet (a heartbeat file before the first
    // beat): resolve the deepest existing ancestor and keep the rest.
    let lexical = normalize_lexically(path);
    let mut existing = lexical.as_path();
    let mut tail = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => {
                return Ok(tail
                    .iter()
                    .rev()
                    .fold(real, |acc: PathBuf, part| acc.join(part)));
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    tail.push(name.to_owned());
                    existing = parent;
                }
                _ => return Err("cannot be resolved".into()),
            },
        }
    }
}

/// Removes `.` and resolves `..` without touching the file system.
fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http" => Ok(Scheme::Http),
            "https" => Ok(Scheme::Https),
            "tcp" => Ok(Scheme::Tcp),
            other => Err(format!("unsupported scheme `{other}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(hosts: &[&str]) -> Grants {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        Grants::parse(&hosts, &[]).expect("valid grants")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let g = grants(&["http://localhost:8080"]);
        assert!(g.allows_destination(Scheme::Http, "localhost", 8080));
        assert!(g.allows_destination(Scheme::Http, "127.0.0.1", 8080));
        assert!(!g.allows_destination(Scheme::Https, "localhost", 8080));
        assert!(!g.allows_destination(Scheme::Http, "localhost", 8081));
        assert!(!g.allows_destination(Scheme::Http, "example.com", 8080));
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        let g = grants(&["https://api.example.com", "tcp://127.0.0.1"]);
        assert!(g.allows_destination(Scheme::Https, "api.example.com", 443));
        assert!(!g.allows_destination(Scheme::Https, "api.example.com", 8443));
        assert!(g.allows_destination(Scheme::Tcp, "127.0.0.1", 6379));
    }

    #[test]
    fn wildcards_and_networks() {
        let g = grants(&["*.example.com:*", "tcp://10.0.0.0/8:5432", "[::1]:9000"]);
        assert!(g.allows_destination(Scheme::Http, "a.b.example.com", 1));
        assert!(!g.allows_destination(Scheme::Http, "example.com", 1));
        assert!(!g.allows_destination(Scheme::Http, "badexample.com", 1));
        assert!(g.allows_destination(Scheme::Tcp, "10.1.2.3", 5432));
        assert!(!g.allows_destination(Scheme::Tcp, "11.1.2.3", 5432));
        assert!(g.allows_destination(Scheme::Tcp, "::1", 9000));
    }

    #[test]
    fn a_name_cannot_resolve_into_private_space() {
        let g = grants(&["http://api.example.com"]);
        assert!(g.allows_address(
            Some((Scheme::Http, 80)),
            "api.example.com",
            ip("93.184.216.34")
        ));
        assert!(!g.allows_address(Some((Scheme::Http, 80)), "api.example.com", ip("127.0.0.1")));
        assert!(!g.allows_address(
            Some((Scheme::Http, 80)),
            "api.example.com",
            ip("169.254.169.254")
        ));
        assert!(!g.allows_address(
            Some((Scheme::Http, 80)),
            "api.example.com",
            ip("::ffff:10.0.0.1")
        ));
        // `localhost` reaches loopback, and only loopback. A name that
        // resolves to loopback on a port `localhost` is granted for reaches
        // nothing more than the grant already allows.
        let g = grants(&["http://localhost:80"]);
        assert!(g.allows_address(Some((Scheme::Http, 80)), "localhost", ip("::1")));
        assert!(!g.allows_address(Some((Scheme::Http, 81)), "localhost", ip("::1")));
        assert!(!g.allows_address(Some((Scheme::Http, 80)), "localhost", ip("93.184.216.34")));
    }

    #[test]
    fn bad_grants_are_all_reported() {
        let hosts = vec![
            "ftp://x".to_string(),
            "http://a:99999".to_string(),
            "10.0.0.0/40".to_string(),
        ];
        let errors = Grants::parse(&hosts, &[PathBuf::from("relative")]).expect_err("invalid");
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn paths_cannot_escape_by_dotdot_or_symlink() {
        let root = std::env::temp_dir().join(format!("vigil-grants-{}", std::process::id()));
        let granted = root.join("granted");
        std::fs::create_dir_all(&granted).expect("mkdir");
        std::fs::write(root.join("secret"), "s").expect("write");
        std::fs::write(granted.join("ok"), "ok").expect("write");
        let link = granted.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("secret"), &link).expect("symlink");
        let g = Grants::parse(&[], std::slice::from_ref(&granted)).expect("grants");
        assert!(
            g.resolve_path(granted.join("ok").to_str().expect("utf8"))
                .is_ok()
        );
        let dotdot = format!("{}/../secret", granted.display());
        assert!(matches!(
            g.resolve_path(&dotdot),
            Err(PathDenied::NotGranted(_))
        ));
        assert!(matches!(
            g.resolve_path(link.to_str().expect("utf8")),
            Err(PathDenied::NotGranted(_))
        ));
        assert_eq!(
            g.resolve_path(granted.join("missing").to_str().expect("utf8")),
            Err(PathDenied::NotFound)
        );
        assert!(matches!(
            g.resolve_path("/etc/missing-vigil"),
            Err(PathDenied::NotGranted(_))
        ));
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
