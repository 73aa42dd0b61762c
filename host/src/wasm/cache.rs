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

/// What tells an unchanged file from a changed one without reading it:
/// device, inode, size, and modification and change times in nanoseconds
/// (a rewrite, a rename over it or a `touch` changes one of them; the
/// change time cannot be set back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileIdentity(String);

impl FileIdentity {
    /// The identity of `path`, or `None` when it cannot be read or changed
    /// in the last two seconds: a second write within the file system's
    /// timestamp granularity could go unnoticed (git's "racy" entries), so
    /// such a file is read and hashed every time until it settles.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let now = i64::try_from(now).ok()?;
        if !meta.is_file() || now - meta.ctime() < 2 || now - meta.mtime() < 2 {
            return None;
        }
        Some(FileIdentity(format!(
            "{} {} {} {}.{:09} {}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        )))
    }
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

    /// The engine's fingerprint: wasmtime version and code-generation
    /// settings.
    fn engine_digest(engine: &wasmtime::Engine) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hex::encode(&hasher.0.finalize()[..8])
    }

    fn key(engine: &wasmtime::Engine, bytes: &[u8]) -> String {
        format!(
            "{}-{}",
            hex::encode(content_digest(bytes)),
            Self::engine_digest(engine)
        )
    }

    /// Where the key of an unchanged file is remembered.
    fn memo_path(dir: &Path, engine: &wasmtime::Engine, file: &FileIdentity) -> PathBuf {
        let name = Sha256::digest(format!("{} {}", file.0, Self::engine_digest(engine)));
        dir.join("files").join(format!("{}.key", hex::encode(name)))
    }

    /// The compiled artifact of a file this cache loaded before and that
    /// has not changed since (see [`FileIdentity`]), without reading or
    /// hashing the component again: for a 20 MB Python check that is most
    /// of a start's cost. `None` when unknown, changed or not verified;
    /// then load it with [`Self::load`].
    pub fn load_unchanged(
        &self,
        engine: &wasmtime::Engine,
        file: &FileIdentity,
    ) -> Option<Component> {
        let dir = self.dir.as_ref()?;
        let key = std::fs::read_to_string(Self::memo_path(dir, engine, file)).ok()?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        let artifact = dir.join(format!("{key}.cwasm"));
        let sidecar = dir.join(format!("{key}.sum"));
        Self::load_verified(engine, &artifact, &sidecar)
    }

    /// Loads `bytes` as a component, from the cache when possible. With
    /// `file`, the identity of the file the bytes were read from (taken
    /// before reading), the key is remembered for [`Self::load_unchanged`].
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        file: Option<&FileIdentity>,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Uncached));
        };
        let key = Self::key(engine, bytes);
        let artifact = dir.join(format!("{key}.cwasm"));
        let sidecar = dir.join(format!("{key}.sum"));
        let remember = || {
            if let Some(file) = file {
                let memo = Self::memo_path(dir, engine, file);
                let written = memo
                    .parent()
                    .map_or(Ok(()), |files| {
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(files)
                    })
                    .and_then(|()| write_atomically(&memo, key.as_bytes()));
                if let Err(err) = written {
                    tracing::debug!(path = %memo.display(), "cannot remember a file's cache key: {err}");
                }
            }
        };
        if let Some(component) = Self::load_verified(engine, &artifact, &sidecar) {
            remember();
            return Ok((component, CacheOutcome::Hit));
        }
        let compiled = engine.precompile_component(bytes)?;
        match Self::store(dir, &artifact, &sidecar, &compiled) {
            Ok(()) => {
                remember();
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

/// Write through a temporary file unique to this call, then rename: two
/// services of one process that name the same component store the same
/// key at once, and a temporary name shared between them (pid only) let
/// one truncate the file the other was renaming into place.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads storing the same key at once (two services naming one
    /// component) each leave a whole file, and none fails.
    #[test]
    fn concurrent_writes_of_one_path_stay_whole() {
        let dir = std::env::temp_dir().join(format!("vigil-cache-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("artifact.cwasm");
        let contents: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..10 {
            std::thread::scope(|scope| {
                let writers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| write_atomically(&path, &contents)))
                    .collect();
                for writer in writers {
                    writer.join().expect("writer thread").expect("write");
                }
            });
            assert!(
                std::fs::read(&path).expect("read back") == contents,
                "torn file"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
