//! Checks in other languages: compile time versus cached load, per-call
//! cost of each language's example check next to the Rust builtin that
//! does the same job, and how soon the second start of a service with a
//! Python check has its first result. `make bench` writes the tables to
//! BENCHMARKS.md (run `make examples` first: it builds the components).
//!
//! Usage: cargo bench -p vigil --bench languages -- [--out FILE] [--quick]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::{
    Args, Stats, fmt, machine, mini_redis, runtime, sandbox, server, stats, target,
    time_cached_loads, time_calls, time_compile_and_loads,
};

use vigil::wasm::{CheckSource, Engine, EngineOptions, Sandbox, Target, Verdict};

const HEADING: &str = "## Checks in other languages (issue 5)";

fn fmt_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// HTTP/1.1 with a JSON health document, keep-alive.
fn json_health(request: &[u8]) -> Option<Vec<u8>> {
    request.windows(4).any(|w| w == b"\r\n\r\n").then(|| {
        let body = r#"{"status": "ok", "checks": {"db": {"status": "pass"}, "cache": "ok"}}"#;
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

/// One probe to measure: a component, its settings and grants.
struct Probe {
    language: &'static str,
    source: String,
    what: &'static str,
    config: Vec<(String, String)>,
    hosts: Vec<String>,
    paths: Vec<PathBuf>,
}

impl Probe {
    fn target(&self) -> Target {
        let config: Vec<(&str, &str)> = self
            .config
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        target(&config)
    }

    fn sandbox(&self) -> Sandbox {
        sandbox(&self.hosts, &self.paths)
    }
}

fn engine(cache: &Path) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(cache.to_path_buf()),
        max_instances: 16,
        max_memory: 256 << 20,
    })
    .expect("engine")
}

/// Loads of a copy of the file made just now: the cache has not seen this
/// file (and does not remember a file changed in the last two seconds), so
/// each load reads and hashes the component before finding its artifact.
async fn time_unremembered_loads(cache: &Path, source: &CheckSource, n: usize) -> Option<Stats> {
    let CheckSource::File(path) = source else {
        return None;
    };
    let copy = cache.join("fresh-copy.wasm");
    std::fs::copy(path, &copy).expect("copy component");
    let copy_source = CheckSource::File(copy.clone());
    let loads = time_cached_loads(&engine(cache), &copy_source, n).await;
    let _ = std::fs::remove_file(&copy);
    Some(loads)
}

/// Calls of `probe` as Vigil makes them, after 5 to warm up.
async fn time_probe_calls(engine: &Engine, probe: &Probe, n: usize) -> Stats {
    let source: CheckSource = probe.source.parse().expect("infallible");
    let (target, sandbox) = (probe.target(), probe.sandbox());
    time_calls(engine, &source, target, sandbox, 5, n).await
}

/// A new Engine (as at the second start of Vigil: the compiled component
/// is in the on-disk cache) up to the first CheckReport.
async fn time_second_start(cache: &Path, probe: &Probe, n: usize) -> Stats {
    let source: CheckSource = probe.source.parse().expect("infallible");
    let (target, sandbox) = (probe.target(), probe.sandbox());
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let engine = engine(cache);
        let checker = engine.load_checker(&source).await.expect("load");
        let report = checker.check(&target, &sandbox).await;
        samples.push(start.elapsed());
        assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    }
    stats(samples)
}

