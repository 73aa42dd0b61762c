//! README "vigil logs": a service's captured output, tagged by stream and
//! stamped, read with and without a running vigil, across the writer's own
//! rotation, and followed through one.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;

use crate::support::{SOON, Setup, command, expect_code, is, text, vigil_command, wait_until};

/// `vigil logs ARGS --state-dir STATE`, run to completion.
fn logs(state: &Path, args: &[&str]) -> Output {
    vigil_command()
        .arg("logs")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil logs")
}

/// `2026-12-06T22:34:42.123Z`.
fn is_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[23] == b'Z'
}

#[test]
fn logs_show_both_streams_stamped_with_or_without_a_running_vigil() {
    let setup = Setup::new("logs-streams");
    setup.service(
        "talker",
        &command(&[
            "sh",
            "-c",
            "echo out-1; echo err-1 >&2; printf 'esc \\033[2J\\n'; echo out-2; exec sleep 1000",
        ]),
    );
    let mut vigil = setup.run();
    vigil.wait_event(|e| is(e, "talker", "ready"), SOON);
    let log = setup.state.join("logs/talker.log");
    wait_until("the output is captured", SOON, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" out-2"))
    });
    // The file: TIME STREAM TEXT, the text raw.
    let file = std::fs::read_to_string(&log).expect("log file");
    for line in file.lines() {
        let mut words = line.splitn(3, ' ');
        assert!(words.next().is_some_and(is_timestamp), "{line:?}");
        assert!(
            matches!(words.next(), Some("stdout" | "stderr")),
            "{line:?}"
        );
    }
    assert!(file.contains(" stderr err-1\n"), "{file}");
    assert!(file.contains(" stdout esc \u{1b}[2J\n"), "{file:?}");

    for running in [true, false] {
        let out = logs(&setup.state, &["talker"]);
        expect_code(&out, 0, "vigil logs");
        let shown = text(&out.stdout);
        let texts: Vec<&str> = shown
            .lines()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap_or(""))
            .collect();
        // Both streams are captured by separate pipes: their relative
        // order is not the service's, only each stream's own.
        let outs: Vec<&str> = shown
            .lines()
            .filter(|l| l.contains(" stdout "))
            .map(|l| l.splitn(3, ' ').nth(2).unwrap_or(""))
            .collect();
        assert_eq!(outs, ["out-1", "esc \\x1b[2J", "out-2"], "{shown}");
        assert!(texts.contains(&"err-1"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "escaped: {shown:?}");
        let out = logs(&setup.state, &["talker", "--stderr"]);
        let shown = text(&out.stdout);
        assert_eq!(shown.lines().count(), 1, "{shown}");
        assert!(shown.ends_with(" stderr err-1\n"), "{shown}");
        let out = logs(&setup.state, &["talker", "-n", "1", "--since", "10m"]);
        assert_eq!(text(&out.stdout).lines().count(), 1);
        let out = logs(&setup.state, &["talker", "--since", "2100-01-01"]);
        assert_eq!(text(&out.stdout), "");
        if running {
            assert!(vigil.terminate().success());
        }
    }
    let out = logs(&setup.state, &["nosuch"]);
    expect_code(&out, 4, "unknown service");
    assert!(
        text(&out.stderr).contains("services with logs: talker"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn logs_without_timestamps_keep_the_stream() {
    let setup = Setup::new("logs-no-timestamps");
    setup.service(
        "plain",
        &command(&["sh", "-c", "echo hello; echo oops >&2; exec sleep 1000"]),
    );
    let vigil = crate::supervisor_helpers::Vigil::start_with(&setup, &["--no-timestamps"]);
    vigil.wait_event(|e| is(e, "plain", "ready"), SOON);
    let log = setup.state.join("logs/plain.log");
    wait_until("the output is captured", SOON, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 2)
    });
    let file = std::fs::read_to_string(&log).expect("log file");
    assert!(file.contains("stdout hello\n"), "{file}");
    assert!(file.contains("stderr oops\n"), "{file}");
    let out = logs(&setup.state, &["plain", "--stderr"]);
    assert_eq!(text(&out.stdout), "stderr oops\n");
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines written to the service's stdout: enough for one rotation of its
/// log (4 MiB; about 39 bytes a line once stamped and tagged).
const LINES: usize = 150_000;

#[test]
fn logs_follow_the_writers_own_rotation_losing_and_repeating_nothing() {
    let setup = Setup::new("logs-rotation");
    let go = setup.root.join("go");
    let script = format!(
        "echo waiting; while [ ! -e '{}' ]; do sleep 0.05; done; seq 1 {LINES}; echo finished >&2; exec sleep 1000",
        go.display()
    );
    setup.service("chatty", &command(&["sh", "-c", &script]));
    let vigil = setup.run();
    vigil.wait_event(|e| is(e, "chatty", "ready"), SOON);
    let log = setup.state.join("logs/chatty.log");
    wait_until("the first line is captured", SOON, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(" waiting"))
    });
    let mut child = vigil_command()
        .args(["logs", "chatty", "-f", "-n", "1", "--state-dir"])
        .arg(&setup.state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vigil logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let _child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let text_of = |l: &str| l.splitn(3, ' ').nth(2).unwrap_or("").to_string();
    let first = rx.recv_timeout(SOON).expect("the follower's first line");
    assert_eq!(text_of(&first), "waiting");
    // The follower holds the file now; the service writes past a rotation.
    std::fs::write(&go, "").expect("go");
    let mut numbers = Vec::with_capacity(LINES);
    loop {
        let line = rx.recv_timeout(SOON).unwrap_or_else(|_| {
            panic!(
                "the follower stopped after {} lines; last {:?}",
                numbers.len(),
                numbers.last()
            )
        });
        let t = text_of(&line);
        if t == "finished" {
            break;
        }
        numbers.push(t.parse::<usize>().unwrap_or_else(|_| panic!("{line:?}")));
    }
    assert!(setup.state.join("logs/chatty.1.log").exists(), "rotated");
    assert_eq!(numbers.len(), LINES, "nothing lost or repeated");
    assert!(numbers.iter().enumerate().all(|(i, n)| *n == i + 1));

    // Read at rest: the rotated file, then the current one.
    let out = logs(&setup.state, &["chatty", "-n", "1000000"]);
    let all: Vec<String> = text(&out.stdout).lines().map(text_of).collect();
    let start = all.iter().position(|t| t == "1").expect("line 1 kept");
    let seq: Vec<usize> = all[start..]
        .iter()
        .filter(|t| *t != "finished")
        .map(|t| t.parse().expect("a number"))
        .collect();
    assert_eq!(seq.len(), LINES);
    assert!(seq.iter().enumerate().all(|(i, n)| *n == i + 1));
}
