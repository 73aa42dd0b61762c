//! Fuzz targets (see `crate::fuzz`) for grants: host grants as the
//! manifest writes them and the destinations a check asks for, path
//! grants and the paths a check names, and IP literals in every spelling.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Component, PathBuf};

use super::*;
use crate::fuzz::{self, assert_clear, text};
use crate::test_support::TempDir;

/// Addresses of every kind a decision treats apart: loopback, private,
/// link-local (cloud metadata), public, IPv6 loopback, mapped, public v6.
const ADDRESSES: &[&str] = &[
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "93.184.216.34",
    "::1",
    "::ffff:127.0.0.1",
    "2606:4700::1",
    "0.0.0.0",
];

// glibc's, which the `libc` crate does not declare.
unsafe extern "C" {
    fn inet_aton(cp: *const libc::c_char, inp: *mut libc::in_addr) -> libc::c_int;
}

const SCHEMES: &[Scheme] = &[Scheme::Http, Scheme::Https, Scheme::Tcp];
const PORTS: &[u16] = &[80, 443, 8080];

/// Host grants, one per line, and the same lines as requested hosts:
/// every decision keeps the invariants of the module documentation.
#[test]
fn fuzz_host_grants() {
    let dict = &[
        "http://",
        "https://",
        "tcp://",
        "*://",
        "ftp://",
        "*",
        "*.",
        "localhost",
        "example.com",
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0177.0.0.1",
        "2130706433",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "::1",
        "fe80::1%eth0",
        "10.0.0.0/8",
        "fd00::/8",
        "/33",
        "/0",
        ":80",
        ":*",
        ":65536",
        "/",
        "\n",
        ".",
    ];
    let ips: Vec<IpAddr> = ADDRESSES.iter().map(|a| a.parse().expect("ip")).collect();
    fuzz::run("host-grants", dict, 1024, |input| {
        let text = text(input);
        let lines: Vec<String> = text.lines().take(8).map(str::to_string).collect();
        let mut ok = Vec::new();
        for line in &lines {
            match Grants::parse(std::slice::from_ref(line), &[]) {
                Ok(_) => ok.push(line.clone()),
                Err(errors) => {
                    assert_eq!(errors.len(), 1, "{line:?}: {errors:?}");
                    assert_clear(&errors[0].to_string(), line.len());
                }
            }
        }
        let grants = Grants::parse(&ok, &[]).expect("each line parsed alone");
        // Only names, suffixes and `*`: nothing may reach a private address.
        let names_only = grants.hosts.iter().all(|g| {
            matches!(
                g.host,
                HostPattern::Any | HostPattern::Name(_) | HostPattern::Suffix(_)
            )
        });
        for host in &lines {
            let literal = parse_ip_literal(&normalize_host(host));
            for &ip in &ips {
                for &scheme in SCHEMES {
                    for &port in PORTS {
                        if !grants.allows(scheme, port, host, ip) {
                            continue;
                        }
                        assert!(
                            grants.allows_destination(scheme, host, port),
                            "{host:?} -> {ip} allowed but not its destination"
                        );
                        if let Some(literal) = literal {
                            assert_eq!(
                                canonical_ip(literal),
                                canonical_ip(ip),
                                "literal {host:?} connected elsewhere"
                            );
                        }
                        assert!(
                            !names_only || is_public(ip),
                            "grants {ok:?} let {host:?} reach {ip}"
                        );
                    }
                }
            }
        }
    });
}

/// Paths a check names, against path grants (one through a symlink): a
/// granted answer is always beneath a grant, its rest only plain names.
#[test]
fn fuzz_path_grants() {
    let scratch = TempDir::new("fuzz-paths");
    let root = scratch.0.clone();
    let granted = root.join("granted");
    let real = root.join("real");
    std::fs::create_dir_all(granted.join("sub")).expect("mkdir");
    std::fs::create_dir_all(&real).expect("mkdir");
    std::os::unix::fs::symlink(&real, root.join("link")).expect("symlink");
    let grants = Grants::parse(
        &[],
        &[
            granted.clone(),
            root.join("link"),
            root.join("not-yet/heartbeat"),
        ],
    )
    .expect("path grants");
    let base = root.join("svc");
    let root_text = root.display().to_string();
    let dict: Vec<&str> = vec![
        "/",
        "..",
        ".",
        "//",
        "granted",
        "link",
        "real",
        "sub",
        "not-yet",
        "heartbeat",
        "/etc",
        "\0",
        &root_text,
    ];
    fuzz::run("path-grants", &dict, 1024, |input| {
        let text = text(input);
        for path in text.lines().take(4) {
            for base in [None, Some(base.as_path())] {
                match grants.check_path(path, base) {
                    Ok(GrantedPath { root: at, rest }) => {
                        assert!(
                            rest.components().all(|c| matches!(c, Component::Normal(_))),
                            "{path:?}: rest {rest:?}"
                        );
                        assert!(
                            grants.paths.iter().any(|g| g.real == at),
                            "{path:?}: root {at:?} is no grant's"
                        );
                        let asked = match base {
                            Some(b) => b.join(path),
                            None => PathBuf::from(path),
                        };
                        let lexical = normalize_lexically(&asked);
                        assert!(
                            grants
                                .paths
                                .iter()
                                .any(|g| lexical.starts_with(&g.written)
                                    || lexical.starts_with(&g.real)),
                            "{path:?} ({lexical:?}) granted outside the grants"
                        );
                    }
                    Err(PathDenied::Invalid(why)) => assert!(!why.is_empty()),
                    Err(PathDenied::NotGranted) => {}
                }
            }
        }
    });
}

/// IP literals: every IPv4 spelling the C library's `inet_aton` takes
/// (what a resolver would connect to) is the same literal here, and every
/// standard IPv6 address is one.
#[test]
fn fuzz_ip_literal() {
    let dict = &[
        "0x",
        "0X",
        "0",
        "07",
        "08",
        "255",
        "256",
        "4294967295",
        "4294967296",
        ".",
        "::",
        ":",
        "ffff",
        "%",
        "[",
        "]",
        "1.2.3.4",
    ];
    fuzz::run("ip-literal", dict, 128, |input| {
        let text = text(input);
        let ours = parse_ip_literal(&text);
        if let Ok(v6) = text.parse::<std::net::Ipv6Addr>() {
            assert_eq!(ours, Some(canonical_ip(IpAddr::V6(v6))), "{text:?}");
        }
        if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '\0') {
            return;
        }
        let c = CString::new(text.as_str()).expect("no NUL");
        let mut addr = libc::in_addr { s_addr: 0 };
        // SAFETY: `c` is a NUL-terminated string that outlives the call and
        // `addr` is a valid, writable `in_addr`.
        let libc_ok = unsafe { inet_aton(c.as_ptr(), &mut addr) } != 0;
        if libc_ok {
            let theirs = Ipv4Addr::from(u32::from_be(addr.s_addr));
            assert_eq!(
                ours,
                Some(IpAddr::V4(theirs)),
                "inet_aton reads {text:?} as {theirs}"
            );
        }
    });
}
