//! Sockets held by Vigil (README "Sockets and zero-downtime replace"): a
//! real Python server that takes its listening socket from `LISTEN_FDS`
//! the way a systemd-activated program does, a loopback load generator,
//! and what a restart, a kill -9, a reload and an on-demand start do to
//! the connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{
    SOON, Setup, cli, expect_code, service, status, text, wait_socket, wait_status,
};

/// A server written for systemd socket activation: it checks
/// `LISTEN_PID` against its own pid and `LISTEN_FDS`, serves HTTP/1.0 on
/// fd 3 (and, when there are two sockets, on fd 4 too) answering
/// `PID NAMES`, and on SIGTERM finishes the request at hand and exits
/// (so a stop drains without refusing: the queue stays with Vigil).
/// It waits as many seconds as its working directory's `delay` file says
/// before it serves; with `NOTIFY_SOCKET` it then sends `READY=1`.
const SERVER: &str = r#"
import os, socket, selectors, signal, sys, time
if os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.exit("LISTEN_PID %r is not my pid %d" % (os.environ.get("LISTEN_PID"), os.getpid()))
n = int(os.environ["LISTEN_FDS"])
names = os.environ["LISTEN_FDNAMES"]
time.sleep(float(open("delay").read()) if os.path.exists("delay") else 0)
stopping = False
def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
sel = selectors.DefaultSelector()
for fd in range(3, 3 + n):
    s = socket.socket(fileno=fd)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
if os.environ.get("NOTIFY_SOCKET"):
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
body = ("%d %s\n" % (os.getpid(), names)).encode()
while not stopping:
    for key, _ in sel.select(timeout=0.05):
        try:
            conn, _ = key.fileobj.accept()
        except (BlockingIOError, InterruptedError):
            continue
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        conn.close()
"#;

/// Write the server into `dir`; the manifest's `command` for it.
pub(crate) fn server_command(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("service dir");
    std::fs::write(dir.join("server.py"), SERVER).expect("write server.py");
    "command = [\"python3\", \"server.py\"]\nstop-grace = \"10s\"\n".to_string()
}

/// One GET; the body, or how it failed.
pub(crate) fn get(addr: &str) -> Result<String, Failure> {
    let mut s = TcpStream::connect(addr).map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            Failure::Refused
        } else {
            Failure::Other(e.to_string())
        }
    })?;
    s.set_read_timeout(Some(SOON))
        .map_err(|e| Failure::Other(e.to_string()))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| Failure::Other(e.to_string()))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| Failure::Other(e.to_string()))?;
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(Failure::Other(format!("bad answer {out:?}"))),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    Refused,
    Other(String),
}

/// What a load run saw.
#[derive(Debug, Default)]
struct Load {
    ok: usize,
    refused: usize,
    other: Vec<String>,
    /// Distinct pids that answered, in order of first answer.
    pids: Vec<i32>,
}

