//! Components carried inside a service's own binary: the
//! `.vigil.components` ELF section (format in the `vigil-embed` crate,
//! which the Rust SDK's `embed!` writes at compile time and `vigil embed`
//! after the build).
//!
//! Everything here reads bytes, never runs them: [`parse_section`] is a
//! pure function over the section's bytes (fuzzed), and [`elf`] finds the
//! section in a file with the `object` crate through bounded reads (no
//! read past the file's end, no section larger than [`MAX_SECTION`]).
//! A component found here is then loaded like any other (sniffed,
//! compiled through the cache, linked against its world).

pub mod elf;

use std::ops::Range;

pub use vigil_embed::{ENTRY_LEN, HEADER_LEN, MAGIC, MAX_ROLE, MAX_ROLES, SECTION, VERSION};

/// Largest section read: a Python component is about 20 MB, and a binary
/// carrying a startup, readiness and liveness check and a loader in Python
/// stays well below this.
pub const MAX_SECTION: usize = 256 << 20;

/// The well-known roles; any other valid name may be embedded too and
/// named by a manifest (`embedded:NAME`).
pub const ROLES: &[&str] = &["startup", "readiness", "liveness", "loader"];

/// Where one role's component lies in the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub role: String,
    /// Byte range in the section (not in its blob).
    pub range: Range<usize>,
}

/// What a section holds, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub entries: Vec<Entry>,
}

impl Index {
    pub fn get(&self, role: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.role == role)
    }

    pub fn roles(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.role.as_str()).collect()
    }
}

