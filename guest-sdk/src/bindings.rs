//! The bindings wit-bindgen generates from `wit/`, one module per world.
//!
//! Both worlds share one set of Rust types: the `loader` world maps the
//! `types` and `log` interfaces onto the `checker` world's modules with
//! `with:`, so an `Outcome` or a `log::Level` is the same type everywhere.
//! `pub_export_macro` makes the `export!` macros usable from the crates that
//! depend on the SDK (the `#[check]` and `#[loader]` attributes expand to
//! them); `runtime_path` points at the SDK's re-export of wit-bindgen's
//! runtime, so a check needs no `wit-bindgen` dependency of its own.

/// Bindings for `world checker`.
#[allow(clippy::all)]
pub mod checker {
    wit_bindgen::generate!({
        world: "checker",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_checker",
        default_bindings_module: "::vigil_sdk::__private::checker",
        runtime_path: "::vigil_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        generate_all,
    });
}

/// Bindings for `world loader`.
#[cfg(feature = "loader")]
#[allow(clippy::all)]
pub mod loader {
    wit_bindgen::generate!({
        world: "loader",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_loader",
        default_bindings_module: "::vigil_sdk::__private::loader",
        runtime_path: "::vigil_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, Eq],
        with: {
            "vigil:health/types@0.1.2": crate::bindings::checker::vigil::health::types,
            "vigil:health/log@0.1.2": crate::bindings::checker::vigil::health::log,
            "vigil:health/policy@0.1.2": generate,
        },
    });
}
