//! On-disk cache of compiled components.
//!
//! Key: SHA-256 of the component bytes (two halves in parallel for large
//! components, see `content_digest`) plus the engine's compatibility hash
//! (wasmtime version and every setting that changes code generation), so a
//! changed engine never loads stale code. Writes go to a temporary file,
//! fsync, then rename, so readers see whole files.
//!
//! # What the cache trusts
//!
//! Loading an artifact maps its native code into this process and runs
//! it; wasmtime checks only its header. So the cache loads nothing it
//! cannot tell it wrote itself, and anything it cannot vouch for is a miss
//! (compiled again), never an error. Trusted are our effective uid and
//! root, who could change this process anyway; nobody else.
//!
//! - **The directory chain.** The cache directory is opened from `/` one
//!   name at a time, `openat(previous, name, O_PATH | O_DIRECTORY |
//!   O_NOFOLLOW)`, and each directory is `fstat`ed through its descriptor:
//!   every ancestor belongs to root or to us and is writable by nobody
//!   else unless it is sticky (like `/tmp`: others cannot rename or delete
//!   our entry in it); the cache directory itself is a real directory
//!   owned by us and writable by nobody else. A symlink among the
//!   ancestors (`~/.cache` moved to another disk, `/home` on Silverblue)
//!   is followed, by us, under the same rules, when root or we own it: its
//!   directory passed, so nobody else can replace it. A symlink as the
//!   cache directory itself is refused: vigil creates that directory and
//!   never makes it a link. Every later access goes through the final
//!   descriptor (`openat`), so nothing checked can be swapped by renaming
//!   a directory on the path. A cache refused here is said once in the
//!   log, with the fix, and components are compiled in memory.
//! - **Files.** Artifacts, tags, memos and the secret are opened with
//!   `openat(dir, name, O_NOFOLLOW)` and `fstat`ed through that
//!   descriptor: a regular file owned by us and writable by nobody else
//!   (the secret: not readable by anybody else either). The artifact is
//!   hashed and deserialized through that same descriptor
//!   ([`deserialize_from`]), never opened again by name.
//! - **Tags.** Each cache directory holds a secret: 32 random bytes in
//!   `secret`, mode 0600, created under a temporary name with `O_EXCL` and
//!   linked into place, so concurrent first starts agree on one. Next to
//!   each artifact `KEY.cwasm`, `KEY.mac` holds HMAC-SHA256(secret, KEY,
//!   digest of the artifact); each memo of an unchanged file (see
//!   [`FileIdentity`]) holds its key, the identity of its artifact (below)
//!   and HMAC-SHA256(secret, memo name, key, artifact identity). A file
//!   made without the secret never verifies, a genuine artifact or memo
//!   moved to another name neither, and a torn or corrupt one is rebuilt. The tag is over the bytes, so a
//!   cache copied with its secret (a container image warmed at build time)
//!   still verifies.
//! - **Unchanged artifacts.** Checking an artifact's tag hashes all of it:
//!   a 35 MB Python artifact costs 30-100 ms of SHA-256 on these machines,
//!   against 11 ms for the whole cached load before. So a memo also
//!   records the identity (device, inode, size, times to the nanosecond)
//!   its artifact had when this cache wrote or verified it, under the
//!   memo's tag; an artifact that still has it is mapped without being
//!   read. Nobody else can write to it (checked above), and any write moves
//!   its times (the change time cannot be set back). Otherwise its tag is
//!   checked as above.
//! - **Engine records.** `engine-PROFILE.digest` holds the engine digest
//!   of keys for a compiler-less engine (`vigil-probe`), which cannot
//!   compute it (see [`fingerprint`]). It only picks names; what they
//!   name is checked as above. Opened like every other file of ours.

mod digest;
mod files;
mod fingerprint;
mod tag;
mod trust;

use std::collections::HashSet;
use std::fs::File;
#[cfg(test)]
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::sync::LockExt;

