//! A child's stdout/stderr, captured line by line into
//! `<state>/logs/<service>.log` (rotated by size to `<service>.1.log`) and,
//! in the foreground, echoed as `name | line`.
//!
//! The file keeps the raw line (it is the service's output, not a
//! display); the echo escapes it ([`crate::untrusted`]), so a service
//! cannot drive the operator's terminal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::sync::LockExt;

/// Rotate a service log once it reaches this size.
pub const MAX_LOG_BYTES: u64 = 4 << 20;
/// Longest line kept; the rest of a longer line is dropped.
const MAX_LINE: usize = 16 << 10;

/// One service's log file.
pub struct LogSink {
    name: String,
    path: Option<PathBuf>,
    file: Mutex<Option<(File, u64)>>,
    echo: bool,
}

impl LogSink {
    /// `dir` is the logs directory (`None`: no file); `echo` prints lines.
    pub fn new(name: &str, dir: Option<&Path>, echo: bool) -> Arc<LogSink> {
        let path = dir.map(|d| d.join(format!("{name}.log")));
        let file = path.as_ref().and_then(|p| open(p).ok());
        Arc::new(LogSink {
            name: name.to_string(),
            path,
            file: Mutex::new(file),
            echo,
        })
    }

    /// Write one line (without its newline).
    pub fn line(&self, line: &str) {
        if self.echo {
            // The CR of a CRLF line end is part of the line break.
            let shown = crate::untrusted::line(line.strip_suffix('\r').unwrap_or(line));
            let name = crate::untrusted::line(&self.name);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{name} | {shown}");
        }
        let Some(path) = &self.path else { return };
        let mut guard = self.file.lock_unpoisoned();
        if let Some((file, size)) = guard.as_mut() {
            if file
                .write_all(line.as_bytes())
                .and_then(|_| file.write_all(b"\n"))
                .is_ok()
            {
                *size += line.len() as u64 + 1;
            }
            if *size >= MAX_LOG_BYTES {
                let rotated = path.with_extension("1.log");
                let _ = std::fs::rename(path, rotated);
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

/// Pump a pipe's lines into `sink` until the writer side closes.
pub fn capture(fd: OwnedFd, sink: Arc<LogSink>) {
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
                        sink.line(&String::from_utf8_lossy(&line));
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
                sink.line(&String::from_utf8_lossy(&line));
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
        capture(r, sink);
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
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{:?}", &text[..text.len().min(200)]);
        assert_eq!(&lines[..2], &["one", "two"]);
        assert_eq!(lines[2].len(), MAX_LINE);
        assert_eq!(lines[3], "last without newline");
    }
}
