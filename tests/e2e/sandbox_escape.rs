//! README "Checks are sandboxed": nothing a check or a service controls
//! drives the operator's terminal. Reasons, logs and output of checks,
//! service output and `STATUS=` text, names inside a component and
//! directory names reach every human rendering (`vigil check`, `inspect`,
//! the foreground `run`, `status`, `journal`, `run --daemon`, `daemonize`,
//! `validate`) with their control characters escaped, while `--json` and
//! the journal keep the exact strings.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::*;

/// What tests/programs/src/bin/terminal_escape.rs says: OSC 0 title + BEL,
/// cursor up + erase line, CR, backspaces, an 8-bit CSI, bidi override and
/// isolates, DEL.
const HOSTILE: &str =
    "\x1b]0;pwned\x07\x1b[1A\x1b[2K\rok\x08\x08\u{9b}2K\u{202e}kcehc\u{2066}x\u{2069}\x7f";

/// Its reason: [`HOSTILE`], then a second line with a fake `ok`.
fn reason() -> String {
    format!("{HOSTILE}\nok")
}

/// The reason as `vigil run` keeps it: the check's own, then the end of
/// what the check printed (its output is kept with a failing result).
fn run_reason() -> String {
    format!("{}; check output: {HOSTILE}\nok\x1b[1A", reason())
}

/// How the start of [`HOSTILE`] must look once escaped.
const SHOWN_TITLE: &str = "\\x1b]0;pwned\\x07";
const SHOWN_C1: &str = "\\u{9b}2K";
const SHOWN_BIDI: &str = "\\u{202e}kcehc\\u{2066}x\\u{2069}\\x7f";

/// Characters no human rendering may carry from a check or a service
/// (the rule of host/src/untrusted.rs, written out again here).
fn forbidden(ch: char) -> bool {
    let c = u32::from(ch);
    (c < 0x20 && ch != '\t' && ch != '\n')
        || (0x7f..=0x9f).contains(&c)
        || (0x202a..=0x202e).contains(&c)
        || (0x2066..=0x2069).contains(&c)
        || [0x061c, 0x200e, 0x200f, 0x2028, 0x2029].contains(&c)
}

/// What is wrong with `text` as a human rendering: a raw control
/// character, or one of the `visible` escapes missing. `text` is quoted
/// debug-escaped, so that the test's own output stays harmless.
fn leaks(what: &str, text: &str, visible: &[&str]) -> Option<String> {
    let raw: Vec<char> = text.chars().filter(|&c| forbidden(c)).collect();
    let missing: Vec<&str> = visible
        .iter()
        .copied()
        .filter(|v| !text.contains(v))
        .collect();
    (!raw.is_empty() || !missing.is_empty()).then(|| {
        format!(
            "{what} shows raw control characters {raw:?} and lacks the visible escapes {missing:?}:\n{}",
            text.escape_debug()
        )
    })
}

/// Panics with [`leaks`]'s finding, if any.
fn assert_shown(what: &str, text: &str, visible: &[&str]) {
    if let Some(problem) = leaks(what, text, visible) {
        panic!("{problem}");
    }
}

fn vigil(args: &[&str]) -> Output {
    vigil_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil")
}

// -- vigil check ----------------------------------------------------------------

#[test]
fn check_shows_reason_logs_and_output_escaped_and_json_exact() {
    let human = vigil(&["check", programs::TERMINAL_ESCAPE]);
    expect_code(&human, 1, "vigil check");
    let stdout = text(&human.stdout);
    assert_shown(
        "vigil check",
        &stdout,
        &[SHOWN_TITLE, SHOWN_C1, SHOWN_BIDI, "\\nok", "ok\\x1b[1A"],
    );
    assert_shown("vigil check's stderr", &text(&human.stderr), &[]);
    // The verdict, one log line, two output lines; no line of its own
    // for the reason's fake `ok`.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", stdout.escape_debug());
    assert!(lines[0].starts_with("error: "), "{}", stdout.escape_debug());
    assert!(
        !lines.iter().any(|l| l.starts_with("ok")),
        "{}",
        stdout.escape_debug()
    );

    let json = vigil(&["check", programs::TERMINAL_ESCAPE, "--json"]);
    expect_code(&json, 1, "vigil check --json");
    let report: Value = serde_json::from_slice(&json.stdout).expect("one JSON report");
    assert_eq!(report["reason"], reason().as_str());
    assert_eq!(
        report["logs"],
        serde_json::json!([format!("info: {HOSTILE}")])
    );
    assert_eq!(report["output"], format!("{HOSTILE}\nok\x1b[1A\n").as_str());
}

