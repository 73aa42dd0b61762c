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
//! A connection is allowed only address by address, by one decision,
//! [`Grants::allows`], the same for `tcp` and `http` (every redirect hop
//! too): the host as requested must be granted for the request's scheme and
//! port, and the address it is about to connect to (resolved from a name,
//! or the IP literal itself) must be reachable through a grant for that
//! same scheme and port:
//!
//! | grant HOST | requested host it matches | addresses it reaches |
//! |---|---|---|
//! | `*` | any name or IP literal | public addresses only |
//! | `db.example.com`, `*.example.com` | that name, names under it | public addresses only |
//! | `localhost` | `localhost`, a loopback literal | loopback: 127.0.0.0/8, ::1 |
//! | IP or CIDR block | IP literals inside it | addresses inside it, also when a granted name resolves there |
//!
//! So `*` cannot reach loopback, private or link-local space (cloud metadata
//! at 169.254.169.254) by a name that resolves there (DNS rebinding) nor by
//! writing the address itself; only a grant naming that space can. Not
//! public: 0.0.0.0/8 (the unspecified address reaches this host), loopback,
//! RFC 1918, CGNAT, link-local, documentation, benchmarking, multicast and
//! reserved blocks, ::/96 (::, ::1, IPv4-compatible), ULA, site- and
//! link-local IPv6, 2001::/23 (Teredo among them); NAT64 (64:ff9b::/96) and
//! 6to4 (2002::/16) addresses are public only when the IPv4 address inside
//! is. An IPv4-mapped address (`::ffff:127.0.0.1`) is its IPv4 address, and
//! every form `inet_aton` and URL parsers accept (`127.1`, `2130706433`,
//! `0x7f.1`, `0177.0.0.1`, a trailing dot) is that same literal, in requests
//! and in grants alike.
//!
//! The caller connects to exactly the addresses that were checked (it pins
//! them; nothing resolves the name a second time), so an answer that
//! changes between check and connect gains nothing.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

mod addr;

