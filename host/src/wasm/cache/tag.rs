//! The per-directory secret and the HMAC-SHA256 tags that prove this cache wrote a file.

use std::io::{Read, Write};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::unistd::UnlinkatFlags;
use sha2::{Digest, Sha256};

use super::files::create_temporary;
use super::trust::{CacheError, Dir, Refusal, open_ours};

/// A secret per cache directory, the key of every tag.
pub(super) type Secret = [u8; 32];
/// HMAC-SHA256.
pub(super) type Tag = [u8; 32];

pub(super) const SECRET: &str = "secret";

pub(super) fn parse_tag(hex_text: &str) -> Option<Tag> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_text.trim(), &mut tag).ok()?;
    Some(tag)
}

/// Equality that takes as long for any two tags of one length.
pub(super) fn same_tag(a: &Tag, b: &Tag) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts`: ten lines
/// instead of a crate.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Tag {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The tag of the artifact stored under `key` whose bytes have `digest`
/// ([`content_digest`]).
pub(super) fn artifact_tag(secret: &Secret, key: &str, digest: &[u8; 32]) -> Tag {
    hmac_sha256(
        secret,
        &[b"vigil-cache-artifact-v1\0", key.as_bytes(), b"\0", digest],
    )
}

/// The tag of the memo named `memo` that remembers `key` and the
/// identity its artifact had when this cache wrote or verified it.
pub(super) fn memo_tag(secret: &Secret, memo: &str, key: &str, artifact: &str) -> Tag {
    hmac_sha256(
        secret,
        &[
            b"vigil-cache-memo-v1\0",
            memo.as_bytes(),
            b"\0",
            key.as_bytes(),
            b"\0",
            artifact.as_bytes(),
        ],
    )
}

/// Fills `buf` from the kernel's random source.
pub(super) fn fill_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, exclusively borrowed buffer of exactly
        // `rest.len()` writable bytes, and getrandom writes at most that
        // many bytes into it.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// The secret of `dir`, made when missing and `create`.
pub(super) fn secret(dir: &Dir, create: bool) -> Result<Secret, CacheError> {
    let path = dir.path.join(SECRET);
    let mut made = false;
    loop {
        match open_ours(dir, SECRET, true) {
            Ok(mut file) => {
                let mut secret = [0u8; 32];
                let mut extra = [0u8; 1];
                let exact =
                    file.read_exact(&mut secret).is_ok() && matches!(file.read(&mut extra), Ok(0));
                return if exact {
                    Ok(secret)
                } else {
                    Err(Refusal::SecretMalformed { path }.into())
                };
            }
            Err(CacheError::Missing) if create && !made => {
                made = true;
                make_secret(dir).map_err(|source| CacheError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Writes a new secret under a temporary name and links it into place: if
/// another process made one first, the link fails and theirs is used.
pub(super) fn make_secret(dir: &Dir) -> std::io::Result<()> {
    let mut secret = [0u8; 32];
    fill_random(&mut secret)?;
    let (tmp, mut file) = create_temporary(dir, SECRET)?;
    let written = file
        .write_all(&secret)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            match nix::unistd::linkat(&dir.fd, tmp.as_str(), &dir.fd, SECRET, AtFlags::empty()) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(errno) => Err(errno.into()),
            }
        });
    let _ = nix::unistd::unlinkat(&dir.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    written
}
