//! Per-instance resource caps.
//!
//! The memory cap of a call (`--memory`, [`super::Sandbox::memory_limit`])
//! bounds the whole instance, not each memory: a component may hold up to
//! eight linear memories (Python and JavaScript runtimes hold several), and
//! a per-memory cap let one with seven extra 30 MiB memories grow Vigil by
//! 221 MiB under a 32 MiB cap. wasmtime asks the limiter before it creates
//! a memory or table (with its initial size) and before every growth, so
//! a running sum of every grant is the instance's footprint: memories and
//! tables never shrink, and a store holds exactly one component instance.
//!
//! The limiter also remembers whether the cap was hit, so that a trap can be
//! explained ("memory limit reached") instead of left cryptic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::ResourceLimiter;

/// Table elements one table may grow to; tables hold function references,
/// and no honest check needs more.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Host bytes per table element (wasmtime stores a pointer per element).
const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();

/// The memory cap of one instance: the sum of all its linear memories and
/// tables.
pub(crate) struct MemoryCap {
    limit: usize,
    /// Whether a creation or growth was refused for the cap (not for the
    /// memory's own declared maximum) since the last [`MemoryCap::rearm`].
    pub hit: bool,
    /// Bytes granted to the instance so far: every linear memory and every
    /// table (elements x pointer size), from their initial sizes on. It
    /// only grows, and a reused instance carries it into its next call.
    used: usize,
    /// The largest a single linear memory can be (the pool's slot size).
    /// A growth past it, or past the memory's declared maximum, would fail
    /// after being granted; it is refused up front instead, so that `used`
    /// never counts bytes the instance did not get.
    memory_capacity: usize,
    /// The engine's largest instance footprint so far (`/metrics`).
    peak: Arc<AtomicUsize>,
}

impl MemoryCap {
    pub fn new(limit: usize, memory_capacity: usize, peak: Arc<AtomicUsize>) -> Self {
        MemoryCap {
            limit,
            hit: false,
            used: 0,
            memory_capacity,
            peak,
        }
    }

    /// The next call on a reused instance: its own cap, a clean `hit`, and
    /// the bytes the instance already holds (they are still there).
    pub fn rearm(&mut self, limit: usize) {
        self.limit = limit;
        self.hit = false;
    }

    /// Bytes the instance holds: all memories and tables.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Grants `bytes` more unless the sum would pass the cap.
    fn grant(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                self.peak.fetch_max(total, Ordering::Relaxed);
                true
            }
            _ => {
                self.hit = true;
                false
            }
        }
    }
}

impl ResourceLimiter for MemoryCap {
    /// Called with `current == 0` when a memory is created (at
    /// instantiation), then for every `memory.grow`.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_capacity || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(self.grant(desired.saturating_sub(current)))
    }

    // `memory_grow_failed` keeps its default: past the checks above, a
    // granted growth fails only when the kernel refuses the pages; `used`
    // then overstates the instance, which errs on the safe side.

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let elements = desired.saturating_sub(current);
        Ok(self.grant(elements.saturating_mul(TABLE_ELEMENT_BYTES)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn cap(limit: usize) -> MemoryCap {
        MemoryCap::new(limit, 256 * MIB, Arc::default())
    }

    #[test]
    fn the_cap_bounds_the_sum_of_all_memories() {
        let mut cap = cap(64 * MIB);
        // Three memories created at 30 MiB each: the third passes the sum.
        assert!(cap.memory_growing(0, 30 * MIB, None).expect("limiter"));
        assert!(cap.memory_growing(0, 30 * MIB, None).expect("limiter"));
        assert!(!cap.hit);
        assert!(!cap.memory_growing(0, 30 * MIB, None).expect("limiter"));
        assert!(cap.hit);
        assert_eq!(cap.used(), 60 * MIB);
        // Growing one of them counts only the difference.
        assert!(
            cap.memory_growing(30 * MIB, 34 * MIB, None)
                .expect("limiter")
        );
        assert!(
            !cap.memory_growing(34 * MIB, 35 * MIB, None)
                .expect("limiter")
        );
        assert_eq!(cap.used(), 64 * MIB);
    }

    #[test]
    fn tables_count_a_pointer_per_element() {
        let mut cap = cap(MIB);
        let elements = MIB / TABLE_ELEMENT_BYTES;
        assert!(cap.table_growing(0, elements / 2, None).expect("limiter"));
        assert!(!cap.memory_growing(0, MIB, None).expect("limiter"));
        assert!(
            cap.table_growing(elements / 2, elements, None)
                .expect("limiter")
        );
        assert_eq!(cap.used(), MIB);
        assert!(
            !cap.table_growing(elements, elements + 1, None)
                .expect("limiter")
        );
        assert!(cap.hit);
    }

    #[test]
    fn growth_that_would_fail_anyway_is_not_counted_or_blamed_on_the_cap() {
        let mut cap = cap(64 * MIB);
        assert!(cap.memory_growing(0, MIB, Some(2 * MIB)).expect("limiter"));
        // Past the memory's declared maximum, past the pool's slot size.
        assert!(
            !cap.memory_growing(MIB, 3 * MIB, Some(2 * MIB))
                .expect("limiter")
        );
        assert!(!cap.memory_growing(MIB, 512 * MIB, None).expect("limiter"));
        assert!(!cap.table_growing(0, 10, Some(5)).expect("limiter"));
        assert!(!cap.hit);
        assert_eq!(cap.used(), MIB);
    }

    #[test]
    fn a_reused_instance_keeps_what_it_holds() {
        let mut cap = cap(64 * MIB);
        assert!(cap.memory_growing(0, 40 * MIB, None).expect("limiter"));
        assert!(!cap.memory_growing(0, 30 * MIB, None).expect("limiter"));
        assert!(cap.hit);
        // The next call on the same instance: a fresh `hit`, same bytes.
        cap.rearm(48 * MIB);
        assert!(!cap.hit);
        assert_eq!(cap.used(), 40 * MIB);
        assert!(
            !cap.memory_growing(40 * MIB, 50 * MIB, None)
                .expect("limiter")
        );
        assert!(
            cap.memory_growing(40 * MIB, 48 * MIB, None)
                .expect("limiter")
        );
    }

    #[test]
    fn the_peak_is_the_largest_instance() {
        let peak = Arc::new(AtomicUsize::new(0));
        let mut one = MemoryCap::new(64 * MIB, 256 * MIB, peak.clone());
        let mut other = MemoryCap::new(64 * MIB, 256 * MIB, peak.clone());
        assert!(one.memory_growing(0, 10 * MIB, None).expect("limiter"));
        assert!(one.memory_growing(0, 10 * MIB, None).expect("limiter"));
        assert!(other.memory_growing(0, 15 * MIB, None).expect("limiter"));
        assert_eq!(peak.load(Ordering::Relaxed), 20 * MIB);
    }
}
