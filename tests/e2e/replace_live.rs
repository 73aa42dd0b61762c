//! README "Sockets and zero-downtime replace", what a replace shows and
//! runs beyond its switch: the lifecycle hooks of both children in their
//! order, and `/metrics` with a series for each child while they overlap.
//! The server is sockets.rs's systemd-style Python server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

use crate::sockets::{bound, get, pid, server_command};
use crate::support::*;

/// A hook that appends `HOOK:PID` (`none` without a service pid) to `log`.
fn marker_hook(name: &str, log: &Path) -> String {
    let line = format!(
        "echo \"$VIGIL_HOOK:${{VIGIL_SERVICE_PID:-none}}\" >> {}",
        log.display()
    );
    format!(
        "[hooks.{name}]\ncommand = [\"sh\", \"-c\", {}]\n",
        toml_str(&line)
    )
}

fn lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `vigil replace` runs the hooks a restart runs, each for its own child:
/// `pre-start` before the new child exists, `post-start` with the new
/// pid before the switch, `pre-stop` with the old pid before its stop
/// signal, `post-stop` once the old child is gone. The marker file has
/// them in that order, and the journal puts each where it belongs among
/// `replacing`, `replaced`, the old child's `stopping` and `exited`.
#[test]
fn a_replace_runs_the_hooks_of_both_children_in_order() {
    let setup = Setup::new("replace-hooks");
    let dir = setup.checks.join("web");
    let log = setup.root.join("hooks.log");
    let hooks: String = ["pre-start", "post-start", "pre-stop", "post-stop"]
        .iter()
        .map(|h| marker_hook(h, &log))
        .collect();
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n{hooks}",
            server_command(&dir)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = pid(&entry).expect("a pid");
    let addr = bound(&entry, "web");
    vigil.wait_for("a first answer", || get(&addr).ok());
    assert_eq!(
        lines(&log),
        ["pre-start:none".to_string(), format!("post-start:{old}")]
    );
    let from = vigil.journal().len();
    std::fs::remove_file(&log).expect("clear the marker file");

    let out = cli(&setup.state, &["replace", "web"]);
    expect_code(&out, 0, "vigil replace web");
    let after = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let new = pid(&after).expect("a pid");
    assert_ne!(new, old, "{after}");
    vigil.wait_until("the old child gone", || {
        kill(Pid::from_raw(old), None).is_err()
    });
    vigil.wait_until("the post-stop hook", || lines(&log).len() >= 4);
    // Its journal line comes once it has exited, after its marker.
    vigil.wait_event(|e| is(e, "web", "hook") && e["hook"] == "post-stop", SOON);
    assert_eq!(
        lines(&log),
        [
            "pre-start:none".to_string(),
            format!("post-start:{new}"),
            format!("pre-stop:{old}"),
            "post-stop:none".to_string(),
        ]
    );
    assert!(
        get(&addr).expect("serving").starts_with(&new.to_string()),
        "the new child serves"
    );

    let events: Vec<Value> = vigil.journal()[from..]
        .iter()
        .filter(|e| e["service"] == "web")
        .cloned()
        .collect();
    let at = |what: &str, pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("no {what} in {events:#?}"))
    };
    let hook = |name: &'static str| {
        move |e: &Value| e["kind"] == "hook" && e["hook"] == name && e["outcome"] == "ok"
    };
    let pre_start = at("pre-start", &hook("pre-start"));
    let replacing = at("replacing", &|e| e["kind"] == "replacing");
    let post_start = at("post-start", &hook("post-start"));
    let replaced = at("replaced", &|e| e["kind"] == "replaced");
    let stopping = at("old stopping", &|e| {
        e["kind"] == "stopping" && e["pid"] == old
    });
    let pre_stop = at("pre-stop", &hook("pre-stop"));
    let exited = at("old exited", &|e| e["kind"] == "exited" && e["pid"] == old);
    let post_stop = at("post-stop", &hook("post-stop"));
    let order = [
        pre_start, replacing, post_start, replaced, stopping, pre_stop, exited, post_stop,
    ];
    assert!(order.is_sorted(), "{order:?} in {events:#?}");
}

