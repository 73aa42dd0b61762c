//! docs/kinds.md: services that are not "a directory started at boot and
//! kept running": `autostart = false`, bare executables, scheduled jobs
//! and replicas, with the real `vigil run` and real processes.

use crate::support::*;

/// `autostart = false`: loaded, shown `stopped (autostart = false)`, not
/// spawned (not even by a reload), until `vigil start web`, which starts
/// `db` (held the same way, in web's `after`) first.
#[test]
fn autostart_false_stays_stopped_until_started_with_its_held_dependencies() {
    let setup = Setup::new("kinds-autostart");
    setup.service(
        "db",
        &format!("{}autostart = false\n", command(&["sleep", "300"])),
    );
    setup.service(
        "web",
        &format!(
            "{}autostart = false\nafter = [\"db\"]\n",
            command(&["sleep", "300"])
        ),
    );
    setup.service("always", &command(&["sleep", "300"]));
    let vigil = setup.run();
    wait_socket(&vigil);
    vigil.wait_spawned(0, "always");
    for name in ["db", "web"] {
        let s = wait_status(&vigil, name, |s| s["state"] == "stopped");
        assert_eq!(s["note"], "autostart = false", "{s}");
    }
    // A reload of an unchanged manifest keeps it held.
    expect_code(&cli(&vigil.state, &["reload"]), 0, "vigil reload");
    let report = status(&vigil.state);
    for name in ["db", "web"] {
        let s = service(&report, name);
        assert_eq!(s["state"], "stopped", "{s}");
        assert_eq!(s["note"], "autostart = false", "{s}");
    }
    let spawned = |name: &str| {
        vigil
            .journal()
            .iter()
            .filter(|e| is(e, name, "spawned"))
            .count()
    };
    assert_eq!(spawned("db"), 0, "{}", vigil.diagnostics());
    assert_eq!(spawned("web"), 0, "{}", vigil.diagnostics());

    let out = cli(&vigil.state, &["start", "web"]);
    expect_code(&out, 0, "vigil start web");
    let (db_at, _) = vigil.wait_spawned(0, "db");
    let (web_at, _) = vigil.wait_spawned(0, "web");
    assert!(db_at < web_at, "db starts before web\n{}", vigil.diagnostics());
    let s = wait_status(&vigil, "web", |s| s["pid"].is_i64());
    assert!(s.get("note").is_none_or(|n| n.is_null()), "{s}");
}
