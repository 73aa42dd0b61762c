//! A child's stdout/stderr, captured line by line into
//! `<state>/logs/<service>.log` (rotated by size to `<service>.1.log`,
//! `.2.log`, ... as its `[log]` says) and, in the foreground, echoed as
//! `TIME name | line`.
//!
//! In the text format (the default) each line of the file is
//! `TIME STREAM TEXT`: an RFC 3339 UTC time (left out with `vigil run
//! --no-timestamps` or `log.timestamps = false`), `stdout` or `stderr`, and
//! the line as the service wrote it (the layout of Kubernetes' CRI logs).
//! In the JSON format each line is one object, `{"time", "stream",
//! "text"}`. The stream is what `vigil logs --stderr` selects by, and what
//! `vigil status` shows a failed service's last stderr lines from.
//!
//! A line longer than [`MAX_LINE`] is split into pieces of at most that
//! size (at a character boundary), never dropped: every piece but the last
//! is marked partial, CRI's `P` flag: the tag `stdout+` in text,
//! `"partial": true` in JSON. Output that is not UTF-8 is kept lossily:
//! each invalid byte sequence becomes U+FFFD, so the file is always valid
//! UTF-8 (and JSON stays JSON).
//!
//! The file keeps the text unescaped (it is the service's output, not a
//! display); the echo escapes it ([`crate::untrusted`]), so a service
//! cannot drive the operator's terminal.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::{LogFormat, LogSpec};
use crate::sync::LockExt;
use crate::wasm::host::output::{Channel, OutputRing};

/// Rotate a service log once it reaches this size (`log.max-size`'s
/// default).
pub const MAX_LOG_BYTES: u64 = crate::config::DEFAULT_LOG_MAX_SIZE;
/// Longest piece of a line in the file: a longer line is split (as CRI
/// does, at the same size), so one line cannot hold the writer's memory.
pub const MAX_LINE: usize = 16 << 10;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// RFC 3339 UTC, when timestamps are on.
    pub ts: Option<Cow<'a, str>>,
    /// `None` for a line written before lines were tagged.
    pub stream: Option<Stream>,
    pub text: Cow<'a, str>,
    /// A piece of a longer line: the next piece of the same stream
    /// continues it.
    pub partial: bool,
}

/// A line of the JSON format.
#[derive(serde::Serialize, serde::Deserialize)]
struct JsonLine<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
}

impl<'a> LogLine<'a> {
    /// Split a line of a log file, in either format. Lines of older files
    /// (raw text, no time or stream) come back whole as `text`.
    pub fn parse(line: &'a str) -> LogLine<'a> {
        if line.starts_with('{')
            && let Ok(j) = serde_json::from_str::<JsonLine<'a>>(line)
            && let Some(stream) = Stream::from_tag(&j.stream)
        {
            return LogLine {
                ts: j.time,
                stream: Some(stream),
                text: j.text,
                partial: j.partial,
            };
        }
        let (ts, rest) = match line.split_once(' ') {
            Some((first, rest)) if looks_like_timestamp(first) => (Some(first), rest),
            _ => (None, line),
        };
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tag = stream.as_str();
            if let Some(after) = rest.strip_prefix(tag) {
                let (partial, after) = match after.strip_prefix('+') {
                    Some(a) => (true, a),
                    None => (false, after),
                };
                if after.is_empty() || after.starts_with(' ') {
                    let text = after.strip_prefix(' ').unwrap_or(after);
                    return LogLine {
                        ts: ts.map(Cow::Borrowed),
                        stream: Some(stream),
                        text: Cow::Borrowed(text),
                        partial,
                    };
                }
            }
        }
        LogLine {
            ts: None,
            stream: None,
            text: Cow::Borrowed(line),
            partial: false,
        }
    }
}