// -- vigil inspect --------------------------------------------------------------

fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn name(s: &str, out: &mut Vec<u8>) {
    leb(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len(), out);
    out.extend_from_slice(body);
}

/// A component (not validated, as `vigil inspect` reads it) importing and
/// exporting a resource type named `extern_name`, with a producers section
/// `processed-by = HOSTILE HOSTILE`.
fn component(extern_name: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\x00\x01\x00".to_vec();
    let mut imports = vec![1, 0x00];
    name(extern_name, &mut imports);
    imports.extend_from_slice(&[0x03, 0x01]); // type, a fresh resource
    section(10, &imports, &mut bytes);
    let mut exports = vec![1, 0x00];
    name(extern_name, &mut exports);
    exports.extend_from_slice(&[0x03, 0x00, 0x00]); // type 0, no ascription
    section(11, &exports, &mut bytes);
    let mut producers = Vec::new();
    name("producers", &mut producers);
    producers.push(1);
    name("processed-by", &mut producers);
    producers.push(1);
    name(HOSTILE, &mut producers);
    name(HOSTILE, &mut producers);
    section(0, &producers, &mut bytes);
    bytes
}

#[test]
fn inspect_shows_names_and_producers_escaped_and_json_exact() {
    let dir = crate::support::scratch("escape-inspect");
    let evil_name = "evil\x1b]0;pwned\x07\u{202e}";
    let file = dir.join("names.wasm");
    std::fs::write(&file, component(evil_name)).expect("write component");
    let path = file.to_str().expect("utf-8");

    let human = vigil(&["inspect", path]);
    expect_code(&human, 0, "vigil inspect");
    assert_shown(
        "vigil inspect",
        &text(&human.stdout),
        &["evil\\x1b]0;pwned\\x07\\u{202e}", SHOWN_TITLE, SHOWN_BIDI],
    );

    let json = vigil(&["inspect", path, "--json"]);
    expect_code(&json, 0, "vigil inspect --json");
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(report["imports"], serde_json::json!([evil_name]));
    assert_eq!(report["exports"], serde_json::json!([evil_name]));
    assert_eq!(report["producers"][0]["name"], HOSTILE);
    assert_eq!(report["producers"][0]["version"], HOSTILE);
    let _ = std::fs::remove_dir_all(&dir);
}

// -- the foreground vigil run, status, journal ----------------------------------

/// `vigil run` in the foreground (not `--quiet`), stdout and stderr in
/// files; stopped, children and all, on drop.
struct Foreground {
    child: Child,
    state: PathBuf,
}

impl Foreground {
    fn start(setup: &Setup) -> Foreground {
        let child = setup
            .run_command()
            .stdout(File::create(setup.root.join("stdout")).expect("stdout file"))
            .stderr(File::create(setup.root.join("stderr")).expect("stderr file"))
            .spawn()
            .expect("start vigil run");
        Foreground {
            child,
            state: setup.state.clone(),
        }
    }

    fn journal(&self) -> Vec<Value> {
        read_journal(&self.state.join("journal.jsonl"))
    }

    /// SIGTERM and wait until it exited.
    fn stop(&mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        wait_until("vigil run exits after SIGTERM", SOON, || {
            self.child.try_wait().expect("wait vigil").is_some()
        });
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_journaled_children(&self.journal());
    }
}

/// A client command against `state`, run to completion.
fn client(state: &Path, args: &[&str]) -> Output {
    vigil_command()
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null())
        .output()
        .expect("run the vigil client")
}

