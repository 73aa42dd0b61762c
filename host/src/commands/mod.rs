//! One module per subcommand; each returns the process exit code.

pub mod check;
pub mod daemonize;
pub mod inspect;
pub mod run;
pub mod validate;

/// Exit code for bad usage or a component that cannot be loaded.
pub const EXIT_USAGE: i32 = 2;
