//! The grammar, form by form: every form the host's and the SDK's
//! parsers accepted before they were merged still parses to the same value.

extern crate std;

use alloc::string::ToString;
use core::time::Duration;

use super::*;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn message(result: Result<impl fmt::Debug, Error>) -> String {
    result.expect_err("must not parse").to_string()
}

#[test]
fn durations_single_part() {
    assert_eq!(parse_duration("500ms"), Ok(ms(500)));
    assert_eq!(parse_duration("3s"), Ok(secs(3)));
    assert_eq!(parse_duration("2m"), Ok(secs(120)));
    assert_eq!(parse_duration("2min"), Ok(secs(120)));
    assert_eq!(parse_duration("2 mins"), Ok(secs(120)));
    assert_eq!(parse_duration("1h"), Ok(secs(3600)));
    assert_eq!(parse_duration("2hr"), Ok(secs(7200)));
    assert_eq!(parse_duration("2hrs"), Ok(secs(7200)));
    assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
    assert_eq!(parse_duration("30sec"), Ok(secs(30)));
    assert_eq!(parse_duration("30secs"), Ok(secs(30)));
    assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration(" 30s "), Ok(secs(30)));
    assert_eq!(parse_duration("3 s"), Ok(secs(3)));
}

#[test]
fn durations_fractions_are_exact() {
    assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
    assert_eq!(parse_duration("0.1s"), Ok(ms(100)));
    assert_eq!(parse_duration(".5s"), Ok(ms(500)));
    assert_eq!(parse_duration("5.s"), Ok(secs(5)));
    assert_eq!(parse_duration("1.5m"), Ok(secs(90)));
    assert_eq!(parse_duration("0.0000000005s"), Ok(Duration::from_nanos(1)));
    assert_eq!(parse_duration("0.0000000004s"), Ok(Duration::ZERO));
    // Digits past the 18th are ignored, not an error.
    assert_eq!(parse_duration("1.0000000000000000000001s"), Ok(secs(1)));
}

#[test]
fn durations_compound_parts_add_up() {
    assert_eq!(parse_duration("1m30s"), Ok(secs(90)));
    assert_eq!(parse_duration("1h 2m"), Ok(secs(3720)));
    assert_eq!(parse_duration("1h30m15s500ms"), Ok(ms(5_415_500)));
    assert_eq!(parse_duration("1d12h"), Ok(secs(129_600)));
    assert_eq!(parse_duration("30s1m"), Ok(secs(90)));
}

#[test]
fn zero_alone_needs_no_unit() {
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    assert!(message(parse_duration("00")).contains("no unit"));
    assert!(message(parse_duration("1m0")).contains("`0` has no unit"));
}

#[test]
fn duration_errors_name_the_forms() {
    assert_eq!(
        message(parse_duration("5")),
        "`5` has no unit: add one of us, ms, s, m, h, d, like `5s`; only 0 goes without"
    );
    assert!(message(parse_duration("1m30")).contains("`30` has no unit"));
    assert_eq!(
        message(parse_duration("5x")),
        "unknown unit `x`: durations use us, ms, s, m, h or d"
    );
    assert_eq!(
        message(parse_duration("3 parsecs")),
        "unknown unit `parsecs`: durations use us, ms, s, m, h or d"
    );
    assert!(message(parse_duration("10 parsecs")).contains("parsecs"));
    assert_eq!(
        message(parse_duration("")),
        "empty duration: expected a number with a unit, like 500ms, 1.5s or 1m30s"
    );
    assert_eq!(
        message(parse_duration("ms")),
        "expected a number at `ms`: a duration is a number with a unit, like 500ms, 1.5s or 1m30s"
    );
    assert_eq!(
        parse_duration("s"),
        Err(Error::ExpectedNumber {
            quantity: Quantity::Duration,
            at: "s".into()
        })
    );
    assert!(message(parse_duration("-1s")).contains("expected a number at `-1s`"));
    assert_eq!(message(parse_duration("1..5s")), "`1..5` is not a number");
    assert!(parse_duration(".s").is_err());
    assert!(parse_duration("1s.").is_err());
    assert!(parse_duration("1e3s").is_err());
}

#[test]
fn durations_out_of_range() {
    assert_eq!(
        message(parse_duration("99999999999999999999999h")),
        "`99999999999999999999999h` is out of range"
    );
    assert!(parse_duration(&"9".repeat(60)).is_err());
    assert!(
        message(parse_duration(&alloc::format!("{}s", "9".repeat(60)))).contains("out of range")
    );
    // The largest Duration parses; one second more does not.
    let max = alloc::format!("{}s", u64::MAX);
    assert_eq!(parse_duration(&max), Ok(Duration::new(u64::MAX, 0)));
    assert!(parse_duration(&alloc::format!("{max}1s")).is_err());
    assert!(parse_duration(&alloc::format!("{max} 1s")).is_err());
}

