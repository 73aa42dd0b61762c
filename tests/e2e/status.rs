//! README "Control" / `vigil status`: its exit code (0 only when every
//! service is ready, stopped by an operator or a finished one-shot), each
//! service's last exit, and a failing service's stderr and log path.

use crate::support::{SOON, Setup, cli, command, is, text, wait_until};

#[test]
fn status_exit_code_last_exit_and_a_failing_services_stderr() {
    let setup = Setup::new("status-fields");
    setup.service("web", &command(&["sleep", "1000"]));
    setup.service(
        "oneshot",
        &format!(
            "{}restart = \"never\"\n",
            command(&["sh", "-c", "echo migrated"])
        ),
    );
    setup.service(
        "crasher",
        &format!(
            "{}restart = \"never\"\n",
            command(&[
                "sh",
                "-c",
                "echo fine; echo boom-1 >&2; echo 'boom-2: bind: address in use' >&2; exit 3"
            ])
        ),
    );
    let vigil = setup.run();
    vigil.wait_event(|e| is(e, "web", "ready"), SOON);
    vigil.wait_event(|e| is(e, "oneshot", "exited"), SOON);
    vigil.wait_event(|e| is(e, "crasher", "exited"), SOON);
    let log = setup.state.join("logs/crasher.log");
    wait_until("the crasher's stderr is captured", SOON, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("boom-2"))
    });

    // One failing service: 6, with its last exit, stderr and log path.
    let out = cli(&setup.state, &["status"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{shown}");
    let crasher = shown
        .lines()
        .find(|l| l.starts_with("crasher "))
        .expect("crasher's row");
    assert!(crasher.contains("code 3, "), "{shown}");
    assert!(crasher.contains(" ago"), "{shown}");
    let details = &shown[shown.find("\ncrasher: ").expect("crasher's details")..];
    assert!(details.contains("last exit code 3"), "{shown}");
    assert!(
        details.contains(&format!("log: {}", log.display())),
        "{shown}"
    );
    assert!(details.contains("    boom-1\n"), "{shown}");
    assert!(
        details.contains("    boom-2: bind: address in use\n"),
        "{shown}"
    );
    assert!(!details.contains("fine"), "stderr only: {shown}");
    assert!(
        !shown.contains("\noneshot: "),
        "a finished one-shot is fine"
    );
    assert!(shown.lines().all(|l| l == l.trim_end()), "{shown:?}");
    assert_eq!(
        cli(&setup.state, &["status", "crasher"]).status.code(),
        Some(6)
    );
    assert_eq!(
        cli(&setup.state, &["status", "--json"]).status.code(),
        Some(6),
        "the same code whatever the form"
    );
    let out = cli(&setup.state, &["status", "oneshot", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(one["finished"], true, "{one}");
    assert_eq!(cli(&setup.state, &["status", "web"]).status.code(), Some(0));

    // Stopped by an operator: fine again.
    let out = cli(&setup.state, &["stop", "crasher"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cli(&setup.state, &["stop", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = cli(&setup.state, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("\ncrasher: "));

    // Clock ticks never reach human output.
    let out = cli(&setup.state, &["journal", "web"]);
    let journal = text(&out.stdout);
    assert!(journal.contains(" web spawned pid="), "{journal}");
    assert!(!journal.contains("start_time="), "{journal}");
}

/// What a waiting service waits for, and how close a failing phase is to
/// acting (`readiness N/1000`), are in `vigil status`, JSON and table.
#[test]
fn status_shows_what_a_service_waits_for_and_its_failure_count() {
    let setup = Setup::new("status-waiting");
    let port = crate::support::closed_port();
    setup.service(
        "db",
        &format!(
            r#"{command}
[checks.readiness]
check = "builtin:tcp"
period = "100ms"
failure-threshold = 1000
[checks.readiness.config]
host = "127.0.0.1"
port = "{port}"
[grants]
hosts = ["tcp://127.0.0.1:{port}"]
"#,
            command = command(&["sleep", "300"]),
        ),
    );
    setup.service(
        "api",
        &format!("{}after = [\"db\"]\n", command(&["sleep", "300"])),
    );
    let vigil = setup.run();
    crate::support::wait_socket(&vigil);
    // Two failures in a row at least: the count is the consecutive one.
    let db = crate::support::wait_status(&vigil, "db", |s| {
        s["failing"]
            .as_str()
            .and_then(|f| f.strip_prefix("readiness "))
            .and_then(|f| f.strip_suffix("/1000"))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2)
    });
    assert_eq!(db["state"], "running", "{db}");
    let api = crate::support::wait_status(&vigil, "api", |s| s["state"] == "waiting");
    assert_eq!(api["waiting_for"], serde_json::json!(["db"]), "{api}");
    let out = cli(&vigil.state, &["status"]);
    let table = text(&out.stdout);
    assert!(table.contains("waiting: db"), "{table}");
    assert!(table.contains("readiness retry "), "{table}");
    assert!(table.contains("/1000: "), "{table}");
}
