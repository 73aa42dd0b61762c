//! `vigil replay`: journals written by the real `vigil run` replayed
//! through the built-in policy and the example loaders
//! (checks/examples/loaders), from a copy of the journal as if taken to
//! another machine.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::*;

fn replay(args: &[&str]) -> Output {
    vigil_command()
        .arg("replay")
        .args(args)
        .output()
        .expect("run vigil replay")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "replay --json printed no JSON ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// The candidate's decisions, as `restart 100`, `give-up`, `stop`, `keep`, ...
fn candidate(report: &Value) -> Vec<String> {
    decisions(report, "candidate")
}

fn decisions(report: &Value, side: &str) -> Vec<String> {
    report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| match s[side]["action"].as_str().unwrap_or("?") {
                    "restart" => format!("restart {}", s[side]["delay_ms"]),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A crash loop under the built-in policy (`exit 3` at once; backoff 0,
/// 100 ms, 200 ms; give up after more than 3 restarts in a minute), run
/// to the give-up, vigil shut down, and its journal copied elsewhere.
/// Returns the setup, the copy and the service's manifest.
fn crash_loop(name: &str) -> (Setup, PathBuf, PathBuf) {
    let setup = Setup::new(name);
    let dir = setup.service(
        "crasher",
        &format!(
            r#"{command}backoff = ["0s", "100ms", "200ms"]
give-up = {{ restarts = 3, window = "60s" }}
"#,
            command = command(&["sh", "-c", "exit 3"]),
        ),
    );
    let mut vigil = setup.run();
    vigil.wait_kind(0, "crasher", "gave-up");
    assert!(vigil.terminate().success(), "{}", vigil.diagnostics());
    let copy = setup.root.join("copied-journal.jsonl");
    std::fs::copy(vigil.journal_path(), &copy).expect("copy the journal");
    (setup, copy, dir.join("service.toml"))
}

/// The acceptance test of issue 17 §2: replaying the manifest that
/// produced a crash loop reproduces every recorded decision (exit 0);
/// other restart settings differ, and the report says where (exit 1).
#[test]
fn the_policy_that_wrote_a_crash_loop_replays_it_exactly() {
    let (setup, journal, manifest) = crash_loop("replay-same");
    let journal = journal.to_str().expect("utf-8 path");
    let manifest = manifest.to_str().expect("utf-8 path");

    let out = replay(&[
        "--journal",
        journal,
        "--service",
        "crasher",
        "--policy",
        manifest,
        "--json",
    ]);
    let same = report(&out);
    expect_code(&out, 0, "replay of the policy that wrote the journal");
    assert_eq!(
        candidate(&same),
        ["restart 0", "restart 100", "restart 200", "give-up"],
        "{same:#}"
    );
    assert_eq!(candidate(&same), decisions(&same, "recorded"));
    assert_eq!(same["recorded"]["restarts"], 3);
    assert_eq!(same["candidate_totals"]["restarts"], 3);
    assert!(
        same["candidate_totals"]["gave_up_at"].is_string(),
        "{same:#}"
    );

    // Slower backoff, more patience: another story, told side by side.
    let other = write_service(
        &setup.root.join("candidate"),
        "crasher",
        &format!(
            r#"{command}backoff = ["1s", "2s"]
give-up = {{ restarts = 10, window = "60s" }}
"#,
            command = command(&["sh", "-c", "exit 3"]),
        ),
    );
    let other = other.join("service.toml");
    let other = other.to_str().expect("utf-8 path");
    let out = replay(&[
        "--journal",
        journal,
        "--service",
        "crasher",
        "--policy",
        other,
    ]);
    expect_code(&out, 1, "replay of other restart settings");
    let table = text(&out.stdout);
    assert!(table.contains("restart after 1s"), "{table}");
    assert!(table.contains("DIFFERS"), "{table}");
    assert!(
        table.contains("the decisions differ (4 of 4 compared)"),
        "{table}"
    );

    // The state directory works as --journal too, with no vigil running.
    let state = setup.state.to_str().expect("utf-8 path");
    let out = replay(&[
        "--journal",
        state,
        "--service",
        "crasher",
        "--policy",
        manifest,
    ]);
    expect_code(&out, 0, "replay from the state directory");
}

/// Backoff with full jitter over the recorded crash loop: every delay is
/// within its exponential ceiling, and the same journal replays to the
/// same delays (the jitter is a hash of the event, not a random draw).
#[test]
fn the_jitter_loader_replays_deterministically_within_its_ceilings() {
    let (_setup, journal, _) = crash_loop("replay-jitter");
    let journal = journal.to_str().expect("utf-8 path");
    let args = [
        "--journal",
        journal,
        "--service",
        "crasher",
        "--loader",
        programs::EXAMPLE_BACKOFF_JITTER,
        "--config",
        "base-ms=100",
        "--config",
        "cap-ms=350",
        "--json",
    ];
    let first = replay(&args);
    expect_code(&first, 1, "jitter differs from the built-in backoff");
    let first = report(&first);
    let delays: Vec<u64> = first["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["candidate"]["delay_ms"].as_u64().expect("a restart"))
        .collect();
    assert_eq!(delays.len(), 4, "{first:#}");
    for (n, delay) in delays.iter().enumerate() {
        let ceiling = (100u64 << n).min(350);
        assert!(*delay <= ceiling, "restart {n}: {delay} ms > {ceiling} ms");
    }
    let second = report(&replay(&args));
    assert_eq!(first["steps"], second["steps"]);
}

/// A circuit breaker over the recorded crash loop: restarts at once until
/// two failures fall within the window, then waits the cool-down, and
/// every later life moves by the difference.
#[test]
fn the_circuit_breaker_opens_after_its_failures() {
    let (_setup, journal, _) = crash_loop("replay-breaker");
    let journal = journal.to_str().expect("utf-8 path");
    let out = replay(&[
        "--journal",
        journal,
        "--service",
        "crasher",
        "--loader",
        programs::EXAMPLE_CIRCUIT_BREAKER,
        "--config",
        "argv=true",
        "--config",
        "failures=2",
        "--config",
        "cool-down-ms=30000",
        "--config",
        "delay-ms=0",
        "--json",
    ]);
    expect_code(&out, 1, "the breaker differs from the built-in policy");
    let breaker = report(&out);
    let decided = candidate(&breaker);
    assert_eq!(decided[..2], ["restart 0", "restart 30000"], "{breaker:#}");
    // The first decision matches the record's (0 ms), the second opens.
    assert_eq!(breaker["steps"][0]["matches"], true);
    assert_eq!(breaker["steps"][1]["matches"], false);
    // The third life came 29.9 s later on the candidate's clock.
    let at = |key: &str| {
        let ts = breaker["steps"][2][key].as_str().unwrap_or_default();
        vigil::journal::parse_timestamp(ts).expect("a timestamp")
    };
    let moved = at("candidate_at").duration_since(at("at")).expect("later");
    assert_eq!(moved.as_millis(), 29_900, "{breaker:#}");
}

/// A liveness failure restarts the service, except in the maintenance
/// window: over a journal of liveness restarts, a window around the
/// recorded time keeps the child (the loader reads the recorded time from
/// its frozen clock), one elsewhere decides as the record did.
#[test]
fn the_maintenance_window_keeps_the_child_only_inside_it() {
    let setup = Setup::new("replay-window");
    let port = closed_port();
    let dir = setup.service(
        "web",
        &format!(
            r#"{command}backoff = ["0s"]

[checks.liveness]
check = "builtin:tcp"
period = "100ms"
failure-threshold = 2
[checks.liveness.config]
host = "127.0.0.1"
port = "{port}"

[grants]
hosts = ["tcp://127.0.0.1:{port}"]
"#,
            command = command(&["sleep", "300"]),
        ),
    );
    let mut vigil = setup.run();
    let (i, _) = vigil.wait_kind(0, "web", "restarting");
    vigil.wait_kind(i + 1, "web", "restarting");
    assert!(vigil.terminate().success(), "{}", vigil.diagnostics());
    let journal = vigil.journal_path();
    let journal = journal.to_str().expect("utf-8 path");
    let _ = dir;

    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60 % 1440)
        .unwrap_or_default();
    let hhmm = |m: u64| format!("{:02}:{:02}", m % 1440 / 60, m % 60);
    let window = |from: u64, to: u64| format!("window={}-{}", hhmm(from), hhmm(to));
    let run = |window: &str| {
        let out = replay(&[
            "--journal",
            journal,
            "--service",
            "web",
            "--loader",
            programs::EXAMPLE_MAINTENANCE_WINDOW,
            "--config",
            window,
            "--config",
            "failures=2",
            "--config",
            "delay-ms=0",
            "--json",
        ]);
        (out.status.code(), report(&out))
    };

    // The journal was written within the last minutes: a window from an
    // hour ago to an hour ahead holds it.
    let (code, inside) = run(&window(minute + 1380, minute + 60));
    assert_eq!(code, Some(1), "{inside:#}");
    assert_eq!(decisions(&inside, "recorded")[0], "stop", "{inside:#}");
    assert_eq!(candidate(&inside)[0], "keep", "{inside:#}");

    // Six hours away: a restart on every failure, as recorded.
    let (code, outside) = run(&window(minute + 360, minute + 420));
    assert_eq!(code, Some(0), "{outside:#}");
    assert_eq!(
        candidate(&outside)[..4],
        ["stop", "restart 0", "stop", "restart 0"],
        "{outside:#}"
    );
}

/// Bad usage is told apart from a difference.
#[test]
fn replay_usage_errors() {
    let out = replay(&["--service", "x"]);
    expect_code(&out, 2, "neither --loader nor --policy");
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-journal");
    let out = replay(&[
        "--journal",
        missing.to_str().expect("utf-8 path"),
        "--service",
        "x",
        "--loader",
        programs::EXAMPLE_BACKOFF_JITTER,
    ]);
    expect_code(&out, 1, "no journal");
    assert!(
        text(&out.stderr).contains("no journal at"),
        "{}",
        text(&out.stderr)
    );
}

/// The loader's clock is the record's: a journal from twelve hours ago,
/// replayed now with a window around its time, is judged inside the
/// window (with the host's clock it would be twelve hours outside it).
#[test]
fn a_replayed_loader_reads_the_recorded_time() {
    let dir = scratch("replay-clock");
    let then = SystemTime::now() - std::time::Duration::from_secs(12 * 3600);
    let at = |ms: u64| vigil::journal::timestamp(then + std::time::Duration::from_millis(ms));
    let lines = [
        format!(r#"{{"ts":"{}","kind":"acquired","pid":1}}"#, at(0)),
        format!(
            r#"{{"ts":"{}","service":"web","kind":"spawned","pid":10,"start_time":1,"restarts":0}}"#,
            at(10)
        ),
        format!(
            r#"{{"ts":"{}","service":"web","kind":"check","phase":"liveness","outcome":"retry","reason":"refused"}}"#,
            at(1000)
        ),
        format!(
            r#"{{"ts":"{}","service":"web","kind":"stopping","pid":10,"cause":"liveness","reason":"liveness failed 2/2","signal":"SIGTERM"}}"#,
            at(1100)
        ),
        format!(
            r#"{{"ts":"{}","service":"web","kind":"exited","pid":10,"code":null,"signal":"SIGTERM","uptime_ms":1190,"cause":"liveness"}}"#,
            at(1200)
        ),
        format!(
            r#"{{"ts":"{}","service":"web","kind":"restarting","delay_ms":0,"restarts":1}}"#,
            at(1200)
        ),
    ];
    let journal = dir.join("journal.jsonl");
    std::fs::write(&journal, lines.join("\n") + "\n").expect("write the journal");
    let minute = then
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60 % 1440)
        .unwrap_or_default();
    let hhmm = |m: u64| format!("{:02}:{:02}", m % 1440 / 60, m % 60);
    let window = format!("window={}-{}", hhmm(minute + 1380), hhmm(minute + 60));
    let out = replay(&[
        "--journal",
        journal.to_str().expect("utf-8 path"),
        "--service",
        "web",
        "--loader",
        programs::EXAMPLE_MAINTENANCE_WINDOW,
        "--config",
        &window,
        "--config",
        "failures=2",
        "--json",
    ]);
    let kept = report(&out);
    assert_eq!(candidate(&kept), ["keep"], "{kept:#}");
    expect_code(&out, 1, "the window keeps what the record stopped");
    let _ = std::fs::remove_dir_all(&dir);
}
