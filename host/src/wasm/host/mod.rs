//! Host implementations of the capability interfaces, one module per WIT
//! interface. A failure the guest caused or may observe returns an
//! `error-code`; only a fault of the host traps (see [`HostError`]).

pub mod fs;
pub mod http;
pub mod http2;
pub mod log;
pub mod output;
pub mod process;
pub mod tcp;

#[cfg(test)]
mod fuzz_tests;

use std::time::Duration;

use super::bindings::ErrorCode;
use super::bindings::checker::vigil::health::types;
use super::store::HostState;

/// Why a capability call failed: an answer for the guest, or a fault of
/// the host that must trap the call instead of reaching the guest.
#[derive(Debug)]
pub enum HostError {
    /// Returned to the guest as its `error-code`.
    Guest(ErrorCode),
    /// A bug or broken invariant of the host; the call traps and the
    /// check is inconclusive (journaled with this error).
    Fault(wasmtime::Error),
}

impl HostError {
    /// A fault of the host: the call traps.
    pub(crate) fn fault(err: impl Into<wasmtime::Error>) -> HostError {
        HostError::Fault(err.into())
    }
}

impl From<ErrorCode> for HostError {
    fn from(code: ErrorCode) -> Self {
        HostError::Guest(code)
    }
}

impl types::Host for HostState {
    fn convert_error_code(&mut self, err: HostError) -> wasmtime::Result<ErrorCode> {
        match err {
            HostError::Guest(code) => Ok(code),
            HostError::Fault(fault) => Err(fault.context("fault of the vigil host")),
        }
    }
}

/// Runs blocking work (file system, /proc) on tokio's blocking pool within
/// the call's deadline, so a hung file system costs the guest a `timeout`
/// and never stalls an async worker. The work itself cannot be cancelled:
/// past the deadline it finishes, or hangs, on its blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ErrorCode> + Send + 'static,
) -> Result<T, HostError> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => Ok(result?),
        // The work panicked: a host bug, not something the guest did.
        Ok(Err(join)) => Err(HostError::fault(std::io::Error::other(join.to_string()))),
        Err(_) => Err(ErrorCode::Timeout.into()),
    }
}
