//! Scaffolding shared by the unit tests: scratch directories and polling
//! with a deadline. Compiled only for `cargo test`; the end-to-end suite
//! has its own in tests/e2e/support.
//!
//! It sits in the lowest layer (see layers.rs) and uses nothing of the
//! crate, so that any module's tests may use it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Generous deadline for what should happen "soon": the unit tests run in
/// parallel with real children on a loaded two-core machine.
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// A fresh, empty scratch directory under the system's temp dir, removed
/// on drop. Unique per process and per call, so tests in parallel never
/// share one.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// `tag` names the directory (`vigil-test-TAG-PID-N`), so a leftover
    /// says which test made it.
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vigil-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Poll `cond` every 10 ms until it holds; panics naming `what` once
/// `timeout` has passed.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`wait_until`] for async tests: the condition may await (a journal
/// flush, say), and the wait sleeps on the runtime, never blocking its
/// thread.
pub(crate) async fn wait_until_async(
    what: &str,
    timeout: Duration,
    mut cond: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
