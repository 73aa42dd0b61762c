//! README "gRPC health": `builtin:grpc` against a real gRPC health server,
//! and `vigil run --grpc` asked by a real gRPC client, both from PyPI
//! (grpcio, grpcio-health-checking; tests/fixtures/grpc_peer.py), over
//! loopback, cleartext and TLS with a CA the test makes with openssl.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::support::*;

/// The tools venv's Python, where scripts/setup.sh installs grpcio.
fn tools_python() -> PathBuf {
    let tools = std::env::var_os("VIGIL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/vigil/tools")
        });
    tools.join("python/bin/python")
}

fn peer_script() -> PathBuf {
    workspace().join("tests/fixtures/grpc_peer.py")
}

/// A grpc.health.v1 server from grpcio-health-checking, whose states the
/// test sets.
struct HealthServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl HealthServer {
    fn start(tls: Option<(&Path, &Path)>) -> HealthServer {
        let mut cmd = Command::new(tools_python());
        cmd.arg(peer_script()).arg("serve");
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python gRPC server (scripts/setup.sh installs grpcio)");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the server's port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the gRPC server did not print its port: {line:?}"));
        HealthServer {
            child,
            stdin,
            stdout,
            port,
        }
    }

    /// Set `service`'s state ("" is the server as a whole) and wait until
    /// the server has.
    fn set(&mut self, service: &str, state: &str) {
        let service = if service.is_empty() { "-" } else { service };
        writeln!(self.stdin, "{service} {state}").expect("tell the server");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the server's answer");
        assert_eq!(line.trim(), "ok");
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `vigil check builtin:grpc --json` with `config` and `extra` flags:
/// (exit code, the JSON report).
fn grpc_check(config: &[(&str, &str)], extra: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["check", "builtin:grpc", "--json"]);
    for (key, value) in config {
        cmd.args(["--config", &format!("{key}={value}")]);
    }
    let out: Output = cmd.args(extra).output().expect("run vigil check");
    let code = out.status.code().expect("exited normally");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report (exit {code}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (code, report)
}

fn reason(report: &Value) -> String {
    report["reason"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn builtin_grpc_in_each_state() {
    let mut server = HealthServer::start(None);
    let port = server.port.to_string();
    let grant = format!("http://127.0.0.1:{port}");
    let allow = ["--allow-host", grant.as_str()];
    let check = |service: &str| grpc_check(&[("port", &port), ("service", service)], &allow);

    server.set("", "SERVING");
    server.set("web", "SERVING");
    let (code, report) = check("");
    assert_eq!(
        (code, report["outcome"].as_str()),
        (0, Some("ok")),
        "{report}"
    );
    assert_eq!(check("web").0, 0);

    server.set("web", "NOT_SERVING");
    let (code, report) = check("web");
    assert_eq!(code, 75, "{report}");
    assert!(reason(&report).contains("NOT_SERVING"), "{report}");

    server.set("web", "UNKNOWN");
    let (code, report) = check("web");
    assert_eq!(code, 75, "{report}");
    assert!(reason(&report).ends_with("UNKNOWN"), "{report}");

    // Waiting does not make a server know a service: error, with the
    // gRPC status and message.
    let (code, report) = check("nope");
    assert_eq!(code, 1, "{report}");
    let why = reason(&report);
    assert!(
        why.contains("grpc-status 5 NOT_FOUND") && why.contains("SERVICE_UNKNOWN"),
        "{report}"
    );

    // Not granted: error; https granted but cleartext asked: still denied.
    let (code, report) = grpc_check(&[("port", &port)], &[]);
    assert_eq!(code, 1, "{report}");
    assert!(reason(&report).contains("not granted"), "{report}");
    let https = format!("https://127.0.0.1:{port}");
    assert_eq!(
        grpc_check(&[("port", &port)], &["--allow-host", &https]).0,
        1
    );

    // Nothing listening: retry.
    let closed = closed_port().to_string();
    let (code, report) = grpc_check(
        &[("port", &closed)],
        &["--allow-host", &format!("http://127.0.0.1:{closed}")],
    );
    assert_eq!(code, 75, "{report}");
}

/// A CA and a server certificate for `grpc.test` and 127.0.0.1 it signed,
/// made with the openssl CLI: (ca.pem, cert.pem, key.pem).
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vigil test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=grpc.test",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:grpc.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[test]
fn builtin_grpc_over_tls_with_a_private_ca() {
    let dir = scratch("grpc-tls");
    let (ca, cert, key) = make_ca(&dir);
    let mut server = HealthServer::start(Some((&cert, &key)));
    server.set("", "SERVING");
    let port = server.port.to_string();
    let ca = ca.display().to_string();
    let grant = format!("https://127.0.0.1:{port}");
    let allow = ["--allow-host", grant.as_str(), "--allow-path", ca.as_str()];

    // Verified against the CA, for the IP address in the certificate.
    let (code, report) = grpc_check(&[("port", &port), ("tls", "true"), ("tls-ca", &ca)], &allow);
    assert_eq!(code, 0, "{report}");
    // ... and for a DNS name that is not `host` (SNI), still connecting to
    // the granted 127.0.0.1.
    let (code, report) = grpc_check(
        &[
            ("port", &port),
            ("tls", "true"),
            ("tls-ca", &ca),
            ("tls-server-name", "grpc.test"),
        ],
        &allow,
    );
    assert_eq!(code, 0, "{report}");

    // A name the certificate does not carry, or the web roots alone: the
    // certificate is not accepted.
    let (code, report) = grpc_check(
        &[
            ("port", &port),
            ("tls", "true"),
            ("tls-ca", &ca),
            ("tls-server-name", "other.test"),
        ],
        &allow,
    );
    assert_ne!(code, 0, "{report}");
    assert!(
        reason(&report).to_lowercase().contains("certificate"),
        "{report}"
    );
    let (code, report) = grpc_check(&[("port", &port), ("tls", "true")], &allow);
    assert_ne!(code, 0, "{report}");
    assert!(
        reason(&report).to_lowercase().contains("certificate"),
        "{report}"
    );

    // The CA file is read through the fs grant.
    let (code, report) = grpc_check(
        &[("port", &port), ("tls", "true"), ("tls-ca", &ca)],
        &["--allow-host", &grant],
    );
    assert_eq!(code, 1, "{report}");
    assert!(reason(&report).contains("tls-ca"), "{report}");
}

/// `grpc_peer.py check ADDR SERVICE`: the status or error code name.
pub(crate) fn client_check(addr: &str, service: &str) -> String {
    let out = Command::new(tools_python())
        .arg(peer_script())
        .args(["check", addr, service])
        .output()
        .expect("run the Python gRPC client");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `grpc_peer.py watch ADDR SERVICE`, its lines arriving on a channel.
fn client_watch(addr: &str, service: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(tools_python())
        .arg(peer_script())
        .args(["watch", addr, service])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the Python gRPC client");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn next_line(rx: &mpsc::Receiver<String>, what: &str) -> String {
    rx.recv_timeout(SOON)
        .unwrap_or_else(|_| panic!("the Watch stream sent nothing: expected {what}"))
}

#[test]
fn run_grpc_serves_check_and_watch() {
    let setup = Setup::new("grpc-serve");
    setup.service("web", &command(&["sleep", "1000"]));
    setup.service(
        "worker",
        &format!("{}\nrestart = \"never\"\n", command(&["sleep", "1000"])),
    );
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let mut vigil = Vigil::start_with(&setup, &["--grpc", &addr]);
    vigil.wait_kind(0, "web", "ready");
    vigil.wait_kind(0, "worker", "ready");

    assert_eq!(client_check(&addr, ""), "SERVING");
    assert_eq!(client_check(&addr, "web"), "SERVING");
    assert_eq!(client_check(&addr, "worker"), "SERVING");
    assert_eq!(client_check(&addr, "nope"), "NOT_FOUND");

    let (mut all, all_rx) = client_watch(&addr, "");
    let (mut worker, worker_rx) = client_watch(&addr, "worker");
    let (mut unknown, unknown_rx) = client_watch(&addr, "nope");
    assert_eq!(next_line(&all_rx, "SERVING"), "SERVING");
    assert_eq!(next_line(&worker_rx, "SERVING"), "SERVING");
    assert_eq!(next_line(&unknown_rx, "SERVICE_UNKNOWN"), "SERVICE_UNKNOWN");

    // Kill the worker: it stays down (restart = never), so it and the
    // whole are NOT_SERVING, on the open streams and to Check; web is not.
    let (_, spawned) = vigil.wait_spawned(0, "worker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawned),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    assert_eq!(next_line(&worker_rx, "NOT_SERVING"), "NOT_SERVING");
    assert_eq!(next_line(&all_rx, "NOT_SERVING"), "NOT_SERVING");
    assert_eq!(client_check(&addr, "worker"), "NOT_SERVING");
    assert_eq!(client_check(&addr, ""), "NOT_SERVING");
    assert_eq!(client_check(&addr, "web"), "SERVING");

    // Shutdown ends every stream with UNAVAILABLE, and vigil exits 0.
    let status = vigil.terminate();
    assert!(status.success(), "{status:?}");
    for (child, rx) in [
        (&mut all, &all_rx),
        (&mut worker, &worker_rx),
        (&mut unknown, &unknown_rx),
    ] {
        let last = std::iter::from_fn(|| rx.recv_timeout(SOON).ok())
            .find(|line| line.starts_with("END"))
            .expect("the stream ended");
        assert_eq!(last, "END UNAVAILABLE");
        let _ = child.wait();
    }
}

/// A `Watch` is a call in progress however long it stays quiet: the
/// connection it rides is not closed as idle (60 s without a call; 10 s
/// before the first), and it still carries the next change.
#[test]
fn a_quiet_watch_outlives_the_idle_bound() {
    let setup = Setup::new("grpc-quiet-watch");
    setup.service(
        "worker",
        &format!("{}\nrestart = \"never\"\n", command(&["sleep", "1000"])),
    );
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &["--grpc", &addr]);
    vigil.wait_kind(0, "worker", "ready");
    let (mut watch, rx) = client_watch(&addr, "worker");
    assert_eq!(next_line(&rx, "SERVING"), "SERVING");
    // Past `IDLE_TIMEOUT` in host/src/control/grpc.rs and the 10 s an
    // idle connection is given to go after its GOAWAY, with nothing sent.
    std::thread::sleep(std::time::Duration::from_secs(75));
    let (_, spawned) = vigil.wait_spawned(0, "worker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawned),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    // Vigil's side is printed whether the stream sent the wrong line or
    // none (seen once, with two whole suites running at once).
    let line = rx.recv_timeout(SOON).unwrap_or_else(|_| {
        panic!(
            "the Watch stream sent nothing after the worker died; expected NOT_SERVING\n{}",
            vigil.diagnostics()
        )
    });
    assert_eq!(line, "NOT_SERVING", "{}", vigil.diagnostics());
    let _ = watch.kill();
    let _ = watch.wait();
}
