//! Host implementations of the capability interfaces, one module per WIT
//! interface. Every failure returns an `error-code`; none traps.

pub mod fs;
pub mod http;
pub mod log;
pub mod process;
pub mod tcp;

use super::bindings::checker::vigil::health::types;
use super::store::HostState;

impl types::Host for HostState {}
