//! A child's stdout/stderr, captured line by line into
//! `<state>/logs/<service>.log` (rotated by size to `<service>.1.log`) and,
//! in the foreground, echoed as `TIME name | line`.
//!
//! Each line of the file is `TIME STREAM TEXT`: an RFC 3339 UTC time
//! (left out with `vigil run --no-timestamps`), `stdout` or `stderr`, and
//! the line exactly as the service wrote it (the layout of Kubernetes' CRI
//! logs, minus their partial-line flag: a line longer than 16 KiB is cut).
//! The stream tag is what `vigil logs --stderr` selects by, and what
//! `vigil status` shows a failed service's last stderr lines from.
//!
//! The file keeps the raw text (it is the service's output, not a
//! display); the echo escapes it ([`crate::untrusted`]), so a service
//! cannot drive the operator's terminal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sync::LockExt;
use crate::wasm::host::output::{Channel, OutputRing};

/// Rotate a service log once it reaches this size.
pub const MAX_LOG_BYTES: u64 = 4 << 20;
/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 << 10;

/// Which of a child's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// How lines are written, for the whole process (`vigil run` sets it once,
/// before the first service starts; see [`set_timestamps`]).
static TIMESTAMPS: OnceLock<bool> = OnceLock::new();

/// `vigil run --no-timestamps`: leave the time out of log lines and of the
/// foreground echo (for services that stamp their own lines). Process-wide
/// because it is a presentation choice of the one `vigil run`; the first
/// call wins. Timestamps are on when it is never called.
pub fn set_timestamps(on: bool) {
    let _ = TIMESTAMPS.set(on);
}

fn timestamps() -> bool {
    *TIMESTAMPS.get().unwrap_or(&true)
}

/// `<dir>/<name>.log`: a service's current log file.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

/// The `i`th newest rotated file of the log `current` (from 1):
/// `web.log` -> `web.1.log`.
pub fn rotated(current: &Path, i: usize) -> PathBuf {
    current.with_extension(format!("{i}.log"))
}

/// One line of a log file, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// RFC 3339 UTC, when timestamps are on.
    pub ts: Option<&'a str>,
    /// `None` for a line written before lines were tagged.
    pub stream: Option<Stream>,
    pub text: &'a str,
}

impl<'a> LogLine<'a> {
    /// Split a line of a log file. Lines of older files (raw text, no
    /// time or stream) come back whole as `text`.
    pub fn parse(line: &'a str) -> LogLine<'a> {
        let (ts, rest) = match line.split_once(' ') {
            Some((first, rest)) if looks_like_timestamp(first) => (Some(first), rest),
            _ => (None, line),
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tag = stream.as_str();
            if let Some(after) = rest.strip_prefix(tag)
                && (after.is_empty() || after.starts_with(' '))
            {
                let text = after.strip_prefix(' ').unwrap_or(after);
                return LogLine {
                    ts,
                    stream: Some(stream),
                    text,
                };
            }
        }
        LogLine {
            ts: None,
            stream: None,
            text: line,
        }
    }
}

/// The journal's timestamp form: `2026-12-06T22:34:42.123Z`.
fn looks_like_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z'
}

/// One line of a log file, without its newline.
pub fn format_line(at: Option<SystemTime>, stream: Stream, text: &str) -> String {
    match at {
        Some(at) => format!(
            "{} {} {text}",
            crate::journal::timestamp(at),
            stream.as_str()
        ),
        None => format!("{} {text}", stream.as_str()),
    }
}

/// The foreground echo of a journal event, beside the services' own
/// `TIME name | line`: `TIME name * kind field=value ...`, the time left
/// out with `--no-timestamps`, escaped ([`crate::untrusted`]; the journal
/// itself stays exact), and without a trailing space when the event has no
/// fields (`web * ready`). For the event loop's echo, so that both kinds
/// of echoed line look alike.
pub fn event_echo(service: Option<&str>, event: &crate::journal::Event) -> String {
    let fields = event.fields_text();
    let service = crate::untrusted::line(service.unwrap_or("vigil"));
    let text = match timestamps().then(SystemTime::now) {
        Some(at) => format!(
            "{} {service} * {} {fields}",
            crate::journal::timestamp(at),
            event.kind()
        ),
        None => format!("{service} * {} {fields}", event.kind()),
    };
    text.trim_end().to_string()
}

/// One service's log file.
pub struct LogSink {
    name: String,
    path: Option<PathBuf>,
    file: Mutex<Option<(File, u64)>>,
    echo: bool,
    /// The recent lines the `output` capability reads (kept only while
    /// the service grants it), with or without a file.
    output: Arc<OutputRing>,
}

impl LogSink {
    /// `dir` is the logs directory (`None`: no file); `echo` prints lines.
    pub fn new(name: &str, dir: Option<&Path>, echo: bool) -> Arc<LogSink> {
        let path = dir.map(|d| log_path(d, name));
        let file = path.as_ref().and_then(|p| open(p).ok());
        Arc::new(LogSink {
            name: name.to_string(),
            path,
            file: Mutex::new(file),
            echo,
            output: Arc::default(),
        })
    }

    /// The service's recent output, for its checks.
    pub fn output(&self) -> &Arc<OutputRing> {
        &self.output
    }

