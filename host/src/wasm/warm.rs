//! Idle instances of the bundled checks, kept for the next call.
//!
//! A check from a file gets a fresh instance per call: it is third-party
//! code, and nothing it leaves in its memory may reach the next call. The
//! bundled checks (`builtin:*`) are compiled from this repository, keep no
//! state between calls (no statics in them or in vigil-sdk), and are by far
//! the most frequent: a thousand services with a 1 s `builtin:tcp` check
//! make a thousand calls a second. For them, creating, instantiating and
//! dropping a store was a third of Vigil's CPU, so a finished instance is
//! parked here and the next call of the same builtin, for any service,
//! takes it with that call's capabilities, deadline and memory cap swapped
//! in. Only an instance that finished cleanly comes back: a trap, a
//! timeout, a hit memory cap or a resource left open drops it.

use std::sync::{Mutex, PoisonError};

use wasmtime::Store;

use super::bindings;
use super::output::BoundedOutput;
use super::store::HostState;

/// Idle instances kept per builtin. Checks rarely overlap (a builtin call
/// takes well under a millisecond), so a few cover a thousand services;
/// each holds a pool slot and its touched memory (~100 KiB).
const MAX_IDLE: usize = 8;

/// A finished instance with its store and captured output.
pub(crate) struct WarmInstance {
    pub store: Store<HostState>,
    pub instance: bindings::checker::Checker,
    pub output: BoundedOutput,
}

/// The idle instances of one builtin, shared by every service naming it.
#[derive(Default)]
pub(crate) struct WarmInstances {
    idle: Mutex<Vec<WarmInstance>>,
}

impl WarmInstances {
    /// An idle instance whose memories and tables fit under `memory_limit`
    /// (a service with a lower cap than the one that grew it must not
    /// inherit it).
    pub fn take(&self, memory_limit: usize) -> Option<WarmInstance> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let index = idle
            .iter()
            .rposition(|warm| warm.store.data().limits.used() <= memory_limit)?;
        Some(idle.swap_remove(index))
    }

    /// Parks an instance after a call that returned an outcome, unless it
    /// may carry anything into the next call.
    pub fn put(&self, warm: WarmInstance) {
        let data = warm.store.data();
        if data.limits.hit || !data.table.is_empty() || data.caps.open_connections != 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(warm);
        }
    }
}
