//! README "vigil check": exit codes and output of the real binary.

use std::process::Command;

use crate::support::*;

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache"),
        )
        .output()
        .expect("run vigil")
}

fn code(output: &std::process::Output) -> i32 {
    output.status.code().expect("exited normally")
}

#[test]
fn check_exit_codes() {
    let server = HttpServer::start();
    let grant = server.grant();
    let ok_url = format!("url={}", server.url("/ok"));
    let down_url = format!("url={}", server.url("/status/503"));

    let ok = vigil(&[
        "check",
        "builtin:http",
        "--config",
        &ok_url,
        "--allow-host",
        &grant,
    ]);
    assert_eq!(code(&ok), 0, "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).starts_with("ok"),
        "{ok:?}"
    );

    let retry = vigil(&[
        "check",
        "builtin:http",
        "--config",
        &down_url,
        "--allow-host",
        &grant,
    ]);
    assert_eq!(code(&retry), 75, "{retry:?}");

    let error = vigil(&["check", "builtin:http", "--allow-host", &grant]);
    assert_eq!(code(&error), 1, "{error:?}");

    let missing = vigil(&["check", "/nonexistent/check.wasm"]);
    assert_eq!(code(&missing), 2, "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/check.wasm: no such file")
    );

    let unknown = vigil(&["check", "builtin:nope"]);
    assert_eq!(code(&unknown), 2);
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("builtin:http"),
        "lists the builtins"
    );

    let bad_flag = vigil(&["check", "builtin:http", "--timeout", "soon"]);
    assert_eq!(code(&bad_flag), 2);

    let bad_grant = vigil(&["check", "builtin:http", "--allow-host", "ftp://x"]);
    assert_eq!(code(&bad_grant), 2);
    assert!(String::from_utf8_lossy(&bad_grant.stderr).contains("unknown scheme"));
}

#[test]
fn program_outcomes_map_to_exit_codes() {
    for (program, expected) in [
        (programs::OK, 0),
        (programs::RETRY, 75),
        (programs::ERROR, 1),
    ] {
        let out = vigil(&["check", program]);
        assert_eq!(code(&out), expected, "{program}: {out:?}");
    }
    let wrong_world = vigil(&["check", programs::WRONG_WORLD_LOADER]);
    assert_eq!(code(&wrong_world), 2, "{wrong_world:?}");
    assert!(
        String::from_utf8_lossy(&wrong_world.stderr).contains("is a loader"),
        "{wrong_world:?}"
    );
}

/// `--exit-codes`: the same verdicts of real components, in each
/// prober's convention (README "vigil check").
#[test]
fn exit_code_conventions() {
    let cases = [
        (programs::OK, [0, 0, 0]),
        (programs::RETRY, [75, 1, 1]),
        (programs::ERROR, [1, 2, 1]),
        (programs::PANIC, [75, 3, 1]),
        ("/nonexistent/check.wasm", [2, 3, 1]),
    ];
    for (program, codes) in cases {
        for (convention, expected) in ["k8s", "nagios", "docker"].into_iter().zip(codes) {
            let out = vigil(&["check", program, "--exit-codes", convention]);
            assert_eq!(code(&out), expected, "{program} {convention}: {out:?}");
        }
    }
}

#[test]
fn check_json_and_trap_exit_code() {
    let out = vigil(&["check", programs::PANIC, "--json"]);
    assert_eq!(code(&out), 75, "a trap is inconclusive: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["outcome"], "trapped");
    assert!(
        json["output"]
            .as_str()
            .expect("output")
            .contains("boom from guest")
    );
    assert!(json["duration_ms"].as_f64().expect("duration") >= 0.0);
}

#[test]
fn check_passes_config_phase_and_pid() {
    let out = vigil(&[
        "check",
        programs::ECHO_CONFIG,
        "--config",
        "a=1",
        "--config",
        "b=x=y",
        "--phase",
        "startup",
        "--pid",
        "1",
    ]);
    assert_eq!(code(&out), 75, "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a=1") && text.contains("b=x=y"), "{text}");
    assert!(text.to_lowercase().contains("startup"), "{text}");
}

