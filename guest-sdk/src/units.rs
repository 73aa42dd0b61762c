//! Durations and sizes as operators write them: `"500ms"`, `"1m30s"`,
//! `"0"`, `"64MiB"`, `"512k"`.
//!
//! The same grammar as Vigil's own manifests and command line (the
//! `vigil-units` crate, linked by both): a value a check accepts in
//! `[checks.*.config]` is one the host accepts in `period`, and the other
//! way round. Durations are one or more `<number><unit>` parts with units
//! `us`, `ms`, `s`, `m`, `h`, `d` (only `0` goes without); sizes are a
//! number with an optional unit, `k`/`KiB`, `M`/`MiB`, ... in powers of
//! 1024 and `kB`, `MB`, ... in powers of 1000.
//!
//! ```
//! use std::time::Duration;
//! use vigil_sdk::units::{format_duration, parse_duration, parse_size};
//!
//! assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
//! assert_eq!(parse_size("512k"), Ok(512 * 1024));
//! assert_eq!(format_duration(Duration::from_millis(12_500)), "12.5s");
//! assert!(parse_duration("5").unwrap_err().to_string().contains("no unit"));
//! ```

pub use vigil_units::{
    Error, Quantity, format_duration, format_size, parse_duration, parse_duration_at_most,
    parse_size,
};
