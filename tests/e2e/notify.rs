//! systemd's notify protocol both ways (README "systemd and sd_notify"):
//! real programs written for `Type=notify` become ready through `READY=1`
//! on the `NOTIFY_SOCKET` Vigil gives them, a silent watchdog restarts,
//! another service cannot speak for them nor, by flooding the shared
//! socket, delay them, and Vigil itself tells a service manager READY=1,
//! STATUS=, WATCHDOG=1 and STOPPING=1.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::*;

fn python(script: &str) -> String {
    command(&["python3", "-c", script])
}

/// Send one datagram to $NOTIFY_SOCKET from Python.
const SEND: &str = "import os, socket\n\
def send(m):\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n    s.sendto(m.encode(), os.environ['NOTIFY_SOCKET'])\n    s.close()\n";

#[test]
fn redis_server_becomes_ready_through_ready_1() {
    let setup = Setup::new("notify-redis");
    let port = crate::support::closed_port();
    let redis = crate::servers::Redis::binary();
    let argv = [
        redis.to_str().expect("utf-8"),
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--supervised",
        "systemd",
        "--daemonize",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    setup.service("redis", &format!("{}notify = true\n", command(&argv)));
    let vigil = setup.run();
    let (_, ready) = vigil.wait_kind(0, "redis", "ready");
    // READY=1 comes once redis accepts connections.
    assert!(listening(port), "{}", vigil.diagnostics());
    let spawned = vigil
        .events("redis")
        .into_iter()
        .find(|e| e["kind"] == "spawned")
        .expect("spawned");
    assert!(spawned["ts"].as_str() <= ready["ts"].as_str());
}

#[test]
fn systemd_notify_and_a_plain_socket_write_mark_services_ready() {
    let setup = Setup::new("notify-tools");
    setup.service(
        "shell",
        &format!(
            "{}notify = true\n",
            command(&[
                "sh",
                "-c",
                "sleep 0.2; systemd-notify --ready --status=warm; exec sleep 1000"
            ])
        ),
    );
    setup.service(
        "py",
        &format!(
            "{}notify = true\n",
            python(&format!(
                "{SEND}import time\ntime.sleep(0.2)\nsend('STATUS=up\\nREADY=1')\ntime.sleep(1000)"
            ))
        ),
    );
    let vigil = setup.run();
    vigil.wait_kind(0, "py", "ready");
    vigil.wait_kind(0, "shell", "ready");
    // STATUS= sent beside READY=1 shows in `vigil status`.
    crate::support::wait_socket(&vigil);
    let report = crate::support::status(&setup.state);
    let status_text = |name| crate::support::service(&report, name)["status_text"].clone();
    assert_eq!(status_text("shell"), "warm", "{report}");
    assert_eq!(status_text("py"), "up", "{report}");
}

#[test]
fn a_service_that_never_says_ready_fails_its_start_and_nobody_else_can_say_it() {
    let setup = Setup::new("notify-spoof");
    setup.service(
        "honest",
        &format!(
            "{}notify = true\nnotify-timeout = \"1500ms\"\nrestart = \"never\"\n",
            command(&["sleep", "1000"])
        ),
    );
    // Knows the socket (it is no secret) and keeps claiming READY=1.
    let socket = setup.state.join("notify.sock");
    setup.service(
        "liar",
        &python(&format!(
            "import socket, time\nwhile True:\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n    try:\n        s.sendto(b'READY=1', {})\n    except OSError:\n        pass\n    s.close()\n    time.sleep(0.05)\n",
            toml_str(socket.to_str().expect("utf-8")).replace('"', "'")
        )),
    );
    let vigil = setup.run();
    let (_, warning) = vigil.wait_event_from(
        0,
        |e| {
            is(e, "honest", "warning")
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no READY=1"))
        },
        SOON,
    );
    vigil.wait_kind(0, "honest", "gave-up");
    assert!(
        !vigil.events("honest").iter().any(|e| e["kind"] == "ready"),
        "the liar's READY=1 counted: {warning}\n{}",
        vigil.diagnostics()
    );
}

#[test]
fn a_silent_watchdog_restarts_the_service() {
    let setup = Setup::new("notify-watchdog");
    // Ready, three pings, then silence. The second life pings every
    // 100 ms and, after 1.5 s of that (three watchdog periods), sends
    // WATCHDOG=trigger: the sentinel for "no failure while it pinged".
    // Later lives ping forever.
    let script = format!(
        "{SEND}import os, time\n\
         assert os.environ['WATCHDOG_USEC'] == '500000'\n\
         send('READY=1')\n\
         marker = 'lives'\n\
         with open(marker, 'a') as f:\n    f.write('x')\n\
         life = len(open(marker).read())\n\
         n = 0\n\
         while True:\n    if life > 1 or n < 3:\n        send('WATCHDOG=1')\n    if life == 2 and n == 15:\n        send('WATCHDOG=trigger')\n    n += 1\n    time.sleep(0.1)\n"
    );
    setup.service(
        "pinger",
        &format!(
            "{}notify = true\nwatchdog-sec = \"500ms\"\n",
            python(&script)
        ),
    );
    let vigil = setup.run();
    let (i, failure) = vigil.wait_event_from(
        0,
        |e| is(e, "pinger", "check") && e["phase"] == "liveness",
        SOON,
    );
    assert_eq!(failure["outcome"], "error", "{failure}");
    assert!(
        failure["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no WATCHDOG=1 within")),
        "{failure}"
    );
    let (i, _) = vigil.wait_kind(i, "pinger", "exited");
    let (i, _) = vigil.wait_kind(i, "pinger", "spawned");
    let (seen, _) = vigil.wait_kind(i, "pinger", "ready");
    // The second life keeps pinging: no failure until its own trigger,
    // sent after three watchdog periods of pings.
    let (_, next) = vigil.wait_kind(seen, "pinger", "check");
    assert!(
        next["reason"]
            .as_str()
            .is_some_and(|r| r.contains("WATCHDOG=trigger")),
        "a failure while it pinged: {next}\n{}",
        vigil.diagnostics()
    );
}