#[test]
fn inspect_shows_world_and_capabilities() {
    let out = vigil(&["inspect", "builtin:http", "--json"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["world"], "vigil:health/checker");
    let caps: Vec<&str> = json["capabilities"]
        .as_array()
        .expect("caps")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(caps.contains(&"http"), "{caps:?}");
    assert!(
        !caps.contains(&"fs"),
        "builtin:http must not import fs: {caps:?}"
    );

    let loader = vigil(&["inspect", programs::LOADER_POLICY]);
    assert_eq!(code(&loader), 0);
    assert!(String::from_utf8_lossy(&loader.stdout).contains("vigil:health/loader"));

    let dir = scratch("inspect");
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let core_out = vigil(&["inspect", core.to_str().expect("utf8")]);
    assert_eq!(code(&core_out), 2);
    assert!(String::from_utf8_lossy(&core_out.stderr).contains("core WebAssembly module"));
}

/// Vigil's own warnings on a pipe or a file carry no terminal colour codes
/// (a log file or `2>&1 | grep` must read as text); on a terminal they may.
/// A distrusted cache directory is a sure way to make `vigil check` warn.
#[test]
fn warnings_on_a_pipe_carry_no_colour_codes() {
    use std::os::unix::fs::PermissionsExt;
    let home = scratch("cli-warning-pipe");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["check", programs::OK])
        .env("XDG_CACHE_HOME", &home)
        .env_remove("VIGIL_LOG")
        .env_remove("NO_COLOR")
        .output()
        .expect("run vigil");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("WARN"), "a warning was logged: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape sequences: {stderr:?}"
    );
}

/// `vigil top` (what a new user tries first) is the live view; with no
/// vigil running it says so like every client command (exit 3), and
/// never suggests `stop`.
#[test]
fn top_without_a_vigil_says_none_runs() {
    let state = crate::support::scratch("top-none");
    let state = state.to_string_lossy().into_owned();
    let out = vigil(&["top", "--state-dir", &state]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{stderr}");
    assert!(stderr.contains("no vigil is running"), "{stderr}");
    assert!(!stderr.contains("'stop'"), "{stderr}");
}

/// `vigil inspect` reads top down as a reviewer asks: capabilities first,
/// then the WASI plumbing the sandbox answers with nothing, labelled so;
/// the types a world `use`s are not listed as imports; producers one line
/// per field, without commit hashes or trailing spaces.
#[test]
fn inspect_puts_capabilities_first_and_labels_the_plumbing() {
    let out = vigil(&["inspect", "builtin:http"]);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8_lossy(&out.stdout);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
    };
    assert!(at("capabilities  http") < at("wasi plumbing (denied or empty"));
    assert!(
        !text
            .lines()
            .any(|l| l.trim() == "target" || l.trim() == "outcome"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.ends_with(' ')), "{text}");
    let language = text
        .lines()
        .find(|l| l.trim_start().starts_with("language"))
        .expect("a language line");
    assert!(language.contains("Rust"), "{language}");
    assert!(!text.contains("https://github.com"), "{text}");
}

/// The one-shot path maps a builtin's compiled artifact through the
/// cache's memo of this binary, without hashing it again: after the first
/// run, the artifact's tag file is not even read (a tag made garbage goes
/// unnoticed), while the memo itself is under the cache's secret.
#[test]
fn a_builtin_is_loaded_without_hashing_its_artifact_again() {
    // The cache trusts a file's identity only once it is 2 s old (racy
    // timestamps, as git's): a vigil linked a moment ago (by the `cargo
    // test` that runs this) is hashed like a new file, and remembered later.
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(env!("CARGO_BIN_EXE_vigil")).expect("the vigil binary");
    let changed = exe.ctime().max(exe.mtime());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if let Ok(wait) = u64::try_from(changed + 3 - now) {
        std::thread::sleep(std::time::Duration::from_secs(wait.min(3)));
    }
    let home = scratch("cli-builtin-memo");
    let port = closed_port().to_string();
    let grant = format!("tcp://127.0.0.1:{port}");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["check", "builtin:tcp", "--config", &format!("port={port}")])
            .args(["--allow-host", &grant])
            .env("XDG_CACHE_HOME", &home)
            .env_remove("VIGIL_LOG")
            .output()
            .expect("run vigil")
    };
    let first = run();
    assert_eq!(code(&first), 75, "nothing listens: {first:?}");
    let components = home.join("vigil/components");
    let memos: Vec<_> = std::fs::read_dir(components.join("files"))
        .expect("a memo directory")
        .collect();
    assert_eq!(memos.len(), 1, "one memo, for builtin:tcp of this binary");
    let tags: Vec<_> = std::fs::read_dir(&components)
        .expect("the cache")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mac"))
        .collect();
    assert_eq!(tags.len(), 1, "{tags:?}");
    std::fs::write(&tags[0], "0".repeat(64)).expect("spoil the tag");

    let second = run();
    assert_eq!(code(&second), 75, "{second:?}");
    let stderr = text(&second.stderr);
    assert!(
        !stderr.contains("does not verify"),
        "the artifact was hashed and checked against its tag again: {stderr}"
    );
}
