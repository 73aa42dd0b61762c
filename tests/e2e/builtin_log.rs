//! README "builtin:log": a service judged by its own output, with real
//! redis-server and PostgreSQL logs and a liveness fail-pattern.

use std::os::unix::fs::MetadataExt;

use crate::servers::{Postgres, Redis, temp_dir};
use crate::support::*;

/// `[checks.PHASE]` with builtin:log and `config`, and the grant it needs.
fn log_check(phase: &str, config: &str) -> String {
    format!(
        "\n[grants]\noutput = true\n\n[checks.{phase}]\ncheck = \"builtin:log\"\n\
         period = \"100ms\"\n[checks.{phase}.config]\n{config}"
    )
}

/// redis-server under vigil is started (ok) exactly when it printed
/// "Ready to accept connections", and answers PING then.
#[test]
fn redis_is_started_when_it_says_it_is_ready() {
    let setup = Setup::new("log-redis");
    let port = closed_port();
    let dir = temp_dir("log-redis");
    let redis = Redis::binary().display().to_string();
    let port_text = port.to_string();
    let dir_text = dir.display().to_string();
    setup.service(
        "redis",
        &format!(
            "{}{}",
            command(&[
                &redis,
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir_text,
            ]),
            log_check(
                "startup",
                "pattern = \"Ready to accept connections\"\nstream = \"stdout\"\n"
            ),
        ),
    );
    let vigil = setup.run();
    let (i, _) = vigil.wait_spawned(0, "redis");
    let (_, check) = vigil.wait_event_from(
        i,
        |e| is(e, "redis", "check") && e["phase"] == "startup" && e["outcome"] == "ok",
        SOON,
    );
    assert_eq!(check["outcome"], "ok", "{check}");
    vigil.wait_kind(i, "redis", "ready");
    // It said so, and it is so.
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("redis listens once ready");
    use std::io::{Read, Write};
    stream.write_all(b"PING\r\n").expect("send PING");
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).expect("read PONG");
    assert_eq!(&reply, b"+PONG\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// PostgreSQL (as `nobody` when the tests run as root, which it requires)
/// is ready once it logged "database system is ready to accept
/// connections", on stderr.
#[test]
fn postgres_is_ready_when_it_says_so() {
    let pg = Postgres::init();
    let meta = std::fs::metadata(&pg.data).expect("data directory");
    let postgres = Postgres::bin_dir().join("postgres").display().to_string();
    let port = pg.port.to_string();
    let data = pg.data.display().to_string();
    let sockets = format!("unix_socket_directories={}", pg.base.display());
    let uid = format!("--reuid={}", meta.uid());
    let gid = format!("--regid={}", meta.gid());
    let mut argv: Vec<&str> = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        argv.extend(["setpriv", &uid, &gid, "--clear-groups", "--"]);
    }
    argv.extend([
        &postgres,
        "-D",
        &data,
        "-p",
        &port,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        &sockets,
        "-c",
        "fsync=off",
        "-c",
        "shared_buffers=16MB",
    ]);
    let setup = Setup::new("log-postgres");
    setup.service(
        "db",
        &format!(
            "{}{}",
            command(&argv),
            log_check(
                "readiness",
                "pattern = \"database system is ready to accept connections\"\n\
                 stream = \"stderr\"\n"
            )
        ),
    );
    let vigil = setup.run();
    let (i, _) = vigil.wait_spawned(0, "db");
    vigil.wait_kind(i, "db", "ready");
    std::net::TcpStream::connect(("127.0.0.1", pg.port)).expect("postgres listens once ready");
}

/// Liveness with `fail-pattern`: a FATAL line restarts the service at once
/// (error), and only the current child's lines count, so the next child,
/// whose output is clean, stays up though the old line is still kept.
#[test]
fn a_fail_pattern_restarts_and_only_the_current_child_counts() {
    let setup = Setup::new("log-fatal");
    let marker = setup.root.join("second-run");
    let script = format!(
        "if [ -e {m} ]; then echo all fine; else touch {m}; echo 'FATAL: first run'; fi; \
         exec sleep 1000",
        m = marker.display()
    );
    setup.service(
        "app",
        &format!(
            "{}{}",
            command(&["sh", "-c", &script]),
            log_check("liveness", "fail-pattern = \"^FATAL\"\n")
        ),
    );
    let vigil = setup.run();
    let (i, first) = vigil.wait_spawned(0, "app");
    let (j, check) = vigil.wait_event_from(
        i,
        |e| is(e, "app", "check") && e["phase"] == "liveness" && e["outcome"] != "ok",
        SOON,
    );
    assert_eq!(check["outcome"], "error", "{check}");
    assert!(
        check["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("FATAL: first run"),
        "{check}"
    );
    let (k, second) = vigil.wait_spawned(j, "app");
    assert_ne!(first, second);
    vigil.wait_event_from(
        k,
        |e| is(e, "app", "check") && e["phase"] == "liveness" && e["outcome"] == "ok",
        SOON,
    );
    assert!(
        !vigil.journal()[k..]
            .iter()
            .any(|e| is(e, "app", "check") && e["outcome"] == "error"),
        "{:?}",
        vigil.events("app")
    );
}
