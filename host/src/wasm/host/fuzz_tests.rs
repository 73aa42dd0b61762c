//! Fuzz target (see `crate::fuzz`) for the host side of every capability
//! call: what a hostile check can pass to `http`, `http2`, `tcp`, `fs`,
//! `process`, `output` and `log`, called exactly as the component model
//! calls them. Each answers with a value or an `error-code` the guest
//! sees; none panics, none traps (a trap is for the host's own faults),
//! and nothing leaves loopback: the only grants name a closed loopback
//! port and a scratch directory holding a FIFO, a symlink out, a
//! directory and a large file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

use super::HostError;
use super::output::{Channel, OutputRing};
use crate::fuzz::{self, text};
use crate::test_support::TempDir;
use crate::wasm::bindings::checker::vigil::health::tcp::HostConnection;
use crate::wasm::bindings::checker::vigil::health::{
    fs, http, http2, log, output as output_wit, process,
};
use crate::wasm::grants::Grants;
use crate::wasm::limits::MemoryCap;
use crate::wasm::store::HostState;
use crate::wasm::{Engine, Sandbox};

/// A call's deadline: a refused loopback connect answers in microseconds,
/// so this only bounds a bug.
const CALL: Duration = Duration::from_secs(5);

/// One call's store data, as the engine makes it for a check.
fn state(sandbox: &Sandbox, ring: Arc<OutputRing>) -> HostState {
    HostState {
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
        limits: MemoryCap::new(1 << 20, 1 << 30, Default::default()),
        caps: Engine::capabilities(
            Some(sandbox),
            Some(std::process::id()),
            Some(ring),
            Instant::now() + CALL,
        ),
    }
}

/// A call's outcome: an answer for the guest, never a trap.
fn answered<T: std::fmt::Debug>(what: &str, result: Result<T, HostError>) {
    if let Err(HostError::Fault(fault)) = result {
        panic!("{what}: a host fault (trap) for guest input: {fault:?}");
    }
}

fn u32_of(word: Option<&str>) -> u32 {
    word.and_then(|w| w.parse().ok()).unwrap_or(u32::MAX)
}

