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
            "vigil:health/tcp": async | trappable,
            "vigil:health/fs": async | trappable,
            "vigil:health/process": async | trappable,
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

pub use checker::vigil::health::types::{ErrorCode, Outcome, Phase, Target};
