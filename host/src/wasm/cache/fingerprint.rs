//! The engine's part of every cache key: which compiled code it can load.
//!
//! A compiling engine knows its digest: wasmtime's compatibility hash of
//! its version, settings and the CPU features the compiler found on this
//! host. A compiler-less engine (`vigil-probe`, which never compiles) can
//! load the same artifacts, but cannot compute that digest: finding the
//! CPU features is the compiler's work it exists to skip (a third of a
//! probe's run on these machines, `cpuid` trapping to the hypervisor). So
//! each compiling engine records its digest in the cache directory under
//! a profile (vigil's version and target triple) and a compiler-less
//! engine of the same profile reads it there.
//!
//! The record only chooses names. What is loaded under them is verified
//! as always (the tags, the trust checks), and wasmtime refuses an
//! artifact compiled for CPU features this host lacks. A stale or wrong
//! record finds nothing, and the probe hands the check over to
//! `vigil check`, which records its digest again.

use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::files::{read_small, write_atomically};
use super::trust::{Dir, open_ours};

/// Feeds `Hash` output into SHA-256, for a stable engine fingerprint.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // never read: the digest is taken from the inner state
    }
}

#[derive(Debug)]
pub(super) enum Fingerprint {
    /// A compiling engine's own digest, recorded once per process.
    Compiler {
        digest: String,
        record: String,
        recorded: OnceLock<()>,
    },
    /// A compiler-less engine's: read once from the record.
    Recorded {
        record: String,
        read: OnceLock<Option<String>>,
    },
}

/// The file in the cache directory holding the digest of `profile`.
fn record_name(profile: &str) -> String {
    let hash = Sha256::digest(profile.as_bytes());
    format!("engine-{}.digest", hex::encode(&hash[..8]))
}

/// A digest as written by [`Fingerprint::Compiler`]: hex, short.
fn well_formed(digest: &str) -> bool {
    !digest.is_empty() && digest.len() <= 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Fingerprint {
    pub(super) fn compiler(engine: &wasmtime::Engine, profile: &str) -> Self {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Fingerprint::Compiler {
            digest: hex::encode(&hasher.0.finalize()[..8]),
            record: record_name(profile),
            recorded: OnceLock::new(),
        }
    }

    pub(super) fn compiler_less(profile: &str) -> Self {
        Fingerprint::Recorded {
            record: record_name(profile),
            read: OnceLock::new(),
        }
    }

    /// The digest for keys in `dir`; `None` when a compiler-less engine
    /// finds no record (nothing of this profile was compiled there yet).
    /// A compiling engine records its digest in `dir` the first time.
    pub(super) fn digest(&self, dir: &Dir) -> Option<&str> {
        match self {
            Fingerprint::Compiler {
                digest,
                record,
                recorded,
            } => {
                recorded.get_or_init(|| {
                    let current = open_ours(dir, record, false)
                        .ok()
                        .and_then(|file| read_small(file, 128));
                    if current.as_deref().map(str::trim) != Some(digest.as_str())
                        && let Err(err) =
                            write_atomically(dir, record, format!("{digest}\n").as_bytes())
                    {
                        tracing::debug!(dir = %dir.path.display(), "cannot record the engine digest: {err}");
                    }
                });
                Some(digest)
            }
            Fingerprint::Recorded { record, read } => read
                .get_or_init(|| {
                    let text = read_small(open_ours(dir, record, false).ok()?, 128)?;
                    let digest = text.trim();
                    well_formed(digest).then(|| digest.to_owned())
                })
                .as_deref(),
        }
    }
}
