//! Diagnostic messages (`vigil:health/log`), attached to the check's result
//! and the journal. The host bounds the output: past its cap, lines are
//! dropped and counted.
//!
//! Use the functions, or the formatting macros [`crate::info!`] and
//! friends:
//!
//! ```no_run
//! vigil_sdk::log::info("probing");
//! vigil_sdk::warn!("slow reply: {} ms", 950);
//! ```

use crate::bindings::checker::vigil::health::log as raw;

pub use raw::Level;

/// Log `message` at `level`.
pub fn log(level: Level, message: &str) {
    raw::log(level, message)
}

/// Log at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Log at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Log at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// Log a formatted message at trace level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::trace(&::std::format!($($arg)+)) };
}

/// Log a formatted message at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::debug(&::std::format!($($arg)+)) };
}

/// Log a formatted message at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::info(&::std::format!($($arg)+)) };
}

/// Log a formatted message at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::warn(&::std::format!($($arg)+)) };
}

/// Log a formatted message at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::error(&::std::format!($($arg)+)) };
}
