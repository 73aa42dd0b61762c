//! Durations and sizes in manifests and on the command line: the one
//! grammar of the `vigil-units` crate (shared with the guest SDK, so a
//! check's config and a manifest's `period` accept the same values), with
//! the host's bound on durations.

use std::time::Duration;

pub use vigil_units::{Error, format_duration, parse_size};

/// The longest duration a manifest or flag may give: a year (and a day).
/// Every deadline Vigil computes from one (`now + period`, a stop grace, a
/// restart delay) then stays far inside the clock's range, and a typo like
/// `"1000000h"` is an error instead of a timer that never fires.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// Parse a duration (`"500ms"`, `"1m30s"`, `"0"`, ...; see
/// [`vigil_units`]), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    vigil_units::parse_duration_at_most(text, MAX_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("5")
                .expect_err("no unit")
                .to_string()
                .contains("no unit")
        );
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_are_bounded_to_a_year() {
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("8784h"), Ok(MAX_DURATION));
        assert_eq!(
            parse_duration("8785h").map_err(|e| e.to_string()),
            Err("`8785h` is out of range: at most 366d".into())
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("100"), Ok(100));
        // `T` is a tebibyte now, as in the SDK; an unknown unit still fails.
        assert!(parse_size("1X").is_err());
    }
}