/// Prints [`HOSTILE`] (given as its argument), says `READY=1` and
/// `STATUS=` + [`HOSTILE`] on the notify socket, then sleeps.
const SERVICE: &str = "import os, socket, sys, time\n\
hostile = os.fsencode(sys.argv[1])\n\
sys.stdout.buffer.write(hostile + b'\\n')\n\
sys.stdout.buffer.flush()\n\
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
s.sendto(b'READY=1\\nSTATUS=' + hostile, os.environ['NOTIFY_SOCKET'])\n\
s.close()\n\
time.sleep(1000)\n";

/// `command = [...]`, with DEL escaped (TOML refuses it raw; the JSON
/// escaping of [`command`] leaves it).
fn toml_command(argv: &[&str]) -> String {
    command(argv).replace('\x7f', "\\u007f")
}

#[test]
fn run_status_and_journal_show_service_and_check_text_escaped() {
    let setup = Setup::new("escape-run");
    let dir = setup.service(
        "hostile",
        &format!(
            "{}notify = true\n\n[checks.readiness]\ncheck = \"check.wasm\"\nperiod = \"200ms\"\n",
            toml_command(&["python3", "-c", SERVICE, HOSTILE])
        ),
    );
    std::fs::copy(programs::TERMINAL_ESCAPE, dir.join("check.wasm")).expect("copy the check");
    let mut vigil = Foreground::start(&setup);
    let is_check = |e: &Value| e["service"] == "hostile" && e["kind"] == "check";
    wait_until("the hostile readiness check is journaled", SOON, || {
        vigil.journal().iter().any(is_check)
    });
    let journal = vigil.journal();
    let check = journal.iter().find(|e| is_check(e)).expect("check event");
    // The journal keeps the exact reason.
    assert_eq!(check["reason"], run_reason().as_str(), "{check}");
    // Every human rendering is looked at; all that leak are reported.
    let mut found = Vec::new();

    // `vigil status --json`: exact; `vigil status`: escaped.
    let mut report = Value::Null;
    wait_until("STATUS= reaches vigil status", SOON, || {
        let out = client(&setup.state, &["status", "hostile", "--json"]);
        report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        report["status_text"] == HOSTILE && report["last_reason"].is_string()
    });
    assert_eq!(report["last_reason"], run_reason().as_str(), "{report}");
    for args in [&["status"][..], &["status", "hostile"]] {
        let out = client(&setup.state, args);
        // 6: its readiness check does not pass.
        if out.status.code() != Some(6) {
            expect_code(&out, 0, "vigil status");
        }
        // The table shortens the state text and the reason.
        found.extend(leaks(
            "vigil status",
            &text(&out.stdout),
            &[SHOWN_TITLE, SHOWN_C1],
        ));
    }

    // `vigil journal --json`: exact; `vigil journal`: escaped.
    let out = client(&setup.state, &["journal", "hostile", "--json"]);
    expect_code(&out, 0, "vigil journal --json");
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| is_check(l) && l["reason"] == run_reason().as_str()),
        "{lines:?}"
    );
    let out = client(&setup.state, &["journal", "hostile"]);
    expect_code(&out, 0, "vigil journal");
    let plain = text(&out.stdout);
    found.extend(leaks(
        "vigil journal",
        &plain,
        &[SHOWN_TITLE, SHOWN_C1, SHOWN_BIDI, "\\nok"],
    ));

    // The foreground echo: `hostile | line` and `hostile * event`.
    let stdout = setup.root.join("stdout");
    wait_until("the service's output line is echoed", SOON, || {
        std::fs::read_to_string(&stdout).is_ok_and(|t| t.contains("hostile | "))
    });
    vigil.stop();
    let echoed = text(&std::fs::read(&stdout).expect("vigil's stdout"));
    found.extend(leaks(
        "vigil run's output echo",
        &echoed,
        &[&format!("hostile | {SHOWN_TITLE}"), SHOWN_C1, SHOWN_BIDI],
    ));
    let events = text(&std::fs::read(setup.root.join("stderr")).expect("vigil's stderr"));
    found.extend(leaks(
        "vigil run's event echo",
        &events,
        &[
            "hostile * check",
            SHOWN_TITLE,
            SHOWN_C1,
            SHOWN_BIDI,
            "\\nok",
        ],
    ));
    assert!(found.is_empty(), "{}", found.join("\n\n"));

    // The service's log file is its raw output (after the time and stream).
    let log = std::fs::read(setup.state.join("logs/hostile.log")).expect("the service's log");
    assert!(
        text(&log)
            .lines()
            .any(|l| l.ends_with(&format!(" stdout {HOSTILE}"))),
        "{}",
        text(&log).escape_debug()
    );
}

