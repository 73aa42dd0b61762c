//! The sandboxed wasm runtime: loads check and loader components and runs
//! them against a service, deny-by-default.
//!
//! - [`engine`]: wasmtime configuration, pooling, epoch timer, loading.
//! - [`checker`] / [`loader`]: the two worlds of `vigil:health`.
//! - [`host`]: the capability interfaces, one module each.
//! - [`grants`]: what a service lets its checks reach.
//! - `warm`: idle instances of the bundled checks, reused across calls.

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
mod warm;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use bindings::Phase;
pub use cache::{CacheOutcome, default_cache_dir};
pub use checker::{CheckReport, Checker, Sandbox, Target, Verdict};
pub use compile::{Compiled, Progress, compile_all};
pub use engine::{Engine, EngineError, EngineOptions, EngineStats, OnCompile};
pub use grants::{GrantError, Grants};
pub use loader::{
    Action, CheckFailure, Command, Event, Exit, ExitStatus, History, Loader, LoaderError,
    SpawnContext,
};

/// Where a component comes from: embedded in the binary or a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckSource {
    /// `builtin:NAME`, one of [`builtins::names`].
    Builtin(String),
    File(PathBuf),
}

impl FromStr for CheckSource {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.strip_prefix("builtin:") {
            Some(name) => CheckSource::Builtin(name.to_owned()),
            None => CheckSource::File(PathBuf::from(text)),
        })
    }
}

impl fmt::Display for CheckSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckSource::Builtin(name) => write!(f, "builtin:{name}"),
            CheckSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

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
pub const WIT_VERSION: &str = "0.1.0";
