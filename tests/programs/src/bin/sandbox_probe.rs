//! Tries every way out that WASI offers a Rust program: files (`/`, `.`,
//! `/etc/passwd`, creating one), environment and arguments, stdin, TCP to
//! config `port` on 127.0.0.1 (a live listener in the test), listening,
//! UDP, and name lookup. Answers `ok` when nothing worked, otherwise
//! `error` naming what did; logs every attempt.

use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

use vigil_sdk::config::Port;
use vigil_sdk::{Outcome, Target, check};

/// What one attempt reached, if anything.
type Attempt = Result<String, String>;

fn entries(dir: &str) -> Attempt {
    let list = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    Ok(format!("{} entries", list.count()))
}

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let Port(port) = target.parse_required("port")?;
    let attempts: Vec<(&str, Attempt)> = vec![
        ("read_dir /", entries("/")),
        ("read_dir .", entries(".")),
        (
            "read /etc/passwd",
            std::fs::read("/etc/passwd")
                .map(|b| format!("{} bytes", b.len()))
                .map_err(|e| e.to_string()),
        ),
        (
            "metadata /",
            std::fs::metadata("/")
                .map(|m| format!("{:?}", m.file_type()))
                .map_err(|e| e.to_string()),
        ),
        (
            "create probe.txt",
            std::fs::write("probe.txt", b"x")
                .map(|()| "created".to_owned())
                .map_err(|e| e.to_string()),
        ),
        ("env vars", {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            if vars.is_empty() {
                Err("none".to_owned())
            } else {
                Ok(vars.join(" "))
            }
        }),
        ("args", {
            let args: Vec<String> = std::env::args().collect();
            if args.is_empty() {
                Err("none".to_owned())
            } else {
                Ok(args.join(" "))
            }
        }),
        ("stdin", {
            let mut input = Vec::new();
            match std::io::stdin().read_to_end(&mut input) {
                Ok(0) => Err("empty".to_owned()),
                Ok(n) => Ok(format!("{n} bytes")),
                Err(e) => Err(e.to_string()),
            }
        }),
        (
            "tcp connect",
            TcpStream::connect(("127.0.0.1", port))
                .map(|s| format!("connected {:?}", s.peer_addr()))
                .map_err(|e| e.to_string()),
        ),
        (
            "tcp listen",
            TcpListener::bind("127.0.0.1:0")
                .map(|l| format!("listening {:?}", l.local_addr()))
                .map_err(|e| e.to_string()),
        ),
        (
            "udp",
            UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.send_to(b"x", ("127.0.0.1", port)))
                .map(|n| format!("sent {n} bytes"))
                .map_err(|e| e.to_string()),
        ),
        (
            "lookup localhost",
            ("localhost", port)
                .to_socket_addrs()
                .map(|a| format!("{:?}", a.collect::<Vec<_>>()))
                .map_err(|e| e.to_string()),
        ),
    ];
    let mut reached = Vec::new();
    for (what, attempt) in attempts {
        match attempt {
            Ok(got) => {
                vigil_sdk::log::warn(&format!("reached: {what}: {got}"));
                reached.push(format!("{what} ({got})"));
            }
            Err(err) => vigil_sdk::log::info(&format!("denied: {what}: {err}")),
        }
    }
    Ok(if reached.is_empty() {
        Outcome::Ok
    } else {
        Outcome::error(format!("reached: {}", reached.join("; ")))
    })
}

fn main() {}