#[test]
fn durations_at_most() {
    let year = secs(366 * 86_400);
    assert_eq!(parse_duration_at_most("366d", year), Ok(year));
    assert_eq!(parse_duration_at_most("0", year), Ok(Duration::ZERO));
    assert_eq!(
        message(parse_duration_at_most("367d", year)),
        "`367d` is out of range: at most 366d"
    );
    assert_eq!(
        message(parse_duration_at_most(" 2s ", secs(1))),
        "`2s` is out of range: at most 1s"
    );
    // The grammar's own errors come first.
    assert!(message(parse_duration_at_most("5", year)).contains("no unit"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("0"), Ok(0));
    assert_eq!(parse_size("100"), Ok(100));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("100B"), Ok(100));
    assert_eq!(parse_size("100b"), Ok(100));
    assert_eq!(parse_size("1KiB"), Ok(1024));
    assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    assert_eq!(parse_size("512k"), Ok(512 << 10));
    assert_eq!(parse_size("512K"), Ok(512 << 10));
    assert_eq!(parse_size("1Ki"), Ok(1024));
    assert_eq!(parse_size("1kiB"), Ok(1024));
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("64M"), Ok(64 << 20));
    assert_eq!(parse_size("64m"), Ok(64 << 20));
    assert_eq!(parse_size("2 MiB"), Ok(2 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("1g"), Ok(1 << 30));
    assert_eq!(parse_size("1T"), Ok(1 << 40));
    assert_eq!(parse_size("1TiB"), Ok(1 << 40));
    assert_eq!(parse_size("1kB"), Ok(1000));
    assert_eq!(parse_size("1KB"), Ok(1000));
    assert_eq!(parse_size("10MB"), Ok(10_000_000));
    assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
    assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
    assert_eq!(parse_size("0.5k"), Ok(512));
    assert_eq!(parse_size("1.5G"), Ok(1536 << 20));
    assert_eq!(parse_size("0.3"), Ok(0));
    assert_eq!(parse_size("0.5"), Ok(1));
    assert_eq!(parse_size(&alloc::format!("{}", u64::MAX)), Ok(u64::MAX));
}

#[test]
fn size_errors_name_the_forms() {
    assert_eq!(
        message(parse_size("")),
        "empty size: expected a number with an optional unit, like 4096, 512k, 64MiB or 10MB"
    );
    assert_eq!(
        message(parse_size("lots")),
        "expected a number at `lots`: a size is a number with an optional unit, like 4096, 512k, 64MiB or 10MB"
    );
    assert_eq!(
        message(parse_size("12 bananas")),
        "unknown unit `bananas`: sizes use B; k, M, G, T or KiB, MiB, GiB, TiB for powers \
         of 1024; kB, MB, GB, TB for powers of 1000"
    );
    assert!(parse_size("1X").is_err());
    assert!(parse_size("1k2").is_err());
    assert!(parse_size("-5").is_err());
    assert!(parse_size("1..5k").is_err());
    assert_eq!(
        message(parse_size("99999999999T")),
        "`99999999999T` is out of range"
    );
    assert!(parse_size("99999999999999GiB").is_err());
    assert!(parse_size(&alloc::format!("{}1", u64::MAX)).is_err());
}

#[test]
fn formatting() {
    assert_eq!(format_duration(Duration::ZERO), "0ms");
    assert_eq!(format_duration(secs(60)), "1m");
    assert_eq!(format_duration(secs(3600)), "1h");
    assert_eq!(format_duration(secs(7500)), "2h5m");
    assert_eq!(format_duration(secs(5)), "5s");
    assert_eq!(format_size(1536), "1.5KiB");
    assert_eq!(format_size(u64::MAX), "16384.0PiB");
}

/// What the formatters write, the parsers read back.
#[test]
fn formatted_values_parse_back() {
    for d in [
        ms(0),
        ms(750),
        ms(12_500),
        secs(200),
        secs(3600),
        secs(7500),
    ] {
        let text = format_duration(d);
        assert_eq!(parse_duration(&text), Ok(d), "{text}");
    }
    for bytes in [512, 1024, 64 << 20] {
        let text = format_size(bytes);
        assert_eq!(parse_size(&text), Ok(bytes), "{text}");
    }
}
