//! Fuzz targets (see `crate::fuzz`) for what an operator writes:
//! `service.toml` (raw and resolved), env files, durations and sizes,
//! socket addresses and umasks. Each gives a value or a problem that names
//! its field and a fix, never a panic.

use std::time::Duration;

use super::envfile;
use super::identity::parse_umask;
use super::problems::Collector;
use super::raw::parse_raw;
use super::resolve;
use super::sockets::Listen;
use crate::fuzz::{self, assert_clear, text};
use crate::test_support::TempDir;
use crate::units::{format_duration, parse_duration, parse_size};

/// Keys, tables and values of the manifest grammar, for the mutator to
/// put together.
const MANIFEST_DICT: &[&str] = &[
    "command = [\"sleep\", \"1000\"]\n",
    "command = []\n",
    "shell = \"echo hi\"\n",
    "env = { A = \"1\" }\n",
    "inherit-env = [\"PATH\"]\n",
    "cwd = \"/tmp\"\n",
    "stop-signal = \"SIGTERM\"\n",
    "stop-signal = \"SIGKILL\"\n",
    "stop-grace = \"3s\"\n",
    "restart = \"on-failure\"\n",
    "restart = \"always\"\n",
    "backoff = [\"0\", \"5s\", \"1m\"]\n",
    "stable-uptime = \"60s\"\n",
    "[give-up]\nrestarts = 5\nwindow = \"1m\"\n",
    "success-codes = [0, 1, 255]\n",
    "after = [\"db\"]\n",
    "requires = [\"db\"]\n",
    "notify = true\n",
    "watchdog-sec = \"10s\"\n",
    "notify-timeout = \"30s\"\n",
    "[grants]\nhosts = [\"http://localhost:8080\", \"tcp://10.0.0.0/8:*\"]\npaths = [\"/tmp\"]\n",
    "memory = \"64MiB\"\n",
    "output = true\n",
    "[checks.startup]\n",
    "[checks.readiness]\n",
    "[checks.liveness]\n",
    "check = \"builtin:http\"\n",
    "check = \"builtin:tcp\"\n",
    "check = \"missing.wasm\"\n",
    "period = \"1s\"\n",
    "timeout = \"500ms\"\n",
    "initial-delay = \"2s\"\n",
    "failure-threshold = 3\n",
    "success-threshold = 0\n",
    "startup-timeout = \"1m\"\n",
    "[checks.liveness.config]\nurl = \"http://localhost:8080/health\"\n",
    "[loader]\n",
    "[loader.config]\nk = \"v\"\n",
    "user = \"root\"\n",
    "user = \"nobody\"\n",
    "group = \"0\"\n",
    "umask = \"0022\"\n",
    "env-file = [\".env\", \"-missing.env\"]\n",
    "[credentials]\ntoken = \"/etc/hostname\"\n",
    "[log]\ntimestamps = true\nformat = \"json\"\nmax-size = \"10MiB\"\nkeep = 3\n",
    "[hooks.pre-start]\ncommand = [\"true\"]\ntimeout = \"5s\"\n",
    "[hooks.post-stop]\ncheck = \"builtin:http\"\n",
    "memory-max = \"1G\"\n",
    "cpu-max = \"50%\"\n",
    "pids-max = 100\n",
    "[limits]\nnofile = 1024\ncore = \"0\"\n",
    "[sockets.web]\nlisten = \"127.0.0.1:0\"\nbacklog = 128\n",
    "[sockets.u]\nlisten = \"unix:web.sock\"\nmode = \"0600\"\n",
    "listen = \"udp:[::1]:53\"\n",
    "start = \"on-demand\"\n",
    "replace-timeout = \"30s\"\n",
    "= ",
    "[",
    "]",
    "[[",
    "{",
    "}",
    "\"\"\"",
    "'''",
    ".",
    ",",
    "#",
    "true",
    "1979-05-27T07:32:00Z",
    "inf",
    "0x10",
    "1_000",
];

/// `service.toml` through both steps, in a real service directory (an
/// env file and a program exist there, for the mutator's references to
/// find).
#[test]
fn fuzz_manifest() {
    let scratch = TempDir::new("fuzz-manifest");
    let dir = scratch.0.join("svc");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(".env"), "A=1\nB='two'\n").expect("env file");
    let manifest = dir.join(super::MANIFEST);
    fuzz::run("manifest", MANIFEST_DICT, 16 << 10, |input| {
        let text = text(input);
        let mut c = Collector::new(&manifest);
        if let Some(raw) = parse_raw(&text, &mut c) {
            let _ = resolve::resolve("svc", &dir, raw, false, None, &mut c);
        }
        for p in c.problems.iter().chain(&c.warnings) {
            assert!(!p.field.is_empty(), "a problem without a field: {p}");
            assert_clear(&p.problem, input.len());
            assert!(!p.fix.trim().is_empty(), "a problem without a fix: {p}");
        }
    });
}

