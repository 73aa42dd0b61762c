//! Every `bindgen!` of the host in one place.
//!
//! Capability imports are async and non-trappable: a denied or failed probe
//! reaches the guest as an `error-code`, never as a trap. The loader world
//! reuses the checker world's `types` and `log` bindings so one host
//! implementation serves both.

/// Bindings for the `checker` world and the capability interfaces.
pub mod checker {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "checker",
        imports: { default: async },
        exports: { default: async },
        with: {
            "vigil:health/tcp.connection": crate::wasm::host::tcp::Connection,
        },
    });
}

/// Bindings for the `loader` world.
pub mod loader {
    wasmtime::component::bindgen!({
        path: "../wit",
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