pub use addr::parse_ip_literal;
use addr::{canonical_ip, in_network, is_public};

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
    /// Granted paths; everything beneath each is readable.
    paths: Vec<PathGrant>,
    /// `output = true`: checks may read the service's own recent output.
    output: bool,
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

    /// These grants, plus (or minus) reading the service's own recent
    /// output (`[grants] output`; the `output` capability).
    pub fn with_output(mut self, output: bool) -> Grants {
        self.output = output;
        self
    }

    /// Whether checks may read the service's own recent output.
    pub fn output(&self) -> bool {
        self.output
    }

    /// Whether `scheme://host:port` is granted by name: a pre-filter, so
    /// that nothing is resolved (no DNS query leaves the host) for a
    /// destination no grant names. It says nothing about where the name
    /// leads; [`Grants::allows`] decides each address.
    pub fn allows_destination(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        let host = normalize_host(host);
        let literal = parse_ip_literal(&host);
        self.hosts
            .iter()
            .any(|grant| grant.matches_scheme_port(scheme, port) && grant.names(&host, literal))
    }

    /// The network decision, for `tcp` and `http` alike: may a request for
    /// `scheme://host:port` connect to `ip`, which `host` resolved to (or
    /// which `host` is, for an IP literal)? Both the host as requested and
    /// the address must be granted for this scheme and port; see the table
    /// in the module documentation. An address reached only through a grant
    /// for another scheme or port is refused (DNS rebinding: a name granted
    /// on one port resolving to an address granted on another).
    pub fn allows(&self, scheme: Scheme, port: u16, host: &str, ip: IpAddr) -> bool {
        let host = normalize_host(host);
        let literal = parse_ip_literal(&host);
        let ip = canonical_ip(ip);
        // A literal connects to itself and nothing else.
        if literal.is_some_and(|literal| literal != ip) {
            return false;
        }
        self.allows_destination(scheme, &host, port)
            && self.hosts.iter().any(|grant| {
                grant.matches_scheme_port(scheme, port) && grant.reaches(&host, literal, ip)
            })
    }

    /// Decides, without touching the file system, whether the guest's
    /// `path` is granted. A relative path is joined to `base` (the service
    /// directory); `.` and `..` are then removed lexically (`a/link/..` is
    /// `a`, whatever `link` is) and the result must lie beneath a grant, as
    /// the operator wrote it or as it resolved when the grant was parsed.
    ///
    /// Nothing is resolved here on purpose: a denial that depended on the
    /// file system (a resolved path, "not found" versus "denied", an I/O
    /// error) would let a check learn what exists and where links point
    /// outside its grants (`/proc/self/exe`, `/proc/PID/cwd`,
    /// `/etc/hostname/..`). The caller opens [`GrantedPath::rest`] beneath
    /// [`GrantedPath::root`] with the kernel confining symlinks to the root
    /// (see `wasm::host::fs`).
    pub fn check_path(&self, path: &str, base: Option<&Path>) -> Result<GrantedPath, PathDenied> {
        if path.contains('\0') {
            return Err(PathDenied::Invalid("a path cannot contain a NUL byte"));
        }
        let requested = Path::new(path);
        let joined;
        let requested = match base {
            Some(base) if !requested.is_absolute() => {
                joined = base.join(requested);
                joined.as_path()
            }
            _ => requested,
        };
        if !requested.is_absolute() {
            return Err(PathDenied::Invalid("path must be absolute"));
        }
        let lexical = normalize_lexically(requested);
        // The longest matching prefix: the most specific grant wins, so a
        // grant nested in another (and resolved elsewhere) is opened from
        // its own root.
        self.paths
            .iter()
            .flat_map(|grant| [(&grant.written, grant), (&grant.real, grant)])
            .filter_map(|(prefix, grant)| {
                let rest = lexical.strip_prefix(prefix).ok()?;
                Some((prefix.components().count(), grant, rest))
            })
            .max_by_key(|(depth, _, _)| *depth)
            .map(|(_, grant, rest)| GrantedPath {
                root: grant.real.clone(),
                rest: rest.to_path_buf(),
            })
            .ok_or(PathDenied::NotGranted)
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.paths.is_empty()
    }
}

/// The grant entry that lets a check reach `scheme://host:port`, as the
/// manifest and `--allow-host` take it: `http://127.0.0.1:8080`,
/// `tcp://[::1]:6379`.
pub fn host_entry(scheme: Scheme, host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host = if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    };
    format!("{}://{host}:{port}", scheme.as_str())
}

/// What a denial of a destination tells the operator to do, naming both
/// places a grant is given: the manifest's `[grants] hosts` and
/// `vigil check --allow-host`.
pub fn host_grant_fix(entry: &str) -> String {
    format!("add \"{entry}\" to [grants] hosts (or --allow-host {entry} with vigil check)")
}

/// The same for a path: `[grants] paths` and `--allow-path`.
pub fn path_grant_fix(path: &str) -> String {
    format!(
        "add \"{path}\" (or a directory above it) to [grants] paths (or --allow-path {path} with vigil check)"
    )
}

/// Why a path request was refused. Neither variant carries anything
/// learned from the file system: the decision is lexical.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathDenied {
    #[error("not in [grants] paths")]
    NotGranted,
    #[error("{0}")]
    Invalid(&'static str),
}

/// One path grant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathGrant {
    /// As the operator wrote it, `.` and `..` removed lexically: a guest
    /// may name paths with this spelling even when it crosses a symlink.
    written: PathBuf,
    /// Where it resolved when the grant was parsed (symlinks followed, a
    /// not-yet-existing tail kept as written): the directory, or file, that
    /// is opened at call time. It held no symlink when parsed, so one found
    /// in it at call time was put there since, and is refused.
    real: PathBuf,
}

/// A granted guest path: `rest` (relative, only plain components, empty
/// for the root itself) is to be opened beneath `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedPath {
    pub root: PathBuf,
    pub rest: PathBuf,
}