/// Env files: assignments with valid names, or an error naming a line of
/// the file.
#[test]
fn fuzz_envfile() {
    let dict = &[
        "A=1\n", "export ", "=", "'", "\"", "\\", "\\n", "$", "#", "\n", " # c", "KEY_9",
    ];
    fuzz::run("envfile", dict, 8 << 10, |input| {
        let text = text(input);
        match envfile::parse(&text) {
            Ok(vars) => {
                for (name, value) in &vars {
                    assert!(envfile::valid_name(name), "name {name:?}");
                    assert!(!value.contains('\0'), "NUL in the value of {name}");
                }
            }
            Err(e) => {
                let lines = text.matches('\n').count() + 1;
                assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
                assert_clear(&e.to_string(), input.len());
            }
        }
    });
}

/// Durations and sizes: a value within bounds that formats back to
/// itself, or an error that says why.
#[test]
fn fuzz_units() {
    let dict = &[
        "ms", "s", "m", "h", "d", "us", "ns", ".", "1.5", "KiB", "MiB", "GiB", "TiB", "k", "M",
        "G", "T", "KB", "MB", "B", "+", "-", "e9", "366d", "8785h", "0",
    ];
    fuzz::run("units", dict, 256, |input| {
        let text = text(input);
        match parse_duration(&text) {
            Ok(d) => {
                assert!(d <= crate::units::MAX_DURATION, "{text:?} gave {d:?}");
                let shown = format_duration(d);
                let again = parse_duration(&shown)
                    .unwrap_or_else(|e| panic!("{d:?} formats as {shown:?}, which fails: {e}"));
                // A message's form rounds down: to a millisecond, a tenth
                // of a second, or (with hours) a minute.
                assert!(
                    again <= d && d - again < Duration::from_secs(60),
                    "{d:?} -> {shown:?} -> {again:?}"
                );
            }
            Err(e) => assert_clear(&e.to_string(), input.len()),
        }
        match parse_size(&text) {
            Ok(_) => {}
            Err(e) => assert_clear(&e.to_string(), input.len()),
        }
        if let Err(e) = parse_umask(&text) {
            assert_clear(&e, input.len());
        }
    });
}

/// `listen`: an address, a unix path within the kernel's limit, or an
/// error.
#[test]
fn fuzz_listen() {
    let dict = &[
        "unix:",
        "udp:",
        "tcp:",
        "127.0.0.1",
        "[::1]",
        ":",
        "8080",
        "0",
        "/",
        "@abstract",
        "[fe80::1%eth0]",
        "65536",
        "*",
    ];
    let dir = std::path::Path::new("/srv/svc");
    fuzz::run("listen", dict, 512, |input| {
        let text = text(input);
        match Listen::parse(&text, dir) {
            Ok(Listen::Unix(path)) => assert!(path.is_absolute()),
            Ok(_) => {}
            Err(e) => assert_clear(&e, input.len()),
        }
    });
}

/// An env file that is not a regular file, or is huge, is refused with a
/// reason when the manifest loads: once `/dev/zero` was read until memory
/// ran out, and a FIFO blocked the loader (and, at a start, a worker
/// thread) until someone wrote to it.
#[test]
fn env_files_are_regular_and_bounded() {
    let scratch = TempDir::new("envfile-bounded");
    let dir = scratch.0.join("svc");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let big = "A=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
        .repeat((envfile::MAX_FILE as usize) / 64);
    std::fs::write(dir.join("big.env"), big).expect("write");
    nix::unistd::mkfifo(&dir.join("fifo.env"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let manifest = dir.join(super::MANIFEST);
    for (entry, want) in [
        ("big.env", "larger than 1.0MiB"),
        ("fifo.env", "not a regular file"),
        ("/dev/zero", "not a regular file"),
    ] {
        let text = format!("command = [\"true\"]\nenv-file = [\"{entry}\"]\n");
        // On a thread of its own: without the bound, the FIFO never
        // returns; the test then fails on its deadline instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        let (dir, manifest) = (dir.clone(), manifest.clone());
        std::thread::spawn(move || {
            let mut c = Collector::new(&manifest);
            let raw = parse_raw(&text, &mut c).expect("a valid manifest");
            let _ = resolve::resolve("svc", &dir, raw, false, None, &mut c);
            let problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
            let _ = tx.send(problems);
        });
        let problems = rx
            .recv_timeout(crate::test_support::SOON)
            .unwrap_or_else(|_| panic!("reading env-file {entry} did not return"));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("env-file[0]") && p.contains(want)),
            "{entry}: {problems:?}"
        );
    }
}
