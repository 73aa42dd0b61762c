//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod control;
pub mod daemonize;
pub mod inspect;
pub mod instance;
pub mod journal;
pub mod run;
pub mod start_stop;
pub mod status;
pub mod validate;

/// Exit code for bad usage or a component that cannot be loaded.
pub const EXIT_USAGE: i32 = 2;
