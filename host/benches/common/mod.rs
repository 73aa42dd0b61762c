//! What the benchmark binaries share: sample statistics, formatting, a
//! loopback server, and writing one section of BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

pub struct Stats {
    pub median: Duration,
    pub p99: Duration,
    pub n: usize,
}

pub fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let n = samples.len();
    Stats {
        median: samples[n / 2],
        p99: samples[(n * 99 / 100).min(n - 1)],
        n,
    }
}

/// A duration in the unit that keeps three significant digits readable.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.1} s", us / 1e6)
    }
}

/// A loopback server answering each connection's requests with what
/// `respond` makes of the bytes so far (`None`: read more), one thread per
/// connection, so the server's own cost is small next to the probes.
pub fn server(respond: fn(&[u8]) -> Option<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(reply) = respond(&request) {
                        request.clear();
                        if stream.write_all(&reply).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

/// Cores and CPU model, for the line that says where numbers come from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// Replaces the section under `heading` in BENCHMARKS.md, keeping the
/// others (a new heading is appended).
pub fn write_section(path: &Path, heading: &str, section: &str) {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let updated = match existing.find(heading) {
        Some(start) => {
            let rest = &existing[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map(|i| start + heading.len() + i + 1)
                .unwrap_or(existing.len());
            format!("{}{section}{}", &existing[..start], &existing[end..])
        }
        None => format!("{}\n\n{section}", existing.trim_end()),
    };
    std::fs::write(path, updated).expect("write benchmarks file");
}
