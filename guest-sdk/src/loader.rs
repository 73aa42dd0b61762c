//! Loaders: the command to run for a service and its restart policy
//! (`world loader`).
//!
//! Needs the crate's `loader` feature:
//! `vigil-sdk = { ..., features = ["loader"] }`.
//!
//! A loader is a pure function of its inputs: the host keeps all state and
//! may reload the loader at any time. Implement [`Loader`] and put
//! [`#[vigil_sdk::loader]`](macro@crate::loader) on the impl. The settings
//! from `[loader.config]` are read with the same accessors as a check's
//! (`ctx.config("key")`, `history.parse_or(...)`, ...).
//!
//! ```
//! use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};
//!
//! struct Policy;
//!
//! #[vigil_sdk::loader]
//! impl Loader for Policy {
//!     fn spawn(ctx: SpawnContext) -> Result<Command, String> {
//!         let port = ctx.config("port").unwrap_or("8080");
//!         Ok(Command::new(["my-server", "--port", port]).env("RUST_LOG", "info"))
//!     }
//!
//!     fn decide(event: Event, history: History) -> Action {
//!         match event {
//!             Event::Exited(_) if history.restarts >= 10 => Action::Stop("gave up".into()),
//!             Event::Exited(_) => Action::Restart(1_000),
//!             _ => Action::None,
//!         }
//!     }
//! }
//! # fn main() {}
//! ```

pub use crate::bindings::loader::vigil::health::policy::{
    Action, CheckFailure, Command, Event, Exit, ExitStatus, History, SpawnContext,
};

/// A service's command and restart policy. See the [module docs](self).
pub trait Loader {
    /// The command to run for the service; `Err` is a spawn error with a
    /// reason for the journal.
    fn spawn(ctx: SpawnContext) -> Result<Command, String>;

    /// What to do about an event in the service's life.
    fn decide(event: Event, history: History) -> Action;
}

impl Command {
    /// A command with this argv (argv\[0\] is looked up in PATH when it has
    /// no slash), no extra environment and the service's default cwd.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Add an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Set the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
}
