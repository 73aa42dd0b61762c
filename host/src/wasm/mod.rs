//! The sandboxed wasm runtime: loads check and loader components and runs
//! them against a service, deny-by-default.
//!
//! - [`engine`]: wasmtime configuration, pooling, epoch timer, loading.
//! - [`checker`] / [`loader`]: the two worlds of `vigil:health`.
//! - [`host`]: the capability interfaces, one module each.
//! - [`grants`]: what a service lets its checks reach.
//! - `warm`: idle instances of the bundled checks, reused across calls.
//! - `vocab`: [`CheckSource`], [`Phase`], [`Verdict`], [`ExitStatus`], the
//!   words the rest of Vigil shares with checks and loaders.

pub mod bindings;
pub mod builtins;
mod cache;
mod checker;
mod compile;
pub mod embedded;
mod engine;
mod epoch;
pub mod grants;
pub mod host;
pub mod inspect;
mod limits;
mod loader;
mod output;
pub(crate) mod store;
mod vocab;
mod warm;
mod wasi_link;

pub use cache::{CacheOutcome, default_cache_dir};
pub use checker::{CheckReport, Checker, Sandbox, Target};
pub use compile::{Compiled, Progress, compile_all};
pub use engine::{Engine, EngineError, EngineOptions, EngineStats, OnCompile};
pub use grants::{GrantError, Grants};
pub use loader::{
    Action, CheckFailure, Command, Event, Exit, History, Loader, LoaderError, ReplaceChildren,
    ReplaceDecision, ReplaceEvent as LoaderReplaceEvent, ReplaceFailure, ReplaceRequest,
    SpawnContext,
};
pub use vocab::{CheckSource, ExitStatus, Phase, Verdict};

/// Why a component could not be loaded. Each message names the source and
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{check}: no such file")]
    NotFound { check: CheckSource },
    #[error("{check}: cannot read: {error}")]
    Read {
        check: CheckSource,
        error: std::io::Error,
    },
    #[error("unknown builtin `{name}` (available: {})", builtins::names().iter().map(|n| format!("builtin:{n}")).collect::<Vec<_>>().join(", "))]
    UnknownBuiltin { name: String },
    #[error("{check}: not a WebAssembly file (it does not start with the \\0asm magic)")]
    NotWasm { check: CheckSource },
    #[error(
        "{check}: is a core WebAssembly module, not a component. Build it for the wasm32-wasip2 target, or wrap it: `wasm-tools component new {check} --adapt wasi_snapshot_preview1.reactor.wasm -o check.wasm`"
    )]
    CoreModule { check: CheckSource },
    #[error("{check}: invalid or truncated component: {message}")]
    Invalid { check: CheckSource, message: String },
    #[error("{check}: {message}")]
    WrongWorld { check: CheckSource, message: String },
    #[error("{check}: not in the component cache, and this engine does not compile")]
    NotCompiled { check: CheckSource },
    #[error("{error}")]
    Embedded {
        check: CheckSource,
        error: embedded::elf::BinaryError,
    },
}

/// The `vigil:health` version this host implements.
pub const WIT_VERSION: &str = "0.1.2";

/// Whether a component that names `vigil:health@version` in its imports
/// can link to this host: the same `0.MINOR` (semver for 0.x: a patch
/// release only adds) and no newer patch than [`WIT_VERSION`]. wasmtime's
/// linker does the actual matching (a `@0.1.0` import finds the host's
/// `@0.1.1` definition); this answers the question for error messages and
/// `vigil inspect`. See docs/contract-versions.md.
pub fn contract_compatible(version: &str) -> bool {
    fn parts(version: &str) -> Option<(u64, u64, u64)> {
        let mut it = version.split('.').map(|p| p.parse::<u64>().ok());
        let parsed = (it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(parsed)
    }
    match (parts(version), parts(WIT_VERSION)) {
        (Some((0, minor, patch)), Some((0, host_minor, host_patch))) => {
            minor == host_minor && patch <= host_patch
        }
        (Some((major, minor, _)), Some((host_major, host_minor, _))) if major != 0 => {
            major == host_major && minor <= host_minor
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::contract_compatible;

    #[test]
    fn older_patches_of_the_contract_are_compatible() {
        assert!(contract_compatible("0.1.0"));
        assert!(contract_compatible(super::WIT_VERSION));
        assert!(!contract_compatible("0.1.99"), "newer than the host");
        assert!(!contract_compatible("0.2.0"));
        assert!(!contract_compatible("0.0.9"));
        assert!(!contract_compatible("1.0.0"));
        assert!(!contract_compatible("0.1"));
        assert!(!contract_compatible("0.1.0-rc1"));
        assert!(!contract_compatible(""));
    }
}
