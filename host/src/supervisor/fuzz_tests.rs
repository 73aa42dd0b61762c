//! Fuzz targets (see `crate::fuzz`) for what a service sends Vigil: notify
//! datagrams (`sd_notify`) and the lines of its log files as `vigil logs`
//! reads them back.

use std::time::{Duration, UNIX_EPOCH};

use super::logs::{LogLine, Stream, format_piece};
use super::notify::Notification;
use crate::config::LogFormat;
use crate::fuzz::{self, text};

/// A datagram: flags, a bounded status, and merging it into itself
/// changes nothing.
#[test]
fn fuzz_notify() {
    let dict = &[
        "READY=1\n",
        "STOPPING=1\n",
        "RELOADING=1\n",
        "WATCHDOG=1\n",
        "WATCHDOG=trigger\n",
        "STATUS=",
        "ERRNO=",
        "MAINPID=1\n",
        "FDSTORE=1\n",
        "EXTEND_TIMEOUT_USEC=1\n",
        "=",
        "\n",
    ];
    fuzz::run("notify", dict, 64 << 10, |input| {
        let n = Notification::parse(input);
        if let Some(status) = &n.status {
            assert!(
                status.chars().count() <= 512,
                "a status of {} chars",
                status.len()
            );
            assert!(!status.contains('\n'), "{status:?}");
        }
        let mut twice = n.clone();
        twice.merge(n.clone());
        assert_eq!(twice, n);
    });
}

/// A log file's line: split into time, stream and text without a panic,
/// and every line Vigil writes (either format) reads back as written.
#[test]
fn fuzz_log_lines() {
    let dict = &[
        "stdout ",
        "stderr ",
        "stdout+ ",
        "2026-12-06T22:00:00.000Z ",
        "{\"stream\":\"stdout\",\"text\":\"x\"}",
        "{\"time\":\"t\",\"stream\":\"stderr\",\"text\":\"x\",\"partial\":true}",
        "{",
        "\"",
        "\\u0000",
    ];
    let at = UNIX_EPOCH + Duration::from_millis(1_765_000_000_123);
    fuzz::run("log-lines", dict, 16 << 10, |input| {
        let text = text(input);
        for line in text.lines() {
            let parsed = LogLine::parse(line);
            if parsed.stream.is_some() && !line.starts_with('{') {
                assert!(
                    line.ends_with(parsed.text.as_ref()),
                    "{line:?} -> {parsed:?}"
                );
            }
        }
        let one = text.replace(['\n', '\r'], " ");
        for format in [LogFormat::Text, LogFormat::Json] {
            for (when, stream, partial) in [
                (Some(at), Stream::Stdout, false),
                (None, Stream::Stderr, true),
            ] {
                let written = format_piece(when, stream, &one, partial, format);
                let read = LogLine::parse(&written);
                assert_eq!(read.stream, Some(stream), "{written:?}");
                assert_eq!(read.text, one.as_str(), "{written:?}");
                assert_eq!(read.partial, partial, "{written:?}");
                assert_eq!(read.ts.is_some(), when.is_some(), "{written:?}");
            }
        }
    });
}
