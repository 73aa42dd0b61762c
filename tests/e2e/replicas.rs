//! Replicas (README "Replicas", docs/kinds.md): `instances = N` runs
//! `NAME@0..N-1`, each with its own `VIGIL_INSTANCE`, `{instance}` in its
//! argv, env, socket addresses and check config; each restarts alone;
//! `vigil scale` changes the count live; `after = ["web"]` waits for
//! every replica. Real Python servers on loopback ports.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{
    SOON, Setup, Vigil, cli, command, expect_code, is, status, text, toml_str, vigil_command,
    wait_socket, wait_status,
};

/// A prefix `P` such that loopback ports `P0..P9` are all free now (below
/// the ephemeral range, so that no outgoing connection takes one
/// meanwhile); `{P}{instance}` is then replica i's port. Each test gets
/// its own prefix: they start from different seeds.
fn free_prefix(seed: u16) -> u16 {
    let start = 2000 + (std::process::id() as u16 % 100) * 10 + seed * 3;
    (start..3270)
        .chain(2000..start)
        .find(|p| {
            (0..10).all(|i| {
                let port = p * 10 + i;
                TcpListener::bind(("127.0.0.1", port)).is_ok()
            })
        })
        .expect("ten free loopback ports in 20000..32700")
}

/// One `GET /` on loopback `port`: the body, or `None` if nothing answers.
fn get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(SOON)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}

fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

fn pid(entry: &Value) -> i32 {
    entry["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no pid in {entry}")) as i32
}

/// `NAME=value` of process `pid`'s environment.
fn env_of(pid: i32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{name}=")).map(str::to_string)
    })
}

