//! The one grammar of durations and sizes in Vigil. Manifests
//! (`period = "1m30s"`, `memory = "64MiB"`), the command line
//! (`--timeout 2s`) and check configs read through the guest SDK
//! (`max-age = "0"`, `min-size = "4k"`) all parse with these functions, so
//! a value means the same thing wherever an operator writes it.
//!
//! `no_std` (with `alloc`) and without dependencies: the host and every
//! Rust guest (wasm32-wasip2) link this same code.
//!
//! # Durations
//!
//! ```text
//! duration = "0" | part { [spaces] part }
//! part     = number [spaces] unit
//! number   = digits [ "." [digits] ] | "." digits
//! unit     = "us" | "µs"                   microseconds
//!          | "ms"                          milliseconds
//!          | "s" | "sec" | "secs"          seconds
//!          | "m" | "min" | "mins"          minutes
//!          | "h" | "hr" | "hrs"            hours
//!          | "d"                           days (24 h)
//! ```
//!
//! Parts add up (`"1m30s"`, `"1h 30m"`), fractions are exact (`"1.5s"`,
//! `"0.1s"` is 100 ms, rounded to the nanosecond). Only `"0"` goes without
//! a unit: `"5"` alone could mean seconds or milliseconds. Whitespace
//! around the value is ignored.
//!
//! # Sizes
//!
//! ```text
//! size = number [spaces] [unit]
//! unit = "B" | "b"                                    bytes (as is no unit)
//!      | "k" | "K" | "Ki" | "KiB" | "kiB"            1024
//!      | "m" | "M" | "Mi" | "MiB"                     1024²
//!      | "g" | "G" | "Gi" | "GiB"                     1024³
//!      | "t" | "T" | "Ti" | "TiB"                     1024⁴
//!      | "kB" | "KB" | "MB" | "GB" | "TB"             powers of 1000
//! ```
//!
//! Single letters are powers of 1024, as in systemd; a fraction is rounded
//! to the nearest byte (`"0.5k"` is 512).
//!
//! ```
//! use std::time::Duration;
//! use vigil_units::{parse_duration, parse_size};
//!
//! assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
//! assert_eq!(parse_size("512k"), Ok(512 * 1024));
//! assert_eq!(parse_size("10MB"), Ok(10_000_000));
//! assert_eq!(
//!     parse_duration("5").unwrap_err().to_string(),
//!     "`5` has no unit: add one of us, ms, s, m, h, d, like `5s`; only 0 goes without",
//! );
//! ```

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;
use core::time::Duration;

/// Nanoseconds in each duration unit.
const DURATION_UNITS: &[(&[&str], u128)] = &[
    (&["us", "µs"], 1_000),
    (&["ms"], 1_000_000),
    (&["s", "sec", "secs"], NANOS_PER_SEC),
    (&["m", "min", "mins"], 60 * NANOS_PER_SEC),
    (&["h", "hr", "hrs"], 3_600 * NANOS_PER_SEC),
    (&["d"], 86_400 * NANOS_PER_SEC),
];

/// Bytes in each size unit.
const SIZE_UNITS: &[(&[&str], u128)] = &[
    (&["", "B", "b"], 1),
    (&["k", "K", "Ki", "KiB", "kiB"], 1 << 10),
    (&["m", "M", "Mi", "MiB"], 1 << 20),
    (&["g", "G", "Gi", "GiB"], 1 << 30),
    (&["t", "T", "Ti", "TiB"], 1 << 40),
    (&["kB", "KB"], 1_000),
    (&["MB"], 1_000_000),
    (&["GB"], 1_000_000_000),
    (&["TB"], 1_000_000_000_000),
];

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Fraction digits that count. Past 18, a digit is worth less than a
/// nanosecond of a day or a byte of a tebibyte; later ones are ignored.
const FRACTION_DIGITS: u32 = 18;

/// What was being parsed, so that a message names the right grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Duration,
    Size,
}

impl Quantity {
    fn name(self) -> &'static str {
        match self {
            Quantity::Duration => "duration",
            Quantity::Size => "size",
        }
    }

    /// The accepted forms, completing "expected ...".
    fn forms(self) -> &'static str {
        match self {
            Quantity::Duration => "a number with a unit, like 500ms, 1.5s or 1m30s",
            Quantity::Size => "a number with an optional unit, like 4096, 512k, 64MiB or 10MB",
        }
    }
}

