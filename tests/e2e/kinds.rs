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
    assert!(
        db_at < web_at,
        "db starts before web\n{}",
        vigil.diagnostics()
    );
    let s = wait_status(&vigil, "web", |s| s["pid"].is_i64());
    assert!(s.get("note").is_none_or(|n| n.is_null()), "{s}");
}

/// Put an executable script at `path` the way a deploy does: written
/// beside it under a hidden name, made executable, renamed into place (a
/// new inode, one inotify event).
fn drop_script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("a parent");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).expect("a name")
    ));
    std::fs::write(&tmp, body).expect("write script");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod +x");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// An executable dropped into the checks directory is a service named
/// after it (no manifest); an edit restarts it; `chmod -x` stops it and
/// takes it out of status. A non-executable file beside it is ignored.
#[test]
fn an_executable_is_a_service_edits_restart_it_and_chmod_x_stops_it() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new("kinds-exe");
    setup.service("anchor", &command(&["sleep", "300"]));
    std::fs::write(setup.checks.join("NOTES.txt"), "not a service\n").expect("notes");
    let vigil = setup.run();
    wait_socket(&vigil);
    vigil.wait_spawned(0, "anchor");

    let script = setup.checks.join("hello.sh");
    drop_script(&script, "#!/bin/sh\nexec sleep 301\n");
    let (at, first) = vigil.wait_spawned(0, "hello");
    vigil.wait_until("v1 runs", || cmdline(first).contains("301"));

    drop_script(&script, "#!/bin/sh\nexec sleep 302\n");
    let (_, second) = vigil.wait_spawned(at + 1, "hello");
    assert_ne!(first, second);
    vigil.wait_until("v2 runs", || cmdline(second).contains("302"));
    vigil.wait_until("the first version is gone", || !alive(first));

    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod -x");
    vigil.wait_until("chmod -x stops it", || !alive(second));
    vigil.wait_until("and takes it out of status", || {
        status(&vigil.state)["services"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["name"] != "hello"))
    });
    assert!(
        !vigil
            .journal()
            .iter()
            .any(|e| e["service"] == "NOTES" || e["service"] == "NOTES.txt"),
        "{}",
        vigil.diagnostics()
    );
}

/// A sidecar `NAME.toml` adds manifest keys to an executable: here a
/// readiness check, which the service passes once its server answers.
/// `command` in a sidecar is refused, naming the executable.
#[test]
fn a_sidecar_toml_adds_a_readiness_check_and_may_not_set_command() {
    let setup = Setup::new("kinds-sidecar");
    let port = closed_port();
    drop_script(
        &setup.checks.join("srv.sh"),
        &format!("#!/bin/sh\nexec python3 -m http.server {port} --bind 127.0.0.1\n"),
    );
    let origin = format!("http://127.0.0.1:{port}");
    std::fs::write(
        setup.checks.join("srv.toml"),
        http_readiness(&format!("{origin}/"), &origin),
    )
    .expect("sidecar");
    let vigil = setup.run();
    wait_socket(&vigil);
    let s = wait_status(&vigil, "srv", |s| s["state"] == "ready");
    assert_eq!(s["last_phase"], "readiness", "{s}");

    let bad = Setup::new("kinds-sidecar-bad");
    drop_script(&bad.checks.join("job.sh"), "#!/bin/sh\nexit 0\n");
    std::fs::write(bad.checks.join("job.toml"), command(&["true"])).expect("sidecar");
    let out = vigil_command()
        .arg("validate")
        .arg(&bad.checks)
        .output()
        .expect("vigil validate");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("command") && said.contains("job.sh"),
        "{said}"
    );
}

/// A directory and an executable with the same service name: refused,
/// naming both.
#[test]
fn a_name_clash_between_a_directory_and_an_executable_names_both() {
    let setup = Setup::new("kinds-clash");
    setup.service("web", &command(&["sleep", "300"]));
    drop_script(&setup.checks.join("web.sh"), "#!/bin/sh\nexec sleep 300\n");
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("vigil validate");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("web.sh") && said.contains("/web "), "{said}");
}

