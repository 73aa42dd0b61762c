//! Per-check cost of wasm checks versus what an exec probe pays, in one
//! run on one machine. `make bench` writes the table to BENCHMARKS.md.
//!
//! Usage: cargo bench -p vigil --bench checks -- [--out FILE] [--quick]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    Args, Stats, fmt, machine, mini_redis, runtime, sandbox, server, stats, target, time_calls,
    time_compile_and_loads,
};

use vigil::wasm::{CheckSource, Engine, EngineOptions};

const HEADING: &str = "## Check engine: per-check cost (issue 2)";

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
/// connect check (a server that closes first is left with the TIME_WAIT,
/// whose port a later connect may hit; see the sandbox bench).
fn tcp_server() -> u16 {
    server(|_| None)
}

fn time_process(program: &str, args: &[&str], n: usize) -> Stats {
    let samples = (0..n)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("spawn");
            assert!(status.success(), "{program} failed");
            start.elapsed()
        })
        .collect();
    stats(samples)
}

async fn time_check(
    engine: &Engine,
    source: &str,
    config: &[(&str, &str)],
    hosts: &[String],
    n: usize,
) -> Stats {
    let source: CheckSource = source.parse().expect("infallible");
    let (target, sandbox) = (target(config), sandbox(hosts, &[]));
    // 20 calls to warm up: the first builds the HTTP client, faults in the pool.
    time_calls(engine, &source, target, sandbox, 20, n).await
}

async fn time_loads(source: &str, n: usize) -> (Duration, Stats) {
    let dir = std::env::temp_dir().join(format!("vigil-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let engine = Engine::new(EngineOptions {
        cache_dir: Some(dir.clone()),
        max_instances: 4,
        max_memory: 64 << 20,
    })
    .expect("engine");
    let source: CheckSource = source.parse().expect("infallible");
    let loads = time_compile_and_loads(&engine, &source, n).await;
    let _ = std::fs::remove_dir_all(&dir);
    loads
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();

    let runtime = runtime();
    let http_port = server(http_ok);
    let tcp_port = tcp_server();
    let url = format!("http://127.0.0.1:{http_port}/");
    let http_grant = format!("http://127.0.0.1:{http_port}");
    let tcp_grant = format!("tcp://127.0.0.1:{tcp_port}");
    let tcp_port_text = tcp_port.to_string();
    let redis_port = server(mini_redis);
    let redis_grant = format!("tcp://127.0.0.1:{redis_port}");
    let redis_port_text = redis_port.to_string();

    let engine = Engine::new(EngineOptions::default()).expect("engine");
    let (trivial, tcp, http, redis, (compile, cached)) = runtime.block_on(async {
        let trivial = time_check(&engine, programs::OK, &[], &[], 5000 / scale).await;
        let tcp = time_check(
            &engine,
            "builtin:tcp",
            &[("port", &tcp_port_text)],
            &[tcp_grant],
            3000 / scale,
        )
        .await;
        let http = time_check(
            &engine,
            "builtin:http",
            &[("url", &url)],
            &[http_grant],
            3000 / scale,
        )
        .await;
        let redis = time_check(
            &engine,
            "builtin:redis",
            &[("port", &redis_port_text), ("replica-link", "false")],
            &[redis_grant],
            3000 / scale,
        )
        .await;
        let loads = time_loads("builtin:http", 200 / scale).await;
        (trivial, tcp, http, redis, loads)
    });
    let true_stats = time_process("/bin/true", &[], 1000 / scale);
    let curl = time_process("curl", &["-fsS", "-o", "/dev/null", &url], 500 / scale);

    let ratio = |slow: &Stats, fast: &Stats| slow.median.as_secs_f64() / fast.median.as_secs_f64();
    let row = |name: &str, s: &Stats, vs: &str| {
        format!(
            "| {name} | {} | {} | {} | {vs} |\n",
            fmt(s.median),
            fmt(s.p99),
            s.n
        )
    };
    // Issue 15 §3: the in-process cost of network checks, same run.
    let goal = |s: &Stats, us: u64| {
        let met = if s.median <= Duration::from_micros(us) {
            "met"
        } else {
            "missed"
        };
        format!("; median ≤ {us} µs: **{met}**")
    };
    let mut table = String::new();
    table.push_str(
        "| per check | median | p99 | runs | vs. baseline (median) |\n|---|---|---|---|---|\n",
    );
    table.push_str(&row(
        "(a) trivial wasm check, fresh instance per call",
        &trivial,
        &format!(
            "**{:.0}x** cheaper than /bin/true (target ≥ 20x)",
            ratio(&true_stats, &trivial)
        ),
    ));
    table.push_str(&row(
        "(b) builtin:tcp connect, loopback",
        &tcp,
        &format!(
            "**{:.0}x** cheaper than curl (target ≥ 10x){}",
            ratio(&curl, &tcp),
            goal(&tcp, 60)
        ),
    ));
    table.push_str(&row(
        "(b) builtin:http GET, loopback",
        &http,
        &format!(
            "**{:.0}x** cheaper than curl (target ≥ 10x){}",
            ratio(&curl, &http),
            goal(&http, 200)
        ),
    ));
    table.push_str(&row(
        "(b) builtin:redis PING (`replica-link = false`), loopback",
        &redis,
        &format!(
            "**{:.0}x** cheaper than curl{}",
            ratio(&curl, &redis),
            goal(&redis, 300)
        ),
    ));
    table.push_str(&row(
        "(c) fork/exec/wait `/bin/true`",
        &true_stats,
        "baseline",
    ));
    table.push_str(&row(
        "(c) fork/exec/wait `curl -fsS` same server",
        &curl,
        "baseline",
    ));

    let mut loads = String::new();
    loads.push_str("| builtin:http component | time |\n|---|---|\n");
    loads.push_str(&format!(
        "| compile (Cranelift) and store in the cache | {} |\n",
        fmt(compile)
    ));
    loads.push_str(&format!(
        "| load from the cache (checksum + `deserialize_file`), median / p99 of {} | {} / {} |\n",
        cached.n,
        fmt(cached.median),
        fmt(cached.p99)
    ));

    let report = format!(
        "{HEADING}\n\nOne run, one machine ({}), `cargo bench -p vigil --bench checks`{}. The HTTP, TCP and Redis servers are minimal Rust servers on loopback (one event-loop thread each, as real servers are), the same for wasm checks and curl; the checks run in a task on the runtime's workers, as in `vigil run`.\n\n{table}\n{loads}",
        machine(),
        args.shown()
    );
    args.publish(HEADING, &report);
}
