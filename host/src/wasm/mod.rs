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

pub use cache::{CacheOutcome, default_cache_dir};
pub use checker::{CheckReport, Checker, Sandbox, Target};
pub use compile::{Compiled, Progress, compile_all};
pub use engine::{Engine, EngineError, EngineOptions, EngineStats, OnCompile};
pub use grants::{GrantError, Grants};
pub use loader::{
    Action, CheckFailure, Command, Event, Exit, History, Loader, LoaderError, SpawnContext,
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
}

/// The `vigil:health` version this host implements.
pub const WIT_VERSION: &str = "0.1.1";
