//! Fuzz targets (see `crate::fuzz`) for reading the journal: its files
//! torn, corrupt, with bytes that are not UTF-8, lines of the wrong types
//! or huge; the repair of a torn tail on open; and `--since` timestamps.
//! Plus the regression tests of what they found.

use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::fuzz::{self, text};
use crate::test_support::TempDir;

const LINE_DICT: &[&str] = &[
    "{\"ts\":\"2026-12-06T22:00:00.000Z\",\"kind\":\"warning\",\"message\":\"m\"}\n",
    "{\"ts\":\"2026-12-06T22:00:01.000Z\",\"service\":\"web\",\"kind\":\"spawned\",\"pid\":42,\"start_time\":7,\"restarts\":0}\n",
    "{\"ts\":\"2026-12-06T22:00:02.000Z\",\"service\":\"web\",\"kind\":\"exited\",\"pid\":42,\"code\":1,\"signal\":null,\"uptime_ms\":5}\n",
    "\"kind\":",
    "\"pid\":",
    "\"service\":",
    "\"ts\":",
    "null",
    "true",
    "[]",
    "{}",
    "-1",
    "1.5",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\u{ff}",
    "\u{80}",
];

/// A journal file's bytes: every line is either read (and writes back as
/// itself) or counted as skipped, and no line spoils another.
#[test]
fn fuzz_journal_lines() {
    fuzz::run("journal-lines", LINE_DICT, 64 << 10, |input| {
        let (lines, skipped) = parse_lines(input);
        let nonblank = input
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        assert_eq!(lines.len() + skipped, nonblank, "a line went missing");
        for line in &lines {
            let json = serde_json::to_string(line).expect("a line serializes");
            let again: Line = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(&again, line);
            // What `vigil journal` prints of it: one line.
            let fields = line.event.fields_text();
            assert!(!fields.contains('\n'), "{fields:?}");
        }
    });
}

/// The repair on open keeps a prefix of the file that ends at a line
/// boundary, cutting at most the torn tail and one corrupt line before it
/// (older corrupt lines are the readers' to skip), so that what is
/// appended next starts a line of its own.
#[test]
fn fuzz_journal_repair() {
    let scratch = TempDir::new("fuzz-repair");
    let path = scratch.0.join(FILE);
    fuzz::run("journal-lines", LINE_DICT, 64 << 10, |input| {
        std::fs::write(&path, input).expect("write");
        let cut = repair_tail(&path).expect("repair");
        let kept = std::fs::read(&path).expect("read");
        assert!(input.starts_with(&kept), "the repair rewrote the file");
        assert_eq!(
            cut.unwrap_or(0) as usize,
            input.len() - kept.len(),
            "the count of bytes cut"
        );
        assert!(kept.is_empty() || kept.ends_with(b"\n"), "kept a torn line");
        let removed = &input[kept.len()..];
        assert!(
            removed.iter().filter(|b| **b == b'\n').count() <= 1,
            "cut more than one whole line"
        );
        if removed.contains(&b'\n') {
            let body = removed.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(body);
            assert!(
                serde_json::from_str::<serde_json::Value>(&line).is_err(),
                "cut a whole line that parses: {line:?}"
            );
        }
    });
}

/// `--since`: a time that writes back as itself (to the millisecond), in
/// the journal's form, so that it compares as text with the journal's
/// own timestamps.
#[test]
fn fuzz_timestamp() {
    let dict = &[
        "2026-12-06",
        "T",
        "t",
        " ",
        "Z",
        "z",
        "+02:00",
        "-01:00",
        ":",
        ".",
        "-",
        "123456789",
        "1970",
        "9999",
        "10000",
        "0000",
        "02-29",
        "12-31",
        "23:59:60",
        "1",
    ];
    fuzz::run("timestamp", dict, 128, |input| {
        let text = text(input);
        let Some(t) = parse_timestamp(&text) else {
            return;
        };
        let written = timestamp(t);
        assert_eq!(written.len(), 24, "{text:?} -> {written:?}");
        let millis = t
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis();
        let truncated = UNIX_EPOCH + Duration::from_millis(millis as u64);
        assert_eq!(parse_timestamp(&written), Some(truncated), "{text:?}");
    });
}

/// A byte that is not UTF-8 in one line (a bit flipped on disk) leaves
/// every other line readable: `vigil journal` through the socket and
/// recovery read them. It once emptied the whole file for both.
#[test]
fn a_byte_that_is_not_utf8_spoils_only_its_line() {
    let scratch = TempDir::new("journal-not-utf8");
    let dir = &scratch.0;
    let mut data = Vec::new();
    data.extend_from_slice(
        b"{\"ts\":\"2026-12-06T22:00:01.000Z\",\"service\":\"web\",\"kind\":\"spawned\",\"pid\":4242,\"start_time\":7,\"restarts\":0}\n",
    );
    data.extend_from_slice(
        b"{\"ts\":\"2026-12-06T22:00:02.000Z\",\"kind\":\"warning\",\"message\":\"bad \xff byte\"}\n",
    );
    data.extend_from_slice(b"{\"ts\":\"2026-12-06T22:00:03.000Z\",\"kind\":\"oops\"}\n");
    data.extend_from_slice(
        b"{\"ts\":\"2026-12-06T22:00:04.000Z\",\"kind\":\"warning\",\"message\":\"after\"}\n",
    );
    std::fs::write(dir.join(FILE), &data).expect("write");
    let lines = read_lines(&dir.join(FILE));
    let kinds: Vec<&str> = lines.iter().map(|l| l.event.kind()).collect();
    assert_eq!(kinds, ["spawned", "warning", "warning"]);
    assert_eq!(read_all_counted(dir, 3).1, 1, "the unknown kind is counted");
    let children = previous_children(dir, 3);
    assert_eq!(children.len(), 1, "recovery lost the spawned child");
    assert_eq!(children[0].pid, 4242);
}

/// `--since 10000-1-01` is ten characters like `YYYY-MM-DD` but not the
/// journal's form: it once parsed to the year 10000, written back as
/// `10000-01-01T...`, which sorts before `2026-...` as text, so every
/// line matched a time in the far future.
#[test]
fn a_date_must_be_yyyy_mm_dd() {
    assert_eq!(parse_timestamp("10000-1-01"), None);
    assert_eq!(parse_timestamp("99999-1-01"), None);
    assert_eq!(parse_timestamp("2026-1-001"), None);
    assert!(parse_timestamp("2026-01-01").is_some());
}
