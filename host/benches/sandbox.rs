//! What the sandbox costs per check: the calls whose host side the
//! sandbox hardening touched (grants, address pinning, path resolution
//! beneath a descriptor, the cache's trust checks), timed as Vigil makes
//! them. `bench/sandbox_before_after.sh` builds this same file against an
//! older commit and runs both builds in one run, so the rows compare.
//!
//! Usage: cargo bench -p vigil --bench sandbox -- [--json FILE] [--quick]
//! Prints one JSON object per row; `--json` appends them to FILE.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// Shared with the other benches; this one uses only part of it.
#[allow(dead_code)]
mod common;
use common::{Args, Stats, runtime, sandbox, server, target};

use vigil::wasm::{CacheOutcome, CheckSource, Engine, EngineOptions, Sandbox, Target, Verdict};

mod programs {
    include!(concat!(env!("OUT_DIR"), "/test_programs.rs"));
}

/// HTTP/1.1 200 "ok" once the request head is in, then close.
fn http_ok(request: &[u8]) -> Option<Vec<u8>> {
    request
        .windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_vec())
}

/// Accepts connections and closes each once its client has: enough for a
/// connect check. Closing first would leave the server's side in
/// TIME_WAIT, and tens of thousands of connects in a few minutes (both
/// builds, twice) then reuse a client port still waiting there: that SYN
/// is dropped and the check times out. (A reset instead races the
/// client's connect, which then reads "refused".)
fn tcp_server() -> u16 {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut open: Vec<std::net::TcpStream> = Vec::new();
        for stream in listener.incoming().flatten() {
            let _ = stream.set_nonblocking(true);
            open.push(stream);
            // Keep those whose client has not closed yet (a read would block).
            open.retain_mut(|stream| {
                matches!(stream.read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            });
        }
    });
    port
}

/// This process's CPU time so far (user + system, every thread).
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

/// A row: wall-clock latency per call, and the CPU the whole process spent
/// per call. Latency on this runtime is bimodal (whether a worker or a
/// blocking thread had to be woken), so the CPU is the steadier measure of
/// what a check costs.
struct Row {
    stats: Stats,
    cpu_per_call: Duration,
}

/// `n` timed calls of `source` as Vigil makes them, after 20 untimed ones;
/// every call must say ok.
async fn time_calls(
    engine: &Engine,
    source: &CheckSource,
    target: &Target,
    sandbox: &Sandbox,
    n: usize,
) -> Row {
    let checker = engine.load_checker(source).await.expect("load");
    for _ in 0..20 {
        let report = checker.check(target, sandbox).await;
        assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
    }
    let mut samples = Vec::with_capacity(n);
    let cpu = cpu_time();
    for _ in 0..n {
        let start = Instant::now();
        let report = checker.check(target, sandbox).await;
        samples.push(start.elapsed());
        assert_eq!(report.verdict, Verdict::Ok, "{source}: {report:?}");
    }
    let cpu_per_call = (cpu_time() - cpu) / n as u32;
    Row {
        stats: common::stats(samples),
        cpu_per_call,
    }
}