/// `threads` clients, each sending GETs one after another to `addr` until
/// `stop` is set, at most `max` requests each and for at most a minute.
fn load(
    addr: String,
    threads: usize,
    max: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Load> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (addr, stop) = (addr.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = Load::default();
                    for _ in 0..max {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        match get(&addr) {
                            Ok(body) => {
                                seen.ok += 1;
                                if let Some(pid) =
                                    body.split(' ').next().and_then(|p| p.parse().ok())
                                    && !seen.pids.contains(&pid)
                                {
                                    seen.pids.push(pid);
                                }
                            }
                            Err(Failure::Refused) => seen.refused += 1,
                            Err(Failure::Other(e)) => seen.other.push(e),
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = Load::default();
        for w in workers {
            let l = w.join().expect("load thread");
            all.ok += l.ok;
            all.refused += l.refused;
            all.other.extend(l.other);
            for p in l.pids {
                if !all.pids.contains(&p) {
                    all.pids.push(p);
                }
            }
        }
        all
    })
}

/// The address socket `name` of `svc` is bound to, from the status API.
pub(crate) fn bound(entry: &Value, name: &str) -> String {
    entry["sockets"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .and_then(|s| s["listen"].as_str())
        .unwrap_or_else(|| panic!("no socket {name} in {entry}"))
        .to_string()
}

pub(crate) fn pid(entry: &Value) -> Option<i32> {
    entry["pid"].as_i64().map(|p| p as i32)
}

/// Two sockets in declared order (not alphabetical), a unix one with its
/// mode: the child finds them at fds 3 and 4 with `LISTEN_FDNAMES` in that
/// order and `LISTEN_PID` its own pid (the server exits otherwise), and
/// the status shows both with their fds.
#[test]
fn a_child_gets_its_sockets_the_systemd_way() {
    let setup = Setup::new("sockets-fds");
    let dir = setup.checks.join("web");
    let unix = setup.root.join("web.sock");
    let manifest = format!(
        "{}[sockets.web]\nlisten = \"127.0.0.1:0\"\nbacklog = 64\nnodelay = true\n\
         [sockets.admin]\nlisten = \"unix:{}\"\nmode = \"0600\"\n",
        server_command(&dir),
        unix.display()
    );
    setup.service("web", &manifest);
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let addr = bound(&entry, "web");
    assert_ne!(addr, "127.0.0.1:0", "the kernel's port is shown");
    assert_eq!(entry["sockets"][0]["fd"], 3, "{entry}");
    assert_eq!(entry["sockets"][1]["name"], "admin", "{entry}");
    assert_eq!(entry["sockets"][1]["fd"], 4, "{entry}");
    let child = pid(&entry).expect("a pid");
    let body = vigil.wait_for("an answer on the TCP socket", || get(&addr).ok());
    assert_eq!(body.trim(), format!("{child} web:admin"));

    let mode = std::fs::metadata(&unix)
        .expect("the unix socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let mut s = std::os::unix::net::UnixStream::connect(&unix).expect("connect to the unix socket");
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.ends_with(&format!("{child} web:admin\n")), "{out:?}");

    let wide = cli(&setup.state, &["status", "--wide"]);
    let shown = text(&wide.stdout);
    assert!(
        shown.contains(&format!("socket web web fd 3 {addr}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("socket web admin fd 4 unix:{}", unix.display())),
        "{shown}"
    );
}

/// The socket is Vigil's, not the child's: while a killed child is
/// restarted (at once: `backoff = ["0s"]`), connections wait in the
/// backlog instead of being refused.
#[test]
fn kill_9_under_load_refuses_no_connection() {
    let setup = Setup::new("sockets-kill9");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}backoff = [\"0s\"]\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let addr = bound(&entry, "web");
    vigil.wait_for("a first answer", || get(&addr).ok());

    let stop = Arc::new(AtomicBool::new(false));
    let running = load(addr.clone(), 4, 5_000, stop.clone());
    let mut last = pid(&entry).expect("a pid");
    for _ in 0..3 {
        kill(Pid::from_raw(last), Signal::SIGKILL).expect("kill -9 the child");
        let next = wait_status(&vigil, "web", |s| pid(s).is_some_and(|p| p != last));
        last = pid(&next).expect("a pid");
    }
    // Until the last child has answered (the load saw it).
    vigil.wait_for("the last child answering", || {
        get(&addr).ok().filter(|b| b.starts_with(&last.to_string()))
    });
    stop.store(true, Ordering::Relaxed);
    let seen = running.join().expect("load");
    assert_eq!(seen.refused, 0, "{seen:?}");
    assert!(seen.ok > 0, "{seen:?}");
    // A request the killed child had accepted dies with it (a reset):
    // at most one per client and kill.
    assert!(seen.other.len() <= 4 * 3, "{seen:?}");
}

/// A reload that changes the environment replaces the child (a new one
/// beside the old, on the same socket: the same port, though it was asked
/// for port 0); one that changes the address restarts it on a socket
/// bound anew, and the old port is closed.
#[test]
fn a_reload_keeps_an_unchanged_socket_and_rebinds_a_changed_one() {
    let setup = Setup::new("sockets-reload");
    let dir = setup.checks.join("web");
    let cmd = server_command(&dir);
    let manifest = |env: &str, listen: &str| {
        format!("{cmd}env = {{ X = \"{env}\" }}\n[sockets.web]\nlisten = \"{listen}\"\n")
    };
    setup.service("web", &manifest("1", "127.0.0.1:0"));
    let vigil = setup.run();
    wait_socket(&vigil);
    let first = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let addr = bound(&first, "web");
    let old_pid = pid(&first).expect("a pid");

    crate::support::atomic_save(&dir, &manifest("2", "127.0.0.1:0"));
    expect_code(&cli(&setup.state, &["reload"]), 0, "vigil reload");
    let second = wait_status(&vigil, "web", |s| {
        s["state"] == "ready" && pid(s).is_some_and(|p| p != old_pid)
    });
    assert_eq!(bound(&second, "web"), addr, "the same socket: {second}");
    // With its sockets unchanged, the edit was a replace, not a restart.
    let (_, replacing) = vigil.wait_kind(0, "web", "replacing");
    assert_eq!(replacing["cause"], "reload", "{replacing}");
    assert_eq!(replacing["pid"], old_pid, "{replacing}");
    vigil.wait_for("the new child answering", || {
        get(&addr)
            .ok()
            .filter(|b| b.starts_with(&pid(&second).unwrap_or(0).to_string()))
    });

    // Another address: bound anew, the old port closed.
    let other = crate::support::closed_port();
    crate::support::atomic_save(&dir, &manifest("2", &format!("127.0.0.1:{other}")));
    expect_code(&cli(&setup.state, &["reload"]), 0, "vigil reload");
    let third = wait_status(&vigil, "web", |s| {
        s["state"] == "ready" && s["sockets"][0]["listen"] == format!("127.0.0.1:{other}")
    });
    vigil.wait_for("an answer on the new port", || {
        get(&format!("127.0.0.1:{other}")).ok()
    });
    vigil.wait_until("the old port closed", || {
        matches!(get(&addr), Err(Failure::Refused))
    });
    assert!(pid(&third).is_some());
}

/// `start = "on-demand"`: the socket is bound at once, the service spawned
/// only when a connection arrives, and that first connection is served.
#[test]
fn an_on_demand_service_starts_at_the_first_connection() {
    let setup = Setup::new("sockets-on-demand");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}start = \"on-demand\"\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let waiting = wait_status(&vigil, "web", |s| s["awaiting_connection"] == true);
    assert_eq!(waiting["state"], "stopped", "{waiting}");
    assert!(pid(&waiting).is_none(), "{waiting}");
    assert!(
        !vigil.events("web").iter().any(|e| e["kind"] == "spawned"),
        "spawned before any connection"
    );
    let addr = bound(&waiting, "web");
    // The first connection waits in the backlog until the child accepts it.
    let body = get(&addr).expect("the first connection is served");
    let started = wait_status(&vigil, "web", |s| pid(s).is_some());
    assert_eq!(
        body.split(' ').next().and_then(|p| p.parse().ok()),
        pid(&started),
        "{body}"
    );
    assert_eq!(started["awaiting_connection"], false);
}

/// A port held by another process: the service's spawn error names the
/// address and the holder (this test's own pid), and the other services
/// run.
#[test]
fn a_bind_conflict_names_the_address_and_its_holder() {
    let setup = Setup::new("sockets-conflict");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let addr = holder.local_addr().expect("addr");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}[sockets.web]\nlisten = \"{addr}\"\n",
            server_command(&dir)
        ),
    );
    setup.service("other", "command = [\"sleep\", \"60\"]\n");
    let vigil = setup.run();
    wait_socket(&vigil);
    let (_, err) = vigil.wait_kind(0, "web", "spawn-error");
    let message = err.to_string();
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "names the holder: {message}"
    );
    wait_status(&vigil, "other", |s| s["state"] == "ready");
    let report = status(&setup.state);
    assert!(pid(service(&report, "web")).is_none());
}

