//! Per-store resource caps, remembering whether the memory cap was hit so a
//! trap can be explained ("memory limit reached") instead of left cryptic.

use wasmtime::ResourceLimiter;

pub(crate) struct MemoryCap {
    pub limit: usize,
    pub hit: bool,
    /// The largest size this store's memories were granted, so that a
    /// reused instance is never handed to a call with a lower cap.
    pub grown_to: usize,
    /// The engine's largest linear memory any call has grown to (`/metrics`).
    pub peak: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Table elements a guest may grow to; tables hold function references,
/// and no honest check needs more.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryCap {
    /// Fresh accounting for the next call on a reused instance.
    pub fn rearm(&mut self, limit: usize) {
        self.limit = limit;
        self.hit = false;
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit;
        self.hit |= !allowed;
        if allowed {
            self.grown_to = self.grown_to.max(desired);
            self.peak
                .fetch_max(desired, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
