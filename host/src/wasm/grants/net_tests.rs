//! The host-grant decision, [`Grants::allows`], on its own: every literal
//! form, the wildcard against special address space, rebinding through a
//! grant for another scheme or port. The end-to-end tests in
//! tests/e2e/sandbox_net.rs drive the same rules through real sockets.

use std::net::IpAddr;

use super::{Grants, Scheme, is_public, parse_ip_literal};

fn grants(hosts: &[&str]) -> Grants {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    Grants::parse(&hosts, &[]).expect("valid grants")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// Every spelling of 127.0.0.1 a resolver or URL parser accepts.
const LOOPBACK_FORMS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.1.",
    "127.1",
    "127.0.1",
    "2130706433",
    "0x7f.1",
    "0X7F.0.0.1",
    "0x7f000001",
    "0177.0.0.1",
    "0177.1",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
];

#[test]
fn every_literal_form_is_the_address_it_denotes() {
    for form in LOOPBACK_FORMS {
        assert_eq!(parse_ip_literal(form), Some(ip("127.0.0.1")), "{form}");
    }
    assert_eq!(parse_ip_literal("0"), Some(ip("0.0.0.0")));
    assert_eq!(parse_ip_literal("0x"), Some(ip("0.0.0.0")));
    assert_eq!(parse_ip_literal("[::1]"), Some(ip("::1")));
    assert_eq!(parse_ip_literal("fe80::1%eth0"), Some(ip("fe80::1")));
    assert_eq!(
        parse_ip_literal("169.254.43518"),
        Some(ip("169.254.169.254"))
    );
    for name in [
        "",
        "localhost",
        "db.example.com",
        "1e100.net",
        "127.0.0.1.2",
        "256.0.0.1",
        "127.0.0.256",
        "127.16777216",
        "4294967296",
        "08.0.0.1",
        "0x1g",
        "+1",
        "1..1",
        "127.0.0.1..",
        "fe80::1%",
        "::1]",
    ] {
        assert_eq!(parse_ip_literal(name), None, "{name:?}");
    }
}

#[test]
fn a_wildcard_reaches_public_addresses_only_by_name_and_by_literal() {
    for grant in ["*", "*://*:*", "http://*:8080", "tcp://*:8080"] {
        let g = grants(&[grant]);
        for scheme in [Scheme::Http, Scheme::Tcp] {
            if !g.allows_destination(scheme, "example.com", 8080) {
                continue;
            }
            for form in LOOPBACK_FORMS {
                assert!(
                    !g.allows(scheme, 8080, form, ip("127.0.0.1")),
                    "{grant} {scheme:?} {form}"
                );
            }
            for special in [
                "0.0.0.0",
                "::",
                "::1",
                "10.1.2.3",
                "169.254.169.254",
                "::ffff:169.254.169.254",
                "fe80::1",
                "fd00::1",
                "100.64.0.1",
            ] {
                let addr = ip(special);
                assert!(
                    !g.allows(scheme, 8080, special, addr),
                    "{grant}: literal {special}"
                );
                assert!(
                    !g.allows(scheme, 8080, "rebind.example", addr),
                    "{grant}: a name resolving to {special}"
                );
            }
            assert!(g.allows(scheme, 8080, "93.184.216.34", ip("93.184.216.34")));
            assert!(g.allows(scheme, 8080, "example.com", ip("93.184.216.34")));
            assert!(g.allows(scheme, 8080, "example.com", ip("2606:2800:220:1::1")));
        }
    }
}

#[test]
fn a_grant_naming_loopback_reaches_it_in_every_form() {
    for grant in [
        "tcp://127.0.0.1:6379",
        "tcp://127.1:6379",
        "tcp://[::ffff:127.0.0.1]:6379",
        "tcp://127.0.0.0/8:6379",
        "tcp://[::ffff:127.0.0.0/104]:6379",
        "tcp://localhost:6379",
    ] {
        let g = grants(&[grant]);
        for form in LOOPBACK_FORMS {
            assert!(
                g.allows(Scheme::Tcp, 6379, form, ip("127.0.0.1")),
                "{grant} {form}"
            );
        }
        assert!(!g.allows(Scheme::Tcp, 6380, "127.0.0.1", ip("127.0.0.1")));
        assert!(!g.allows(Scheme::Http, 6379, "127.0.0.1", ip("127.0.0.1")));
        // The unspecified address reaches this host, but only a grant
        // naming it reaches it.
        assert!(
            !g.allows(Scheme::Tcp, 6379, "0.0.0.0", ip("0.0.0.0")),
            "{grant}"
        );
        assert!(!g.allows(Scheme::Tcp, 6379, "::", ip("::")), "{grant}");
    }
    let g = grants(&["tcp://0.0.0.0:6379"]);
    assert!(g.allows(Scheme::Tcp, 6379, "0", ip("0.0.0.0")));
    assert!(!g.allows(Scheme::Tcp, 6379, "127.0.0.1", ip("127.0.0.1")));
}