impl HostGrant {
    fn matches_scheme_port(&self, scheme: Scheme, port: u16) -> bool {
        self.scheme.is_none_or(|s| s == scheme)
            && match self.port {
                Some(p) => p == port,
                None => true,
            }
    }

    /// Whether the host as requested (`literal` when it is an IP) is the
    /// one this grant names.
    fn names(&self, host: &str, literal: Option<IpAddr>) -> bool {
        match (&self.host, literal) {
            (HostPattern::Any, _) => true,
            (HostPattern::Localhost, Some(ip)) => ip.is_loopback(),
            (HostPattern::Localhost, None) => host == "localhost",
            (HostPattern::Network { addr, prefix }, Some(ip)) => in_network(ip, *addr, *prefix),
            (HostPattern::Name(name), None) => name == host,
            (HostPattern::Suffix(suffix), None) => host.ends_with(suffix.as_str()),
            _ => false,
        }
    }

    /// Whether this grant lets a request for `host` connect to `ip`: a
    /// grant naming an address space reaches that space; a name, a suffix
    /// or `*` reach public addresses only.
    fn reaches(&self, host: &str, literal: Option<IpAddr>, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Network { addr, prefix } => in_network(ip, *addr, *prefix),
            HostPattern::Localhost => ip.is_loopback(),
            HostPattern::Any => is_public(ip),
            HostPattern::Name(_) | HostPattern::Suffix(_) => {
                literal.is_none() && self.names(host, None) && is_public(ip)
            }
        }
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
        return Ok(canonical_network(addr, prefix));
    }
    if let Some(addr) = parse_ip_literal(&host) {
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

/// A network inside ::ffff:0:0/96 is the IPv4 network it maps, so that
/// it matches addresses as [`canonical_ip`] presents them.
fn canonical_network(addr: IpAddr, prefix: u8) -> HostPattern {
    match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => HostPattern::Network {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            },
            None => HostPattern::Network { addr, prefix },
        },
        _ => HostPattern::Network { addr, prefix },
    }
}