/// The instant of a journal line.
fn at(line: &Value) -> std::time::SystemTime {
    vigil::journal::parse_timestamp(line["ts"].as_str().expect("ts")).expect("a timestamp")
}

/// `vigil replace` under load: the new child starts beside the old one on
/// the same socket, takes over only once it has said `READY=1` itself (it
/// waits 2 s first, so a switch before that would be readiness borrowed
/// from the old child), then the old one drains and exits. No request
/// fails, both children answered, and status shows the new one.
#[test]
fn replace_under_load_fails_no_request_and_waits_for_the_new_child() {
    let setup = Setup::new("sockets-replace");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let addr = bound(&entry, "web");
    let old = pid(&entry).expect("a pid");
    vigil.wait_for("a first answer", || get(&addr).ok());

    std::fs::write(dir.join("delay"), "2").expect("write delay");
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(addr.clone(), 4, 20_000, stop.clone());
    let out = cli(&setup.state, &["replace", "web"]);
    expect_code(&out, 0, "vigil replace web");
    let after = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let new = pid(&after).expect("a pid");
    assert_ne!(new, old, "{after}");
    vigil.wait_until("the old child gone", || {
        kill(Pid::from_raw(old), None).is_err()
    });
    vigil.wait_for("the new child answering", || {
        get(&addr).ok().filter(|b| b.starts_with(&new.to_string()))
    });
    stop.store(true, Ordering::Relaxed);
    let seen = running.join().expect("load");
    assert_eq!(seen.refused, 0, "{seen:?}");
    assert!(seen.other.is_empty(), "{seen:?}");
    assert!(
        seen.pids.contains(&old) && seen.pids.contains(&new),
        "{seen:?}"
    );

    let events = vigil.events("web");
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:#?}"))
            .clone()
    };
    let replacing = find("replacing");
    let replaced = find("replaced");
    assert_eq!(replacing["pid"], old);
    assert_eq!(replacing["new_pid"], new);
    assert_eq!(replaced["old_pid"], old);
    assert_eq!(replaced["pid"], new);
    // READY=1 could not come before the new child's 2 s wait.
    let waited = at(&replaced)
        .duration_since(at(&replacing))
        .unwrap_or_default();
    assert!(
        waited >= Duration::from_millis(1900),
        "switched after {waited:?}"
    );
    assert!(
        !events.iter().any(|e| e["kind"] == "replace-failed"),
        "{events:#?}"
    );
}