/// A failing `post-start` fails the replace: the new child is killed, the
/// old one keeps serving, `vigil replace` exits 1 naming the hook.
#[test]
fn a_failing_post_start_hook_fails_the_replace() {
    let setup = Setup::new("replace-hook-fails");
    let dir = setup.checks.join("web");
    let flag = setup.root.join("fail");
    let script = format!("test ! -e {}", flag.display());
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n\
             [hooks.post-start]\ncommand = [\"sh\", \"-c\", {}]\n",
            server_command(&dir),
            toml_str(&script)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = pid(&entry).expect("a pid");
    std::fs::write(&flag, "").expect("write the flag");
    let out = cli(&setup.state, &["replace", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("post-start hook failed"),
        "{}",
        text(&out.stderr)
    );
    let (_, failed) = vigil.wait_kind(0, "web", "replace-failed");
    let new = failed["new_pid"].as_i64().expect("the new pid") as i32;
    vigil.wait_until("the new child killed", || {
        kill(Pid::from_raw(new), None).is_err()
    });
    let now = service(&status(&setup.state), "web").clone();
    assert_eq!(
        (pid(&now), &now["state"]),
        (Some(old), &Value::from("ready"))
    );
}

/// `GET /metrics` over HTTP/1.0 (no chunking): the body.
fn metrics(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(SOON)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nAccept: text/plain\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    Some(raw.split_once("\r\n\r\n")?.1.to_string())
}

/// The `vigil_service_pid` samples of `web`: (role, pid).
fn pids(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("vigil_service_pid{"))
        .filter(|l| l.contains("service=\"web\""))
        .filter_map(|l| {
            let role = l.split("role=\"").nth(1)?.split('"').next()?.to_string();
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some((role, value))
        })
        .collect()
}

/// While a replace judges its new child, `/metrics` has both children:
/// `role="current"` (the old pid, still serving) and `role="successor"`
/// (the new one); after the switch only the new child is `current`.
#[test]
fn metrics_show_both_children_during_a_replace() {
    let setup = Setup::new("replace-metrics");
    let dir = setup.checks.join("web");
    setup.service(
        "web",
        &format!(
            "{}notify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n",
            server_command(&dir)
        ),
    );
    let port = closed_port();
    let vigil = Vigil::start_with(&setup, &["--http", &format!("127.0.0.1:{port}")]);
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = i64::from(pid(&entry).expect("a pid"));
    let before = vigil.wait_for("/metrics", || metrics(port));
    assert_eq!(pids(&before), [("current".to_string(), old)], "{before}");

    // The new child says READY=1 only 5 s after its start: the overlap
    // the test looks at.
    std::fs::write(dir.join("delay"), "5").expect("write delay");
    let state = setup.state.clone();
    let replace = std::thread::spawn(move || cli(&state, &["replace", "web"]));
    let during = wait_status(&vigil, "web", |s| s["replacing_pid"].is_i64());
    let new = during["replacing_pid"].as_i64().expect("the new pid");
    let both = vigil.wait_for("both children in /metrics", || {
        metrics(port).filter(|m| pids(m).len() == 2)
    });
    let mut seen = pids(&both);
    seen.sort();
    assert_eq!(
        seen,
        [("current".to_string(), old), ("successor".to_string(), new)],
        "{both}"
    );
    let out = replace.join().expect("vigil replace");
    expect_code(&out, 0, "vigil replace web");
    vigil.wait_until("the old child gone", || {
        kill(Pid::from_raw(old as i32), None).is_err()
    });
    vigil.wait_for("only the new child in /metrics", || {
        metrics(port).filter(|m| pids(m) == [("current".to_string(), new)])
    });
}

/// A service spawned by the `loader_replace` test loader (world
/// `replace-loader`, WIT 0.1.2), serving sockets.rs's server; `settings`
/// are more `[loader.config]` lines.
fn loader_service(setup: &Setup, name: &str, settings: &str) -> std::path::PathBuf {
    let dir = setup.checks.join(name);
    server_command(&dir);
    std::fs::copy(programs::LOADER_REPLACE, dir.join("loader.wasm")).expect("copy the loader");
    setup.service(
        name,
        &format!(
            "stop-grace = \"10s\"\nnotify = true\n[sockets.web]\nlisten = \"127.0.0.1:0\"\n\
             [loader.config]\nargv = \"python3 server.py\"\n{settings}"
        ),
    )
}

/// A loader of world `replace-loader` is asked when the new child passed
/// its gate, and its `refuse` fails the replace: the new child is killed,
/// the old one keeps serving, `vigil replace` exits 1 with the loader's
/// reason. A loader that says `proceed` (the other service) lets its
/// replace switch as usual.
#[test]
fn a_loader_may_refuse_the_switch_to_the_new_child() {
    let setup = Setup::new("replace-loader-refuses");
    loader_service(&setup, "web", "on-ready = \"refuse\"\n");
    loader_service(&setup, "api", "");
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = pid(&entry).expect("a pid");
    let addr = bound(&entry, "web");
    let out = cli(&setup.state, &["replace", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let (_, failed) = vigil.wait_kind(0, "web", "replace-failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("the loader refused the switch: the loader refuses: the old child stays"),
        "{failed}"
    );
    let new = failed["new_pid"].as_i64().expect("the new pid") as i32;
    vigil.wait_until("the new child killed", || {
        kill(Pid::from_raw(new), None).is_err()
    });
    assert!(get(&addr).expect("served").starts_with(&old.to_string()));

    let api = wait_status(&vigil, "api", |s| s["state"] == "ready");
    let api_old = pid(&api).expect("a pid");
    let out = cli(&setup.state, &["replace", "api"]);
    expect_code(&out, 0, "vigil replace api");
    let (_, replaced) = vigil.wait_kind(0, "api", "replaced");
    assert_eq!(replaced["old_pid"], api_old, "{replaced}");
}

/// A loader that answers `restart` to a requested replace gets a
/// stop-then-start instead: no new child beside the old one (`replacing`
/// never journaled), the old child stopped with the loader as cause.
#[test]
fn a_loader_may_restart_instead_of_replacing() {
    let setup = Setup::new("replace-loader-restarts");
    loader_service(&setup, "web", "on-request = \"restart\"\n");
    let vigil = setup.run();
    wait_socket(&vigil);
    let entry = wait_status(&vigil, "web", |s| s["state"] == "ready");
    let old = pid(&entry).expect("a pid");
    let from = vigil.journal().len();
    let out = cli(&setup.state, &["replace", "web"]);
    expect_code(&out, 0, "vigil replace web");
    let (_, stopping) = vigil.wait_kind(from, "web", "stopping");
    assert_eq!(stopping["cause"], "loader", "{stopping}");
    assert_eq!(stopping["pid"], old, "{stopping}");
    let after = wait_status(&vigil, "web", |s| {
        s["state"] == "ready" && pid(s).is_some_and(|p| p != old)
    });
    assert!(pid(&after).is_some());
    assert!(
        !vigil.journal()[from..]
            .iter()
            .any(|e| is(e, "web", "replacing")),
        "a restart, not a replace"
    );
}
