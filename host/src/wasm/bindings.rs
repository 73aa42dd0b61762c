//! Every `bindgen!` of the host in one place.
//!
//! Capability imports are async. Those that can fail return
//! [`HostError`](crate::wasm::host::HostError) (wasmtime's trappable error
//! type): what the guest caused or may observe (a denied grant, a refused
//! connection, a timeout) reaches it as an `error-code`, while a fault of
//! the host itself (a resource missing from its own table, a panicked
//! blocking task) traps the call, so a host bug is never mistaken for an
//! answer. The loader world reuses the checker world's `types` and `log`
//! bindings so one host implementation serves both.

/// Bindings for the `checker` world and the capability interfaces.
pub mod checker {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "checker",
        imports: {
            "vigil:health/http": async | trappable,
            "vigil:health/http2": async | trappable,
            "vigil:health/tcp": async | trappable,
            "vigil:health/fs": async | trappable,
            "vigil:health/process": async | trappable,
            "vigil:health/output": async | trappable,
            default: async,
        },
        trappable_error_type: {
            "vigil:health/types.error-code" => crate::wasm::host::HostError,
        },
        exports: { default: async },
        with: {
            "vigil:health/tcp.connection": crate::wasm::host::tcp::Connection,
        },
    });
}

/// Bindings for the `loader` world.
pub mod loader {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "loader",
        imports: { default: async },
        exports: { default: async },
        with: {
            "vigil:health/types": crate::wasm::bindings::checker::vigil::health::types,
            "vigil:health/log": crate::wasm::bindings::checker::vigil::health::log,
        },
    });
}

/// Bindings for the `replace-loader` world (new in 0.1.2): the `loader`
/// world plus the `replace-policy` export. Only its export is new: its
/// imports and the policy types are the `loader` world's, so a loader of
/// either world links to the same linker, and one built for `loader` is
/// simply not asked about replaces.
pub mod replace_loader {
    wasmtime::component::bindgen!({
        path: "../guest-sdk/wit",
        world: "replace-loader",
        imports: { default: async },
        exports: { default: async },
        with: {
            "vigil:health/types": crate::wasm::bindings::checker::vigil::health::types,
            "vigil:health/log": crate::wasm::bindings::checker::vigil::health::log,
            "vigil:health/policy": crate::wasm::bindings::loader::vigil::health::policy,
        },
    });
}

pub use checker::vigil::health::types::{ErrorCode, Outcome, Phase, Target};
pub use loader::vigil::health::policy::ExitStatus;

// The one boundary between the host's vocabulary (`super::vocab`) and the
// WIT-generated twins of its types: everything else speaks the host's.

impl From<super::Phase> for Phase {
    fn from(phase: super::Phase) -> Self {
        match phase {
            super::Phase::Startup => Phase::Startup,
            super::Phase::Readiness => Phase::Readiness,
            super::Phase::Liveness => Phase::Liveness,
        }
    }
}

impl From<super::ExitStatus> for ExitStatus {
    fn from(status: super::ExitStatus) -> Self {
        match status {
            super::ExitStatus::Code(code) => ExitStatus::Code(code),
            super::ExitStatus::Signal(signal) => ExitStatus::Signal(signal),
        }
    }
}

impl From<Outcome> for super::Verdict {
    /// The guest's verdict, its reason cut to
    /// [`MAX_REASON`](super::checker::MAX_REASON).
    fn from(outcome: Outcome) -> Self {
        use super::checker::bounded;
        match outcome {
            Outcome::Ok => super::Verdict::Ok,
            Outcome::Retry(reason) => super::Verdict::Retry(bounded(reason)),
            Outcome::Error(reason) => super::Verdict::Error(bounded(reason)),
        }
    }
}

impl From<&super::Verdict> for Outcome {
    /// A verdict as a loader sees it in `check-failed`: a trap or a
    /// timeout is a `retry` (inconclusive), with its reason.
    fn from(verdict: &super::Verdict) -> Self {
        match verdict {
            super::Verdict::Ok => Outcome::Ok,
            super::Verdict::Error(reason) => Outcome::Error(reason.clone()),
            other => Outcome::Retry(other.reason().unwrap_or_default().to_owned()),
        }
    }
}
