//! README "Compiled components are cached": compile once, load after; a
//! corrupt entry is rebuilt, and nothing the cache did not write itself is
//! ever loaded.

use std::path::{Path, PathBuf};

use vigil::wasm::{CacheOutcome, CheckSource, Engine, EngineOptions};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn compiles_once_then_loads_and_rebuilds_a_corrupt_entry() {
    let dir = scratch("cache");
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(dir.clone()),
        max_instances: 4,
        max_memory: 64 << 20,
    })
    .expect("engine");
    let source = CheckSource::File(programs::OK.into());

    let (_, first) = engine.load_component(&source).await.expect("first load");
    assert_eq!(first, CacheOutcome::Compiled);
    let (_, second) = engine.load_component(&source).await.expect("second load");
    assert_eq!(second, CacheOutcome::Hit);

    // Flip a byte in the middle of the compiled artifact.
    let artifact = std::fs::read_dir(&dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("artifact");
    let mut bytes = std::fs::read(&artifact).expect("read artifact");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, bytes).expect("corrupt artifact");

    let (_, third) = engine
        .load_component(&source)
        .await
        .expect("reload after corruption");
    assert_eq!(
        third,
        CacheOutcome::Compiled,
        "a corrupt entry must be rebuilt"
    );
    let checker = engine
        .load_checker(&source)
        .await
        .expect("checker from rebuilt entry");
    let report = check_once(&checker).await;
    assert_eq!(report.verdict, vigil::wasm::Verdict::Ok);
}

/// A file the cache has seen and that has not changed since is loaded by
/// its identity (inode, size, times) without being read again; a file
/// rewritten in place never passes for the cached one.
#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_file_is_never_mistaken_for_the_cached_one() {
    let dir = scratch("cache-rewrite");
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(dir.join("cache")),
        max_instances: 4,
        max_memory: 64 << 20,
    })
    .expect("engine");
    let file = dir.join("check.wasm");
    std::fs::copy(programs::OK, &file).expect("copy");
    wait_until_settled(vec![file.clone()]).await;
    let source = CheckSource::File(file.clone());

    let (_, first) = engine.load_component(&source).await.expect("first load");
    assert_eq!(first, CacheOutcome::Compiled);
    let remembered = std::fs::read_dir(dir.join("cache/files"))
        .expect("the cache remembers the file")
        .count();
    assert_eq!(remembered, 1);
    let (_, second) = engine.load_component(&source).await.expect("second load");
    assert_eq!(second, CacheOutcome::Hit);

    // Rewrite it in place (same inode): the new content is what runs.
    std::fs::copy(programs::RETRY, &file).expect("rewrite");
    let checker = engine.load_checker(&source).await.expect("load rewritten");
    let report = check_once(&checker).await;
    assert!(
        matches!(report.verdict, vigil::wasm::Verdict::Retry(_)),
        "{report:?}"
    );
}

/// Wait until `files` are old enough for the cache to remember them by
/// identity: modified and changed two whole seconds ago or more (by the
/// clock's seconds, the rule of the cache's `FileIdentity::of`). A fixed
/// sleep guessed at the same; should the rule change, the memo assertions
/// of the tests that call this fail loudly rather than pass by luck.
async fn wait_until_settled(files: Vec<PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    let settled = move || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        files.iter().all(|f| {
            std::fs::metadata(f).is_ok_and(|m| now - m.ctime() >= 2 && now - m.mtime() >= 2)
        })
    };
    tokio::task::spawn_blocking(move || {
        wait_until("the files settle for the cache", SOON, settled)
    })
    .await
    .expect("the wait does not panic");
}

// Loading a cached artifact runs its native code in the vigil process, so
// the cache loads only what this user wrote: each test below plants the
// real compiled code of `programs::ERROR` under the cache key of
// `programs::OK`, with a matching length + CRC-32 sidecar (the old format)
// and a well-formed tag made without the installation's secret, and checks
// that the honest verdict (`ok`) stands.

fn options(cache_dir: PathBuf) -> EngineOptions {
    EngineOptions {
        cache_dir: Some(cache_dir),
        max_instances: 4,
        max_memory: 64 << 20,
    }
}