/// `every = "1s"`: the job runs again and again, each run a `spawned` at
/// least about a period after the one before (a lower bound only; the
/// due times are exact, the spawns a little late).
#[test]
fn a_job_every_second_runs_with_at_least_the_spacing() {
    let setup = Setup::new("kinds-every");
    setup.service("tick", &format!("{}every = \"1s\"\n", command(&["true"])));
    let vigil = setup.run();
    wait_socket(&vigil);
    let mut at = 0;
    let mut spawns = Vec::new();
    for _ in 0..3 {
        let (i, e) = vigil.wait_kind(at, "tick", "spawned");
        spawns.push(e);
        at = i + 1;
    }
    // Status shows when the next run is due (at most a period away).
    let s = wait_status(&vigil, "tick", |s| s["next_run_in_secs"].is_f64());
    let next = s["next_run_in_secs"].as_f64().unwrap_or(f64::MAX);
    assert!(next <= 1.0, "{s}");
    for pair in spawns.windows(2) {
        let ms = ms_between(&pair[0], &pair[1]);
        assert!(ms >= 700, "runs {ms} ms apart\n{}", vigil.diagnostics());
    }
    // Each run ends as a clean one-shot, not restarted by policy.
    let journal = vigil.journal();
    assert!(
        !journal.iter().any(|e| is(e, "tick", "restarting")),
        "{}",
        vigil.diagnostics()
    );
}

/// A run longer than the period: the due time that finds it still going
/// is skipped and journaled (`overlap = "skip"`, the default).
#[test]
fn overlap_skip_skips_a_due_time_while_the_previous_run_goes() {
    let setup = Setup::new("kinds-skip");
    setup.service(
        "slow",
        &format!("{}every = \"1s\"\n", command(&["sleep", "2.5"])),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let (_, first) = vigil.wait_spawned(0, "slow");
    let skipped = vigil.wait_event(
        |e| {
            is(e, "slow", "warning")
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("run skipped"))
        },
        SOON,
    );
    assert!(
        skipped["message"]
            .as_str()
            .is_some_and(|m| m.contains(&first.to_string())),
        "{skipped}"
    );
    assert!(alive(first), "the run goes on past the skipped due time");
}