impl Stream {
    fn from_tag(tag: &str) -> Option<Stream> {
        match tag {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// The journal's timestamp form: `2026-12-06T22:34:42.123Z`.
fn looks_like_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z'
}

/// One line of a text log file, without its newline.
pub fn format_line(at: Option<SystemTime>, stream: Stream, text: &str) -> String {
    format_piece(at, stream, text, false, LogFormat::Text)
}

/// One line (or piece of a line, `partial`) of a log file in `format`,
/// without its newline.
pub fn format_piece(
    at: Option<SystemTime>,
    stream: Stream,
    text: &str,
    partial: bool,
    format: LogFormat,
) -> String {
    match format {
        LogFormat::Text => {
            let tag = if partial { "+" } else { "" };
            match at {
                Some(at) => format!(
                    "{} {}{tag} {text}",
                    crate::journal::timestamp(at),
                    stream.as_str()
                ),
                None => format!("{}{tag} {text}", stream.as_str()),
            }
        }
        LogFormat::Json => {
            let line = JsonLine {
                time: at.map(|t| Cow::Owned(crate::journal::timestamp(t))),
                stream: Cow::Borrowed(stream.as_str()),
                text: Cow::Borrowed(text),
                partial,
            };
            // Serializing strings and a bool cannot fail.
            serde_json::to_string(&line).unwrap_or_default()
        }
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
    /// The service's `[log]`; a reload may change it.
    spec: Mutex<LogSpec>,
    /// The recent lines the `output` capability reads (kept only while
    /// the service grants it), with or without a file.
    output: Arc<OutputRing>,
}

impl LogSink {
    /// `dir` is the logs directory (`None`: no file); `echo` prints lines.
    pub fn new(name: &str, dir: Option<&Path>, echo: bool) -> Arc<LogSink> {
        LogSink::with_spec(name, dir, echo, LogSpec::default())
    }

    /// [`LogSink::new`] for a service whose `[log]` is `spec`.
    pub fn with_spec(name: &str, dir: Option<&Path>, echo: bool, spec: LogSpec) -> Arc<LogSink> {
        let path = dir.map(|d| log_path(d, name));
        let file = path.as_ref().and_then(|p| open(p).ok());
        Arc::new(LogSink {
            name: name.to_string(),
            path,
            file: Mutex::new(file),
            echo,
            spec: Mutex::new(spec),
            output: Arc::default(),
        })
    }

    /// The service's `[log]` changed (a reload): used from the next line.
    pub fn set_spec(&self, spec: LogSpec) {
        *self.spec.lock_unpoisoned() = spec;
    }

    /// The service's recent output, for its checks.
    pub fn output(&self) -> &Arc<OutputRing> {
        &self.output
    }

    /// Write one line (without its newline) that came from `stream`.
    pub fn line(&self, stream: Stream, line: &str) {
        self.piece(stream, line, false);
    }

    /// Write one line, or a piece of a longer one (`partial`: more of it
    /// follows), that came from `stream`.
    pub fn piece(&self, stream: Stream, line: &str, partial: bool) {
        // The CR of a CRLF line end is part of the line break.
        let line = if partial {
            line
        } else {
            line.strip_suffix('\r').unwrap_or(line)
        };
        self.output.push(
            match stream {
                Stream::Stdout => Channel::Stdout,
                Stream::Stderr => Channel::Stderr,
            },
            line,
        );
        let spec = *self.spec.lock_unpoisoned();
        let now = spec
            .timestamps
            .unwrap_or_else(timestamps)
            .then(SystemTime::now);
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
        let mut text = format_piece(now, stream, line, partial, spec.format);
        text.push('\n');
        let mut guard = self.file.lock_unpoisoned();
        if let Some((file, size)) = guard.as_mut() {
            if file.write_all(text.as_bytes()).is_ok() {
                *size += text.len() as u64;
            }
            if *size >= spec.max_size {
                rotate(path, spec.keep);
                *guard = open(path).ok();
            }
        }
    }
}

/// Shift `path`'s rotated files up by one, keeping `keep` of them
/// (`web.1.log` the newest), and drop any beyond (`keep` was lowered).
fn rotate(path: &Path, keep: u32) {
    let keep = keep as usize;
    let mut stale = keep + 1;
    while rotated(path, stale).exists() {
        let _ = std::fs::remove_file(rotated(path, stale));
        stale += 1;
    }
    if keep == 0 {
        let _ = std::fs::remove_file(path);
        return;
    }
    for i in (1..keep).rev() {
        let from = rotated(path, i);
        if from.exists() {
            let _ = std::fs::rename(&from, rotated(path, i + 1));
        }
    }
    let _ = std::fs::rename(path, rotated(path, 1));
}

/// Where to cut `bytes` (a piece of a longer line) so that the cut does
/// not fall inside a UTF-8 sequence: before a sequence that is not
/// complete at its end.
fn utf8_cut(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let b = bytes[n - back];
        if b & 0xC0 != 0x80 {
            let len = match b {
                // Not a leading byte: as is (lossily).
                0xF8.. => 1,
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            // A cut at 0 would make no progress: then the bytes go as
            // they are (lossily).
            return if len > back && back < n { n - back } else { n };
        }
    }
    n
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
        // beyond MAX_LINE; such a line goes out in pieces.
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
            let mut take = &chunk[..end.unwrap_or(used)];
            while !take.is_empty() {
                // Full, and more of the line comes: out goes a piece.
                if line.len() >= MAX_LINE {
                    let cut = utf8_cut(&line);
                    sink.piece(stream, &String::from_utf8_lossy(&line[..cut]), true);
                    line.drain(..cut);
                }
                let n = (MAX_LINE - line.len().min(MAX_LINE)).min(take.len());
                line.extend_from_slice(&take[..n]);
                take = &take[n..];
            }
            reader.consume(used);
            if end.is_some() {
                sink.line(stream, &String::from_utf8_lossy(&line));
                line.clear();
            }
        }
    });
}