/// Why a duration or size does not parse. Every message names the forms
/// that would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Nothing, or only whitespace.
    Empty(Quantity),
    /// Something other than a number where one must start (`"ms"`,
    /// `"-1s"`, `"lots"`).
    ExpectedNumber { quantity: Quantity, at: String },
    /// Digits and dots that make no number (`"1..5s"`).
    BadNumber { quantity: Quantity, number: String },
    /// A duration's number without its unit (`"5"`, `"1m30"`).
    MissingUnit { number: String },
    /// A unit outside the grammar (`"5x"`, `"3 parsecs"`, `"1 bananas"`).
    UnknownUnit { quantity: Quantity, unit: String },
    /// Past what a `Duration` or a `u64` holds, or past `max`, the
    /// caller's bound (see [`parse_duration_at_most`]).
    OutOfRange {
        quantity: Quantity,
        text: String,
        max: Option<Duration>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty(quantity) => {
                write!(
                    f,
                    "empty {}: expected {}",
                    quantity.name(),
                    quantity.forms()
                )
            }
            Error::ExpectedNumber { quantity, at } => {
                write!(
                    f,
                    "expected a number at `{at}`: a {} is {}",
                    quantity.name(),
                    quantity.forms()
                )
            }
            Error::BadNumber { number, .. } => write!(f, "`{number}` is not a number"),
            Error::MissingUnit { number } => write!(
                f,
                "`{number}` has no unit: add one of us, ms, s, m, h, d, like `{number}s`; \
                 only 0 goes without"
            ),
            Error::UnknownUnit {
                quantity: Quantity::Duration,
                unit,
            } => write!(
                f,
                "unknown unit `{unit}`: durations use us, ms, s, m, h or d"
            ),
            Error::UnknownUnit {
                quantity: Quantity::Size,
                unit,
            } => write!(
                f,
                "unknown unit `{unit}`: sizes use B; k, M, G, T or KiB, MiB, GiB, TiB \
                 for powers of 1024; kB, MB, GB, TB for powers of 1000"
            ),
            Error::OutOfRange { text, max, .. } => {
                write!(f, "`{text}` is out of range")?;
                match max {
                    Some(max) => write!(f, ": at most {}", format_limit(*max)),
                    None => Ok(()),
                }
            }
        }
    }
}

impl core::error::Error for Error {}

/// Parse a duration (see the [grammar](crate#durations)).
///
/// ```
/// use std::time::Duration;
/// use vigil_units::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1h 2m"), Ok(Duration::from_secs(3720)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    const Q: Quantity = Quantity::Duration;
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Empty(Q));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let out_of_range = || Error::OutOfRange {
        quantity: Q,
        text: text.to_string(),
        max: None,
    };
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = leading_number(Q, rest)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit = unit.trim();
        if unit.is_empty() {
            return Err(Error::MissingUnit {
                number: number.text.to_string(),
            });
        }
        let scale = lookup(DURATION_UNITS, unit).ok_or_else(|| Error::UnknownUnit {
            quantity: Q,
            unit: unit.to_string(),
        })?;
        nanos = number
            .times(scale)
            .and_then(|part| nanos.checked_add(part))
            .ok_or_else(out_of_range)?;
        rest = after;
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| out_of_range())?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, subsec))
}

/// [`parse_duration`], refusing anything longer than `max` with
/// [`Error::OutOfRange`] (the host bounds manifest durations so that every
/// deadline stays far inside its clock's range).
///
/// ```
/// use std::time::Duration;
/// use vigil_units::parse_duration_at_most;
///
/// let day = Duration::from_secs(86_400);
/// assert_eq!(parse_duration_at_most("24h", day), Ok(day));
/// assert_eq!(
///     parse_duration_at_most("25h", day).unwrap_err().to_string(),
///     "`25h` is out of range: at most 1d",
/// );
/// ```
pub fn parse_duration_at_most(text: &str, max: Duration) -> Result<Duration, Error> {
    let duration = parse_duration(text)?;
    if duration > max {
        return Err(Error::OutOfRange {
            quantity: Quantity::Duration,
            text: text.trim().to_string(),
            max: Some(max),
        });
    }
    Ok(duration)
}

