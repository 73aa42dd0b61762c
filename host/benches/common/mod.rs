//! What the benchmark binaries share: their command line, sample
//! statistics, the timing loops, formatting, a loopback server, and
//! writing one section of BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil::wasm::{CacheOutcome, CheckSource, Engine, Grants, Phase, Sandbox, Target, Verdict};

/// A bench binary's arguments: `[--out FILE] [--quick]`.
pub struct Args {
    /// The BENCHMARKS.md whose section the report replaces.
    pub out: Option<PathBuf>,
    /// A tenth of the runs (or fewer), for a quick look.
    pub quick: bool,
}

impl Args {
    pub fn parse() -> Args {
        let args: Vec<String> = std::env::args().collect();
        Args {
            out: args
                .iter()
                .position(|a| a == "--out")
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from),
            quick: args.iter().any(|a| a == "--quick"),
        }
    }

    /// What run counts are divided by: 10 with `--quick`, else 1.
    pub fn scale(&self) -> usize {
        if self.quick { 10 } else { 1 }
    }

    /// The arguments to name in a report: ` -- --quick` or nothing.
    pub fn shown(&self) -> &'static str {
        if self.quick { " -- --quick" } else { "" }
    }

    /// Prints `report`, and with `--out` puts it in that file as the
    /// section under `heading`.
    pub fn publish(&self, heading: &str, report: &str) {
        print!("{report}");
        if let Some(out) = &self.out {
            write_section(out, heading, report);
        }
    }
}

/// The multi-threaded runtime the checks run on, as in `vigil run`.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

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

/// A liveness target with no pid and `config` as the check's settings.
pub fn target(config: &[(&str, &str)]) -> Target {
    let config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Target::one_shot(Phase::Liveness, None, config)
}

/// A sandbox granting `hosts` and `paths`, 5 s and 64 MiB per call.
pub fn sandbox(hosts: &[String], paths: &[PathBuf]) -> Sandbox {
    Sandbox::new(
        Grants::parse(hosts, paths).expect("grants"),
        Duration::from_secs(5),
        64 << 20,
    )
}

/// `n` timed calls of the check `source`, made as Vigil makes them, after
/// `warm_up` untimed ones; every call must say ok.
pub async fn time_calls(
    engine: &Engine,
    source: &CheckSource,
    target: &Target,
    sandbox: &Sandbox,
    warm_up: usize,
    n: usize,
) -> Stats {
    let checker = engine.load_checker(source).await.expect("load");
    for _ in 0..warm_up {
        let report = checker.check(target, sandbox).await;
        assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let report = checker.check(target, sandbox).await;
        samples.push(start.elapsed());
        assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
    }
    stats(samples)
}

/// Compiles `source` into the cache of `engine`, which must not hold it
/// yet, then loads it from there `n` times: the compile time and the loads.
pub async fn time_compile_and_loads(
    engine: &Engine,
    source: &CheckSource,
    n: usize,
) -> (Duration, Stats) {
    let start = Instant::now();
    let (_, outcome) = engine.load_component(source).await.expect("compile");
    let compile = start.elapsed();
    assert_eq!(
        outcome,
        CacheOutcome::Compiled,
        "{source}: the cache was not empty"
    );
    (compile, time_cached_loads(engine, source, n).await)
}

/// `n` loads of `source`, each of which must be a cache hit.
pub async fn time_cached_loads(engine: &Engine, source: &CheckSource, n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let (_, outcome) = engine.load_component(source).await.expect("load");
        samples.push(start.elapsed());
        assert_eq!(outcome, CacheOutcome::Hit, "{source}");
    }
    stats(samples)
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