#[test]
fn vigil_tells_its_service_manager_ready_status_watchdog_and_stopping() {
    let setup = Setup::new("notify-systemd");
    setup.service(
        "slow",
        &format!(
            "{}notify = true\n",
            python(&format!(
                "{SEND}import time\ntime.sleep(0.5)\nsend('READY=1')\ntime.sleep(1000)"
            ))
        ),
    );
    setup.service("plain", &command(&["sleep", "1000"]));
    let manager_path = setup.root.join("systemd-notify.sock");
    let manager = UnixDatagram::bind(&manager_path).expect("bind the manager's socket");
    manager
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut vigil = Vigil::start_with_env(
        &setup,
        &[
            ("NOTIFY_SOCKET", manager_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "300000"),
        ],
    );
    let mut messages: Vec<String> = Vec::new();
    let receive_until =
        |what: &str, messages: &mut Vec<String>, done: &dyn Fn(&[String]) -> bool| {
            let deadline = Instant::now() + SOON;
            let mut buf = [0u8; 4096];
            while !done(messages) {
                assert!(Instant::now() < deadline, "no {what}: {messages:?}");
                if let Ok(n) = manager.recv(&mut buf) {
                    messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        };
    receive_until("READY=1", &mut messages, &|m| {
        m.iter().any(|m| m.contains("READY=1"))
    });
    let ready_at = messages
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("ready");
    // Before READY=1 it said what it waits for; READY=1 comes with 2/2.
    assert!(
        messages[..ready_at]
            .iter()
            .any(|m| m.contains("STATUS=") && m.contains("starting: slow")),
        "{messages:?}"
    );
    assert!(
        messages[ready_at].contains("STATUS=2/2 services ready"),
        "{messages:?}"
    );
    vigil.wait_kind(0, "slow", "ready");
    receive_until("two WATCHDOG=1", &mut messages, &|m| {
        m.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2
    });
    vigil.signal(nix::sys::signal::Signal::SIGTERM);
    receive_until("STOPPING=1", &mut messages, &|m| {
        m.iter().any(|m| m.contains("STOPPING=1"))
    });
    assert!(vigil.wait_exit(SOON).is_some_and(|s| s.success()));
    assert_eq!(
        messages.iter().filter(|m| m.contains("READY=1")).count(),
        1,
        "{messages:?}"
    );
}

/// Service `flood` once the test creates `go`: two orphans Vigil adopted
/// (their parent exits) that then call `setsid`, three members of its own
/// group and a stream of senders that exit at once, all sending as fast
/// as they can for `FLOOD_SECS`; its own `READY=1` a second in, from its
/// main process like any sd_notify (a blocking send); `done` written when
/// the flood is over. Orphans write their pids to `orphans`.
const FLOOD: &str = r#"
import os, socket, sys, threading, time
path = os.environ['NOTIFY_SOCKET']
go, done, orphans, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
vigil = os.getppid()

def sock():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    return s

def flood(message, until):
    s = sock()
    while time.monotonic() < until:
        try:
            s.sendto(message, path)
        except OSError:
            pass

while not os.path.exists(go):
    time.sleep(0.02)
end = time.monotonic() + secs
kids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            while os.getppid() != vigil:
                time.sleep(0.001)
            os.setsid()
            with open(orphans, 'a') as f:
                f.write(f'{os.getpid()}\n')
            flood(b'READY=1\nWATCHDOG=1\nSTATUS=orphan', end)
        os._exit(0)
    os.waitpid(pid, 0)
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        flood(b'WATCHDOG=1\nSTATUS=flooding', end)
        os._exit(0)
    kids.append(pid)
pid = os.fork()
if pid == 0:
    while time.monotonic() < end:
        p = os.fork()
        if p == 0:
            try:
                sock().sendto(b'WATCHDOG=1\nSTATUS=gone', path)
            except OSError:
                pass
            os._exit(0)
        os.waitpid(p, 0)
    os._exit(0)
kids.append(pid)

def ready():
    time.sleep(1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b'READY=1', path)

threading.Thread(target=ready, daemon=True).start()
for k in kids:
    os.waitpid(k, 0)
open(done, 'w').close()
time.sleep(1000)
"#;

#[test]
fn a_flood_from_one_service_delays_no_other_services_watchdog() {
    const FLOOD_SECS: u64 = 8;
    let setup = Setup::new("notify-flood");
    let go = setup.root.join("go");
    let done = setup.root.join("done");
    let orphans = setup.root.join("orphans");
    let utf8 = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    // Pings every 200 ms. Once the flood is over, and 2.6 s (more than its
    // watchdog-sec) of pings later, its first life sends WATCHDOG=trigger:
    // the sentinel after which a delayed WATCHDOG=1 would have shown.
    setup.service(
        "steady",
        &format!(
            "{}notify = true\nwatchdog-sec = \"2s\"\n",
            python(&format!(
                "{SEND}import os, time\n\
                 send('READY=1')\n\
                 after = None\n\
                 while True:\n    send('WATCHDOG=1')\n    \
                 if after is None and os.path.exists({done:?}):\n        after = 0\n    \
                 elif after is not None:\n        after += 1\n        \
                 if after == 13 and not os.path.exists('triggered'):\n            \
                 open('triggered', 'w').close()\n            send('WATCHDOG=trigger')\n    \
                 time.sleep(0.2)\n",
                done = utf8(&done)
            ))
        ),
    );
    setup.service(
        "flood",
        &format!(
            "{}notify = true\n",
            command(&[
                "python3",
                "-c",
                FLOOD,
                &utf8(&go),
                &utf8(&done),
                &utf8(&orphans),
                &FLOOD_SECS.to_string(),
            ])
        ),
    );
    let vigil = setup.run();
    vigil.wait_kind(0, "steady", "ready");
    std::fs::write(&go, "").expect("go");
    wait_until(
        "the flood is over",
        SOON + Duration::from_secs(FLOOD_SECS),
        || done.exists(),
    );
    // A WATCHDOG=1 held up during the flood shows as a failure within
    // watchdog-sec of the delay, so before steady's own trigger at the
    // latest: that is the first check event it may have.
    let (trigger_at, trigger) = vigil.wait_kind(0, "steady", "check");
    assert!(
        trigger["reason"]
            .as_str()
            .is_some_and(|r| r.contains("WATCHDOG=trigger")),
        "the flood delayed steady's WATCHDOG=1: {trigger}\n{}",
        vigil.diagnostics()
    );
    // No watchdog failure, so no restart: one life, ready throughout.
    let before: Vec<_> = vigil.journal()[..trigger_at]
        .iter()
        .filter(|e| e["service"] == "steady")
        .cloned()
        .collect();
    assert_eq!(
        kinds(&before),
        ["spawned", "ready"],
        "the flood delayed steady's WATCHDOG=1:\n{}",
        vigil.diagnostics()
    );
    // The flooding service's own READY=1 got through.
    vigil.wait_kind(0, "flood", "ready");
    // The orphans really were Vigil's (reaped by it once they stopped), so
    // the flood had senders outside every notify group.
    let orphan_pids: Vec<i64> = std::fs::read_to_string(&orphans)
        .expect("orphans")
        .lines()
        .map(|l| l.parse().expect("pid"))
        .collect();
    assert_eq!(orphan_pids.len(), 2, "{orphan_pids:?}");
    for pid in orphan_pids {
        vigil.wait_event(
            |e| e["kind"] == "orphan-reaped" && e["pid"].as_i64() == Some(pid),
            SOON,
        );
    }
}
