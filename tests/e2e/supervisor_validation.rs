//! Supervisor, service directories: `vigil validate` and `vigil run`
//! refuse an invalid checks directory, listing every problem as
//! file:field.

use crate::support::*;

fn invalid_setup(name: &str) -> Setup {
    let setup = Setup::new(name);
    setup.service(
        "web",
        &format!(
            "{}stop-grace = \"3 parsecs\"\nrestart = \"allways\"\n",
            command(&["sleep", "1"])
        ),
    );
    setup.service(
        "api",
        r#"comand = ["sleep", "1"]
after = ["wbe"]
[checks.liveness]
check = "builtin:htp"
perod = "1s"
"#,
    );
    setup.service("ok", &command(&["sleep", "1"]));
    // A component without a manifest is a broken service; an empty
    // directory (lost+found) is not a service at all and is ignored.
    let bare = setup.checks.join("nomanifest");
    std::fs::create_dir_all(&bare).expect("service dir");
    std::fs::write(bare.join("check.wasm"), b"\0asm").expect("write check.wasm");
    std::fs::create_dir_all(setup.checks.join("lost+found")).expect("lost+found");
    setup
}

/// Every problem, each as `<dir>/<service>/service.toml:<field>`.
const PROBLEMS: &[&str] = &[
    "web/service.toml:stop-grace:",
    "web/service.toml:restart: unknown restart policy `allways`",
    "api/service.toml:comand: unknown key (fix: did you mean `command`?)",
    "api/service.toml:command: no command",
    "api/service.toml:after: unknown service \"wbe\"",
    "api/service.toml:checks.liveness.check: unknown builtin `builtin:htp`",
    "api/service.toml:checks.liveness.perod: unknown key",
    "nomanifest/service.toml:-: missing",
];

fn assert_lists_every_problem(stderr: &str) {
    for p in PROBLEMS {
        assert!(stderr.contains(p), "missing `{p}` in:\n{stderr}");
    }
    assert!(stderr.contains("8 problems"), "{stderr}");
    assert!(!stderr.contains("ok/service.toml"), "{stderr}");
    assert!(!stderr.contains("lost+found/"), "{stderr}");
}

#[test]
fn validate_lists_every_problem() {
    let setup = invalid_setup("invalid-validate");
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("run vigil validate");
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(out.status.code().is_some(), "{out:?}");
    assert_lists_every_problem(&String::from_utf8_lossy(&out.stderr));

    // Fixed, it passes and names the services.
    std::fs::remove_dir_all(setup.checks.join("nomanifest")).expect("rm");
    setup.service("web", &command(&["sleep", "1"]));
    setup.service(
        "api",
        &format!("{}after = [\"web\"]\n", command(&["sleep", "1"])),
    );
    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("run vigil validate");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 services ok: api, ok, web"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "lost+found: not a service directory (no service.toml, loader.wasm or .wasm); ignored"
        ),
        "{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_directory() {
    let setup = invalid_setup("invalid-run");
    let out = setup
        .run_command()
        .arg("--quiet")
        .output()
        .expect("run vigil run");
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(out.status.code().is_some(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert_lists_every_problem(&stderr);
    // Nothing ran, not even the valid service.
    let journal = read_journal(&setup.state.join("journal.jsonl"));
    assert!(
        journal.iter().all(|e| e["kind"] != "spawned"),
        "{journal:?}"
    );
}

/// One grammar for durations and sizes: in one manifest, `period =
/// "1m30s"` (read by vigil) and `max-age = "0"` in the check's config (read
/// by the check, through the SDK) are both accepted. Before the two parsers
/// were one, `vigil validate` refused the period and the check answered
/// `error` about `max-age`.
#[test]
fn manifest_and_check_config_share_one_grammar() {
    let setup = Setup::new("units");
    let dir = setup.service(
        "beat",
        &format!(
            r#"{}
[checks.startup]
check = "builtin:file"
period = "1m30s"
startup-timeout = "1h"
[checks.startup.config]
path = "heartbeat"
max-age = "0"
min-size = "0.5k"
[grants]
paths = ["."]
memory = "64M"
"#,
            command(&["sleep", "1000"])
        ),
    );
    std::fs::write(dir.join("heartbeat"), [b'x'; 1024]).expect("write heartbeat");

    let out = vigil_command()
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("run vigil validate");
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // The check parses its own config: a heartbeat older than 0 is stale
    // (`retry`), where a config it refuses would be an `error`.
    let vigil = setup.run();
    let check = vigil.wait_event(|e| is(e, "beat", "check") && e["phase"] == "startup", SOON);
    assert_eq!(check["outcome"], "retry", "{}", vigil.diagnostics());
    let reason = check["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("(max-age 0ms)"), "{}", vigil.diagnostics());
}

/// A program that is not installed (yet) is that one service's problem,
/// not the directory's: `vigil run` starts the others, the service's
/// start ends as a `spawn-error` under its restart policy, and the
/// manifest's warning is filed under it (`vigil journal app`).
#[test]
fn a_missing_program_fails_only_its_own_service() {
    let setup = Setup::new("missing-program");
    setup.service(
        "app",
        &format!(
            "{}restart = \"never\"\n",
            command(&["no-such-program-vigil-run"])
        ),
    );
    setup.service("ok", &command(&["sleep", "100"]));
    let vigil = setup.run();
    vigil.wait_event(|e| is(e, "ok", "ready"), SOON);
    let error = vigil.wait_event(|e| is(e, "app", "spawn-error"), SOON);
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-program-vigil-run")),
        "{error}"
    );
    let warning = vigil.wait_event(|e| is(e, "app", "warning"), SOON);
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m
                .contains("app/service.toml:command: `no-such-program-vigil-run` is not in PATH")),
        "{warning}"
    );
}
