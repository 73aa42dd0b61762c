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

use crate::{Phase, Target};

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
