//! Shared fixtures: the engine, loopback servers, sandboxes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use vigil::wasm::{
    CheckReport, CheckSource, Checker, Engine, EngineOptions, Grants, Phase, Sandbox, Target,
};

#[macro_use]
pub mod programs {
    include!(concat!(env!("OUT_DIR"), "/test_programs.rs"));
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One engine per test binary, caching compiled components in the target
/// dir so each component compiles once per run.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vigil-e2e-cache");
            Engine::new(EngineOptions {
                cache_dir: Some(cache),
                max_instances: 64,
                max_memory: 256 << 20,
            })
            .expect("engine")
        })
        .clone()
}

pub async fn load(source: &str) -> Checker {
    let source: CheckSource = source.parse().expect("infallible");
    engine()
        .load_checker(&source)
        .await
        .unwrap_or_else(|err| panic!("load {source}: {err}"))
}

pub fn sandbox(hosts: &[String], paths: &[PathBuf], timeout: Duration) -> Sandbox {
    let grants = Grants::parse(hosts, paths).expect("valid grants");
    Sandbox::new(grants, timeout, 64 << 20)
}

pub fn target(config: &[(&str, &str)], pid: Option<u32>) -> Target {
    let config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Target::one_shot(Phase::Liveness, pid, config)
}

/// Runs a check, failing the test (rather than hanging) if it never ends.
pub async fn run(
    source: &str,
    config: &[(&str, &str)],
    pid: Option<u32>,
    sandbox: &Sandbox,
) -> CheckReport {
    let checker = load(source).await;
    tokio::time::timeout(
        Duration::from_secs(60),
        checker.check(&target(config, pid), sandbox),
    )
    .await
    .expect("a check must always return")
}

/// Python's http.server with the routes of tests/fixtures/http_server.py.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl HttpServer {
    pub fn start() -> HttpServer {
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/fixtures/http_server.py"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 http server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("PORT line");
        HttpServer { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn grant(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server on loopback answering `+PONG\r\n` to anything containing
/// PING, and staying silent otherwise.
pub struct PongServer {
    pub port: u16,
}

impl PongServer {
    pub fn start() -> PongServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        if buffer[..n].windows(4).any(|w| w == b"PING") {
                            let _ = stream.write_all(b"+PONG\r\n");
                        }
                    }
                });
            }
        });
        PongServer { port }
    }
}

/// A port with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A scratch directory under the target dir, fresh for each name.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