/// The log files of service `name` in `dir`, if it has any. A name that
/// is not a plain file name (a service is a directory's name) has none.
pub fn files(dir: &Path, name: &str) -> Option<crate::tail::Rotated> {
    let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    let files = crate::tail::Rotated::new(log_path(dir, name), log_path(dir, name), rotated);
    (plain && !files.is_empty()).then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of the file `path` once its content ends with `end`.
    async fn lines_of(path: &Path, end: &str) -> String {
        let mut text = String::new();
        crate::test_support::wait_until_async(
            "the last line is in the log",
            crate::test_support::SOON,
            async || {
                text = std::fs::read_to_string(path).unwrap_or_default();
                text.ends_with(end)
            },
        )
        .await;
        text
    }

    #[tokio::test]
    async fn lines_are_captured_and_overlong_lines_split_never_lost() {
        let scratch = crate::test_support::TempDir::new("logs");
        let dir = scratch.0.clone();
        let sink = LogSink::new("svc", Some(&dir), false);
        let (r, w) = nix::unistd::pipe().expect("pipe");
        capture_stream(r, sink, Stream::Stderr);
        let mut w = std::fs::File::from(w);
        // A multi-byte character straddles the first cut.
        let long = format!("{}é{}", "x".repeat(MAX_LINE - 1), "y".repeat(MAX_LINE * 2));
        write!(w, "one\ntwo\n{long}\nlast without newline").expect("write");
        drop(w);
        let text = lines_of(&dir.join("svc.log"), "last without newline\n").await;
        let lines: Vec<LogLine<'_>> = text.lines().map(LogLine::parse).collect();
        let short = &text[..text.len().min(200)];
        assert!(
            lines
                .iter()
                .all(|l| l.ts.is_some() && l.stream == Some(Stream::Stderr)),
            "{short:?}"
        );
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_ref()).collect();
        let partial: Vec<bool> = lines.iter().map(|l| l.partial).collect();
        // 3 * MAX_LINE + 1 bytes: the first piece ends before the é, so
        // four pieces.
        assert_eq!(texts.len(), 7, "{short:?}");
        assert_eq!(&texts[..2], &["one", "two"]);
        assert_eq!(partial, [false, false, true, true, true, false, false]);
        // Split, not cut: the pieces make the line, each within the limit
        // and valid UTF-8 (the é was not torn).
        assert_eq!(texts[2..6].concat(), long);
        assert!(texts[2..6].iter().all(|t| t.len() <= MAX_LINE));
        assert_eq!(texts[2].len(), MAX_LINE - 1);
        assert_eq!(texts[6], "last without newline");
    }

    #[tokio::test]
    async fn json_lines_keep_streams_apart_and_invalid_utf8_is_lossy() {
        let scratch = crate::test_support::TempDir::new("logs-json");
        let dir = scratch.0.clone();
        let spec = LogSpec {
            format: LogFormat::Json,
            ..LogSpec::default()
        };
        let sink = LogSink::with_spec("svc", Some(&dir), false, spec);
        let (r, w) = nix::unistd::pipe().expect("pipe");
        capture_stream(r, sink, Stream::Stdout);
        let mut w = std::fs::File::from(w);
        w.write_all(b"quote \" and \x1b esc\nbad \xff\xfe bytes\nend\n")
            .expect("write");
        drop(w);
        let text = lines_of(&dir.join("svc.log"), "\"text\":\"end\"}\n").await;
        let lines: Vec<LogLine<'_>> = text.lines().map(LogLine::parse).collect();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            assert_eq!(v["stream"], "stdout", "{l}");
            assert!(v["time"].as_str().is_some_and(looks_like_timestamp), "{l}");
        }
        assert_eq!(lines[0].text, "quote \" and \x1b esc");
        assert_eq!(lines[1].text, "bad \u{fffd}\u{fffd} bytes");
        assert!(lines.iter().all(|l| l.stream == Some(Stream::Stdout)));
    }

    #[test]
    fn rotation_keeps_as_many_files_as_asked() {
        let scratch = crate::test_support::TempDir::new("logs-keep");
        let dir = scratch.0.clone();
        let spec = LogSpec {
            max_size: 1024,
            keep: 3,
            timestamps: Some(false),
            ..LogSpec::default()
        };
        let sink = LogSink::with_spec("svc", Some(&dir), false, spec);
        let line = "z".repeat(600);
        for _ in 0..20 {
            sink.line(Stream::Stdout, &line);
        }
        let current = dir.join("svc.log");
        for i in 1..=3 {
            assert!(rotated(&current, i).exists(), "{i}");
        }
        assert!(!rotated(&current, 4).exists());
        // Lowered: the files beyond go at the next rotation.
        sink.set_spec(LogSpec { keep: 1, ..spec });
        for _ in 0..2 {
            sink.line(Stream::Stdout, &line);
        }
        assert!(rotated(&current, 1).exists());
        assert!(!rotated(&current, 2).exists());
        let text = std::fs::read_to_string(rotated(&current, 1)).expect("rotated");
        assert!(
            text.lines().all(|l| l == format!("stdout {line}")),
            "{text}"
        );
    }

    #[test]
    fn utf8_cuts_fall_between_characters() {
        assert_eq!(utf8_cut(b"abc"), 3);
        assert_eq!(utf8_cut("abé".as_bytes()), 4);
        assert_eq!(utf8_cut(&"abé".as_bytes()[..3]), 2);
        assert_eq!(utf8_cut(&"a💡".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut(&"💡".as_bytes()[..2]), 2, "no progress: as is");
        assert_eq!(utf8_cut(b"a\xff"), 2);
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
                ts: Some("2023-11-14T22:13:20.123Z".into()),
                stream: Some(Stream::Stderr),
                text: "stdout is fine".into(),
                partial: false,
            }
        );
        let line = format_line(None, Stream::Stdout, "");
        assert_eq!(
            LogLine::parse(&line),
            LogLine {
                ts: None,
                stream: Some(Stream::Stdout),
                text: "".into(),
                partial: false,
            }
        );
        for format in [LogFormat::Text, LogFormat::Json] {
            let line = format_piece(Some(at), Stream::Stdout, "{\"a\"} b", true, format);
            assert_eq!(
                LogLine::parse(&line),
                LogLine {
                    ts: Some("2023-11-14T22:13:20.123Z".into()),
                    stream: Some(Stream::Stdout),
                    text: "{\"a\"} b".into(),
                    partial: true,
                },
                "{line}"
            );
        }
        let line = format_piece(None, Stream::Stderr, "x", false, LogFormat::Json);
        assert_eq!(line, r#"{"stream":"stderr","text":"x"}"#);
        // A service's own JSON in an untagged old line stays text.
        let raw = "{\"stream\":\"stdout\"}";
        assert_eq!(LogLine::parse(raw).stream, None);
        let raw = "2023-11-14T22:13:20.123Z happened";
        assert_eq!(
            LogLine::parse(raw),
            LogLine {
                ts: None,
                stream: None,
                text: raw.into(),
                partial: false,
            }
        );
        assert_eq!(
            rotated(Path::new("/s/a.b.log"), 1),
            Path::new("/s/a.b.1.log")
        );
    }
}
