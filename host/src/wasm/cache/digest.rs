//! The content digest of components and artifacts: SHA-256, in two halves above a size.

use std::fs::File;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// Above this size, a digest is taken as two halves on two threads.
pub(super) const SPLIT_ABOVE: usize = 1 << 20;

/// SHA-256 of the component bytes. A large component (a Python or
/// JavaScript runtime is 10-20 MB) is hashed as two halves on two threads,
/// then the halves' digests with the length: as collision-resistant as one
/// pass, in half the time, which matters at every start of a service.
pub(super) fn content_digest(bytes: &[u8]) -> [u8; 32] {
    if bytes.len() <= SPLIT_ABOVE {
        return Sha256::digest(bytes).into();
    }
    let (first, second) = bytes.split_at(bytes.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Sha256::digest(first));
        let b = Sha256::digest(second);
        (a.join(), b)
    });
    let a = match a {
        Ok(digest) => digest,
        // Hashing does not panic; if the thread could not run, hash here.
        Err(_) => Sha256::digest(first),
    };
    combine_halves(bytes.len() as u64, &a.into(), &b.into())
}

pub(super) fn combine_halves(len: u64, a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut outer = Sha256::new();
    outer.update(b"vigil-split-sha256\0");
    outer.update(len.to_le_bytes());
    outer.update(a);
    outer.update(b);
    outer.finalize().into()
}

/// [`content_digest`] of the first `len` bytes of `file`, read through
/// its descriptor (positional reads into a small buffer: a compiled Python
/// component is 30+ MB, and one fresh allocation of it costs more in page
/// faults than the hash), the halves on two threads.
pub(super) fn file_digest(file: &File, len: u64) -> std::io::Result<[u8; 32]> {
    let whole = usize::try_from(len).map_err(std::io::Error::other)?;
    if whole <= SPLIT_ABOVE {
        return digest_range(file, 0, len);
    }
    let half = (whole / 2) as u64;
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| digest_range(file, 0, half));
        let b = digest_range(file, half, len);
        (a.join(), b)
    });
    let a = match a {
        Ok(digest) => digest?,
        Err(_) => digest_range(file, 0, half)?,
    };
    Ok(combine_halves(len, &a, &b?))
}

/// SHA-256 of bytes `start..end` of `file`.
pub(super) fn digest_range(file: &File, start: u64, end: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 << 10];
    let mut at = start;
    while at < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - at).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buffer[..want], at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buffer[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}