#[test]
fn a_literal_connects_to_itself_only() {
    let g = grants(&["tcp://127.0.0.0/8:*"]);
    assert!(g.allows(Scheme::Tcp, 1, "127.0.0.2", ip("127.0.0.2")));
    assert!(!g.allows(Scheme::Tcp, 1, "127.0.0.2", ip("127.0.0.3")));
}

/// Issue 10 item 5: a name granted for http on one port, resolving to an
/// address granted only for tcp on another port, reaches nothing.
#[test]
fn an_address_counts_only_through_a_grant_for_the_same_scheme_and_port() {
    let g = grants(&["http://name.example:8001", "tcp://127.0.0.1:8002"]);
    assert!(g.allows_destination(Scheme::Http, "name.example", 8001));
    assert!(!g.allows(Scheme::Http, 8001, "name.example", ip("127.0.0.1")));
    assert!(!g.allows(Scheme::Http, 8002, "name.example", ip("127.0.0.1")));
    assert!(g.allows(Scheme::Tcp, 8002, "127.0.0.1", ip("127.0.0.1")));
    // A name on an address granted for the same scheme and port reaches
    // nothing the address grant did not already allow.
    let g = grants(&["http://name.example:8001", "http://127.0.0.1:8001"]);
    assert!(g.allows(Scheme::Http, 8001, "name.example", ip("127.0.0.1")));
    assert!(g.allows(Scheme::Http, 8001, "name.example", ip("::ffff:127.0.0.1")));
    assert!(!g.allows(Scheme::Http, 8001, "name.example", ip("127.0.0.2")));
    // A private address for a name needs both: the name and the network.
    let g = grants(&["tcp://db.internal:5432", "tcp://10.0.0.0/8:5432"]);
    assert!(g.allows(Scheme::Tcp, 5432, "db.internal", ip("10.1.2.3")));
    assert!(!g.allows(Scheme::Tcp, 5432, "other.internal", ip("10.1.2.3")));
    assert!(!g.allows(Scheme::Tcp, 5432, "db.internal", ip("192.168.1.1")));
}

#[test]
fn localhost_reaches_loopback_and_nothing_else() {
    let g = grants(&["localhost:*"]);
    for (host, addr) in [
        ("localhost", "127.0.0.1"),
        ("localhost", "::1"),
        ("localhost.", "127.0.0.1"),
        ("LOCALHOST", "::ffff:127.0.0.1"),
        ("127.0.0.53", "127.0.0.53"),
        ("[::1]", "::1"),
    ] {
        assert!(g.allows(Scheme::Tcp, 1, host, ip(addr)), "{host} -> {addr}");
    }
    for (host, addr) in [
        ("localhost", "93.184.216.34"),
        ("localhost", "10.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("::", "::"),
        ("name.example", "127.0.0.1"),
        ("169.254.169.254", "169.254.169.254"),
    ] {
        assert!(
            !g.allows(Scheme::Tcp, 1, host, ip(addr)),
            "{host} -> {addr}"
        );
    }
}

#[test]
fn public_means_globally_routable() {
    for public in [
        "1.1.1.1",
        "93.184.216.34",
        "2606:2800:220:1::1",
        "::ffff:93.184.216.34",
        // NAT64 and 6to4 of a public IPv4 address.
        "64:ff9b::5db8:d822",
        "2002:5db8:d822::1",
    ] {
        assert!(is_public(ip(public)), "{public}");
    }
    for special in [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "100.64.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:db8::1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
        "3fff::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ] {
        assert!(!is_public(ip(special)), "{special}");
    }
}

#[test]
fn grants_spell_addresses_like_requests_do() {
    let g = grants(&["tcp://2130706433:80", "http://[::ffff:10.0.0.0/104]:80"]);
    assert!(g.allows(Scheme::Tcp, 80, "127.0.0.1", ip("127.0.0.1")));
    assert!(g.allows(Scheme::Http, 80, "10.9.8.7", ip("10.9.8.7")));
    assert!(g.allows(Scheme::Http, 80, "::ffff:10.9.8.7", ip("::ffff:10.9.8.7")));
    assert!(!g.allows(Scheme::Http, 80, "11.0.0.1", ip("11.0.0.1")));
}