/// Where a cache hit's time goes, for a component file and the artifact
/// its cache holds: medians of `n` runs of each step the cache performs.
fn hit_breakdown(source: &Path, cache: &Path, n: usize) -> String {
    use sha2::{Digest, Sha256};
    let artifact = std::fs::read_dir(cache.join("vigil/components"))
        .or_else(|_| std::fs::read_dir(cache))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"));
    let Some(artifact) = artifact else {
        return String::new();
    };
    let median = |f: &dyn Fn()| {
        let samples = (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        stats(samples).median
    };
    let bytes = std::fs::read(source).expect("read component");
    let compiled = std::fs::read(&artifact).expect("read artifact");
    let read_source = median(&|| drop(std::hint::black_box(std::fs::read(source))));
    let sha = median(&|| {
        std::hint::black_box(Sha256::digest(&bytes));
    });
    let read_artifact = median(&|| drop(std::fs::read(&artifact)));
    let crc = median(&|| {
        std::hint::black_box(crc32fast::hash(&compiled));
    });
    format!(
        "read {} .wasm {}, SHA-256 of it {}, read {} artifact {}, CRC-32 of it {}",
        fmt_size(bytes.len() as u64),
        fmt(read_source),
        fmt(sha),
        fmt_size(compiled.len() as u64),
        fmt(read_artifact),
        fmt(crc)
    )
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("check-examples")
}

fn example(name: &str) -> String {
    let path = examples_dir().join(format!("{name}.wasm"));
    if !path.is_file() {
        eprintln!(
            "{} is missing: run `make examples` first (make bench does)",
            path.display()
        );
        std::process::exit(2);
    }
    path.display().to_string()
}

fn main() {
    let args = Args::parse();
    let scale = args.scale();

    let python = example("json_health");
    let javascript = example("heartbeat");
    let c = example("redis_ping");

    let http_port = server(json_health);
    let redis_port = server(mini_redis);
    let http_grant = format!("http://127.0.0.1:{http_port}");
    let url = format!("{http_grant}/health");
    let redis_grant = format!("tcp://127.0.0.1:{redis_port}");
    let scratch =
        std::env::temp_dir().join(format!("vigil-bench-languages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let beat = scratch.join("beat.json");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    std::fs::write(&beat, format!(r#"{{"time": {now}, "state": "running"}}"#)).expect("beat");
    let beat_path = beat.display().to_string();

    let kv = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let http_probe = |language, source: &str, what, config: &[(&str, &str)]| Probe {
        language,
        source: source.to_string(),
        what,
        config: kv(config),
        hosts: vec![http_grant.clone()],
        paths: vec![],
    };
    let file_probe = |language, source: &str, what, config: &[(&str, &str)]| Probe {
        language,
        source: source.to_string(),
        what,
        config: kv(config),
        hosts: vec![],
        paths: vec![scratch.clone()],
    };
    let redis_probe = |language, source: &str, what| Probe {
        language,
        source: source.to_string(),
        what,
        config: kv(&[("port", &redis_port.to_string())]),
        hosts: vec![redis_grant.clone()],
        paths: vec![],
    };
    let probes = [
        http_probe(
            "Python",
            &python,
            "JSON health endpoint, nested statuses",
            &[
                ("url", &url),
                ("components", "checks"),
                ("latency-budget", "1s"),
            ],
        ),
        http_probe(
            "Rust",
            "builtin:http",
            "same endpoint, `json-field=status=ok`",
            &[("url", &url), ("json-field", "status=ok")],
        ),
        file_probe(
            "JavaScript",
            &javascript,
            "heartbeat file content",
            &[("path", &beat_path), ("max-age", "1h")],
        ),
        file_probe(
            "Rust",
            "builtin:file",
            "same file, `max-age`",
            &[("path", &beat_path), ("max-age", "1h")],
        ),
        redis_probe("C", &c, "Redis PING"),
        redis_probe("Rust", "builtin:redis", "Redis PING + INFO replication"),
    ];

    let runtime = runtime();
    let cache_root =
        std::env::temp_dir().join(format!("vigil-bench-lang-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_root);

    // Compile and cached load, each component into its own empty cache.
    let mut load_rows = String::new();
    let mut breakdowns = String::new();
    let mut caches = Vec::new();
    for (language, source) in [
        ("Python (componentize-py)", python.as_str()),
        ("JavaScript (componentize-js)", javascript.as_str()),
        ("C (wit-bindgen + zig)", c.as_str()),
        ("Rust (builtin:redis)", "builtin:redis"),
    ] {
        let cache = cache_root.join(caches.len().to_string());
        let parsed: CheckSource = source.parse().expect("infallible");
        let size = match &parsed {
            CheckSource::File(path) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            CheckSource::Builtin(name) => {
                vigil::wasm::builtins::lookup(name).map_or(0, |b| b.len() as u64)
            }
            CheckSource::Embedded { .. } => 0,
        };
        eprintln!("compiling {language} ...");
        // Into an empty cache, then loads from it.
        let (compile, loads) = runtime.block_on(time_compile_and_loads(
            &engine(&cache),
            &parsed,
            50 / scale.min(5),
        ));
        let fresh = runtime.block_on(time_unremembered_loads(&cache, &parsed, 10));
        if let CheckSource::File(path) = &parsed {
            breakdowns.push_str(&format!(
                "- {language}: {}\n",
                hit_breakdown(path, &cache, 10)
            ));
        }
        load_rows.push_str(&format!(
            "| {language} | {} | {} | {} / {} | {} | {:.0}x |\n",
            fmt_size(size),
            fmt(compile),
            fmt(loads.median),
            fmt(loads.p99),
            fresh.map_or_else(|| "(embedded)".to_string(), |s| fmt(s.median)),
            compile.as_secs_f64() / loads.median.as_secs_f64()
        ));
        caches.push(cache);
    }

    // Per call, on one engine with everything cached.
    let shared = engine(&cache_root.join("calls"));
    let mut call_rows = String::new();
    for probe in &probes {
        eprintln!("calls: {} {} ...", probe.language, probe.what);
        let n = match probe.language {
            "Python" | "JavaScript" => 300,
            _ => 2000,
        } / scale;
        let s = runtime.block_on(time_probe_calls(&shared, probe, n));
        call_rows.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            probe.language,
            probe.what,
            fmt(s.median),
            fmt(s.p99),
            s.n
        ));
    }

    // Second start: a fresh Engine over the warm cache, to the first result.
    let python_cache = &caches[0];
    let js_cache = &caches[1];
    let mut start_rows = String::new();
    for (probe, cache) in [(&probes[0], python_cache), (&probes[2], js_cache)] {
        eprintln!("second start: {} ...", probe.language);
        let s = runtime.block_on(time_second_start(cache, probe, 30 / scale.min(3)));
        let verdict = if s.median <= Duration::from_millis(50) {
            "**met**"
        } else {
            "**missed**"
        };
        start_rows.push_str(&format!(
            "| {} ({}) | {} | {} | {} | {verdict} |\n",
            probe.language,
            probe.what,
            fmt(s.median),
            fmt(s.p99),
            s.n
        ));
    }
    let _ = std::fs::remove_dir_all(&cache_root);
    let _ = std::fs::remove_dir_all(&scratch);

    let report = format!(
        "{HEADING}\n\nOne run, one machine ({}), `cargo bench -p vigil --bench languages`{}. \
         Components from `make examples`; servers are minimal Rust servers on loopback (one event-loop thread each, as real servers are).\n\n\
         | component | .wasm | compile (Cranelift) + cache store | cached load, median / p99 | cached load of a file not seen before, median | compile / load |\n\
         |---|---|---|---|---|---|\n{load_rows}\n\
         A cached load of a file the cache has seen, unchanged since (same inode, size and \
         times), skips reading and hashing the component: it checks the artifact's CRC-32 and \
         maps it. A file not seen before (or changed in the last two seconds) is read and \
         hashed first; where that time goes:\n\n{breakdowns}\n\
         Per call, probe included, as Vigil runs checks: a check from a file gets a fresh \
         instance for every call; a Rust builtin reuses its finished instance.\n\n\
         | language | probe | median | p99 | runs |\n|---|---|---|---|---|\n{call_rows}\n\
         Second start of a service: a new `Engine` over the warm on-disk cache, `load_checker`, \
         first `check` → `CheckReport` (target ≤ 50 ms).\n\n\
         | check | median | p99 | runs | ≤ 50 ms |\n|---|---|---|---|---|\n{start_rows}",
        machine(),
        args.shown()
    );
    args.publish(HEADING, &report);
}