/// Compiles `program` into a fresh cache: its key (any cache of an engine
/// with [`options`] uses the same) and its compiled code.
async fn compiled(program: &str, name: &str) -> (String, Vec<u8>) {
    let dir = scratch(name);
    let engine = Engine::new(options(dir.clone())).expect("engine");
    let (_, outcome) = engine
        .load_component(&CheckSource::File(program.into()))
        .await
        .expect("compile");
    assert_eq!(outcome, CacheOutcome::Compiled);
    let artifact = artifacts(&dir).pop().expect("an artifact");
    let key = artifact
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 key")
        .to_owned();
    let code = std::fs::read(&artifact).expect("read artifact");
    (key, code)
}

/// The compiled artifacts (`*.cwasm`) in a cache dir.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

/// The compiled code of `programs::ERROR` and the key of `programs::OK`.
async fn attack(name: &str) -> (String, Vec<u8>) {
    let (ok_key, _) = compiled(programs::OK, &format!("{name}-ok")).await;
    let (_, error_code) = compiled(programs::ERROR, &format!("{name}-error")).await;
    (ok_key, error_code)
}

/// Writes the sidecars an attacker would write next to `code` planted
/// under `key` in `dir`: length + CRC-32 (the format that was trusted
/// before) and a well-formed tag computed without the secret.
fn plant_sidecars(dir: &Path, key: &str, code: &[u8]) -> Vec<PathBuf> {
    let sum = dir.join(format!("{key}.sum"));
    std::fs::write(
        &sum,
        format!("{} {:08x}\n", code.len(), crc32fast::hash(code)),
    )
    .expect("plant sum");
    let mac = dir.join(format!("{key}.mac"));
    let forged = <sha2::Sha256 as sha2::Digest>::digest(code);
    std::fs::write(&mac, format!("{}\n", hex::encode(forged))).expect("plant mac");
    vec![sum, mac]
}

/// Plants `code` under `key` in `dir` with its sidecars; returns the files.
fn plant(dir: &Path, key: &str, code: &[u8]) -> Vec<PathBuf> {
    let artifact = dir.join(format!("{key}.cwasm"));
    std::fs::write(&artifact, code).expect("plant artifact");
    let mut planted = plant_sidecars(dir, key, code);
    planted.push(artifact);
    planted
}

/// Loads `programs::OK` through a cache in `dir` where ERROR's code was
/// planted under OK's key: the honest verdict (`ok`) must stand, and the
/// cache must have done `expected` (`Uncached`: refused the dir;
/// `Compiled`: ignored the entry and rebuilt it).
async fn assert_planted_code_did_not_run(dir: PathBuf, expected: CacheOutcome) {
    let (outcome, verdict) = load_ok(dir).await;
    assert_eq!(verdict, vigil::wasm::Verdict::Ok, "the planted code ran");
    assert_eq!(outcome, expected);
}

/// Runs `checker` once with no config and no grants.
async fn check_once(checker: &vigil::wasm::Checker) -> vigil::wasm::CheckReport {
    checker
        .check(
            &target(&[], None),
            &sandbox(&[], &[], std::time::Duration::from_secs(2)),
        )
        .await
}

/// [`give_away`] for each of `files`; `false` (skip the test) when not root.
fn give_all_away(files: &[PathBuf]) -> bool {
    files.iter().all(|f| give_away(f))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Hands `path` to `nobody` (65534); `false` when not root (the test is
/// then skipped: only root can give a file away).
fn give_away(path: &Path) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root can chown to another user");
        return false;
    }
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    nix::unistd::chown(path, nobody, Some(nix::unistd::Gid::from_raw(65534))).expect("chown");
    true
}

