//! Supervisor, dependencies: `after` orders starts on readiness and
//! shutdown stops dependents first, with the real `vigil run`.

use crate::support::closed_port;
use crate::support::*;

/// `app` waits for `api`, which waits for `db`: each spawns only after
/// what it depends on is ready. On SIGTERM, `app` exits before `api`, and
/// `api` before `db`.
#[test]
fn start_after_ready_and_stop_in_reverse() {
    let setup = Setup::new("deps");
    let db_port = closed_port();
    let api_port = closed_port();
    // db becomes ready no sooner than 1 s after its spawn, which leaves
    // dependents plenty of time to start too early if they were going to.
    setup.service(
        "db",
        &http_server_manifest(db_port, "").replace(
            "period = \"200ms\"",
            "period = \"200ms\"\ninitial-delay = \"1s\"",
        ),
    );
    setup.service("api", &http_server_manifest(api_port, "after = [\"db\"]\n"));
    // No checks: ready as soon as it is spawned.
    setup.service(
        "app",
        &format!("{}after = [\"api\"]\n", command(&["sleep", "300"])),
    );
    let mut vigil = setup.run();

    let (app_spawned, _) = vigil.wait_kind(0, "app", "spawned");
    let journal = vigil.journal();
    let index = |service: &str, kind: &str| {
        journal
            .iter()
            .position(|e| is(e, service, kind))
            .unwrap_or_else(|| panic!("no {kind} for {service}\n{}", vigil.diagnostics()))
    };
    let db_ready = index("db", "ready");
    let api_spawned = index("api", "spawned");
    let api_ready = index("api", "ready");
    assert!(
        db_ready < api_spawned,
        "api spawned before db was ready\n{}",
        vigil.diagnostics()
    );
    assert!(
        api_ready < app_spawned,
        "app spawned before api was ready\n{}",
        vigil.diagnostics()
    );
    // Each dependent was spawned only once: no start before ready and
    // then a second one.
    for name in ["api", "app"] {
        let spawns = journal.iter().filter(|e| is(e, name, "spawned")).count();
        assert_eq!(spawns, 1, "{name}\n{}", vigil.diagnostics());
    }

    let status = vigil.terminate();
    assert!(
        status.success(),
        "vigil exited with {status}\n{}",
        vigil.diagnostics()
    );
    let journal = vigil.journal();
    let exited = |service: &str| {
        journal
            .iter()
            .position(|e| is(e, service, "exited"))
            .unwrap_or_else(|| panic!("{service} did not exit\n{}", vigil.diagnostics()))
    };
    let (app, api, db) = (exited("app"), exited("api"), exited("db"));
    assert!(
        app < api && api < db,
        "stop order app, api, db violated\n{}",
        vigil.diagnostics()
    );
    let quit = journal.last().expect("journal");
    assert_eq!(quit["kind"], "quit", "{}", vigil.diagnostics());
    assert_eq!(quit["clean"], true);
}

/// Dependencies hold through restarts and stops (README "Dependencies"):
/// `vigil stop db` stops `api` (`requires = ["db"]`) with the cause
/// `dependency`, but not `web` (`after` only); `vigil restart web` while
/// db is down answers that web waits for db, and spawns nothing; `vigil
/// start db` brings both back, each exactly once.
#[test]
fn requires_follows_its_dependency_and_restarts_wait_for_it() {
    let setup = Setup::new("deps-requires");
    setup.service("db", &command(&["sleep", "300"]));
    setup.service(
        "api",
        &format!("{}requires = [\"db\"]\n", command(&["sleep", "301"])),
    );
    setup.service(
        "web",
        &format!("{}after = [\"db\"]\n", command(&["sleep", "302"])),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let (_, api_pid) = vigil.wait_spawned(0, "api");
    let (_, web_pid) = vigil.wait_spawned(0, "web");
    wait_status(&vigil, "api", |s| s["state"] == "ready");
    wait_status(&vigil, "web", |s| s["state"] == "ready");

    let out = cli(&vigil.state, &["stop", "db"]);
    expect_code(&out, 0, "vigil stop db");
    let stopping = vigil.wait_event(|e| is(e, "api", "stopping"), SOON);
    assert_eq!(stopping["cause"], "dependency", "{stopping}");
    assert_eq!(stopping["reason"], "db stopped", "{stopping}");
    let api = wait_status(&vigil, "api", |s| s["state"] == "waiting");
    assert_eq!(api["waiting_for"], serde_json::json!(["db"]), "{api}");
    // The journal says so too, so `vigil journal api` explains the gap.
    let waiting = vigil.wait_event(|e| is(e, "api", "waiting"), SOON);
    assert_eq!(waiting["for"], serde_json::json!(["db"]), "{waiting}");
    // `after` alone does not stop a running dependent.
    assert!(alive(web_pid), "{}", vigil.diagnostics());

    let out = cli(&vigil.state, &["restart", "web"]);
    expect_code(&out, 0, "vigil restart web");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("web: waiting for db"), "{said}");
    wait_status(&vigil, "web", |s| s["state"] == "waiting");
    // Once more while waiting: nothing changes (no wedge, no second child).
    let out = cli(&vigil.state, &["restart", "web"]);
    expect_code(&out, 0, "vigil restart web, waiting");
    vigil.wait_event(|e| is(e, "web", "waiting"), SOON);

    let out = cli(&vigil.state, &["start", "db"]);
    expect_code(&out, 0, "vigil start db");
    let api = wait_status(&vigil, "api", |s| s["state"] == "ready");
    let web = wait_status(&vigil, "web", |s| s["state"] == "ready");
    assert_ne!(api["pid"], api_pid, "{api}");
    assert_ne!(web["pid"], web_pid, "{web}");
    let spawns = |name: &str| {
        vigil
            .journal()
            .iter()
            .filter(|e| is(e, name, "spawned"))
            .count()
    };
    assert_eq!(spawns("api"), 2, "{}", vigil.diagnostics());
    assert_eq!(spawns("web"), 2, "{}", vigil.diagnostics());
    // Waiting is journaled once per wait, not once per restart request.
    let journal = vigil.journal();
    let restarted = journal
        .iter()
        .position(|e| is(e, "web", "stopping"))
        .expect("web's restart");
    let waits = journal[restarted..]
        .iter()
        .filter(|e| is(e, "web", "waiting"))
        .count();
    assert_eq!(waits, 1, "{}", vigil.diagnostics());
}

/// A reload judges `after` anew: a service waiting for a dependency its
/// edited manifest no longer names starts at once, without a restart of
/// vigil (before, it kept waiting for the old list).
#[test]
fn an_edit_that_drops_a_dependency_frees_a_waiting_service() {
    let setup = Setup::new("deps-reload");
    setup.service("db", &command(&["sleep", "300"]));
    let api = setup.service(
        "api",
        &format!("{}after = [\"db\"]\n", command(&["sleep", "301"])),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    wait_status(&vigil, "api", |s| s["state"] == "ready");
    expect_code(&cli(&vigil.state, &["stop", "db"]), 0, "vigil stop db");
    expect_code(
        &cli(&vigil.state, &["restart", "api"]),
        0,
        "vigil restart api",
    );
    wait_status(&vigil, "api", |s| s["state"] == "waiting");

    atomic_save(&api, &command(&["sleep", "301"]));
    let api = wait_status(&vigil, "api", |s| s["state"] == "ready");
    assert_eq!(api["waiting_for"], serde_json::json!([]), "{api}");
}