fn json_row(build: &str, row: &str, r: &Row) -> String {
    format!(
        "{{\"build\":\"{build}\",\"row\":\"{row}\",\"median_us\":{:.2},\"p99_us\":{:.2},\"cpu_us\":{:.2},\"n\":{}}}",
        r.stats.median.as_secs_f64() * 1e6,
        r.stats.p99.as_secs_f64() * 1e6,
        r.cpu_per_call.as_secs_f64() * 1e6,
        r.stats.n
    )
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();
    let argv: Vec<String> = std::env::args().collect();
    let json_out = argv
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| argv.get(i + 1))
        .map(PathBuf::from);
    let build = std::env::var("VIGIL_NAME").unwrap_or_else(|_| "vigil".into());

    let runtime = runtime();
    let http_port = server(http_ok);
    let tcp_port = tcp_server();
    let url = format!("http://127.0.0.1:{http_port}/");
    let http_grant = format!("http://127.0.0.1:{http_port}");
    let tcp_grant = format!("tcp://127.0.0.1:{tcp_port}");
    let tcp_port_text = tcp_port.to_string();

    // A heartbeat file beneath a granted directory, as builtin:file and a
    // file check read it.
    let dir = std::env::temp_dir().join(format!("vigil-bench-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let beat = dir.join("heartbeat");
    std::fs::write(&beat, b"alive\n").expect("heartbeat");
    // Old enough that builtin:file's freshness never matters and the
    // cache's "recently changed" rule does not apply to the program.
    let beat_text = beat.display().to_string();

    let engine = Engine::new(EngineOptions::default()).expect("engine");
    let mut rows: Vec<(&str, Row)> = Vec::new();
    runtime.block_on(async {
        let calls = |source: &'static str,
                     config: Vec<(&'static str, String)>,
                     hosts: Vec<String>,
                     paths: Vec<PathBuf>,
                     n: usize| {
            let engine = engine.clone();
            async move {
                let source: CheckSource = source.parse().expect("infallible");
                let config: Vec<(&str, &str)> =
                    config.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sandbox = sandbox(&hosts, &paths);
                time_calls(&engine, &source, &target(&config), &sandbox, n).await
            }
        };
        rows.push((
            "builtin:tcp connect, loopback",
            calls(
                "builtin:tcp",
                vec![("port", tcp_port_text.clone())],
                vec![tcp_grant.clone()],
                vec![],
                3000 / scale,
            )
            .await,
        ));
        rows.push((
            "builtin:http GET, loopback",
            calls(
                "builtin:http",
                vec![("url", url.clone())],
                vec![http_grant.clone()],
                vec![],
                3000 / scale,
            )
            .await,
        ));
        rows.push((
            "builtin:file stat of a granted file",
            calls(
                "builtin:file",
                vec![("path", beat_text.clone())],
                vec![],
                vec![dir.clone()],
                3000 / scale,
            )
            .await,
        ));
        rows.push((
            "file check, fresh instance, fs.read of a granted file",
            calls(
                programs::FS_READ,
                vec![("path", beat_text.clone())],
                vec![],
                vec![dir.clone()],
                3000 / scale,
            )
            .await,
        ));
        rows.push((
            "file check, fresh instance, returns ok",
            calls(programs::OK, vec![], vec![], vec![], 3000 / scale).await,
        ));
        // Loading a file component that is already in the cache: the trust
        // checks on the artifact are paid here, at every start of a service.
        let cache = std::env::temp_dir().join(format!("vigil-bench-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        let cached = Engine::new(EngineOptions {
            cache_dir: Some(cache.clone()),
            max_instances: 4,
            max_memory: 64 << 20,
        })
        .expect("engine");
        let source: CheckSource = programs::HTTP_GET.parse().expect("infallible");
        let (_, first) = cached.load_component(&source).await.expect("compile");
        assert_ne!(first, CacheOutcome::Uncached, "the cache is not usable");
        let mut samples = Vec::new();
        let loads = (200 / scale).max(5);
        let cpu = cpu_time();
        for _ in 0..loads {
            let start = Instant::now();
            let (_, outcome) = cached.load_component(&source).await.expect("load");
            samples.push(start.elapsed());
            assert_eq!(outcome, CacheOutcome::Hit);
        }
        let cpu_per_call = (cpu_time() - cpu) / loads as u32;
        rows.push((
            "load a cached file component",
            Row {
                stats: common::stats(samples),
                cpu_per_call,
            },
        ));
        let _ = std::fs::remove_dir_all(&cache);
    });
    let _ = std::fs::remove_dir_all(&dir);

    let mut out = String::new();
    for (row, stats) in &rows {
        out.push_str(&json_row(&build, row, stats));
        out.push('\n');
    }
    print!("{out}");
    if let Some(path) = json_out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open --json file");
        file.write_all(out.as_bytes()).expect("write --json file");
    }
}
