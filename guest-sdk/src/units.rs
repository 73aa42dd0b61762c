//! Durations and sizes as operators write them: `"500ms"`, `"30s"`,
//! `"1m30s"`, `"64MiB"`, `"512k"`.

use std::time::Duration;

/// Parse a duration: one or more `<number><unit>` parts, units `ms`, `s`,
/// `m`, `h` (and `us`). Fractions are allowed (`"1.5s"`), parts add up
/// (`"1m30s"`). A bare number is rejected, because `"5"` could mean
/// seconds or milliseconds.
///
/// ```
/// use std::time::Duration;
/// use vigil_sdk::units::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = split_number(rest);
        if number.is_empty() {
            return Err(format!("expected a number at `{rest}`"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit.trim() {
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "" => return Err(format!("`{number}` needs a unit: ms, s, m or h")),
            other => return Err(format!("unknown unit `{other}` (use ms, s, m or h)")),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{number}` is not a number"))?;
        let part = Duration::try_from_secs_f64(value * scale)
            .map_err(|_| format!("`{number}{unit}` is out of range"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "duration is out of range".to_string())?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Parse a size in bytes: a number with an optional unit. `k`, `M`, `G`,
/// `T` and `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024 (as in systemd);
/// `kB`/`KB`, `MB`, `GB`, `TB` are powers of 1000; `B` or no unit is bytes.
///
/// ```
/// use vigil_sdk::units::parse_size;
///
/// assert_eq!(parse_size("64MiB"), Ok(64 * 1024 * 1024));
/// assert_eq!(parse_size("512k"), Ok(512 * 1024));
/// assert_eq!(parse_size("1.5G"), Ok(1536 * 1024 * 1024));
/// assert_eq!(parse_size("10MB"), Ok(10_000_000));
/// assert_eq!(parse_size("100"), Ok(100));
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(if text.is_empty() {
            "empty size".into()
        } else {
            format!("expected a number at `{text}`")
        });
    }
    let scale: u64 = match unit.trim() {
        "" | "b" | "B" => 1,
        "k" | "K" | "KiB" | "kiB" | "Ki" => 1 << 10,
        "m" | "M" | "MiB" | "Mi" => 1 << 20,
        "g" | "G" | "GiB" | "Gi" => 1 << 30,
        "t" | "T" | "TiB" | "Ti" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown unit `{other}` (use k, M, G, KiB, MiB, GiB, kB, MB, GB)"
            ));
        }
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(scale)
            .ok_or_else(|| format!("`{text}` is too large"));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let bytes = (value * scale as f64).round();
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{text}` is too large"));
    }
    Ok(bytes as u64)
}

/// Format a duration for a message: `"750ms"`, `"12.5s"`, `"3m20s"`,
/// `"2h5m"`.
///
/// ```
/// use std::time::Duration;
/// use vigil_sdk::units::format_duration;
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
/// use vigil_sdk::units::format_size;
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

/// Split `"12.5ms"` into `("12.5", "ms")`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 30s "), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 2m"), Ok(Duration::from_secs(3720)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("1..5s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1kB"), Ok(1000));
        assert_eq!(parse_size("0.5k"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12 bananas").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("-5").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(7500)), "2h5m");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_size(1536), "1.5KiB");
        assert_eq!(format_size(u64::MAX), "16384.0PiB");
    }
}