/// Loads `programs::OK` through a cache in `cache_dir`: how it was
/// obtained, and what the loaded component answers.
async fn load_ok(cache_dir: PathBuf) -> (CacheOutcome, vigil::wasm::Verdict) {
    let engine = Engine::new(options(cache_dir)).expect("engine");
    let source = CheckSource::File(programs::OK.into());
    let (_, outcome) = engine.load_component(&source).await.expect("load");
    let checker = engine.load_checker(&source).await.expect("load checker");
    let report = check_once(&checker).await;
    (outcome, report.verdict)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_dir_writable_by_others_is_never_loaded() {
    let (key, code) = attack("cache-open").await;
    let dir = scratch("cache-open");
    chmod(&dir, 0o777);
    plant(&dir, &key, &code);
    assert_planted_code_did_not_run(dir, CacheOutcome::Uncached).await;
}

/// A 0700 directory of ours inside a directory anyone may write to can be
/// renamed away and replaced: the whole chain must be trusted.
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_dir_inside_a_dir_writable_by_others_is_never_loaded() {
    let (key, code) = attack("cache-open-parent").await;
    let parent = scratch("cache-open-parent");
    chmod(&parent, 0o777);
    let dir = parent.join("cache");
    std::fs::create_dir(&dir).expect("cache dir");
    chmod(&dir, 0o700);
    plant(&dir, &key, &code);
    assert_planted_code_did_not_run(dir, CacheOutcome::Uncached).await;
}

/// Root running with another user's cache (a kept `$HOME`, `sudo`): that
/// user could have written anything there.
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_dir_of_another_user_is_never_loaded() {
    let (key, code) = attack("cache-foreign-dir").await;
    let dir = scratch("cache-foreign-dir");
    chmod(&dir, 0o700);
    if !give_all_away(&plant(&dir, &key, &code)) {
        return;
    }
    if !give_away(&dir) {
        return;
    }
    assert_planted_code_did_not_run(dir, CacheOutcome::Uncached).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_dir_that_is_a_symlink_is_never_loaded() {
    let (key, code) = attack("cache-dir-link").await;
    let scratch = scratch("cache-dir-link");
    let real = scratch.join("real");
    std::fs::create_dir(&real).expect("real dir");
    chmod(&real, 0o700);
    plant(&real, &key, &code);
    let link = scratch.join("cache");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    assert_planted_code_did_not_run(link, CacheOutcome::Uncached).await;
}

/// A file in our own directory that someone else owns (planted while the
/// directory was open, or by root): ignored, recompiled and replaced.
#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_of_another_user_is_never_loaded() {
    use std::os::unix::fs::MetadataExt;
    let (key, code) = attack("cache-foreign-file").await;
    let dir = scratch("cache-foreign-file");
    chmod(&dir, 0o700);
    if !give_all_away(&plant(&dir, &key, &code)) {
        return;
    }
    assert_planted_code_did_not_run(dir.clone(), CacheOutcome::Compiled).await;
    let artifact = std::fs::metadata(dir.join(format!("{key}.cwasm"))).expect("artifact");
    assert_eq!(
        artifact.uid(),
        nix::unistd::geteuid().as_raw(),
        "the planted artifact is replaced by our own"
    );
}

/// A genuine entry that others could write (or that was given away) is
/// not loaded either, tag or not: they could change the code under the
/// mapping.
#[tokio::test(flavor = "multi_thread")]
async fn a_genuine_entry_others_could_write_is_not_loaded() {
    let dir = scratch("cache-loosened");
    chmod(&dir, 0o700);
    let (first, _) = load_ok(dir.clone()).await;
    assert_eq!(first, CacheOutcome::Compiled);
    let artifact = artifacts(&dir).pop().expect("artifact");
    chmod(&artifact, 0o666);
    let (outcome, verdict) = load_ok(dir.clone()).await;
    assert_eq!(verdict, vigil::wasm::Verdict::Ok);
    assert_eq!(outcome, CacheOutcome::Compiled, "a 0666 artifact was used");
    if !give_away(&artifact) {
        return;
    }
    let (outcome, _) = load_ok(dir).await;
    assert_eq!(
        outcome,
        CacheOutcome::Compiled,
        "an artifact of another user was used"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_that_is_a_symlink_is_never_loaded() {
    let (key, code) = attack("cache-file-link").await;
    let scratch = scratch("cache-file-link");
    let dir = scratch.join("cache");
    std::fs::create_dir(&dir).expect("cache dir");
    chmod(&dir, 0o700);
    let elsewhere = scratch.join("planted.cwasm");
    std::fs::write(&elsewhere, &code).expect("plant code");
    chmod(&elsewhere, 0o600);
    std::os::unix::fs::symlink(&elsewhere, dir.join(format!("{key}.cwasm"))).expect("symlink");
    plant_sidecars(&dir, &key, &code);
    assert_planted_code_did_not_run(dir, CacheOutcome::Compiled).await;
}

/// Genuine entries of one cache, moved from one key to another (with
/// their sidecars): the tag names the key it was made for.
#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_moved_to_another_key_is_never_loaded() {
    let dir = scratch("cache-moved");
    let engine = Engine::new(options(dir.clone())).expect("engine");
    let (_, first) = engine
        .load_component(&CheckSource::File(programs::OK.into()))
        .await
        .expect("compile ok");
    assert_eq!(first, CacheOutcome::Compiled);
    let ok_key = artifacts(&dir).pop().expect("ok artifact");
    let ok_key = ok_key.file_stem().expect("stem").to_owned();
    let (_, second) = engine
        .load_component(&CheckSource::File(programs::ERROR.into()))
        .await
        .expect("compile error");
    assert_eq!(second, CacheOutcome::Compiled);
    let error_key = artifacts(&dir)
        .into_iter()
        .map(|p| p.file_stem().expect("stem").to_owned())
        .find(|k| *k != ok_key)
        .expect("error artifact");
    let (ok_key, error_key) = (
        ok_key.to_str().expect("utf-8"),
        error_key.to_str().expect("utf-8"),
    );
    // Every file of the ERROR entry, moved under the OK key.
    for entry in std::fs::read_dir(&dir).expect("cache dir").flatten() {
        let name = entry.file_name();
        let name = name.to_str().expect("utf-8");
        if let Some(ext) = name.strip_prefix(error_key) {
            std::fs::rename(entry.path(), dir.join(format!("{ok_key}{ext}"))).expect("move");
        }
    }
    let (outcome, verdict) = load_ok(dir).await;
    assert_eq!(verdict, vigil::wasm::Verdict::Ok, "ERROR's code ran for OK");
    assert_eq!(outcome, CacheOutcome::Compiled);
}

/// The memo of an unchanged file names its artifact: a genuine memo of
/// another file, copied over it, must not redirect it.
#[tokio::test(flavor = "multi_thread")]
async fn a_memo_copied_from_another_file_never_redirects_it() {
    let dir = scratch("cache-memo");
    let cache = dir.join("cache");
    let engine = Engine::new(options(cache.clone())).expect("engine");
    let ok = dir.join("ok.wasm");
    let error = dir.join("error.wasm");
    std::fs::copy(programs::OK, &ok).expect("copy ok");
    std::fs::copy(programs::ERROR, &error).expect("copy error");
    wait_until_settled(vec![ok.clone(), error.clone()]).await;
    let memos = || -> Vec<PathBuf> {
        std::fs::read_dir(cache.join("files"))
            .expect("memo dir")
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    engine
        .load_component(&CheckSource::File(ok.clone()))
        .await
        .expect("load ok");
    let ok_memo = memos().pop().expect("memo of ok.wasm");
    engine
        .load_component(&CheckSource::File(error.clone()))
        .await
        .expect("load error");
    let error_memo = memos()
        .into_iter()
        .find(|m| *m != ok_memo)
        .expect("memo of error.wasm");
    std::fs::copy(&error_memo, &ok_memo).expect("copy memo");

    let source = CheckSource::File(ok);
    let checker = engine.load_checker(&source).await.expect("load checker");
    let report = check_once(&checker).await;
    assert_eq!(
        report.verdict,
        vigil::wasm::Verdict::Ok,
        "the memo redirected ok.wasm"
    );
}

/// The real binary: a distrusted cache is said once on stderr, with the
/// directory and the fix, and the check still runs (compiled in memory).
#[test]
fn vigil_check_says_once_why_it_does_not_use_a_cache() {
    let home = scratch("cache-cli-open");
    chmod(&home, 0o777);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", programs::OK])
        .env("XDG_CACHE_HOME", &home)
        .env_remove("VIGIL_LOG")
        .output()
        .expect("run vigil");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let fix = format!("chmod go-w {}", home.display());
    assert_eq!(
        stderr.matches(&fix).count(),
        1,
        "one warning naming the fix {fix:?}: {stderr}"
    );
    assert!(!home.join("vigil").exists(), "nothing stored there");
}

/// What is trusted, positively: an ancestor that is sticky (like /tmp,
/// where others cannot rename our entries) and a symlink among the
/// ancestors made by us (nobody else can replace it).
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_under_a_sticky_dir_and_a_symlinked_ancestor_is_used() {
    let scratch = scratch("cache-sticky");
    let sticky = scratch.join("tmp");
    std::fs::create_dir(&sticky).expect("sticky dir");
    chmod(&sticky, 0o1777);
    std::os::unix::fs::symlink(&sticky, scratch.join("link")).expect("symlink");
    let dir = scratch.join("link/cache");
    let (first, verdict) = load_ok(dir.clone()).await;
    assert_eq!(verdict, vigil::wasm::Verdict::Ok);
    assert_eq!(first, CacheOutcome::Compiled);
    let (second, _) = load_ok(dir).await;
    assert_eq!(second, CacheOutcome::Hit);
}
