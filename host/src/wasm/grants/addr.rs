//! IP addresses as a grant reads them: every spelling of a literal
//! (`inet_aton`'s and the URL standard's), networks, and which addresses
//! are public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IP address `host` denotes when it is a literal, in every form a
/// resolver or URL parser would take as one: IPv6 (bracketed or not, a
/// zone id ignored), and IPv4 as `inet_aton` and the URL standard read it
/// (one to four parts, each decimal, octal with a leading `0` or hex with
/// `0x`, the last filling the remaining bytes: `127.1`, `2130706433`,
/// `0x7f.1`, `0177.0.0.1`; a trailing dot allowed). IPv4-mapped IPv6 comes
/// back as IPv4. Anything else is a name.
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(':') {
        let address = match host.split_once('%') {
            Some((_, "")) => return None,
            Some((address, _zone)) => address,
            None => host,
        };
        return address
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| canonical_ip(IpAddr::V6(v6)));
    }
    parse_inet_aton(host).map(IpAddr::V4)
}

/// `inet_aton`'s IPv4 forms (also the URL standard's), see
/// [`parse_ip_literal`].
fn parse_inet_aton(text: &str) -> Option<Ipv4Addr> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut parts = [0u32; 4];
    let mut count = 0;
    for part in text.split('.') {
        *parts.get_mut(count)? = parse_inet_number(part)?;
        count += 1;
    }
    let (last, leading) = parts[..count].split_last()?;
    if leading.iter().any(|byte| *byte > 0xff) {
        return None;
    }
    // The last part fills the bytes the others left: 32, 24, 16 or 8 bits.
    let bits = 8 * (4 - leading.len() as u32);
    if u64::from(*last) >= 1u64 << bits {
        return None;
    }
    let high = leading
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, byte)| acc | byte << (24 - 8 * i as u32));
    Some(Ipv4Addr::from(high | last))
}

fn parse_inet_number(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // `0x` alone is 0 for inet_aton and the URL standard; `` is nothing.
        return (radix == 16).then_some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address: a
/// dual-stack socket connecting to it reaches `a.b.c.d`.
pub(super) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether `ip` lies in `network/prefix`. Both sides are canonical (see
/// [`canonical_ip`]), so an IPv4 address never matches an IPv6 network.
pub(super) fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    let (ip, network, width) = match (canonical_ip(ip), network) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (ip >> shift) == (network >> shift)
}

/// Globally routable, by the IANA special-purpose registries: what `*` and
/// a grant by name may reach. Everything else (this host, loopback,
/// private, shared, link-local, documentation, benchmarking, multicast,
/// reserved) needs a grant naming it. NAT64 and 6to4 addresses carry an
/// IPv4 address and are public when it is.
pub(super) fn is_public(ip: IpAddr) -> bool {
    const V4_SPECIAL: &[([u8; 4], u8)] = &[
        ([0, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([100, 64, 0, 0], 10),
        ([127, 0, 0, 0], 8),
        ([169, 254, 0, 0], 16),
        ([172, 16, 0, 0], 12),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([192, 88, 99, 0], 24),
        ([192, 168, 0, 0], 16),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
        ([224, 0, 0, 0], 4),
        ([240, 0, 0, 0], 4),
    ];
    const V6_SPECIAL: &[([u16; 8], u8)] = &[
        // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d.
        ([0, 0, 0, 0, 0, 0, 0, 0], 96),
        // IPv4-translated (SIIT) ::ffff:0:a.b.c.d.
        ([0, 0, 0, 0, 0xffff, 0, 0, 0], 96),
        // Local-use NAT64.
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        // Discard-only.
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        // IETF protocol assignments, Teredo (2001::/32) among them.
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        // Documentation.
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        // Unique local, site-local (deprecated), link-local, multicast.
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
    ];
    match canonical_ip(ip) {
        IpAddr::V4(v4) => !V4_SPECIAL
            .iter()
            .any(|(net, prefix)| in_network(IpAddr::V4(v4), IpAddr::from(*net), *prefix)),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = match segments {
                // NAT64, well-known prefix: 64:ff9b::a.b.c.d.
                [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some((high, low)),
                // 6to4: 2002:aabb:ccdd::/48.
                [0x2002, high, low, ..] => Some((high, low)),
                _ => None,
            };
            if let Some((high, low)) = embedded {
                let v4 = Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
                return is_public(IpAddr::V4(v4));
            }
            !V6_SPECIAL
                .iter()
                .any(|(net, prefix)| in_network(IpAddr::V6(v6), IpAddr::from(*net), *prefix))
        }
    }
}