#[cfg(test)]
use digest::SPLIT_ABOVE;
use digest::{content_digest, file_digest};
use files::{deserialize_from, read_small, sweep_temporaries, write_atomically};
use fingerprint::Fingerprint;
#[cfg(test)]
use tag::{SECRET, hmac_sha256};
use tag::{Secret, artifact_tag, memo_tag, parse_tag, same_tag, secret};
#[cfg(test)]
use trust::Refusal;
use trust::{CacheError, Dir, open_cache_dir, open_ours, open_subdir};

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

    /// The identity of the bundled check `builtin:NAME`: that of the
    /// running executable (`/proc/self/exe`, which follows a replaced
    /// binary to the file actually running) and the name. The builtins are
    /// bytes of that file, so they change only with it, and a one-shot
    /// `vigil check builtin:tcp` maps its artifact without hashing either
    /// the embedded component or the artifact (most of its CPU time).
    pub fn of_builtin(name: &str) -> Option<FileIdentity> {
        let exe = Self::of(Path::new("/proc/self/exe"))?;
        Some(FileIdentity(format!("{} builtin:{name}", exe.0)))
    }

    /// The identity of the component a binary carries as `role`: that of
    /// the binary and the role, as for a builtin.
    pub fn of_embedded(binary: &Path, role: &str) -> Option<FileIdentity> {
        let file = Self::of(binary)?;
        Some(FileIdentity(format!("{} embedded:{role}", file.0)))
    }
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Warnings already logged: a refused cache is said once, not once per
    /// component of a thousand services.
    said: Arc<Mutex<HashSet<String>>>,
    /// The engine's part of every key (see [`fingerprint`]).
    fingerprint: Arc<Fingerprint>,
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

