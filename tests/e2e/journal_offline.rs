//! README "Control" / `vigil journal`: reading the journal with no vigil
//! running (its files, rotated ones included), following them across a
//! rotation, and the filters (`--since`, `--kind`) with and without a
//! running vigil.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{SOON, Setup, command, expect_code, is, text, vigil_command};

/// `vigil journal ARGS --state-dir STATE`, run to completion.
fn journal(state: &Path, args: &[&str]) -> Output {
    vigil_command()
        .arg("journal")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil journal")
}

/// The `message` of every warning line printed with `--json`.
fn messages(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .collect()
}

/// One journal line as the writer makes it.
fn line(ts: &str, service: &str, message: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({ "ts": ts, "service": service, "kind": "warning", "message": message })
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open journal");
    f.write_all(text.as_bytes()).expect("append");
}

/// The journal writer's rotation (journal.rs `rotate`), with `keep` 3.
fn rotate(state: &Path) {
    for i in (1..3).rev() {
        let from = state.join(format!("journal.{i}.jsonl"));
        if from.exists() {
            std::fs::rename(&from, state.join(format!("journal.{}.jsonl", i + 1))).expect("move");
        }
    }
    std::fs::rename(state.join("journal.jsonl"), state.join("journal.1.jsonl")).expect("rotate");
}

