//! A child's stdout/stderr, captured line by line into
//! `<state>/logs/<service>.log` (rotated by size to `<service>.1.log`) and,
//! in the foreground, echoed as `name | line`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

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
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{} | {line}", self.name);
        }
        let Some(path) = &self.path else { return };
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
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
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    buf.truncate(MAX_LINE);
                    sink.line(&String::from_utf8_lossy(&buf));
                }
            }
        }
    });
}