/// A new child that never gets ready is killed at `replace-timeout`, the
/// old one keeps serving (no request fails meanwhile), `vigil replace`
/// says so and fails, and the journal has `replace-failed` with the reason.
#[test]
fn a_replace_whose_new_child_never_gets_ready_keeps_the_old_one() {
    let setup = Setup::new("sockets-replace-fail");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}notify = true\nreplace-timeout = \"2s\"\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let addr = bound(&entry, "web");
    let old = pid(&entry).expect("a pid");
    vigil.wait_for("a first answer", || get(&addr).ok());

    // Never serves, never says READY=1.
    std::fs::write(dir.join("delay"), "100000").expect("write delay");
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(addr.clone(), 2, 20_000, stop.clone());
    let out = cli(&setup.state, &["replace", "web"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("replace-timeout"),
        "{}",
        text(&out.stderr)
    );
    let (_, failed) = vigil.wait_kind(0, "web", "replace-failed");
    let new = failed["new_pid"].as_i64().expect("the new pid") as i32;
    assert!(
        failed["reason"].as_str().unwrap_or("").contains("READY=1"),
        "{failed}"
    );
    vigil.wait_until("the new child killed", || {
        kill(Pid::from_raw(new), None).is_err()
    });
    let now = status(&setup.state);
    let web = service(&now, "web");
    assert_eq!(pid(web), Some(old), "{web}");
    assert_eq!(web["state"], "ready", "{web}");
    let body = get(&addr).expect("the old child still serves");
    assert!(body.starts_with(&old.to_string()), "{body}");
    stop.store(true, Ordering::Relaxed);
    let seen = running.join().expect("load");
    assert_eq!(seen.refused, 0, "{seen:?}");
    assert!(seen.other.is_empty(), "{seen:?}");
    assert_eq!(seen.pids, vec![old], "{seen:?}");
}