    /// Write one line (without its newline) that came from `stream`.
    pub fn line(&self, stream: Stream, line: &str) {
        // The CR of a CRLF line end is part of the line break.
        let line = line.strip_suffix('\r').unwrap_or(line);
        self.output.push(
            match stream {
                Stream::Stdout => Channel::Stdout,
                Stream::Stderr => Channel::Stderr,
            },
            line,
        );
        let now = timestamps().then(SystemTime::now);
        if self.echo {
            let shown = crate::untrusted::line(line);
            let name = crate::untrusted::line(&self.name);
            let text = match now {
                Some(at) => format!("{} {name} | {shown}", crate::journal::timestamp(at)),
                None => format!("{name} | {shown}"),
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", text.trim_end());
        }
        let Some(path) = &self.path else { return };
        let mut text = format_line(now, stream, line);
        text.push('\n');
        let mut guard = self.file.lock_unpoisoned();
        if let Some((file, size)) = guard.as_mut() {
            if file.write_all(text.as_bytes()).is_ok() {
                *size += text.len() as u64;
            }
            if *size >= MAX_LOG_BYTES {
                let _ = std::fs::rename(path, rotated(path, 1));
                *guard = open(path).ok();
            }
        }
    }
}

fn open(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// Pump the lines of a child's `stream` into `sink` until the writer side
/// closes.
pub fn capture_stream(fd: OwnedFd, sink: Arc<LogSink>, stream: Stream) {
    let receiver = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot capture output: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let mut reader = BufReader::new(receiver);
        // Bounded: a child writing without newlines cannot grow this
        // beyond MAX_LINE; the rest of such a line is dropped.
        let mut line: Vec<u8> = Vec::new();
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    if !line.is_empty() {
                        sink.line(stream, &String::from_utf8_lossy(&line));
                    }
                    return;
                }
                Ok(chunk) => chunk,
            };
            let (used, end) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, Some(i)),
                None => (chunk.len(), None),
            };
            let take = end.unwrap_or(used).min(MAX_LINE.saturating_sub(line.len()));
            line.extend_from_slice(&chunk[..take]);
            reader.consume(used);
            if end.is_some() {
                sink.line(stream, &String::from_utf8_lossy(&line));
                line.clear();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_captured_and_overlong_lines_cut() {
        let scratch = crate::test_support::TempDir::new("logs");
        let dir = scratch.0.clone();
        let sink = LogSink::new("svc", Some(&dir), false);
        let (r, w) = nix::unistd::pipe().expect("pipe");
        capture_stream(r, sink, Stream::Stderr);
        let mut w = std::fs::File::from(w);
        let long = "x".repeat(MAX_LINE * 3);
        write!(w, "one\ntwo\n{long}\nlast without newline").expect("write");
        drop(w);
        let path = dir.join("svc.log");
        let mut text = String::new();
        crate::test_support::wait_until_async(
            "the last line is in the log",
            crate::test_support::SOON,
            async || {
                text = std::fs::read_to_string(&path).unwrap_or_default();
                text.ends_with("last without newline\n")
            },
        )
        .await;
        let lines: Vec<&str> = text.lines().map(|l| LogLine::parse(l).text).collect();
        assert!(
            text.lines().all(|l| {
                let l = LogLine::parse(l);
                l.ts.is_some() && l.stream == Some(Stream::Stderr)
            }),
            "{:?}",
            &text[..text.len().min(200)]
        );
        assert_eq!(lines.len(), 4, "{:?}", &text[..text.len().min(200)]);
        assert_eq!(&lines[..2], &["one", "two"]);
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3], "last without newline");
    }

    #[test]
    fn the_event_echo_is_stamped_escaped_and_trimmed() {
        let line = event_echo(Some("web\x1b[2J"), &crate::journal::Event::Ready);
        let (ts, rest) = line.split_once(' ').expect("a time first");
        assert!(looks_like_timestamp(ts), "{line:?}");
        assert_eq!(rest, "web\\x1b[2J * ready");
        let line = event_echo(None, &crate::journal::Event::Quit { clean: true });
        assert!(line.ends_with(" vigil * quit clean=true"), "{line:?}");
    }

    #[test]
    fn lines_parse_back_and_old_raw_lines_stay_whole() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let line = format_line(Some(at), Stream::Stderr, "stdout is fine");
        assert_eq!(line, "2023-11-14T22:13:20.123Z stderr stdout is fine");
        assert_eq!(
            LogLine::parse(&line),
            LogLine {
                ts: Some("2023-11-14T22:13:20.123Z"),
                stream: Some(Stream::Stderr),
                text: "stdout is fine"
            }
        );
        let line = format_line(None, Stream::Stdout, "");
        assert_eq!(
            LogLine::parse(&line),
            LogLine {
                ts: None,
                stream: Some(Stream::Stdout),
                text: ""
            }
        );
        let raw = "2023-11-14T22:13:20.123Z happened";
        assert_eq!(
            LogLine::parse(raw),
            LogLine {
                ts: None,
                stream: None,
                text: raw
            }
        );
        assert_eq!(
            rotated(Path::new("/s/a.b.log"), 1),
            Path::new("/s/a.b.1.log")
        );
    }
}