#[test]
fn journal_reads_the_files_when_no_vigil_runs_across_rotations() {
    let setup = Setup::new("journal-offline");
    let state = &setup.state;
    // A real run first: its journal, then nothing listening.
    setup.service("sleeper", &command(&["sleep", "1000"]));
    let mut vigil = setup.run();
    vigil.wait_event(|e| is(e, "sleeper", "ready"), SOON);
    assert!(vigil.terminate().success());

    let out = journal(state, &["--json", "-n", "1000"]);
    expect_code(&out, 0, "offline journal");
    let kinds: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["kind"].to_string())
        .collect();
    assert!(
        kinds.first().is_some_and(|k| k == "\"acquired\""),
        "{kinds:?}"
    );
    assert!(kinds.last().is_some_and(|k| k == "\"quit\""), "{kinds:?}");
    let out = journal(state, &["sleeper"]);
    expect_code(&out, 0, "offline journal sleeper");
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.contains(" sleeper spawned pid=")),
        "{}",
        text(&out.stdout)
    );
    // `TIME SERVICE KIND ...`: the service column is sleeper's on every
    // line (a reason may well mention vigil).
    assert!(
        text(&out.stdout)
            .lines()
            .all(|l| l.split(' ').nth(1) == Some("sleeper")),
        "only sleeper's lines: {}",
        text(&out.stdout)
    );

    // Rotated files are read oldest first, then the current one.
    rotate(state);
    append(
        &state.join("journal.jsonl"),
        &line("2030-01-01T00:00:01.000Z", "web", "after rotation 1"),
    );
    rotate(state);
    append(
        &state.join("journal.jsonl"),
        &line("2030-01-01T00:00:02.000Z", "web", "after rotation 2"),
    );
    append(
        &state.join("journal.jsonl"),
        &line("2030-01-01T00:00:03.000Z", "db", "db line"),
    );
    assert!(state.join("journal.2.jsonl").exists());
    let out = journal(state, &["--json", "-n", "1000"]);
    let all = text(&out.stdout);
    let first_quit = all.find("\"quit\"").expect("the old run's quit");
    let rotated_1 = all.find("after rotation 1").expect("line of journal.1");
    let current = all.find("after rotation 2").expect("line of journal.jsonl");
    assert!(first_quit < rotated_1 && rotated_1 < current, "{all}");

    // -n, NAME, --kind, --since.
    let out = journal(state, &["--json", "-n", "2"]);
    assert_eq!(messages(&out), ["after rotation 2", "db line"]);
    let out = journal(state, &["--json", "web"]);
    assert_eq!(messages(&out), ["after rotation 1", "after rotation 2"]);
    let out = journal(state, &["--json", "--kind", "warning"]);
    assert_eq!(
        messages(&out),
        ["after rotation 1", "after rotation 2", "db line"]
    );
    let out = journal(state, &["--json", "--kind", "quit,acquired"]);
    let kinds = text(&out.stdout);
    assert!(kinds.contains("\"quit\"") && kinds.contains("\"acquired\""));
    assert!(!kinds.contains("\"warning\"") && !kinds.contains("\"spawned\""));
    let out = journal(
        state,
        &["--json", "--since", "2030-01-01T01:00:01.500+01:00"],
    );
    assert_eq!(messages(&out), ["after rotation 2", "db line"]);
    // A duration ago: the run's lines (just now) and the ones in 2030.
    let out = journal(
        state,
        &["--json", "--since", "10m", "--kind", "spawned,warning"],
    );
    let recent = text(&out.stdout);
    assert!(recent.contains("\"spawned\""), "{recent}");
    assert!(recent.contains("db line"), "{recent}");
    let out = journal(
        state,
        &[
            "--json",
            "--since",
            "2029-12-31",
            "--kind",
            "spawned,warning",
        ],
    );
    assert!(!text(&out.stdout).contains("\"spawned\""));
    // The human form is escaped and has no trailing spaces.
    append(
        &state.join("journal.jsonl"),
        &line("2030-01-01T00:00:04.000Z", "db", "\u{1b}]0;title\u{7}"),
    );
    let out = journal(state, &["db"]);
    let plain = text(&out.stdout);
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    assert!(plain.contains("message=\\x1b]0;title\\x07"), "{plain:?}");
    assert!(plain.lines().all(|l| l == l.trim_end()), "{plain:?}");

    // Mistakes: an unknown kind or time is bad usage; an unknown service 4.
    let out = journal(state, &["--kind", "exit"]);
    expect_code(&out, 2, "unknown kind");
    assert!(
        text(&out.stderr).contains("exited"),
        "{}",
        text(&out.stderr)
    );
    expect_code(&journal(state, &["--since", "yesterday"]), 2, "bad --since");
    expect_code(&journal(state, &["nosuch"]), 4, "unknown service");
    // An empty state directory: nothing running, nothing to read.
    let empty = setup.root.join("empty");
    let out = journal(&empty, &[]);
    expect_code(&out, 3, "no journal");
    assert!(
        text(&out.stderr).contains("no journal"),
        "{}",
        text(&out.stderr)
    );
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn journal_follow_without_a_vigil_crosses_a_rotation_losing_and_repeating_nothing() {
    let setup = Setup::new("journal-follow-rotation");
    let state = &setup.state;
    std::fs::create_dir_all(state).expect("state dir");
    let current = state.join("journal.jsonl");
    append(&current, &line("2030-01-01T00:00:00.000Z", "web", "old"));
    let (child, rx) = crate::support::follow_journal(state, &["-f", "-n", "1"]);
    let _child = KillOnDrop(child);
    let next = || rx.recv_timeout(SOON).expect("a line from the follower");
    assert_eq!(next()["message"], "old");
    // The follower now holds journal.jsonl: write more to it, rotate it
    // away at once, and go on in the new file.
    append(&current, &line("2030-01-01T00:00:01.000Z", "web", "one"));
    rotate(state);
    append(&current, &line("2030-01-01T00:00:02.000Z", "web", "two"));
    // Two rotations in a row, one line between them.
    rotate(state);
    append(&current, &line("2030-01-01T00:00:03.000Z", "web", "three"));
    rotate(state);
    append(&current, &line("2030-01-01T00:00:04.000Z", "web", "four"));
    for want in ["one", "two", "three", "four"] {
        assert_eq!(next()["message"], want);
    }
    // Nothing repeated: the next line is the next one written.
    append(&current, &line("2030-01-01T00:00:05.000Z", "web", "five"));
    assert_eq!(next()["message"], "five");
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
}

#[test]
fn journal_filters_apply_with_a_running_vigil_too() {
    let setup = Setup::new("journal-live-filters");
    setup.service("sleeper", &command(&["sleep", "1000"]));
    let vigil = setup.run();
    vigil.wait_event(|e| is(e, "sleeper", "ready"), SOON);
    let out = journal(&setup.state, &["--json", "--kind", "spawned,ready"]);
    expect_code(&out, 0, "live --kind");
    let kinds: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["kind"].to_string())
        .collect();
    assert_eq!(kinds, ["\"spawned\"", "\"ready\""]);
    // Nothing from the future.
    let out = journal(&setup.state, &["--json", "--since", "2100-01-01"]);
    expect_code(&out, 0, "live --since");
    assert_eq!(text(&out.stdout), "");
    // -n counts the lines that pass the filters.
    let out = journal(&setup.state, &["--json", "-n", "1", "--kind", "spawned"]);
    assert!(
        text(&out.stdout).contains("\"spawned\""),
        "{}",
        text(&out.stdout)
    );
}
