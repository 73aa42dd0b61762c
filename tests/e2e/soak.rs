//! Regressions found by the chaos soak (tests/soak, RELIABILITY.md): each
//! test replays one fault the soak injected, on the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A small tmpfs mounted on `dir` (lazily unmounted on drop), so that the
/// state directory can be filled up.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "vigil-e2e"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write zeros into `path` until the file system refuses (ENOSPC).
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // The last bytes that fit, a page at a time.
    while f.write_all(&[0u8; 512]).is_ok() {}
}

/// Every line of the journal file parsed; the lines that do not parse.
fn journal_lines(path: &Path) -> (Vec<Value>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => good.push(v),
            Err(_) => bad.push(line.to_string()),
        }
    }
    (good, bad)
}

/// With the state directory full, a write of a journal line takes what
/// fits and fails: the piece must not stay in the file (the next line
/// would continue it, and neither would parse), and the lines that could
/// not be written are written, in order, once there is room again, so
/// that every spawn still has its exit.
#[test]
fn journal_keeps_every_line_through_a_full_state_directory() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let setup = Setup::new("soak-full");
    let Some(_tmpfs) = Tmpfs::mount(&setup.state, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    // A crash loop: a spawned and an exited line every few milliseconds.
    setup.service(
        "crash",
        "command = [\"/bin/sh\", \"-c\", \"exit 3\"]\nrestart = \"always\"\nbackoff = [\"20ms\"]\n",
    );
    let mut vigil = setup.run();
    vigil.wait_spawned(0, "crash");
    let filler = setup.state.join("filler");
    fill(&filler);
    // The journal hits the end of the disk: vigil says so on stderr.
    vigil.wait_until("vigil reports the full state directory", || {
        vigil.diagnostics().contains("No space left on device")
    });
    let size_while_full = std::fs::metadata(vigil.journal_path())
        .map(|m| m.len())
        .unwrap_or(0);
    std::fs::remove_file(&filler).expect("free the state directory");
    vigil.wait_until("the journal grows again", || {
        std::fs::metadata(vigil.journal_path()).is_ok_and(|m| m.len() > size_while_full + 4096)
    });
    let status = vigil.terminate();
    assert!(status.success(), "vigil exit: {status:?}");

    let (lines, bad) = journal_lines(&vigil.journal_path());
    assert!(
        bad.is_empty(),
        "journal lines that do not parse:\n{}",
        bad.join("\n")
    );
    // Every spawn has its exit, and the times never go back.
    let mut open = std::collections::BTreeSet::new();
    let mut last_ts = String::new();
    for e in &lines {
        let ts = e["ts"].as_str().expect("ts").to_string();
        assert!(ts >= last_ts, "journal goes back in time at {e}");
        last_ts = ts;
        match e["kind"].as_str() {
            Some("spawned") => {
                open.insert(pid_of(e));
            }
            Some("exited") => {
                open.remove(&pid_of(e));
            }
            _ => {}
        }
    }
    assert!(
        open.is_empty(),
        "spawned without an exit in the journal: {open:?}\n{}",
        vigil.diagnostics()
    );
    assert!(
        lines.last().is_some_and(|e| e["kind"] == "quit"),
        "the journal ends with quit"
    );
}

/// Replace the checks directory the way a deploy does: move it away, move
/// a copy in (new inodes), remove the old one.
fn replace_with_copy(checks: &Path) {
    let gone = checks.with_extension("gone");
    let copy = checks.with_extension("new");
    std::fs::rename(checks, &gone).expect("move the checks directory away");
    let ok = Command::new("cp")
        .arg("-a")
        .arg(&gone)
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cp -a");
    std::fs::rename(&copy, checks).expect("move the copy in");
    std::fs::remove_dir_all(&gone).expect("remove the old directory");
}

/// Hot reload keeps working after the checks directory was replaced by
/// a copy: inotify watches follow inodes, so the old watch saw nothing of
/// the new directory, and a service added then was never started.
#[test]
fn hot_reload_sees_new_services_after_the_checks_directory_is_replaced() {
    let setup = Setup::new("soak-replace-dir");
    setup.service("a", &command(&["/bin/sleep", "1000"]));
    let vigil = setup.run();
    vigil.wait_spawned(0, "a");
    // The old directory's removal reaches a's old watch: once that rescan
    // is journaled, vigil has seen the replacement.
    let from = vigil.journal().len();
    replace_with_copy(&setup.checks);
    vigil.wait_kind(from, "a", "reloaded");
    // Added after the replacement: it must start, as a new directory does.
    setup.service("b", &command(&["/bin/sleep", "1000"]));
    vigil.wait_spawned(0, "b");
    // And again, for a second replacement.
    let from = vigil.journal().len();
    replace_with_copy(&setup.checks);
    vigil.wait_kind(from, "a", "reloaded");
    setup.service("c", &command(&["/bin/sleep", "1000"]));
    vigil.wait_spawned(0, "c");
    // A removed one stops.
    std::fs::remove_dir_all(setup.checks.join("b")).expect("remove b");
    vigil.wait_kind(0, "b", "exited");
}

/// Vigil's resident memory in KiB (VmRSS).
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Many `journal -f` clients at once on a long journal: each request used
/// to parse the whole journal (all rotations) into memory, so 50 clients
/// on a 23 MB journal took Vigil from 17 MB to 2.3 GB of RSS, kept after
/// they left. What a request holds is now bounded by the lines it asked
/// for.
#[test]
fn journal_followers_at_once_cost_memory_bounded_by_what_they_ask() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let setup = Setup::new("soak-followers");
    setup.service("a", &command(&["/bin/sleep", "1000"]));
    std::fs::create_dir_all(&setup.state).expect("state dir");
    // A long history: 100,000 lines (about 23 MB), as months of a busy
    // journal.
    let line = format!(
        "{{\"ts\":\"2026-12-07T05:00:00.000Z\",\"service\":\"a\",\"kind\":\"warning\",\"message\":\"{}\"}}\n",
        "x".repeat(150)
    );
    std::fs::write(setup.state.join("journal.jsonl"), line.repeat(100_000)).expect("journal");
    let vigil = setup.run();
    vigil.wait_spawned(0, "a");
    wait_socket(&vigil);
    let before = rss_kib(vigil.pid);
    let sock = socket(&setup.state);
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = UnixStream::connect(&sock) else {
                    return false;
                };
                let _ = s.write_all(
                    b"GET /v1/journal?lines=5&follow=true HTTP/1.1\r\nHost: vigil\r\n\r\n",
                );
                let _ = s.set_read_timeout(Some(SOON));
                // The answer's head and the last lines: the request was served.
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).contains("warning") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
        })
        .collect();
    let served = clients
        .into_iter()
        .map(|c| c.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(served, 50, "every follower got its lines");
    let after = rss_kib(vigil.pid);
    assert!(
        after < before + 300 * 1024,
        "50 followers took vigil's RSS from {before} KiB to {after} KiB"
    );
}
