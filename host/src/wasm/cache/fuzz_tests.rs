//! Fuzz target (see `crate::fuzz`) for the component cache's files: the
//! artifact, its tag, the secret and a memo, each replaced, cut or with a
//! byte flipped. The cache then loads from a file only what verifies, and
//! otherwise compiles again; it never panics, and never hands wasmtime an
//! artifact that changed.

use super::*;
use crate::fuzz;
use crate::test_support::TempDir;

/// The empty component: a preamble and nothing else.
const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

/// Every file under `dir`, recursively, with its bytes, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("cache dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read a cache file");
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn fuzz_cache_files() {
    let scratch = TempDir::new("fuzz-cache");
    let path = scratch.0.join("cache");
    let engine = wasmtime::Engine::default();
    let cache = ComponentCache::new(Some(path.clone()), &engine, "test");
    let identity = FileIdentity("1 2 3 4.000000000 5.000000000".into());
    let (_, outcome) = cache.load(&engine, EMPTY, Some(&identity)).expect("load");
    assert_eq!(outcome, CacheOutcome::Compiled);
    let originals = files(&path);
    let names: Vec<String> = originals
        .iter()
        .map(|(p, _)| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".cwasm")), "{names:?}");
    assert!(names.iter().any(|n| n == SECRET), "{names:?}");
    fuzz::run_with("cache-files", &["\n", " ", "0", "f"], 4096, 400, |input| {
        for (file, bytes) in &originals {
            std::fs::write(file, bytes).expect("restore");
        }
        let Some((&selector, rest)) = input.split_first() else {
            return;
        };
        let n = originals.len();
        let (victim, original) = &originals[selector as usize % n];
        let at = rest
            .iter()
            .take(3)
            .fold(0usize, |acc, b| acc * 256 + usize::from(*b));
        let content = match (selector as usize / n) % 3 {
            0 => rest.to_vec(),
            1 => {
                let mut flipped = original.clone();
                if !flipped.is_empty() {
                    let i = at % flipped.len();
                    flipped[i] ^= 1 << (at % 8);
                }
                flipped
            }
            _ => original[..at % (original.len() + 1)].to_vec(),
        };
        std::fs::write(victim, &content).expect("damage");
        let changed = content != *original;
        let name = victim.file_name().unwrap_or_default().to_string_lossy();
        let verified_by_bytes = name.ends_with(".cwasm") || name == SECRET;

        let unchanged = cache.load_unchanged(&engine, &identity);
        if changed && verified_by_bytes {
            assert!(
                unchanged.is_none(),
                "{name} changed, yet the memo's artifact loaded"
            );
        }
        let (_, outcome) = cache
            .load(&engine, EMPTY, Some(&identity))
            .expect("a damaged cache compiles again");
        if changed && verified_by_bytes {
            assert_ne!(outcome, CacheOutcome::Hit, "{name} changed, yet loaded");
        }
        if !changed {
            assert_eq!(outcome, CacheOutcome::Hit, "an intact cache missed");
        }
    });
}
