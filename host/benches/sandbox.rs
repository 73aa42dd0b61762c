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
use common::{Args, Stats, runtime, sandbox, server, target, time_calls};

use vigil::wasm::{CacheOutcome, CheckSource, Engine, EngineOptions};

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

/// Accepts connections and resets them (SO_LINGER 0): enough for a
/// connect check. A plain close would leave the server's side in
/// TIME_WAIT, and tens of thousands of connects in a few minutes (both
/// builds, twice) then reuse a client port still waiting there: that SYN
/// is dropped and the check times out.
fn tcp_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            let _ =
                nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger);
        }
    });
    port
}

fn json_row(build: &str, row: &str, s: &Stats) -> String {
    format!(
        "{{\"build\":\"{build}\",\"row\":\"{row}\",\"median_us\":{:.2},\"p99_us\":{:.2},\"n\":{}}}",
        s.median.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6,
        s.n
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
    let mut rows: Vec<(&str, Stats)> = Vec::new();
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
                let mut sandbox = sandbox(&hosts, &paths);
                sandbox.timeout = Duration::from_secs(5);
                time_calls(&engine, &source, &target(&config), &sandbox, 20, n).await
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
        for _ in 0..(200 / scale).max(5) {
            let start = Instant::now();
            let (_, outcome) = cached.load_component(&source).await.expect("load");
            samples.push(start.elapsed());
            assert_eq!(outcome, CacheOutcome::Hit);
        }
        rows.push(("load a cached file component", common::stats(samples)));
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
