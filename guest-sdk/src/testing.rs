//! Helpers for unit-testing checks natively with `cargo test`.
//!
//! The capability functions only work inside Vigil (natively they panic),
//! but everything else in a check, config parsing above all, can be
//! tested as plain Rust:
//!
//! ```
//! use vigil_sdk::{Outcome, Target};
//!
//! fn my_check(target: Target) -> Outcome {
//!     match target.config("mode") {
//!         Some("strict") => Outcome::retry("not yet"),
//!         _ => Outcome::Ok,
//!     }
//! }
//!
//! let target = vigil_sdk::testing::target_with(&[("mode", "strict")]);
//! assert_eq!(my_check(target), Outcome::retry("not yet"));
//! ```

use crate::{Outcome, Phase, Target};

/// A target for service `test`, phase liveness, pid 1, attempt 1, no
/// config.
pub fn target() -> Target {
    Target {
        service: "test".into(),
        phase: Phase::Liveness,
        pid: Some(1),
        started_at_ms: 0,
        attempt: 1,
        restarts: 0,
        config: Vec::new(),
    }
}

/// [`target`] with these settings.
pub fn target_with(config: &[(&str, &str)]) -> Target {
    Target {
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..target()
    }
}

/// The reason of the `error` that a settings parser gives for `config`:
/// what a check's tests look at for bad settings (the message names the
/// key). Panics when `parse` accepts `config` or answers other than
/// `error`: a bad setting is something waiting cannot fix.
///
/// ```
/// use vigil_sdk::{Outcome, Target};
/// use vigil_sdk::testing::config_error;
///
/// fn port(target: &Target) -> Result<u16, Outcome> {
///     match target.config("port").map(str::parse) {
///         Some(Ok(port)) => Ok(port),
///         _ => Err(Outcome::error("`port` must be a number")),
///     }
/// }
///
/// assert!(config_error(port, &[("port", "x")]).contains("`port`"));
/// ```
pub fn config_error<T>(
    parse: impl FnOnce(&Target) -> Result<T, Outcome>,
    config: &[(&str, &str)],
) -> String {
    match parse(&target_with(config)) {
        Err(Outcome::Error(message)) => message,
        Err(other) => panic!("{config:?}: expected an error, got {other:?}"),
        Ok(_) => panic!("{config:?} was accepted"),
    }
}