/// `timeout`: a run still going after it is stopped (cause `schedule`).
#[test]
fn timeout_kills_a_long_run() {
    let setup = Setup::new("kinds-timeout");
    setup.service(
        "long",
        &format!(
            "{}every = \"1s\"\ntimeout = \"1s\"\n",
            command(&["sleep", "300"])
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    let (_, pid) = vigil.wait_spawned(0, "long");
    vigil.wait_until("the long run is stopped", || !alive(pid));
    let journal = vigil.journal();
    assert!(
        journal.iter().any(|e| is(e, "long", "stopping")
            && e["cause"] == "schedule"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("timed out"))),
        "{}",
        vigil.diagnostics()
    );
}

/// A job may not restart by policy.
#[test]
fn a_job_with_restart_always_is_refused() {
    let setup = Setup::new("kinds-job-restart");
    setup.service(
        "bad",
        &format!(
            "{}every = \"1m\"\nrestart = \"always\"\n",
            command(&["true"])
        ),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("vigil validate");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("restart") && said.contains("scheduled job"),
        "{said}"
    );
}

/// `schedule = "* * * * * *"` (croner's six fields, seconds first): a
/// run at each second, on distinct whole seconds (a lower bound: due
/// times are one second apart); status shows the schedule, the next due
/// time, the last run's exit and duration; `/metrics` has the time of the
/// last success.
#[test]
fn a_cron_job_every_second_shows_its_runs_in_status_and_metrics() {
    let setup = Setup::new("kinds-cron");
    let out = setup.root.join("ticks");
    let script = format!("date +%s >> {}", out.display());
    setup.service(
        "tick",
        &format!(
            "{}schedule = \"* * * * * *\"\ntimezone = \"Europe/Paris\"\n",
            command(&["sh", "-c", &script])
        ),
    );
    let port = crate::support::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let vigil = Vigil::start_with(&setup, &["--http", &addr]);
    wait_socket(&vigil);
    // The journal: each run's start (`spawned`, with its pid) and end
    // (`exited`, with its code and its duration, `uptime_ms`).
    let mut at = 0;
    for _ in 0..3 {
        let (s, spawned) = vigil.wait_kind(at, "tick", "spawned");
        assert!(spawned["pid"].is_i64(), "{spawned}");
        let (i, exited) = vigil.wait_kind(s + 1, "tick", "exited");
        assert_eq!(exited["code"], 0, "{exited}");
        assert!(exited["uptime_ms"].is_u64(), "{exited}");
        at = i + 1;
    }
    let secs: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(secs.len() >= 3, "{secs:?}");
    for pair in secs.windows(2) {
        assert!(pair[1] > pair[0], "two runs in one second: {secs:?}");
    }
    let s = wait_status(&vigil, "tick", |s| s["job"]["last_run"]["ok"] == true);
    let job = &s["job"];
    assert_eq!(job["schedule"], "* * * * * * Europe/Paris", "{s}");
    assert_eq!(job["last_run"]["code"], 0, "{s}");
    assert!(job["last_run"]["duration_secs"].is_f64(), "{s}");
    assert!(job["next_run_at"].is_string(), "{s}");
    assert!(job["last_success_at"].is_string(), "{s}");
    assert!(
        s["next_run_in_secs"].as_f64().is_some_and(|n| n <= 1.0),
        "{s}"
    );
    // The table shows the last run.
    let table = text(&cli(&vigil.state, &["status"]).stdout);
    assert!(table.contains("last run: exit 0"), "{table}");
    // `vigil status tick`: the schedule, the next due time as a date, the
    // last run and the last success.
    let one = text(&cli(&vigil.state, &["status", "tick"]).stdout);
    assert!(
        one.contains("tick: job \"* * * * * * Europe/Paris\", next run 20"),
        "{one}"
    );
    assert!(one.contains("  last run: exit 0 after "), "{one}");
    assert!(one.contains("  last success: 20"), "{one}");
    // `/metrics`: the last success, in Unix seconds, not before the test.
    let started = secs[0] as f64;
    let metric = vigil.wait_for("the last-success metric", || {
        let body = http_get(port, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with("vigil_job_last_success_timestamp_seconds{service=\"tick\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    });
    assert!(metric >= started, "{metric} < {started}");
}

/// `GET path` on loopback `port`: the body of a 200 answer.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(SOON)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// `catch-up = true`: a job whose due time passed while Vigil was down
/// runs once at the next start (journal `catch-up`); its twin without
/// catch-up waits for its next due time. The first instance runs both
/// once (`vigil start`); the journal then says those runs were long ago
/// (a yearly job cannot wait for its next due time in a test).
#[test]
fn catch_up_runs_a_missed_job_once_after_a_restart() {
    let setup = Setup::new("kinds-catch-up");
    let runs = |name: &str| setup.root.join(format!("{name}.runs"));
    for (name, catch_up) in [("yearly", true), ("lazy", false)] {
        let script = format!("echo run >> {}", runs(name).display());
        setup.service(
            name,
            &format!(
                "{}schedule = \"0 0 1 1 *\"\ncatch-up = {catch_up}\n",
                command(&["sh", "-c", &script])
            ),
        );
    }
    let count = |name: &str| {
        std::fs::read_to_string(runs(name))
            .unwrap_or_default()
            .lines()
            .count()
    };
    {
        let mut vigil = setup.run();
        wait_socket(&vigil);
        for name in ["yearly", "lazy"] {
            expect_code(&cli(&vigil.state, &["start", name]), 0, "vigil start");
            vigil.wait_kind(0, name, "exited");
        }
        assert!(vigil.terminate().success());
    }
    assert_eq!((count("yearly"), count("lazy")), (1, 1));
    // Those runs were years ago.
    let path = setup.state.join("journal.jsonl");
    let journal = std::fs::read_to_string(&path).expect("the journal");
    let aged: String = journal
        .lines()
        .map(|line| {
            let mut e: serde_json::Value = serde_json::from_str(line).expect("a journal line");
            if e["kind"] == "spawned" {
                e["ts"] = "2020-06-01T00:00:00.000Z".into();
            }
            format!("{e}\n")
        })
        .collect();
    std::fs::write(&path, aged).expect("rewrite the journal");

    let vigil = setup.run();
    wait_socket(&vigil);
    let caught = vigil.wait_event(|e| is(e, "yearly", "catch-up"), SOON);
    assert_eq!(caught["missed"], "2021-01-01T00:00:00.000Z", "{caught}");
    assert_eq!(caught["last_run"], "2020-06-01T00:00:00.000Z", "{caught}");
    let from = vigil
        .journal()
        .iter()
        .position(|e| is(e, "yearly", "catch-up"))
        .unwrap_or(0);
    vigil.wait_kind(from, "yearly", "exited");
    assert_eq!(count("yearly"), 2, "{}", vigil.diagnostics());
    // The twin only waits for its next due time, New Year's Day.
    let s = wait_status(&vigil, "lazy", |s| s["job"]["next_run_at"].is_string());
    assert_eq!(
        s["job"]["next_run_at"].as_str().map(|t| &t[5..10]),
        Some("01-01")
    );
    assert_eq!(count("lazy"), 1, "{}", vigil.diagnostics());
    assert!(
        !vigil.journal().iter().any(|e| is(e, "lazy", "catch-up")),
        "{}",
        vigil.diagnostics()
    );
}

/// A reload that changes a job's schedule takes effect at once: a yearly
/// job (its scheduler asleep until New Year's Day) edited to run every
/// second runs within seconds; edited back, status shows the new due time.
#[test]
fn a_reload_reschedules_a_job_at_once() {
    let setup = Setup::new("kinds-cron-reload");
    let body = command(&["true"]);
    let yearly = format!("{body}schedule = \"0 0 1 1 *\"\n");
    let dir = setup.service("job", &yearly);
    let vigil = setup.run();
    wait_socket(&vigil);
    let new_year = |s: &serde_json::Value| {
        s["job"]["next_run_at"]
            .as_str()
            .map(|t| t[5..10].to_string())
            == Some("01-01".into())
    };
    wait_status(&vigil, "job", new_year);
    atomic_save(&dir, &format!("{body}schedule = \"* * * * * *\"\n"));
    expect_code(&cli(&vigil.state, &["reload"]), 0, "vigil reload");
    let (from, _) = vigil.wait_kind(0, "job", "exited");
    vigil.wait_kind(from + 1, "job", "exited");
    let s = wait_status(&vigil, "job", |s| s["job"]["schedule"] == "* * * * * * UTC");
    assert!(
        s["next_run_in_secs"].as_f64().is_some_and(|n| n <= 1.0),
        "{s}"
    );
    atomic_save(&dir, &yearly);
    expect_code(&cli(&vigil.state, &["reload"]), 0, "vigil reload");
    wait_status(&vigil, "job", new_year);
}

/// `schedule` and `every` together, a bad expression and an unknown zone
/// are refused, each naming its field.
#[test]
fn bad_schedules_are_refused_naming_the_field() {
    let setup = Setup::new("kinds-cron-bad");
    let body = command(&["true"]);
    setup.service(
        "both",
        &format!("{body}schedule = \"* * * * *\"\nevery = \"1m\"\n"),
    );
    setup.service("expr", &format!("{body}schedule = \"61 * * * *\"\n"));
    setup.service(
        "zone",
        &format!("{body}schedule = \"* * * * *\"\ntimezone = \"Europe/Atlantis\"\n"),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("vigil validate");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{said}");
    for needle in [
        "both `schedule` and `every`",
        "not a cron expression",
        "unknown time zone",
        "timezone",
    ] {
        assert!(said.contains(needle), "{needle}: {said}");
    }
}