/// What is wrong with a section's bytes. Offsets are from the section's
/// start, roles as read (escaped when shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    #[error("the section is empty")]
    Empty,
    #[error("the section is {size} bytes, over the {MAX_SECTION} byte limit")]
    TooLarge { size: usize },
    #[error("no `VIGILEMB` header at offset {offset} (not written by vigil embed or vigil-embed)")]
    BadMagic { offset: usize },
    #[error("truncated at offset {offset}: {what} needs {needed} bytes, {left} left")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error(
        "format version {version} at offset {offset}; this vigil reads version {VERSION}: upgrade vigil or embed again with this one"
    )]
    Version { offset: usize, version: u16 },
    #[error("{count} roles, over the limit of {MAX_ROLES}")]
    TooManyRoles { count: usize },
    #[error(
        "index entry {entry} at offset {offset}: `{role}` is not a role name (1-32 bytes of a-z, 0-9, - and _)"
    )]
    BadRole {
        offset: usize,
        entry: usize,
        role: String,
    },
    #[error(
        "role `{role}`: its component (bytes {start}..{end} of its blob) lies outside the blob's {blob} bytes"
    )]
    OutOfBounds {
        role: String,
        start: u64,
        end: u64,
        blob: usize,
    },
    #[error("role `{role}`: its component overlaps the index")]
    OverlapsIndex { role: String },
    #[error("role `{role}`: its component is empty")]
    EmptyComponent { role: String },
    #[error("role `{role}` is embedded twice")]
    Duplicate { role: String },
    #[error("nothing embedded: no component in the section")]
    NoRoles,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads a section: one or more blobs (zero padding between them, as a
/// linker may leave), each header and index entry checked, each
/// component's range inside its blob, each role once. Never panics and
/// allocates only the index (at most [`MAX_ROLES`] entries).
pub fn parse_section(bytes: &[u8]) -> Result<Index, EmbedError> {
    if bytes.len() > MAX_SECTION {
        return Err(EmbedError::TooLarge { size: bytes.len() });
    }
    let mut index = Index::default();
    let mut at = 0usize;
    loop {
        // Padding: zeros before, between and after blobs.
        while at < bytes.len() && bytes[at] == 0 {
            at += 1;
        }
        if at == bytes.len() {
            break;
        }
        at += parse_blob(bytes, at, &mut index)?;
    }
    if index.entries.is_empty() {
        return Err(if bytes.is_empty() {
            EmbedError::Empty
        } else {
            EmbedError::NoRoles
        });
    }
    Ok(index)
}

/// One blob at `start`; returns its length.
fn parse_blob(bytes: &[u8], start: usize, index: &mut Index) -> Result<usize, EmbedError> {
    let rest = &bytes[start..];
    let truncated = |what, needed: usize, left: usize| EmbedError::Truncated {
        offset: start,
        what,
        needed,
        left,
    };
    if rest.len() < MAGIC.len() || rest[..MAGIC.len()] != MAGIC {
        return Err(EmbedError::BadMagic { offset: start });
    }
    if rest.len() < HEADER_LEN {
        return Err(truncated("the header", HEADER_LEN, rest.len()));
    }
    let version = u16_at(rest, 8);
    if version != VERSION {
        return Err(EmbedError::Version {
            offset: start,
            version,
        });
    }
    let count = u32_at(rest, 12) as usize;
    if index.entries.len().saturating_add(count) > MAX_ROLES {
        return Err(EmbedError::TooManyRoles {
            count: index.entries.len().saturating_add(count),
        });
    }
    // At most 64 entries: no overflow.
    let index_end = HEADER_LEN + count * ENTRY_LEN;
    let total = u32_at(rest, 16) as usize;
    if total < index_end {
        return Err(truncated("the index", index_end, total));
    }
    if rest.len() < total {
        return Err(truncated("the blob", total, rest.len()));
    }
    let blob = &rest[..total];
    for entry in 0..count {
        let at = HEADER_LEN + entry * ENTRY_LEN;
        let raw = &blob[at..at + MAX_ROLE];
        let len = raw.iter().position(|&b| b == 0).unwrap_or(MAX_ROLE);
        let padded = raw[len..].iter().all(|&b| b == 0);
        let role = String::from_utf8_lossy(&raw[..len]).into_owned();
        if !padded || !vigil_embed::valid_role(&role) {
            return Err(EmbedError::BadRole {
                offset: start + at,
                entry,
                role,
            });
        }
        let offset = u64::from(u32_at(blob, at + MAX_ROLE));
        let size = u64::from(u32_at(blob, at + MAX_ROLE + 4));
        let end = offset + size;
        if end > total as u64 {
            return Err(EmbedError::OutOfBounds {
                role,
                start: offset,
                end,
                blob: total,
            });
        }
        if size == 0 {
            return Err(EmbedError::EmptyComponent { role });
        }
        if offset < index_end as u64 {
            return Err(EmbedError::OverlapsIndex { role });
        }
        if index.get(&role).is_some() {
            return Err(EmbedError::Duplicate { role });
        }
        // Both below `total`, itself a usize.
        let range = start + offset as usize..start + end as usize;
        index.entries.push(Entry { role, range });
    }
    Ok(total)
}

/// One blob holding `parts` (role, component), as `vigil-embed` writes it
/// at compile time. Checked like a section read back.
pub fn encode(parts: &[(&str, &[u8])]) -> Result<Vec<u8>, EmbedError> {
    if parts.len() > MAX_ROLES {
        return Err(EmbedError::TooManyRoles { count: parts.len() });
    }
    let total = vigil_embed::encoded_len(parts);
    if total > MAX_SECTION {
        return Err(EmbedError::TooLarge { size: total });
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    // Both bounded by MAX_SECTION above.
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut offset = HEADER_LEN + parts.len() * ENTRY_LEN;
    for (role, bytes) in parts {
        let mut name = [0u8; MAX_ROLE];
        let len = role.len().min(MAX_ROLE);
        name[..len].copy_from_slice(&role.as_bytes()[..len]);
        out.extend_from_slice(&name);
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        offset += bytes.len();
    }
    for (_, bytes) in parts {
        out.extend_from_slice(bytes);
    }
    // Bad names, empty or repeated components: the reader's own checks.
    parse_section(&out)?;
    Ok(out)
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &[u8] = b"\0asm\x0d\0\x01\0ready";
    const LOADER: &[u8] = b"\0asm\x0d\0\x01\0loader!";

    #[test]
    fn round_trips_and_joins_blobs_with_padding() {
        let one = encode(&[("readiness", READY)]).expect("encodes");
        let two = encode(&[("loader", LOADER)]).expect("encodes");
        let section = [&one[..], &[0u8; 5][..], &two[..], &[0u8; 3][..]].concat();
        let index = parse_section(&section).expect("parses");
        assert_eq!(index.roles(), ["readiness", "loader"]);
        let ready = index.get("readiness").expect("readiness");
        assert_eq!(&section[ready.range.clone()], READY);
        let loader = index.get("loader").expect("loader");
        assert_eq!(&section[loader.range.clone()], LOADER);
    }

    /// What the SDK writes at compile time is what the host reads.
    #[test]
    fn reads_what_the_sdk_writes() {
        const PARTS: &[(&str, &[u8])] = &[("readiness", READY), ("my-check", LOADER)];
        const LEN: usize = vigil_embed::encoded_len(PARTS);
        const BLOB: [u8; LEN] = vigil_embed::encode::<LEN>(PARTS);
        assert_eq!(encode(PARTS).expect("encodes"), BLOB);
        let index = parse_section(&BLOB).expect("parses");
        assert_eq!(index.roles(), ["readiness", "my-check"]);
    }

    #[test]
    fn every_malformed_section_is_an_error() {
        let good = encode(&[("readiness", READY)]).expect("encodes");
        let set = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        let entry = HEADER_LEN;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "empty"),
            (vec![0; 16], "no component"),
            (good[..10].to_vec(), "truncated"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            (set(0, b"X"), "VIGILEMB"),
            (set(8, &2u16.to_le_bytes()), "version 2"),
            (set(12, &65u32.to_le_bytes()), "65 roles"),
            (set(12, &2u32.to_le_bytes()), "truncated"),
            (set(16, &u32::MAX.to_le_bytes()), "truncated"),
            (set(entry, b"Ready"), "not a role name"),
            (set(entry + 10, b"x"), "not a role name"),
            (set(entry, &[0]), "not a role name"),
            (set(entry + 32, &u32::MAX.to_le_bytes()), "outside"),
            (set(entry + 36, &u32::MAX.to_le_bytes()), "outside"),
            (set(entry + 36, &0u32.to_le_bytes()), "empty"),
            (set(entry + 32, &0u32.to_le_bytes()), "overlaps the index"),
            ([&good[..], &good[..]].concat(), "embedded twice"),
            ([&good[..], b"junk"].concat(), "VIGILEMB"),
        ];
        for (bytes, expected) in cases {
            let err = parse_section(&bytes).expect_err(expected);
            assert!(
                err.to_string().contains(expected),
                "{expected}: got `{err}`"
            );
        }
        assert!(encode(&[("a", b"x"), ("a", b"y")]).is_err());
        assert!(encode(&[("", b"x")]).is_err());
    }

    /// A hostile section: every truncation and every single-byte change of
    /// a good one gives an answer, never a panic.
    #[test]
    fn no_prefix_or_flipped_byte_panics() {
        let good = encode(&[("readiness", READY), ("loader", LOADER)]).expect("encodes");
        for len in 0..good.len() {
            let _ = parse_section(&good[..len]);
        }
        for at in 0..good.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = value;
                if let Ok(index) = parse_section(&bytes) {
                    for e in &index.entries {
                        assert!(e.range.end <= bytes.len());
                    }
                }
            }
        }
    }
}
