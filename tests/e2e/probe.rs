//! README "Exec probes: vigil-probe": the lean probe binary says what
//! `vigil check` says (verdict, output, exit code in each convention) for
//! the same arguments, loading from the same cache, and hands over to
//! `vigil check` whatever it cannot do itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

/// A copy of `vigil-probe` alone in a directory, with no `vigil` beside it
/// or on `PATH`: it cannot hand anything over, so what it answers it
/// answered itself (a hand-over fails with exit 2, "cannot run").
fn lonely_probe(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let probe = bin.join("vigil-probe");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_vigil-probe"), &probe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_vigil-probe"), &probe).expect("copy vigil-probe");
    }
    probe
}

fn run(binary: &Path, first: Option<&str>, args: &[&str], cache: &Path) -> Output {
    let mut cmd = Command::new(binary);
    cmd.args(first).args(args).env("XDG_CACHE_HOME", cache);
    // Nothing to find on PATH: a hand-over goes only to the `vigil`
    // beside the binary.
    cmd.env("PATH", cache.join("no-such-dir"));
    cmd.output().expect("run")
}

/// Output with the run's own duration (`0.43 ms`, `"duration_ms":0.43`)
/// taken out: the one thing two runs of a check do not share.
fn without_durations(bytes: &[u8]) -> String {
    let text = text(bytes);
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.rfind(", ") {
            Some(at) if line.ends_with(" ms)") => format!("{}, _ ms)", &line[..at]),
            _ => line.to_owned(),
        };
        let line = match (line.find("\"duration_ms\":"), line.find(",\"output\"")) {
            (Some(from), Some(to)) if from < to => {
                format!("{}\"duration_ms\":_{}", &line[..from], &line[to..])
            }
            _ => line,
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn assert_same(what: &str, check: &Output, probe: &Output) {
    assert_eq!(
        probe.status.code(),
        check.status.code(),
        "{what}: exit code\nvigil check: {check:?}\nvigil-probe: {probe:?}"
    );
    assert_eq!(
        without_durations(&probe.stdout),
        without_durations(&check.stdout),
        "{what}: stdout"
    );
    assert_eq!(text(&probe.stderr), text(&check.stderr), "{what}: stderr");
}

/// ok, retry, error, a trap and a timeout, of real components and of the
/// builtins, in each exit-code convention and as JSON: `vigil-probe`
/// (unable to hand over) answers exactly as `vigil check`.
#[test]
fn the_probe_answers_as_vigil_check() {
    let dir = scratch("probe-agrees");
    let cache = dir.join("cache");
    let probe = lonely_probe(&dir);
    let vigil = Path::new(env!("CARGO_BIN_EXE_vigil"));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let open = listener.local_addr().expect("addr").port();
    let closed = closed_port();
    let tcp = |port: u16| -> Vec<String> {
        vec![
            "builtin:tcp".into(),
            "-c".into(),
            "host=127.0.0.1".into(),
            format!("--config=port={port}"),
            "--allow-host".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--timeout".into(),
            "10s".into(),
        ]
    };
    let mut cases: Vec<(&str, Vec<String>)> = vec![
        ("ok", vec![programs::OK.into()]),
        ("retry", vec![programs::RETRY.into()]),
        ("error", vec![programs::ERROR.into()]),
        ("trap", vec![programs::PANIC.into()]),
        (
            "timeout",
            vec![
                programs::INFINITE_LOOP.into(),
                "--timeout".into(),
                "300ms".into(),
            ],
        ),
        ("builtin ok", tcp(open)),
        ("builtin refused", tcp(closed)),
        (
            "config problems",
            vec!["builtin:tcp".into(), "-c".into(), "bogus=1".into()],
        ),
        (
            "bad grant",
            vec![
                "builtin:tcp".into(),
                "--allow-host".into(),
                "ftp://x".into(),
            ],
        ),
        ("missing file", vec!["/nonexistent/check.wasm".into()]),
        ("unknown builtin", vec!["builtin:nope".into()]),
    ];
    let mut more = Vec::new();
    for (what, args) in &cases {
        for convention in ["k8s", "nagios", "docker"] {
            let mut args = args.clone();
            args.extend(["--exit-codes".into(), convention.into(), "--json".into()]);
            more.push((*what, args));
        }
    }
    cases.extend(more);
    for (what, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // `vigil check` first: it compiles what the cache lacks.
        let check = run(vigil, Some("check"), &args, &cache);
        let probed = run(&probe, None, &args, &cache);
        assert_same(&format!("{what} {args:?}"), &check, &probed);
    }
    drop(listener);
}

/// A component the cache does not hold yet is handed over to `vigil
/// check` (the one beside the probe), which compiles it and answers; the
/// next probe loads it from the cache itself. Without a `vigil` to hand
/// over to, the probe says so and exits as for a check it cannot load.
#[test]
fn a_cache_miss_is_handed_over_to_vigil_check() {
    let dir = scratch("probe-miss");
    let cache = dir.join("cache");
    let lonely = lonely_probe(&dir);

    let nobody = run(&lonely, None, &[programs::RETRY], &cache);
    assert_eq!(nobody.status.code(), Some(2), "{nobody:?}");
    assert!(text(&nobody.stderr).contains("cannot run"), "{nobody:?}");
    let nagios = run(
        &lonely,
        None,
        &[programs::RETRY, "--exit-codes", "nagios"],
        &cache,
    );
    assert_eq!(nagios.status.code(), Some(3), "{nagios:?}");

    let probe = Path::new(env!("CARGO_BIN_EXE_vigil-probe"));
    let handed = run(probe, None, &[programs::RETRY, "--json"], &cache);
    assert_eq!(handed.status.code(), Some(75), "{handed:?}");
    let json: serde_json::Value = serde_json::from_slice(&handed.stdout).expect("json");
    assert_eq!(json["outcome"], "retry", "{handed:?}");

    // Now in the cache: the lonely probe answers alone.
    let alone = run(&lonely, None, &[programs::RETRY, "--json"], &cache);
    assert_eq!(alone.status.code(), Some(75), "{alone:?}");
    assert_eq!(
        without_durations(&alone.stdout),
        without_durations(&handed.stdout)
    );
}

/// Flags the probe does not parse itself go to `vigil check` as given:
/// its errors and its help come out unchanged.
#[test]
fn unknown_flags_are_handed_over_as_given() {
    let dir = scratch("probe-flags");
    let cache = dir.join("cache");
    let probe = Path::new(env!("CARGO_BIN_EXE_vigil-probe"));
    let vigil = Path::new(env!("CARGO_BIN_EXE_vigil"));
    for args in [
        &["builtin:tcp", "--bogus"][..],
        &["builtin:tcp", "--timeout", "soon"],
        &["--help"],
        &[],
    ] {
        let check = run(vigil, Some("check"), args, &cache);
        let probed = run(probe, None, args, &cache);
        assert_same(&format!("{args:?}"), &check, &probed);
    }
}

/// A one-shot process runs its check on one thread: the epoch that stops
/// a spinning guest is advanced by a signal timer, not by a second thread
/// (which cost an exec probe a tenth of its run). A guest spinning past
/// its deadline is still stopped there, by `vigil check` and the probe.
#[test]
fn a_spinning_check_is_stopped_without_a_second_thread() {
    let dir = scratch("probe-one-thread");
    let cache = dir.join("cache");
    let vigil = Path::new(env!("CARGO_BIN_EXE_vigil"));
    let probe = lonely_probe(&dir);
    let args = [programs::INFINITE_LOOP, "--timeout", "1500ms", "--json"];
    // Compiled first, so that both spend their run spinning.
    let _ = run(vigil, Some("check"), &args, &cache);
    for (binary, first) in [(vigil, Some("check")), (probe.as_path(), None)] {
        let mut child = Command::new(binary)
            .args(first)
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .env("PATH", cache.join("no-such-dir"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let tasks = format!("/proc/{}/task", child.id());
        let started = std::time::Instant::now();
        let mut most = 0;
        // Sampled while it spins; a hang (no epoch advancing) fails below.
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if let Ok(entries) = std::fs::read_dir(&tasks) {
                most = most.max(entries.count());
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{}: still spinning after 30 s", binary.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        std::io::Read::read_to_end(&mut child.stdout.take().expect("stdout"), &mut stdout)
            .expect("read stdout");
        assert_eq!(
            status.code(),
            Some(75),
            "{}: {}",
            binary.display(),
            text(&stdout)
        );
        let json: serde_json::Value = serde_json::from_slice(&stdout).expect("json");
        assert!(
            json["reason"]
                .as_str()
                .is_some_and(|r| r.contains("timed out")),
            "{}: {json}",
            binary.display()
        );
        assert_eq!(most, 1, "{}: threads while spinning", binary.display());
    }
}