/// Resolves a path grant once, when the grants are parsed: the operator
/// may grant a path through a symlink (`/srv/app/current`), and it is
/// followed now, never at call time.
fn resolve_path_grant(path: &Path) -> Result<PathGrant, String> {
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
                let real = tail
                    .iter()
                    .rev()
                    .fold(real, |acc: PathBuf, part| acc.join(part));
                return Ok(PathGrant {
                    written: lexical,
                    real,
                });
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

/// Removes `.` and resolves `..` without touching the file system (`..`
/// of the root is the root).
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

/// Tests of the path half: the grant decision is lexical.
#[cfg(test)]
mod path_tests {
    use super::*;
    use crate::test_support::TempDir;

    fn paths(paths: &[&Path]) -> Grants {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        Grants::parse(&[], &paths).expect("valid grants")
    }

    fn granted(root: &Path, rest: &str) -> Result<GrantedPath, PathDenied> {
        Ok(GrantedPath {
            root: root.to_path_buf(),
            rest: PathBuf::from(rest),
        })
    }

    #[test]
    fn dotdot_is_lexical_and_cannot_climb_out() {
        let g = paths(&[Path::new("/nonexistent-vigil/granted")]);
        let root = Path::new("/nonexistent-vigil/granted");
        assert_eq!(
            g.check_path("/nonexistent-vigil/granted/./a/../b", None),
            granted(root, "b")
        );
        assert_eq!(
            g.check_path("/nonexistent-vigil/granted/../secret", None),
            Err(PathDenied::NotGranted)
        );
        assert_eq!(
            g.check_path(
                "/nonexistent-vigil/granted/../../../nonexistent-vigil/granted/x",
                None
            ),
            granted(root, "x")
        );
        assert_eq!(
            g.check_path("/nonexistent-vigil/granted", None),
            granted(root, "")
        );
        // Prefixes are whole components.
        assert_eq!(
            g.check_path("/nonexistent-vigil/granted-not", None),
            Err(PathDenied::NotGranted)
        );
    }

    /// What exists outside the grants makes no difference to the answer.
    #[test]
    fn a_denial_does_not_depend_on_the_file_system() {
        let g = Grants::none();
        for path in [
            "/proc/self/exe",
            "/proc/1/cwd",
            "/proc/self/fd/0",
            "/etc/hostname/..",
            "/etc/hostname",
            "/nonexistent-vigil/missing",
            "/",
        ] {
            assert_eq!(
                g.check_path(path, None),
                Err(PathDenied::NotGranted),
                "{path}"
            );
        }
    }

    #[test]
    fn relative_paths_start_at_the_base_and_need_one() {
        let g = paths(&[Path::new("/nonexistent-vigil/svc")]);
        let base = Path::new("/nonexistent-vigil/svc");
        assert_eq!(
            g.check_path("run/heartbeat", Some(base)),
            granted(base, "run/heartbeat")
        );
        assert_eq!(g.check_path("..", Some(base)), Err(PathDenied::NotGranted));
        assert_eq!(
            g.check_path("run/heartbeat", None),
            Err(PathDenied::Invalid("path must be absolute"))
        );
        assert!(matches!(
            g.check_path("/nonexistent-vigil/svc/a\0b", None),
            Err(PathDenied::Invalid(_))
        ));
    }

    /// A grant written through a symlink is resolved once, at parse time;
    /// both spellings name the same root.
    #[test]
    fn a_grant_through_a_symlink_is_resolved_when_parsed() {
        let scratch = TempDir::new("grant-link");
        let real = scratch.0.join("releases/42");
        std::fs::create_dir_all(&real).expect("mkdir");
        let link = scratch.0.join("current");
        std::os::unix::fs::symlink("releases/42", &link).expect("symlink");
        let g = paths(&[link.as_path()]);
        let real = std::fs::canonicalize(&real).expect("canonical");
        let via_link = format!("{}/hb", link.display());
        let via_real = format!("{}/hb", real.display());
        assert_eq!(g.check_path(&via_link, None), granted(&real, "hb"));
        assert_eq!(g.check_path(&via_real, None), granted(&real, "hb"));
    }

    /// The most specific grant is opened from its own root.
    #[test]
    fn nested_grants_use_the_longest_match() {
        let g = paths(&[
            Path::new("/nonexistent-vigil/a"),
            Path::new("/nonexistent-vigil/a/b/c"),
        ]);
        assert_eq!(
            g.check_path("/nonexistent-vigil/a/b/c/d", None),
            granted(Path::new("/nonexistent-vigil/a/b/c"), "d")
        );
        assert_eq!(
            g.check_path("/nonexistent-vigil/a/b/d", None),
            granted(Path::new("/nonexistent-vigil/a"), "b/d")
        );
    }
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
mod fuzz_tests;
/// The host-grant decision: literals, wildcards, rebinding.
#[cfg(test)]
mod net_tests;

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
        assert!(g.allows(Scheme::Http, 80, "api.example.com", ip("93.184.216.34")));
        assert!(!g.allows(Scheme::Http, 80, "api.example.com", ip("127.0.0.1")));
        assert!(!g.allows(Scheme::Http, 80, "api.example.com", ip("169.254.169.254")));
        assert!(!g.allows(Scheme::Http, 80, "api.example.com", ip("::ffff:10.0.0.1")));
        // `localhost` reaches loopback, and only loopback. A name that
        // resolves to loopback on a port `localhost` is granted for reaches
        // nothing more than the grant already allows.
        let g = grants(&["http://localhost:80"]);
        assert!(g.allows(Scheme::Http, 80, "localhost", ip("::1")));
        assert!(!g.allows(Scheme::Http, 81, "localhost", ip("::1")));
        assert!(!g.allows(Scheme::Http, 80, "localhost", ip("93.184.216.34")));
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
}