/// The names of the services in a status report, in its order.
fn names(report: &Value) -> Vec<String> {
    report["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

/// Three `python3 -m http.server` replicas, each on `{prefix}{instance}`
/// through argv, each with its own `VIGIL_INSTANCE` and an env value made
/// from `{instance}`, ready by a builtin:http check whose URL has
/// `{instance}` too. A kill -9 of one restarts that one alone: the
/// others keep their pids and their restart counts.
#[test]
fn three_replicas_serve_their_own_ports_and_one_killed_restarts_alone() {
    let setup = Setup::new("replicas-http");
    let prefix = free_prefix(0);
    let manifest = format!(
        "{}instances = 3\nbackoff = [\"0s\"]\nenv = {{ PORT = \"{prefix}{{instance}}\" }}\n\
         [checks.readiness]\ncheck = \"builtin:http\"\nperiod = \"200ms\"\ntimeout = \"3s\"\n\
         [checks.readiness.config]\nurl = \"http://127.0.0.1:{prefix}{{instance}}/\"\n\
         [grants]\nhosts = [\"http://127.0.0.1:*\"]\n",
        command(&[
            "python3",
            "-m",
            "http.server",
            &format!("{prefix}{{instance}}"),
            "--bind",
            "127.0.0.1",
        ])
    );
    setup.service("web", &manifest);
    let http = crate::support::closed_port();
    let vigil = Vigil::start_with(&setup, &["--http", &format!("127.0.0.1:{http}")]);
    wait_socket(&vigil);
    let mut pids = Vec::new();
    for i in 0..3u16 {
        let name = format!("web@{i}");
        let entry = wait_status(&vigil, &name, |s| s["state"] == "ready");
        let p = pid(&entry);
        assert_eq!(
            env_of(p, "VIGIL_INSTANCE").as_deref(),
            Some(&*i.to_string())
        );
        assert_eq!(
            env_of(p, "PORT"),
            Some(format!("{prefix}{i}")),
            "env values get {{instance}}"
        );
        let port = prefix * 10 + i;
        let body = vigil.wait_for(&format!("{name} answering on {port}"), || get(port));
        assert!(body.contains("Directory listing"), "{body}");
        pids.push(p);
    }
    let report = status(&setup.state);
    assert_eq!(names(&report), ["web@0", "web@1", "web@2"]);
    // One log file per replica.
    for i in 0..3 {
        let log = setup.state.join("logs").join(format!("web@{i}.log"));
        vigil.wait_until(&format!("{} written", log.display()), || {
            std::fs::metadata(&log).is_ok_and(|m| m.len() > 0)
        });
    }

    kill(Pid::from_raw(pids[1]), Signal::SIGKILL).expect("kill -9 web@1");
    let again = wait_status(&vigil, "web@1", |s| {
        s["state"] == "ready" && s["pid"].as_i64().is_some_and(|p| p as i32 != pids[1])
    });
    assert_eq!(again["restarts"], 1, "{again}");
    vigil.wait_for("web@1 answering again", || get(prefix * 10 + 1));
    let report = status(&setup.state);
    for i in [0usize, 2] {
        let entry = crate::support::service(&report, &format!("web@{i}"));
        assert_eq!(pid(entry), pids[i], "web@{i} was left alone: {entry}");
        assert_eq!(entry["restarts"], 0, "{entry}");
    }
    // The journal names each replica: only web@1 exited.
    let exited: Vec<String> = vigil
        .journal()
        .iter()
        .filter(|e| e["kind"] == "exited")
        .filter_map(|e| e["service"].as_str().map(str::to_string))
        .collect();
    assert_eq!(exited, ["web@1"]);
    // The metrics carry the replica's index.
    let text = metrics(http);
    assert!(
        text.contains("vigil_service_ready{service=\"web@2\",instance=\"2\"} 1"),
        "{text}"
    );
}

/// `GET /metrics` from `vigil run --http 127.0.0.1:PORT`.
fn metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to --http");
    s.set_read_timeout(Some(SOON)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// A server that takes its socket from Vigil (`LISTEN_FDS`, fd 3) and
/// answers `INSTANCE PID`.
const SOCKET_SERVER: &str = r#"
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %d\n" % (os.environ["VIGIL_INSTANCE"], os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
assert os.environ["LISTEN_FDS"] == "1"
srv = http.server.HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
srv.socket.close()
srv.socket = socket.socket(fileno=3)
srv.serve_forever()
"#;

/// A per-replica socket set from `listen = "127.0.0.1:{P}{instance}"`,
/// and `vigil scale web 3 -> 1 -> 2`: the highest replicas stop (and their
/// ports close), the count holds across a reload, and the new replica 1
/// gets its socket and index back.
#[test]
fn scale_three_to_one_to_two_stops_the_highest_and_starts_the_missing() {
    let setup = Setup::new("replicas-scale");
    let prefix = free_prefix(1);
    let dir = setup.checks.join("web");
    std::fs::create_dir_all(&dir).expect("service dir");
    std::fs::write(dir.join("server.py"), SOCKET_SERVER).expect("server.py");
    let manifest = format!(
        "command = [\"python3\", \"server.py\"]\ninstances = 3\n\
         [sockets.http]\nlisten = {}\n",
        toml_str(&format!("127.0.0.1:{prefix}{{instance}}"))
    );
    setup.service("web", &manifest);
    setup.service("other", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    let port = |i: u16| prefix * 10 + i;
    let answer = |i: u16| {
        vigil.wait_for(&format!("web@{i} answering"), || {
            get(port(i)).filter(|b| b.starts_with(&format!("{i} ")))
        })
    };
    for i in 0..3 {
        wait_status(&vigil, &format!("web@{i}"), |s| s["state"] == "ready");
        answer(i);
    }
    let web0 = pid(crate::support::service(&status(&setup.state), "web@0"));

    let out = cli(&setup.state, &["scale", "web", "1"]);
    expect_code(&out, 0, "vigil scale web 1");
    assert_eq!(text(&out.stdout).trim(), "web: 3 -> 1 replicas (web@0)");
    let report = status(&setup.state);
    assert_eq!(names(&report), ["other", "web@0"]);
    assert_eq!(pid(crate::support::service(&report, "web@0")), web0);
    for i in [1, 2] {
        vigil.wait_until(&format!("port {} closed", port(i)), || refused(port(i)));
    }
    // Highest first, each stopped for the scale.
    let stopping: Vec<Value> = vigil
        .journal()
        .into_iter()
        .filter(|e| e["kind"] == "stopping")
        .collect();
    let order: Vec<&str> = stopping
        .iter()
        .filter_map(|e| e["service"].as_str())
        .collect();
    assert_eq!(order, ["web@2", "web@1"], "{stopping:?}");
    assert!(
        stopping.iter().all(|e| e["cause"] == "scale"),
        "{stopping:?}"
    );
    assert!(
        vigil
            .journal()
            .iter()
            .any(|e| is(e, "web", "scaled") && e["from"] == 3 && e["to"] == 1)
    );

    // A reload that leaves `instances` alone keeps the scale.
    expect_code(&cli(&setup.state, &["reload"]), 0, "vigil reload");
    assert_eq!(names(&status(&setup.state)), ["other", "web@0"]);

    let out = cli(&setup.state, &["scale", "web", "2"]);
    expect_code(&out, 0, "vigil scale web 2");
    assert_eq!(
        text(&out.stdout).trim(),
        "web: 1 -> 2 replicas (web@0, web@1)"
    );
    wait_status(&vigil, "web@1", |s| s["state"] == "ready");
    answer(1);
    assert!(refused(port(2)), "web@2 stays gone");
    assert_eq!(names(&status(&setup.state)), ["other", "web@0", "web@1"]);
    assert_eq!(
        pid(crate::support::service(&status(&setup.state), "web@0")),
        web0
    );

    // `vigil stop web` stops every replica; `vigil start web@1` one.
    let out = cli(&setup.state, &["stop", "web"]);
    expect_code(&out, 0, "vigil stop web");
    let shown = text(&out.stdout);
    assert!(shown.contains("web@0: stopped"), "{shown}");
    assert!(shown.contains("web@1: stopped"), "{shown}");
    expect_code(
        &cli(&setup.state, &["start", "web@1"]),
        0,
        "vigil start web@1",
    );
    wait_status(&vigil, "web@1", |s| s["state"] == "ready");
    assert_eq!(
        crate::support::service(&status(&setup.state), "web@0")["state"],
        "stopped"
    );

    // What scale refuses.
    let out = cli(&setup.state, &["scale", "web", "0"]);
    expect_code(&out, 1, "vigil scale web 0");
    assert!(
        text(&out.stderr).contains("vigil stop web"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&setup.state, &["scale", "other", "2"]);
    expect_code(&out, 1, "vigil scale other 2");
    assert!(
        text(&out.stderr).contains("instances"),
        "{}",
        text(&out.stderr)
    );
    expect_code(
        &cli(&setup.state, &["scale", "nope", "2"]),
        4,
        "vigil scale nope 2",
    );
}

/// `after = ["web"]` waits for every replica of web: the dependent is
/// spawned only once the last replica is ready, and while it waits its
/// status names the replicas it waits for.
#[test]
fn after_a_replicated_service_waits_for_every_replica() {
    let setup = Setup::new("replicas-after");
    let prefix = free_prefix(2);
    let web = format!(
        "shell = {}\ninstances = 3\n\
         [checks.readiness]\ncheck = \"builtin:http\"\nperiod = \"200ms\"\ntimeout = \"3s\"\n\
         [checks.readiness.config]\nurl = \"http://127.0.0.1:{prefix}{{instance}}/\"\n\
         [grants]\nhosts = [\"http://127.0.0.1:*\"]\n",
        toml_str(&format!(
            "while [ ! -e go{{instance}} ]; do sleep 0.05; done; \
             exec python3 -m http.server {prefix}{{instance}} --bind 127.0.0.1"
        ))
    );
    let web_dir = setup.service("web", &web);
    setup.service(
        "client",
        &format!("{}after = [\"web\"]\n", command(&["sleep", "1000"])),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let waiting = wait_status(&vigil, "client", |s| s["state"] == "waiting");
    assert_eq!(
        waiting["waiting_for"],
        serde_json::json!(["web@0", "web@1", "web@2"]),
        "{waiting}"
    );
    for i in [0, 2] {
        std::fs::write(web_dir.join(format!("go{i}")), "").expect("go");
        wait_status(&vigil, &format!("web@{i}"), |s| s["state"] == "ready");
    }
    let still = wait_status(&vigil, "client", |s| {
        s["waiting_for"] == serde_json::json!(["web@1"])
    });
    assert_eq!(still["state"], "waiting", "{still}");
    assert!(still["pid"].is_null(), "{still}");

    std::fs::write(web_dir.join("go1"), "").expect("go");
    wait_status(&vigil, "client", |s| s["pid"].is_i64());
    // Spawned after the last replica was ready, never before.
    let journal = vigil.journal();
    let at = |pred: &dyn Fn(&Value) -> bool| journal.iter().position(pred);
    let ready1 = at(&|e| is(e, "web@1", "ready")).expect("web@1 ready");
    let spawned = at(&|e| is(e, "client", "spawned")).expect("client spawned");
    assert!(spawned > ready1, "{journal:?}");
}

/// `{instance}` in hooks, grants and `cwd`: each replica's pre-start hook
/// runs with its own index in its own directory, and its readiness check
/// (builtin:tcp on `{P}{instance}`) is granted its own port only. Then the group's name:
/// `vigil status web` lists every replica with a summary (`--json`: the
/// list), `vigil logs web` has each replica's lines labelled, `vigil
/// journal web` each replica's events, and an unknown name's error lists
/// the group among the known names.
#[test]
fn hooks_and_grants_get_the_index_and_the_group_name_shows_every_replica() {
    let setup = Setup::new("replicas-group");
    let prefix = free_prefix(3);
    let manifest = format!(
        "shell = {}\ninstances = 2\ncwd = \"run-{{instance}}\"\n\
         [hooks.pre-start]\ncommand = [\"touch\", \"pre-{{instance}}\"]\n\
         [checks.readiness]\ncheck = \"builtin:tcp\"\nperiod = \"200ms\"\ntimeout = \"3s\"\n\
         [checks.readiness.config]\nport = \"{prefix}{{instance}}\"\n\
         [grants]\nhosts = [\"127.0.0.1:{prefix}{{instance}}\"]\n",
        toml_str(&format!(
            "echo hello from $VIGIL_INSTANCE; \
             exec python3 -m http.server {prefix}{{instance}} --bind 127.0.0.1"
        ))
    );
    let dir = setup.checks.join("web");
    for i in 0..2 {
        std::fs::create_dir_all(dir.join(format!("run-{i}"))).expect("replica dir");
    }
    setup.service("web", &manifest);
    setup.service("other", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    for i in 0..2 {
        wait_status(&vigil, &format!("web@{i}"), |s| s["state"] == "ready");
        let hooked = dir.join(format!("run-{i}/pre-{i}"));
        assert!(hooked.exists(), "web@{i}'s pre-start hook, in its cwd");
    }
    assert!(
        !dir.join("run-0/pre-{instance}").exists(),
        "no hook ran the text as written"
    );
    // Each replica's check names its own port: its grant is its own.
    let checks = vigil
        .journal()
        .into_iter()
        .filter(|e| e["kind"] == "check" && e["outcome"] == "error")
        .count();
    assert_eq!(checks, 0, "no check was denied: {:?}", vigil.journal());

    // `vigil status web`: both replicas, and how many are ready.
    let out = cli(&setup.state, &["status", "web"]);
    expect_code(&out, 0, "vigil status web");
    let shown = text(&out.stdout);
    assert!(
        shown.contains("web@0") && shown.contains("web@1"),
        "{shown}"
    );
    assert!(!shown.contains("other"), "{shown}");
    assert!(shown.contains("web: 2 replicas: 2 ready"), "{shown}");
    let out = cli(&setup.state, &["status", "web", "--json"]);
    expect_code(&out, 0, "vigil status web --json");
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listed: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(listed, ["web@0", "web@1"]);
    // One replica's name is still one service.
    let out = cli(&setup.state, &["status", "web@1", "--json"]);
    expect_code(&out, 0, "vigil status web@1 --json");
    let one: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(one["name"], "web@1", "{one}");
    // An unknown name: the group is among the known names.
    let out = cli(&setup.state, &["status", "nope"]);
    expect_code(&out, 4, "vigil status nope");
    let err = text(&out.stderr);
    assert!(
        err.contains("web,") || err.contains("web ") || err.contains("web\n"),
        "{err}"
    );
    assert!(err.contains("web@1"), "{err}");

    // `vigil logs web`: every replica's lines, each labelled.
    let logs = vigil.wait_for("both replicas' lines in `vigil logs web`", || {
        let out = cli(&setup.state, &["logs", "web"]);
        let shown = text(&out.stdout);
        (out.status.code() == Some(0)
            && shown.contains("web@0 | ")
            && shown.contains("hello from 0")
            && shown.contains("hello from 1"))
        .then_some(shown)
    });
    for line in logs.lines().filter(|l| l.contains("hello from")) {
        let i = line.rsplit(' ').next().unwrap_or("");
        assert!(line.starts_with(&format!("web@{i} | ")), "{logs}");
    }

    // `vigil journal web`: every replica's events (and not other's).
    let out = cli(&setup.state, &["journal", "web", "-n", "1000"]);
    expect_code(&out, 0, "vigil journal web");
    let shown = text(&out.stdout);
    for i in 0..2 {
        assert!(shown.contains(&format!(" web@{i} spawned")), "{shown}");
    }
    assert!(!shown.contains(" other "), "{shown}");

    // With no vigil running, from the journal files: the same.
    let mut vigil = vigil;
    assert!(vigil.terminate().success(), "vigil exits 0");
    let out = cli(&setup.state, &["journal", "web", "-n", "1000"]);
    expect_code(&out, 0, "vigil journal web (offline)");
    let shown = text(&out.stdout);
    for i in 0..2 {
        assert!(shown.contains(&format!(" web@{i} spawned")), "{shown}");
    }
}

/// `vigil validate` on a replicated service shows its count and what
/// `{instance}` became in each replica; it refuses a count whose higher
/// replicas would have an invalid address (port 65536), as `vigil run`
/// does, replicas that would all bind one address, and a last replica
/// whose check would be denied the port `{instance}` made for it.
#[test]
fn validate_shows_each_replica_and_refuses_what_one_cannot_bind() {
    let setup = Setup::new("replicas-validate");
    setup.service(
        "web",
        &format!(
            "{}instances = 3\n[sockets.http]\nlisten = \"127.0.0.1:81{{instance}}\"\n\
             [hooks.post-stop]\ncommand = [\"rm\", \"-f\", \"run-{{instance}}.pid\"]\n\
             [grants]\nhosts = [\"127.0.0.1:81{{instance}}\"]\n",
            command(&["sleep", "1000"])
        ),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("vigil validate");
    expect_code(&out, 0, "vigil validate");
    let shown = text(&out.stdout);
    assert!(shown.contains("1 service ok: web"), "{shown}");
    assert!(
        shown.contains("web: instances = 3: web@0 .. web@2"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "  web@2: hooks.post-stop.command = rm -f run-2.pid, \
             sockets.http.listen = 127.0.0.1:812, grants.hosts = 127.0.0.1:812"
        ),
        "{shown}"
    );

    let bad = Setup::new("replicas-validate-bad");
    bad.service(
        "far",
        &format!(
            "{}instances = 7\n[sockets.http]\nlisten = \"127.0.0.1:6553{{instance}}\"\n",
            command(&["sleep", "1000"])
        ),
    );
    bad.service(
        "same",
        &format!(
            "{}instances = 2\n[sockets.http]\nlisten = \"127.0.0.1:8100\"\n",
            command(&["sleep", "1000"])
        ),
    );
    bad.service(
        "denied",
        &format!(
            "{}instances = 3\n[checks.readiness]\ncheck = \"builtin:tcp\"\n\
             [checks.readiness.config]\nport = \"81{{instance}}\"\n\
             [grants]\nhosts = [\"127.0.0.1:810\"]\n",
            command(&["sleep", "1000"])
        ),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&bad.checks)
        .output()
        .expect("vigil validate");
    expect_code(&out, 1, "vigil validate (bad)");
    let err = text(&out.stderr);
    assert!(
        err.contains("far/service.toml:sockets.http.listen: for replica 6:"),
        "{err}"
    );
    assert!(
        err.contains("same/service.toml:sockets.http.listen: each of the 2 replicas would bind"),
        "{err}"
    );
    assert!(
        err.contains(
            "denied/service.toml:checks.readiness.config.port: \
             in denied@2: builtin:tcp would be denied: tcp://127.0.0.1:812 is not in [grants] hosts"
        ),
        "{err}"
    );
    assert!(err.contains("3 problems:"), "{err}");
}

/// `vigil run --grpc`: grpc.health.v1 `Check` of a replicated service's
/// name is SERVING while every replica is ready, as `after = ["web"]`
/// judges it, and NOT_SERVING once one is stopped; a replica's name is
/// that replica.
#[test]
fn grpc_check_of_the_group_name_is_every_replica() {
    use crate::grpc::client_check;
    let setup = Setup::new("replicas-grpc");
    setup.service(
        "web",
        &format!("{}instances = 2\n", command(&["sleep", "1000"])),
    );
    let addr = format!("127.0.0.1:{}", crate::support::closed_port());
    let vigil = Vigil::start_with(&setup, &["--grpc", &addr]);
    wait_socket(&vigil);
    for i in 0..2 {
        wait_status(&vigil, &format!("web@{i}"), |s| s["state"] == "ready");
    }
    vigil.wait_until("web SERVING", || client_check(&addr, "web") == "SERVING");
    expect_code(
        &cli(&setup.state, &["stop", "web@1"]),
        0,
        "vigil stop web@1",
    );
    assert_eq!(client_check(&addr, "web"), "NOT_SERVING");
    assert_eq!(client_check(&addr, "web@0"), "SERVING");
    assert_eq!(client_check(&addr, "web@1"), "NOT_SERVING");
    assert_eq!(client_check(&addr, "nope"), "NOT_FOUND");
}