/// Parse a size in bytes (see the [grammar](crate#sizes)).
///
/// ```
/// use vigil_units::parse_size;
///
/// assert_eq!(parse_size("64MiB"), Ok(64 * 1024 * 1024));
/// assert_eq!(parse_size("1.5G"), Ok(1536 * 1024 * 1024));
/// assert_eq!(parse_size("1kB"), Ok(1000));
/// assert_eq!(parse_size("100"), Ok(100));
/// ```
pub fn parse_size(text: &str) -> Result<u64, Error> {
    const Q: Quantity = Quantity::Size;
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Empty(Q));
    }
    let (number, unit) = leading_number(Q, text)?;
    let unit = unit.trim();
    let scale = lookup(SIZE_UNITS, unit).ok_or_else(|| Error::UnknownUnit {
        quantity: Q,
        unit: unit.to_string(),
    })?;
    number
        .times(scale)
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or_else(|| Error::OutOfRange {
            quantity: Q,
            text: text.to_string(),
            max: None,
        })
}

/// Format a duration for a message: `"750ms"`, `"12.5s"`, `"3m20s"`,
/// `"2h5m"`.
///
/// ```
/// use std::time::Duration;
/// use vigil_units::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(750)), "750ms");
/// assert_eq!(format_duration(Duration::from_millis(12_500)), "12.5s");
/// assert_eq!(format_duration(Duration::from_secs(200)), "3m20s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let tenths = ms / 100;
        return if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        };
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        (_, _) if m == 0 => format!("{h}h"),
        _ => format!("{h}h{m}m"),
    }
}

/// Format a byte count for a message, in powers of 1024: `"512B"`,
/// `"1.5KiB"`, `"64.0MiB"`.
///
/// ```
/// use vigil_units::format_size;
///
/// assert_eq!(format_size(512), "512B");
/// assert_eq!(format_size(64 * 1024 * 1024), "64.0MiB");
/// ```
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// A bound for a message: whole days as days (`"366d"`), else as
/// [`format_duration`] writes it.
fn format_limit(max: Duration) -> String {
    let secs = max.as_secs();
    if max.subsec_nanos() == 0 && secs >= 86_400 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else {
        format_duration(max)
    }
}

/// A decimal number as written: `whole.fraction`, the fraction's first
/// [`FRACTION_DIGITS`] digits kept as an integer over `10^digits`.
struct Number<'a> {
    text: &'a str,
    whole: u128,
    fraction: u128,
    digits: u32,
}

impl Number<'_> {
    /// `self × scale`, rounded to the nearest whole; `None` past `u128`.
    fn times(&self, scale: u128) -> Option<u128> {
        let whole = self.whole.checked_mul(scale)?;
        let denominator = 10u128.pow(self.digits);
        // fraction < 10^18 and scale ≤ 8.64 × 10^13 (nanoseconds a day):
        // the product stays below 10^32, far inside u128.
        let part = (self.fraction * scale + denominator / 2) / denominator;
        whole.checked_add(part)
    }
}

/// The number `text` starts with, and what follows it.
fn leading_number(quantity: Quantity, text: &str) -> Result<(Number<'_>, &str), Error> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(end);
    if number.is_empty() {
        return Err(Error::ExpectedNumber {
            quantity,
            at: text.to_string(),
        });
    }
    let bad = || Error::BadNumber {
        quantity,
        number: number.to_string(),
    };
    let (whole_digits, fraction_digits) = number.split_once('.').unwrap_or((number, ""));
    if fraction_digits.contains('.') || (whole_digits.is_empty() && fraction_digits.is_empty()) {
        return Err(bad());
    }
    let mut whole: u128 = 0;
    for digit in whole_digits.bytes() {
        whole = whole
            .checked_mul(10)
            .and_then(|w| w.checked_add(u128::from(digit - b'0')))
            .ok_or_else(|| Error::OutOfRange {
                quantity,
                text: number.to_string(),
                max: None,
            })?;
    }
    let mut fraction: u128 = 0;
    let mut digits = 0;
    for digit in fraction_digits.bytes().take(FRACTION_DIGITS as usize) {
        fraction = fraction * 10 + u128::from(digit - b'0');
        digits += 1;
    }
    Ok((
        Number {
            text: number,
            whole,
            fraction,
            digits,
        },
        rest,
    ))
}

fn lookup(table: &[(&[&str], u128)], unit: &str) -> Option<u128> {
    table
        .iter()
        .find(|(names, _)| names.contains(&unit))
        .map(|(_, scale)| *scale)
}

#[cfg(test)]
mod tests;
