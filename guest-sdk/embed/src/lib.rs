//! Vigil checks and loaders carried inside a service's own binary.
//!
//! A binary carries its components in one ELF section,
//! [`SECTION`] (`.vigil.components`), read by Vigil from the file without
//! ever running it. The section holds one or more *blobs* (a linker joins
//! the contents of every object's section of that name, and may pad them
//! with zeros), each:
//!
//! ```text
//! header   magic "VIGILEMB" | version u16 | reserved u16 (0)
//!          | count u32 | total length u32 (header, index and data)
//!          | reserved u32 (0)                               24 bytes
//! index    count x { role: 32 bytes, NUL-padded ASCII
//!                  | offset u32 (from the blob's start) | length u32 }
//! data     the components' bytes
//! ```
//!
//! Integers are little-endian. A role is `readiness`, `liveness`,
//! `startup`, `loader` or any other name of `a-z`, `0-9`, `-` and `_`, at
//! most 32 bytes; each role appears once in the whole section.
//!
//! For a Rust service, [`embed!`] writes the section at compile time:
//!
//! ```ignore
//! vigil_embed::embed! {
//!     readiness = concat!(env!("OUT_DIR"), "/ready.wasm"),
//!     loader = concat!(env!("OUT_DIR"), "/loader.wasm"),
//! }
//! ```
//!
//! Other binaries get theirs with `vigil embed BINARY --check
//! readiness=ready.wasm`, which writes the same format.

#![no_std]

/// The ELF section's name.
pub const SECTION: &str = ".vigil.components";
/// The first bytes of every blob.
pub const MAGIC: [u8; 8] = *b"VIGILEMB";
/// The format version this crate writes.
pub const VERSION: u16 = 1;
/// Bytes of a blob's header.
pub const HEADER_LEN: usize = 24;
/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 40;
/// Longest role name.
pub const MAX_ROLE: usize = 32;
/// Most roles in one section.
pub const MAX_ROLES: usize = 64;

/// Whether `role` is a role name: 1 to [`MAX_ROLE`] bytes of `a-z`,
/// `0-9`, `-` and `_`.
pub const fn valid_role(role: &str) -> bool {
    let bytes = role.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_ROLE {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

/// The length of the blob [`encode`] makes of `parts`.
pub const fn encoded_len(parts: &[(&str, &[u8])]) -> usize {
    let mut len = HEADER_LEN + parts.len() * ENTRY_LEN;
    let mut i = 0;
    while i < parts.len() {
        len += parts[i].1.len();
        i += 1;
    }
    len
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn put_u32(out: &mut [u8], at: usize, value: u32) {
    let bytes = value.to_le_bytes();
    let mut i = 0;
    while i < 4 {
        out[at + i] = bytes[i];
        i += 1;
    }
}

/// One blob holding `parts` (role, component bytes), `N` bytes long
/// ([`encoded_len`]). In a `const` or `static` a mistake (a bad or
/// repeated role, an empty component, a wrong `N`) is a compile error.
pub const fn encode<const N: usize>(parts: &[(&str, &[u8])]) -> [u8; N] {
    assert!(N == encoded_len(parts), "N must be encoded_len(parts)");
    assert!(!parts.is_empty(), "embed at least one component");
    assert!(parts.len() <= MAX_ROLES, "too many roles (at most 64)");
    assert!(N <= u32::MAX as usize, "components too large (4 GiB)");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < MAGIC.len() {
        out[i] = MAGIC[i];
        i += 1;
    }
    let version = VERSION.to_le_bytes();
    out[8] = version[0];
    out[9] = version[1];
    put_u32(&mut out, 12, parts.len() as u32);
    put_u32(&mut out, 16, N as u32);
    let mut offset = HEADER_LEN + parts.len() * ENTRY_LEN;
    let mut p = 0;
    while p < parts.len() {
        let (role, bytes) = parts[p];
        assert!(
            valid_role(role),
            "a role is 1-32 bytes of a-z, 0-9, '-' and '_'"
        );
        assert!(!bytes.is_empty(), "an embedded component is empty");
        let mut q = 0;
        while q < p {
            assert!(!same(parts[q].0, role), "a role is embedded twice");
            q += 1;
        }
        let entry = HEADER_LEN + p * ENTRY_LEN;
        let name = role.as_bytes();
        let mut k = 0;
        while k < name.len() {
            out[entry + k] = name[k];
            k += 1;
        }
        put_u32(&mut out, entry + MAX_ROLE, offset as u32);
        put_u32(&mut out, entry + MAX_ROLE + 4, bytes.len() as u32);
        let mut k = 0;
        while k < bytes.len() {
            out[offset + k] = bytes[k];
            k += 1;
        }
        offset += bytes.len();
        p += 1;
    }
    out
}

/// Places components in this binary's `.vigil.components` section at
/// compile time: `role = path` pairs, each path as `include_bytes!` takes
/// it (relative to the invoking file, or `concat!(env!("OUT_DIR"), ...)`
/// for one a build script made). Use it once per binary, at item level.
///
/// The section is read-only data of the program (allocated, so `strip`,
/// GNU or LLVM, keeps it), and `#[used]` keeps it through the compiler;
/// the linker keeps it because a constructor in `.init_array` (which
/// every linker script keeps) reads it once at start. Evaluated at
/// compile time byte by byte: fine for Rust components (tens of KiB);
/// embed a 20 MB Python component with `vigil embed` after the build.
#[macro_export]
macro_rules! embed {
    ($($role:ident = $path:expr),+ $(,)?) => {
        const _: () = {
            const PARTS: &[(&str, &[u8])] = &[$((stringify!($role), include_bytes!($path))),+];
            const LEN: usize = $crate::encoded_len(PARTS);
            #[used]
            #[unsafe(link_section = ".vigil.components")]
            static VIGIL_COMPONENTS: [u8; LEN] = $crate::encode::<LEN>(PARTS);
            // Referenced from a constructor, so that `--gc-sections`
            // cannot drop the section whatever the linker and the
            // compiler's notion of `#[used]`.
            extern "C" fn vigil_keep_components() {
                // SAFETY: a read of one byte of a static that lives for the
                // whole program.
                let _ = unsafe { ::core::ptr::read_volatile(VIGIL_COMPONENTS.as_ptr()) };
            }
            #[used]
            #[unsafe(link_section = ".init_array")]
            static VIGIL_KEEP: extern "C" fn() = vigil_keep_components;
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_index_and_data() {
        const PARTS: &[(&str, &[u8])] = &[("readiness", b"\0asm1"), ("loader", b"xy")];
        const LEN: usize = encoded_len(PARTS);
        const BLOB: [u8; LEN] = encode::<LEN>(PARTS);
        assert_eq!(LEN, HEADER_LEN + 2 * ENTRY_LEN + 7);
        assert_eq!(&BLOB[..8], b"VIGILEMB");
        assert_eq!(&BLOB[8..10], &1u16.to_le_bytes());
        assert_eq!(&BLOB[12..16], &2u32.to_le_bytes());
        assert_eq!(&BLOB[16..20], &(LEN as u32).to_le_bytes());
        assert_eq!(&BLOB[24..33], b"readiness");
        assert_eq!(BLOB[33], 0);
        assert_eq!(&BLOB[LEN - 7..], b"\0asm1xy");
    }

    #[test]
    fn role_names() {
        assert!(valid_role("readiness"));
        assert!(valid_role("my-check_2"));
        assert!(!valid_role(""));
        assert!(!valid_role("Readiness"));
        assert!(!valid_role("a/b"));
        assert!(!valid_role(&"x".repeat(33)));
    }
}
