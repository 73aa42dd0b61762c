//! The epoch timer behind CPU deadlines, and the guard every guest call holds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::engine::EPOCH_TICK;

/// Advances the engine's epoch every [`EPOCH_TICK`] while calls run, and
/// sleeps otherwise: an idle supervisor pays no wake-ups for it.
pub(super) struct EpochTimer {
    pub(super) active: AtomicUsize,
    pub(super) thread: OnceLock<std::thread::Thread>,
}

impl EpochTimer {
    pub(super) fn start(engine: &wasmtime::Engine) -> Arc<EpochTimer> {
        let timer = Arc::new(EpochTimer {
            active: AtomicUsize::new(0),
            thread: OnceLock::new(),
        });
        let weak = engine.weak();
        let shared = timer.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    if shared.active.load(Ordering::Acquire) == 0 {
                        drop(engine);
                        // Unparked by the first call; the timeout only notices
                        // a dropped engine. A wake-up between the load and the
                        // park is kept as a token, so none is lost.
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = timer.thread.set(handle.thread().clone());
            }
            Err(err) => {
                tracing::error!(
                    "cannot start the epoch timer thread: {err}; CPU deadlines will not fire"
                )
            }
        }
        timer
    }
}

/// Held for the length of one guest call: a slot of the concurrency bound,
/// and the epoch timer kept running.
pub(crate) struct CallGuard<'a> {
    pub(super) timer: &'a EpochTimer,
    pub(super) _permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.timer.active.fetch_sub(1, Ordering::AcqRel);
    }
}
