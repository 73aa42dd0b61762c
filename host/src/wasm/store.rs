//! The per-call store data: WASI context (deny-all), limits and the
//! capabilities one check call may use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Grants;
use super::host::log::LogBuffer;
use super::limits::MemoryCap;

/// Largest body, read or TCP chunk handed to a guest in one call.
pub(crate) const MAX_TRANSFER: usize = 1024 * 1024;

/// Data of one `Store`: lives exactly as long as one check or loader call.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: MemoryCap,
    pub caps: Capabilities,
}

/// What the guest may reach during this call.
pub(crate) struct Capabilities {
    pub grants: Arc<Grants>,
    pub base_dir: Option<std::path::PathBuf>,
    pub http: Option<super::checker::LazyHttpClient>,
    pub target_pid: Option<u32>,
    pub deadline: Instant,
    pub log: LogBuffer,
    /// The judged service's recent output, when there is a service
    /// (readable only if the grants say `output`).
    pub output: Option<Arc<super::host::output::OutputRing>>,
    pub open_connections: usize,
}

impl Capabilities {
    /// A capability call's deadline: what the guest asked for, never past
    /// the deadline of the whole check.
    pub fn call_timeout(&self, requested_ms: Option<u32>) -> Duration {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match requested_ms {
            Some(ms) => remaining.min(Duration::from_millis(u64::from(ms))),
            None => remaining,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