#[test]
fn fuzz_capability_calls() {
    let scratch = TempDir::new("fuzz-capabilities");
    let dir = scratch.0.clone();
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("file"), "hello\n").expect("file");
    std::fs::write(dir.join("big"), vec![b'x'; 3 << 20]).expect("big file");
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("out")).expect("symlink");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).expect("symlink");
    std::os::unix::fs::symlink("sub/../file", dir.join("in")).expect("symlink");
    let port = fuzz::closed_port();
    let hosts = vec![
        format!("http://127.0.0.1:{port}"),
        format!("tcp://localhost:{port}"),
        format!("https://[::1]:{port}"),
    ];
    let grants = Grants::parse(&hosts, std::slice::from_ref(&dir))
        .expect("grants")
        .with_output(true);
    // One sandbox for every input, as for every call of one check: its
    // HTTP client is built once.
    let sandbox = Sandbox::new(grants, CALL, 1 << 20).with_base_dir(dir.clone());
    let ring = Arc::new(OutputRing::default());
    ring.set_enabled(true);
    ring.push(Channel::Stdout, "a line");
    ring.push(Channel::Stderr, "another é line");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let port_text = port.to_string();
    let dir_text = dir.display().to_string();
    let dict: Vec<&str> = vec![
        "http GET ",
        "http2 POST ",
        "tcp ",
        "fs stat ",
        "fs read ",
        "proc ",
        "tree\n",
        "log ",
        "out ",
        "http://127.0.0.1:",
        "https://[::1]:",
        "http://localhost:",
        "http://169.254.169.254/",
        "http://user:pass@127.0.0.1:",
        "file:///etc/passwd",
        &port_text,
        &dir_text,
        "/file",
        "/fifo",
        "/zero",
        "/out",
        "/in",
        "/big",
        "/sub/..",
        "../../etc/passwd",
        " Host:evil",
        " Transfer-Encoding:chunked",
        " Content-Length:5",
        " X:\r\nY",
        "CONNECT",
        "TRACE",
        "G\u{e9}T",
        "4294967295",
        "0",
        "1",
        "\n",
    ];
    fuzz::run_with("capability-calls", &dict, 2048, 1000, |input| {
        let text = text(input);
        let mut state = state(&sandbox, ring.clone());
        runtime.block_on(async {
            for line in text.lines().take(6) {
                let mut words = line.splitn(4, ' ');
                let op = words.next().unwrap_or_default();
                let a = words.next();
                let b = words.next();
                let rest = words.next();
                match op {
                    "http" | "http2" => {
                        let headers: Vec<(String, String)> = rest
                            .unwrap_or_default()
                            .split(' ')
                            .filter_map(|h| h.split_once(':'))
                            .map(|(n, v)| (n.to_string(), v.to_string()))
                            .collect();
                        let method = a.unwrap_or_default().to_string();
                        let url = b.unwrap_or_default().to_string();
                        let body = rest.map(|r| r.as_bytes().to_vec());
                        if op == "http" {
                            let request = http::Request {
                                method,
                                url,
                                headers,
                                body,
                                timeout_ms: Some(1000),
                                follow_redirects: true,
                            };
                            answered(line, http::Host::send(&mut state, request).await);
                        } else {
                            let request = http2::Request {
                                method,
                                url,
                                headers,
                                body,
                                timeout_ms: Some(1000),
                                connect_timeout_ms: Some(1000),
                                tls: rest.map(|pem| http2::TlsOptions {
                                    ca_pem: Some(pem.as_bytes().to_vec()),
                                    server_name: a.map(str::to_string),
                                }),
                            };
                            answered(line, http2::Host::send(&mut state, request).await);
                        }
                    }
                    "tcp" => {
                        let host = a.unwrap_or_default().to_string();
                        let port = b.and_then(|p| p.parse().ok()).unwrap_or(0);
                        let connected = HostConnection::connect(&mut state, host, port, 1000).await;
                        if let Ok(connection) = connected {
                            HostConnection::drop(&mut state, connection)
                                .await
                                .expect("drop a connection the guest holds");
                        } else {
                            answered(line, connected);
                        }
                    }
                    "fs" => {
                        let path = b.unwrap_or_default().to_string();
                        if a == Some("stat") {
                            answered(line, fs::Host::stat(&mut state, path).await);
                        } else {
                            let max = u32_of(rest);
                            let read = fs::Host::read(&mut state, path, max).await;
                            if let Ok(bytes) = &read {
                                assert!(bytes.len() <= max as usize, "{line}: read past max");
                            }
                            answered(line, read);
                        }
                    }
                    "proc" => {
                        let pid = u32_of(a);
                        answered(line, process::Host::stat(&mut state, pid).await);
                    }
                    "tree" => answered(line, process::Host::tree(&mut state).await),
                    "log" => {
                        let message = line.get(4..).unwrap_or_default().to_string();
                        log::Host::log(&mut state, log::Level::Warn, message).await;
                    }
                    "out" => {
                        let query = output_wit::Query {
                            since_ms: a.and_then(|s| s.parse().ok()),
                            channel: None,
                            max_lines: u32_of(b),
                            max_bytes: u32_of(rest),
                        };
                        let got = output_wit::Host::recent(&mut state, query).await;
                        if let Ok(lines) = &got {
                            let bytes: usize = lines.lines.iter().map(|l| l.text.len()).sum();
                            assert!(bytes <= u32_of(rest) as usize, "{line}: past max-bytes");
                        }
                        answered(line, got);
                    }
                    _ => {}
                }
            }
        });
        // Kept messages stay within the log buffer's own bound.
        let kept: usize = state.caps.log.lines().iter().map(String::len).sum();
        assert!(kept <= 128 << 10, "the log buffer kept {kept} bytes");
    });
}
