//! On-disk cache of compiled components.
//!
//! Key: SHA-256 of the component bytes (two halves in parallel for large
//! components, see `content_digest`) plus the engine's compatibility hash
//! (wasmtime version and every setting that changes code generation), so a
//! changed engine never loads stale code. Each artifact has a sidecar with
//! its length and CRC-32; a mismatch (torn write, disk corruption) or a
//! failed deserialize means the entry is rebuilt, never trusted. Writes go
//! to a temporary file, fsync, then rename, so readers see whole files.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a compiled artifact from disk.
    Hit,
    /// Compiled and stored.
    Compiled,
    /// Compiled; the cache could not be used (see the warning logged).
    Uncached,
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

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

/// `$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .map(|base| base.join("vigil").join("components"))
}

impl ComponentCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    fn key(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_digest = hasher.0.finalize();
        let content = content_digest(bytes);
        format!(
            "{}-{}",
            hex::encode(content),
            hex::encode(&engine_digest[..8])
        )
    }

    /// Loads `bytes` as a component, from the cache when possible.
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Uncached));
        };
        let key = Self::key(engine, bytes);
        let artifact = dir.join(format!("{key}.cwasm"));
        let sidecar = dir.join(format!("{key}.sum"));
        if let Some(component) = Self::load_verified(engine, &artifact, &sidecar) {
            return Ok((component, CacheOutcome::Hit));
        }
        let compiled = engine.precompile_component(bytes)?;
        match Self::store(dir, &artifact, &sidecar, &compiled) {
            Ok(()) => {
                // SAFETY: the file was just written by us from
                // `precompile_component` of this engine, in a directory only
                // we can write to (mode 0700).
                let component = unsafe { Component::deserialize_file(engine, &artifact) }?;
                Ok((component, CacheOutcome::Compiled))
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), "component cache unavailable: {err}");
                // SAFETY: these bytes come from `precompile_component` of
                // this very engine a moment ago, never from disk.
                let component = unsafe { Component::deserialize(engine, &compiled) }?;
                Ok((component, CacheOutcome::Uncached))
            }
        }
    }

    fn checksum(bytes: &[u8]) -> String {
        format!("{} {:08x}\n", bytes.len(), crc32fast::hash(bytes))
    }

    /// [`Self::checksum`] of a file, streamed through a small buffer: a
    /// compiled Python component is 30+ MB, and reading it into one fresh
    /// allocation costs more (page faults) than the CRC itself.
    fn checksum_file(path: &Path) -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buffer = vec![0u8; 256 << 10];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            len += n as u64;
        }
        Ok(format!("{len} {:08x}\n", hasher.finalize()))
    }

    fn load_verified(
        engine: &wasmtime::Engine,
        artifact: &Path,
        sidecar: &Path,
    ) -> Option<Component> {
        let expected = std::fs::read_to_string(sidecar).ok()?;
        if Self::checksum_file(artifact).ok()? != expected {
            tracing::warn!(path = %artifact.display(), "cached component is corrupt; recompiling");
            return None;
        }
        // SAFETY: the artifact matches the checksum written next to it when
        // this cache stored it; the directory is ours (0700). wasmtime still
        // checks the header, version and engine settings and fails on a
        // mismatch, which we treat as a miss.
        match unsafe { Component::deserialize_file(engine, artifact) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %artifact.display(), "cached component rejected ({err}); recompiling");
                None
            }
        }
    }

    fn store(dir: &Path, artifact: &Path, sidecar: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(std::io::Error::other(format!(
                "{} is writable by others; refusing to cache compiled code there",
                dir.display()
            )));
        }
        write_atomically(artifact, compiled)?;
        write_atomically(sidecar, Self::checksum(compiled).as_bytes())
    }
}

/// SHA-256 of the component bytes. A large component (a Python or
/// JavaScript runtime is 10-20 MB) is hashed as two halves on two threads,
/// then the halves' digests with the length: as collision-resistant as one
/// pass, in half the time, which matters at every start of a service.
fn content_digest(bytes: &[u8]) -> [u8; 32] {
    const SPLIT_ABOVE: usize = 1 << 20;
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
    let mut outer = Sha256::new();
    outer.update(b"vigil-split-sha256\0");
    outer.update((bytes.len() as u64).to_le_bytes());
    outer.update(a);
    outer.update(b);
    outer.finalize().into()
}

fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
