//! What the benchmark binaries share: their command line, sample
//! statistics, the timing loops, formatting, a loopback server, and
//! writing one section of BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

/// `n` timed calls of the check `source`, made as Vigil makes them (in a
/// task on a worker of the multi-threaded runtime, not on the thread that
/// blocks on the runtime, which would add a hand-off between threads to
/// every wait for the network), after `warm_up` untimed ones; every call
/// must say ok.
pub async fn time_calls(
    engine: &Engine,
    source: &CheckSource,
    target: Target,
    sandbox: Sandbox,
    warm_up: usize,
    n: usize,
) -> Stats {
    let checker = engine.load_checker(source).await.expect("load");
    let source = source.clone();
    let samples = tokio::spawn(async move {
        for _ in 0..warm_up {
            let report = checker.check(&target, &sandbox).await;
            assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let report = checker.check(&target, &sandbox).await;
            samples.push(start.elapsed());
            assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
        }
        samples
    })
    .await
    .expect("the timed calls");
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
/// `respond` makes of the bytes so far (`None`: read more), as servers
/// that probes meet are built (Redis, nginx): one long-lived thread, an
/// event loop over non-blocking sockets, TCP_NODELAY.
///
/// Not a thread per connection: that pattern put the creation and first
/// wake-up of a new thread inside every probe, and the kernel places a new
/// thread on the idlest CPU, on a quiet two-vCPU VM a halted one whose
/// wake-up waits for the hypervisor: the likely cause of the languages
/// bench's ~4 ms mode for every network probe (docs/check-cost.md).
pub fn server(respond: fn(&[u8]) -> Option<Vec<u8>>) -> u16 {
    use std::os::fd::AsRawFd;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut open: Vec<(TcpStream, Vec<u8>)> = Vec::new();
        loop {
            let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
                .chain(open.iter().map(|(stream, _)| stream.as_raw_fd()))
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: `fds` is an array of `fds.len()` initialised pollfd
            // structs, alive across the call; poll(2) writes only their
            // `revents`, and every fd in it is owned by `listener` or `open`.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                continue;
            }
            let ready: Vec<bool> = fds.iter().map(|fd| fd.revents != 0).collect();
            // Backwards, so that `swap_remove` moves only a served one.
            for i in (0..open.len()).rev() {
                if ready[i + 1] && !serve(&mut open[i], respond) {
                    open.swap_remove(i);
                }
            }
            if ready[0] {
                while let Ok((stream, _)) = listener.accept() {
                    let _ = stream.set_nonblocking(true);
                    let _ = stream.set_nodelay(true);
                    open.push((stream, Vec::new()));
                }
            }
        }
    });
    port
}

/// Reads what a connection has, answering each complete request; false
/// once the client closed (or broke) it.
fn serve(
    (stream, request): &mut (TcpStream, Vec<u8>),
    respond: fn(&[u8]) -> Option<Vec<u8>>,
) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return false,
            Ok(n) => {
                request.extend_from_slice(&buffer[..n]);
                if let Some(reply) = respond(request) {
                    request.clear();
                    // Replies are small: the socket's buffer takes them whole.
                    if stream.write_all(&reply).is_err() {
                        return false;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Just enough Redis for PING and INFO replication.
pub fn mini_redis(request: &[u8]) -> Option<Vec<u8>> {
    if !request.ends_with(b"\r\n") {
        return None;
    }
    if request.windows(4).any(|w| w == b"INFO") {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n";
        Some(format!("${}\r\n{info}\r\n", info.len()).into_bytes())
    } else if request.windows(4).any(|w| w == b"PING") {
        Some(b"+PONG\r\n".to_vec())
    } else {
        None
    }
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
