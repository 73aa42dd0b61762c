//! Host implementations of the capability interfaces, one module per WIT
//! interface. Every failure returns an `error-code`; none traps.

pub mod fs;
pub mod http;
pub mod log;
pub mod process;
pub mod tcp;

use std::time::Duration;

use super::bindings::ErrorCode;
use super::bindings::checker::vigil::health::types;
use super::store::HostState;

impl types::Host for HostState {}

/// Runs blocking work (file system, /proc) on tokio's blocking pool within
/// the call's deadline, so a hung file system costs the guest a `timeout`
/// and never stalls an async worker. The work itself cannot be cancelled:
/// past the deadline it finishes, or hangs, on its blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    timeout: Duration,
    work: impl FnOnce() -> Result<T, ErrorCode> + Send + 'static,
) -> Result<T, ErrorCode> {
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ErrorCode::Io(join.to_string())),
        Err(_) => Err(ErrorCode::Timeout),
    }
}