// -- vigil run --daemon, vigil daemonize ----------------------------------------

/// A unique word to find a test's processes by their command line.
fn marker(name: &str) -> String {
    format!("vigil-e2e-{name}-{}", std::process::id())
}

fn gone(marker: &str) -> bool {
    !all_processes()
        .iter()
        .any(|s| s.state != 'Z' && cmdline(s.pid).contains(marker))
}

#[test]
fn run_daemon_failure_shows_the_reason_and_journal_lines_escaped() {
    let setup = Setup::new("escape-daemon");
    let mark = marker("escape-daemon");
    let dir = setup.service(
        "hostile",
        &format!(
            "{}restart = \"never\"\n[checks.startup]\ncheck = \"check.wasm\"\n",
            command(&["sh", "-c", &format!("sleep 1000; : {mark}")])
        ),
    );
    std::fs::copy(programs::TERMINAL_ESCAPE, dir.join("check.wasm")).expect("copy the check");
    let out = vigil_command()
        .current_dir(&setup.root)
        .args(["run", "--checks", "checks", "--state-dir", "state"])
        .args(["--daemon", "--ready-timeout", "60s"])
        .stdin(Stdio::null())
        .output()
        .expect("run vigil run --daemon");
    let state = setup.state.to_string_lossy().into_owned();
    wait_until("nothing of the daemon is left", SOON, || {
        gone(&mark) && gone(&state)
    });
    expect_code(&out, 1, "vigil run --daemon");
    let stderr = text(&out.stderr);
    assert_shown(
        "vigil run --daemon's failure",
        &stderr,
        &[
            &format!("service hostile failed to start: {SHOWN_TITLE}"),
            "\nservice hostile:\n",
            SHOWN_C1,
            SHOWN_BIDI,
        ],
    );
}

#[test]
fn daemonize_failure_shows_the_reason_escaped() {
    let mark = marker("escape-daemonize");
    let root = crate::support::scratch("escape-daemonize");
    let out = vigil_command()
        .current_dir(&root)
        .args(["daemonize", "--check", programs::TERMINAL_ESCAPE])
        .args(["--timeout", "60s", "--"])
        .args(["sh", "-c", &format!("sleep 1000; : {mark}")])
        .stdin(Stdio::null())
        .output()
        .expect("run vigil daemonize");
    wait_until("nothing of the program is left", SOON, || gone(&mark));
    expect_code(&out, 1, "vigil daemonize");
    assert_shown(
        "vigil daemonize's failure",
        &text(&out.stderr),
        &[SHOWN_TITLE, SHOWN_C1, SHOWN_BIDI, "\\nok"],
    );
    let _ = std::fs::remove_dir_all(&root);
}

// -- directory names ------------------------------------------------------------

#[test]
fn a_directory_name_is_shown_escaped_when_refused() {
    let setup = Setup::new("escape-dirname");
    setup.service(&format!("evil{HOSTILE}"), &command(&["sleep", "1000"]));
    let shown = format!("evil{SHOWN_TITLE}");
    let out = vigil(&["validate", setup.checks.to_str().expect("utf-8")]);
    expect_code(&out, 1, "vigil validate");
    assert_shown("vigil validate", &text(&out.stderr), &[&shown, SHOWN_BIDI]);

    let out = setup
        .run_command()
        .arg("--quiet")
        .output()
        .expect("run vigil run");
    expect_code(&out, 2, "vigil run on an invalid directory");
    assert_shown(
        "vigil run's refusal",
        &text(&out.stderr),
        &[&shown, SHOWN_BIDI],
    );
}
