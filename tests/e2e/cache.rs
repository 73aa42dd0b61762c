//! README "Compiled components are cached": compile once, load after; a
//! corrupt entry is rebuilt, never trusted.

use vigil::wasm::{CacheOutcome, CheckSource, Engine, EngineOptions};

use crate::helpers::*;

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
    let report = checker
        .check(
            &target(&[], None),
            &sandbox(&[], &[], std::time::Duration::from_secs(2)),
        )
        .await;
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
    // Only a file unchanged for two seconds is remembered by identity.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
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
    let report = checker
        .check(
            &target(&[], None),
            &sandbox(&[], &[], std::time::Duration::from_secs(2)),
        )
        .await;
    assert!(
        matches!(report.verdict, vigil::wasm::Verdict::Retry(_)),
        "{report:?}"
    );
}