const MEMOS: &str = "files";
/// What tells an artifact unchanged since it was written or verified:
/// device, inode, size, and modification and change times to the
/// nanosecond. Any write to the file moves both times, and the change time
/// cannot be set back (short of root setting the clock back).
fn artifact_identity(file: &File) -> Option<String> {
    let meta = file.metadata().ok()?;
    Some(format!(
        "{}:{}:{}:{}.{:09}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

impl ComponentCache {
    /// The cache of a compiling `engine`, which records its digest for
    /// compiler-less engines of the same `profile` (see [`fingerprint`]).
    pub fn new(dir: Option<PathBuf>, engine: &wasmtime::Engine, profile: &str) -> Self {
        Self::with(dir, Fingerprint::compiler(engine, profile))
    }

    /// The cache of an engine without a compiler: it loads what compiling
    /// engines of `profile` stored, under the digest they recorded.
    pub fn compiler_less(dir: Option<PathBuf>, profile: &str) -> Self {
        Self::with(dir, Fingerprint::compiler_less(profile))
    }

    fn with(dir: Option<PathBuf>, fingerprint: Fingerprint) -> Self {
        Self {
            dir,
            said: Arc::default(),
            fingerprint: Arc::new(fingerprint),
        }
    }

    fn key(digest: &str, bytes: &[u8]) -> String {
        format!("{}-{digest}", hex::encode(content_digest(bytes)))
    }

    /// The name under which the key of an unchanged file is remembered.
    fn memo_name(digest: &str, file: &FileIdentity) -> String {
        let name = Sha256::digest(format!("{} {digest}", file.0));
        format!("{}.key", hex::encode(name))
    }

    /// Logs `message` at warning level unless it was said before.
    fn warn_once(&self, message: String) {
        let mut said = self.said.lock_unpoisoned();
        if !said.contains(&message) {
            tracing::warn!("{message}");
            said.insert(message);
        }
    }

    /// Says why the cache directory `path` is not used: a refusal with its
    /// fix, once.
    fn refuse_dir(&self, path: &Path, err: CacheError) {
        match err {
            CacheError::Missing => {}
            CacheError::Refused(refusal) => self.warn_once(format!(
                "component cache {} not used, compiling in memory: {refusal}; fix: {}",
                path.display(),
                refusal.fix()
            )),
            CacheError::Io { .. } => self.warn_once(format!(
                "component cache {} unavailable, compiling in memory: {err}",
                path.display()
            )),
        }
    }

    /// Says why an entry of the cache is not used; it is compiled again
    /// (and replaced, if the cache can store).
    fn refuse_entry(&self, err: CacheError) {
        match err {
            CacheError::Missing => {}
            CacheError::Refused(refusal) => self.warn_once(format!(
                "component cache entry ignored, compiling again: {refusal}"
            )),
            CacheError::Io { .. } => tracing::debug!("component cache entry unreadable: {err}"),
        }
    }

    /// The cache directory and its secret, both made when missing and
    /// `create`; `None` (said once) when the cache is not to be used.
    fn open(&self, create: bool) -> Option<(Dir, Secret)> {
        let path = self.dir.as_ref()?;
        let opened = open_cache_dir(path, create).and_then(|dir| {
            let secret = secret(&dir, create)?;
            Ok((dir, secret))
        });
        opened.map_err(|err| self.refuse_dir(path, err)).ok()
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
        let (dir, secret) = self.open(false)?;
        let digest = self.fingerprint.digest(&dir)?;
        let memos = open_subdir(&dir, MEMOS, false)
            .map_err(|err| self.refuse_entry(err))
            .ok()?;
        let name = Self::memo_name(digest, file);
        let memo = open_ours(&memos, &name, false)
            .map_err(|err| self.refuse_entry(err))
            .ok()?;
        let text = read_small(memo, 512)?;
        let mut fields = text.split_whitespace();
        let verified = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(key), Some(identity), Some(tag), None) => parse_tag(tag)
                .filter(|tag| same_tag(&memo_tag(&secret, &name, key, identity), tag))
                .map(|_| (key, identity)),
            // A memo of an older vigil (a key alone): replaced at the next
            // load, not worth a warning.
            (Some(_), None, None, None) => return None,
            _ => None,
        };
        let Some((key, identity)) = verified else {
            self.warn_once(format!(
                "component cache memo {} does not verify (not written by this installation); reading the file again",
                memos.path.join(&name).display()
            ));
            return None;
        };
        let artifact = self.open_artifact(&dir, key)?;
        if artifact_identity(&artifact).as_deref() == Some(identity) {
            // SAFETY: the memo's tag, which only the holder of this cache's
            // secret can make, says this cache wrote or verified (tag
            // checked through the descriptor) the artifact of `key` when it
            // had `identity`; `artifact` was opened without following links
            // and checked through its descriptor to be a regular file of our
            // euid that nobody else can write, in a directory chain nobody
            // else can change (`open_cache_dir`), and it still has that
            // identity: same inode, size and times, so nobody wrote to it
            // since.
            return match unsafe { deserialize_from(engine, &artifact, None) } {
                Ok(component) => Some(component),
                Err(err) => {
                    tracing::warn!(key, "cached component rejected ({err}); compiling again");
                    None
                }
            };
        }
        // Replaced since (another process stored it again): check its tag.
        let component = self.load_verified(engine, &dir, &secret, key, &artifact)?;
        self.remember(&dir, &secret, digest, file, key, &artifact);
        Some(component)
    }

    /// Loads `bytes` as a component, from the cache when possible. With
    /// `file`, the identity of the file the bytes were read from (taken
    /// before reading), the key is remembered for [`Self::load_unchanged`].
    #[cfg(test)]
    pub fn load(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        file: Option<&FileIdentity>,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        self.load_observed(engine, bytes, file, || {})
    }

    /// [`Self::load`], calling `on_compile` when the component is not in
    /// the cache and compiling begins: a large one takes seconds, and a
    /// person watching should hear why before it starts, not after.
    pub fn load_observed(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        file: Option<&FileIdentity>,
        on_compile: impl FnOnce(),
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        // A compiling engine always has its digest; without one (a
        // compiler-less cache) nothing could be named, so nothing is stored.
        let opened = self.open(true).and_then(|(dir, secret)| {
            let digest = self.fingerprint.digest(&dir)?;
            Some((dir, secret, digest))
        });
        let Some((dir, secret, digest)) = opened else {
            on_compile();
            return Ok((Component::new(engine, bytes)?, CacheOutcome::Uncached));
        };
        let key = Self::key(digest, bytes);
        if let Some(component) = self.load_stored(engine, &dir, &secret, digest, &key, file) {
            return Ok((component, CacheOutcome::Hit));
        }
        let remember = |artifact: &File| {
            if let Some(file) = file {
                self.remember(&dir, &secret, digest, file, &key, artifact);
            }
        };
        on_compile();
        sweep_temporaries(&dir);
        if let Ok(memos) = open_subdir(&dir, MEMOS, false) {
            sweep_temporaries(&memos);
        }
        let compiled = engine.precompile_component(bytes)?;
        match Self::store(&dir, &secret, &key, &compiled) {
            Ok(stored) => {
                remember(&stored);
                // SAFETY: `stored` is the file `store` just wrote with
                // `compiled`, from `precompile_component` of this engine,
                // created by us with mode 0600 in the checked directory.
                let component =
                    unsafe { deserialize_from(engine, &stored, Some(compiled.as_slice())) }?;
                Ok((component, CacheOutcome::Compiled))
            }
            Err(err) => {
                self.warn_once(format!(
                    "component cache {} unavailable: {err}",
                    dir.path.display()
                ));
                // SAFETY: these bytes come from `precompile_component` of
                // this very engine a moment ago, never from disk.
                let component = unsafe { Component::deserialize(engine, &compiled) }?;
                Ok((component, CacheOutcome::Uncached))
            }
        }
    }

    /// `bytes` as a component if this cache holds its compiled artifact
    /// (verified as [`Self::load_observed`] verifies it), never compiling:
    /// `None` when it is not there, or the cache cannot be used. For a
    /// process that must not spend seconds compiling (`vigil-probe` hands
    /// such a check over to `vigil check`). With `file`, its key is
    /// remembered for [`Self::load_unchanged`].
    pub fn load_compiled(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        file: Option<&FileIdentity>,
    ) -> Option<Component> {
        let (dir, secret) = self.open(false)?;
        let digest = self.fingerprint.digest(&dir)?;
        let key = Self::key(digest, bytes);
        self.load_stored(engine, &dir, &secret, digest, &key, file)
    }

    /// The verified artifact of `key`, remembered for `file`.
    fn load_stored(
        &self,
        engine: &wasmtime::Engine,
        dir: &Dir,
        secret: &Secret,
        digest: &str,
        key: &str,
        file: Option<&FileIdentity>,
    ) -> Option<Component> {
        let artifact = self.open_artifact(dir, key)?;
        let component = self.load_verified(engine, dir, secret, key, &artifact)?;
        if let Some(file) = file {
            self.remember(dir, secret, digest, file, key, &artifact);
        }
        Some(component)
    }

    /// Remembers that the unchanged `file` has `key`, whose `artifact`
    /// this cache has just written or verified, with the artifact's
    /// identity and their tag.
    fn remember(
        &self,
        dir: &Dir,
        secret: &Secret,
        digest: &str,
        file: &FileIdentity,
        key: &str,
        artifact: &File,
    ) {
        let name = Self::memo_name(digest, file);
        let Some(identity) = artifact_identity(artifact) else {
            return;
        };
        let tag = memo_tag(secret, &name, key, &identity);
        let memo = format!("{key} {identity} {}\n", hex::encode(tag));
        let written = open_subdir(dir, MEMOS, true)
            .map_err(|err| err.to_string())
            .and_then(|memos| {
                write_atomically(&memos, &name, memo.as_bytes()).map_err(|err| err.to_string())
            });
        if let Err(err) = written {
            tracing::debug!(dir = %dir.path.display(), "cannot remember a file's cache key: {err}");
        }
    }

    /// The artifact stored under `key`, if it is a file of ours (see
    /// [`open_ours`]).
    fn open_artifact(&self, dir: &Dir, key: &str) -> Option<File> {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return None;
        }
        open_ours(dir, &format!("{key}.cwasm"), false)
            .map_err(|err| self.refuse_entry(err))
            .ok()
    }

    /// The component in `artifact` (from [`Self::open_artifact`] of
    /// `key`), if its tag verifies.
    fn load_verified(
        &self,
        engine: &wasmtime::Engine,
        dir: &Dir,
        secret: &Secret,
        key: &str,
        artifact: &File,
    ) -> Option<Component> {
        let path = dir.path.join(format!("{key}.cwasm"));
        // No tag: an entry of an older vigil, or a store cut short.
        let tag = open_ours(dir, &format!("{key}.mac"), false)
            .map_err(|err| self.refuse_entry(err))
            .ok()
            .and_then(|file| read_small(file, 128))
            .and_then(|text| parse_tag(&text))?;
        let verified = artifact
            .metadata()
            .and_then(|meta| file_digest(artifact, meta.len()))
            .is_ok_and(|digest| same_tag(&artifact_tag(secret, key, &digest), &tag));
        if !verified {
            self.warn_once(format!(
                "cached component {} does not verify (corrupt, or not written by this installation); compiling again",
                path.display()
            ));
            return None;
        }
        // SAFETY: `artifact` was opened without following links and checked
        // through its descriptor to be a regular file of our euid that
        // nobody else can write, in a directory chain nobody else can
        // change (`open_cache_dir`), and its bytes, read through that same
        // descriptor, carry a tag only the holder of this cache's secret
        // could make: this cache wrote it from `precompile_component`.
        match unsafe { deserialize_from(engine, artifact, None) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), "cached component rejected ({err}); compiling again");
                None
            }
        }
    }

    /// Writes the artifact, then its tag; returns the artifact's descriptor.
    fn store(dir: &Dir, secret: &Secret, key: &str, compiled: &[u8]) -> std::io::Result<File> {
        let artifact = write_atomically(dir, &format!("{key}.cwasm"), compiled)?;
        let tag = artifact_tag(secret, key, &content_digest(compiled));
        write_atomically(
            dir,
            &format!("{key}.mac"),
            format!("{}\n", hex::encode(tag)).as_bytes(),
        )?;
        Ok(artifact)
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    /// Threads storing the same key at once (two services naming one
    /// component) each leave a whole file, and none fails.
    #[test]
    fn concurrent_writes_of_one_path_stay_whole() {
        let scratch = TempDir::new("cache-race");
        let path = scratch.0.clone();
        let dir = open_cache_dir(&path, true).expect("trusted dir");
        let contents: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..10 {
            std::thread::scope(|scope| {
                let writers: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| write_atomically(&dir, "artifact.cwasm", &contents)))
                    .collect();
                for writer in writers {
                    writer.join().expect("writer thread").expect("write");
                }
            });
            assert!(
                std::fs::read(path.join("artifact.cwasm")).expect("read back") == contents,
                "torn file"
            );
        }
    }

    /// RFC 4231 test cases 1, 2 (split across parts) and 6 (a key longer
    /// than the block).
    #[test]
    fn hmac_matches_rfc_4231() {
        let tag = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(
            hex::encode(tag),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let tag = hmac_sha256(b"Jefe", &[b"what do ya", b" want for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let tag = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    /// The digest read through a descriptor is the one taken of the bytes
    /// when storing, below and above the split.
    #[test]
    fn file_digest_is_the_content_digest() {
        let scratch = TempDir::new("cache-digest");
        let dir = scratch.0.clone();
        for len in [0, 1000, SPLIT_ABOVE, SPLIT_ABOVE + 1, 3 * SPLIT_ABOVE + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let path = dir.join("file");
            std::fs::write(&path, &bytes).expect("write");
            let file = File::open(&path).expect("open");
            assert_eq!(
                file_digest(&file, len as u64).expect("digest"),
                content_digest(&bytes),
                "{len} bytes"
            );
        }
    }

    /// The secret is made once, private, and shared by later opens; a
    /// secret others can read is refused with its fix.
    #[test]
    fn the_secret_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = TempDir::new("cache-secret");
        let path = scratch.0.clone();
        let dir = open_cache_dir(&path, true).expect("trusted dir");
        let first = secret(&dir, true).expect("made");
        let meta = std::fs::metadata(path.join(SECRET)).expect("secret file");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        assert_eq!(secret(&dir, true).expect("kept"), first);
        assert_ne!(first, [0u8; 32]);
        std::fs::set_permissions(path.join(SECRET), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = secret(&dir, true).expect_err("readable secret");
        assert!(
            matches!(err, CacheError::Refused(Refusal::SecretReadable { .. })),
            "{err}"
        );
    }

    /// A compiler-less engine loads what a compiling engine of its
    /// profile stored, under the digest that engine recorded; with no
    /// record, a record of another profile, or a record that is not a
    /// digest, it finds nothing (and `vigil-probe` hands the check over).
    #[test]
    fn a_compiler_less_engine_loads_under_the_recorded_digest() {
        let scratch = TempDir::new("cache-compiler-less");
        let path = scratch.0.join("cache");
        let empty = b"\0asm\x0d\0\x01\0";
        let mut config = wasmtime::Config::new();
        config.enable_compiler(false);
        let bare = wasmtime::Engine::new(&config).expect("engine without a compiler");
        let probe = || ComponentCache::compiler_less(Some(path.clone()), "profile A");
        let compiling = wasmtime::Engine::default();

        // Nothing recorded yet (the directory does not even exist).
        assert!(probe().load_compiled(&bare, empty, None).is_none());
        // Another profile's engine records only its own.
        let other = ComponentCache::new(Some(path.clone()), &compiling, "profile B");
        let (_, outcome) = other.load(&compiling, empty, None).expect("compile");
        assert_eq!(outcome, CacheOutcome::Compiled);
        assert!(probe().load_compiled(&bare, empty, None).is_none());

        let cache = ComponentCache::new(Some(path.clone()), &compiling, "profile A");
        let (_, outcome) = cache.load(&compiling, empty, None).expect("load");
        assert_eq!(outcome, CacheOutcome::Hit);
        assert!(probe().load_compiled(&bare, empty, None).is_some());

        // A record that is not a digest names nothing.
        let record = std::fs::read_dir(&path)
            .expect("cache dir")
            .flatten()
            .map(|entry| entry.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == "digest")
                    && std::fs::read_to_string(p).is_ok_and(|d| {
                        let Fingerprint::Compiler { digest, .. } = &*cache.fingerprint else {
                            return false;
                        };
                        d.trim() == digest
                    })
            })
            .expect("profile A's record");
        std::fs::write(&record, "../secret\n").expect("overwrite the record");
        assert!(probe().load_compiled(&bare, empty, None).is_none());
    }

    /// A log sink for one test's thread.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock_unpoisoned().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A refused cache is said once, with the fix, however many
    /// components load; they compile in memory and nothing is stored.
    #[test]
    fn a_refused_cache_is_said_once() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = TempDir::new("cache-said-once");
        let path = scratch.0.clone();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let log = Captured::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        // The empty component: a preamble and nothing else.
        let empty = b"\0asm\x0d\0\x01\0";
        let engine = wasmtime::Engine::default();
        let cache = ComponentCache::new(Some(path.clone()), &engine, "test");
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                let (_, outcome) = cache.clone().load(&engine, empty, None).expect("load");
                assert_eq!(outcome, CacheOutcome::Uncached);
            }
        });
        let log = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
        let fix = format!("fix: chmod go-w {}", path.display());
        assert_eq!(log.matches(&fix).count(), 1, "{log}");
        assert_eq!(std::fs::read_dir(&path).expect("dir").count(), 0);
    }
}
