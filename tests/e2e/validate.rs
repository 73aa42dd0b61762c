//! README "vigil validate": what will certainly fail is found before
//! anything runs, by the real binary reading real components. Each finding
//! is reported as `<dir>/<service>/service.toml:<field>: problem (fix: ...)`.

use std::path::Path;
use std::process::Output;

use crate::helpers::*;
use crate::supervisor_helpers::{Setup, command, vigil_command};

fn validate(path: &Path) -> Output {
    vigil_command()
        .arg("validate")
        .arg(path)
        .output()
        .expect("run vigil validate")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `out` failed and its stderr has every line of `wanted`.
fn assert_problems(out: &Output, wanted: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for w in wanted {
        assert!(err.contains(w), "missing `{w}` in:\n{err}");
    }
    let n = wanted.len();
    assert!(
        err.contains(&format!("{n} problem{}:", if n == 1 { "" } else { "s" })),
        "expected exactly {n} problems in:\n{err}"
    );
}

/// A bundled check's schema: a misspelt key (with the key it meant), a
/// duration without a unit (the shared units grammar), a port out of range
/// and a missing required key, each at its file:field.
#[test]
fn bundled_check_config_is_checked_against_its_schema() {
    let setup = Setup::new("validate-schema");
    setup.service(
        "web",
        &format!(
            r#"{}
[checks.readiness]
check = "builtin:http"
[checks.readiness.config]
urll = "http://127.0.0.1:8080/"
timeout = "5"
[checks.liveness]
check = "builtin:redis"
[checks.liveness.config]
port = "0"
replica-link = "maybe"
[checks.startup]
check = "builtin:process"
[checks.startup.config]
max-rss = "lots"
[grants]
hosts = ["tcp://127.0.0.1:*"]
"#,
            command(&["sleep", "1"])
        ),
    );
    assert_problems(
        &validate(&setup.checks),
        &[
            "web/service.toml:checks.readiness.config.urll: unknown key (fix: did you mean `checks.readiness.config.url`?)",
            "web/service.toml:checks.readiness.config.url: missing: builtin:http requires it",
            "web/service.toml:checks.readiness.config.timeout: `5` has no unit",
            "web/service.toml:checks.liveness.config.port: \"0\" is not a port number 1-65535",
            "web/service.toml:checks.liveness.config.replica-link: \"maybe\" is not true or false",
            "web/service.toml:checks.startup.config.max-rss:",
        ],
    );

    // Fixed, it passes.
    setup.service(
        "web",
        &format!(
            r#"{}
[checks.readiness]
check = "builtin:http"
[checks.readiness.config]
url = "http://127.0.0.1:8080/"
timeout = "5s"
[checks.liveness]
check = "builtin:redis"
[checks.liveness.config]
port = "6380"
[grants]
hosts = ["tcp://127.0.0.1:*", "http://127.0.0.1:8080"]
"#,
            command(&["sleep", "1"])
        ),
    );
    let out = validate(&setup.checks);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("1 service ok: web"), "{out:?}");
}

/// A destination or path the config names that the grants do not reach is
/// an error naming the exact entry to add; defaults count (redis on 6379).
/// With those entries added, it passes.
#[test]
fn destinations_not_granted_name_the_grant_to_add() {
    let setup = Setup::new("validate-grants");
    let body = |grants: &str| {
        format!(
            r#"{}
[checks.readiness]
check = "builtin:http"
[checks.readiness.config]
url = "http://127.0.0.1:8080/healthz"
[checks.liveness]
check = "builtin:redis"
[checks.startup]
check = "builtin:file"
[checks.startup.config]
path = "heartbeat"
{grants}"#,
            command(&["sleep", "1"])
        )
    };
    // `*` reaches public addresses only: not loopback.
    setup.service("web", &body("[grants]\nhosts = [\"*\"]\n"));
    assert_problems(
        &validate(&setup.checks),
        &[
            "web/service.toml:checks.readiness.config.url: builtin:http would be denied: http://127.0.0.1:8080 is not in [grants] hosts (fix: add \"http://127.0.0.1:8080\" to [grants] hosts)",
            "web/service.toml:checks.liveness.check: builtin:redis would be denied: tcp://127.0.0.1:6379 is not in [grants] hosts (fix: add \"tcp://127.0.0.1:6379\" to [grants] hosts)",
            "web/service.toml:checks.startup.config.path: builtin:file would be denied: \"heartbeat\" is not in [grants] paths (fix: add \"heartbeat\" (or a directory above it) to [grants] paths)",
        ],
    );
    setup.service(
        "web",
        &body(
            "[grants]\nhosts = [\"http://127.0.0.1:8080\", \"tcp://127.0.0.1:6379\"]\npaths = [\"heartbeat\"]\n",
        ),
    );
    let out = validate(&setup.checks);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// A `.wasm` that is not a component, is a core module, targets the other
/// world, or is truncated fails validation (it used to say "ok", and the
/// service then failed forever); so does a loader.wasm that is a check.
#[test]
fn components_that_do_not_load_are_errors() {
    let setup = Setup::new("validate-wasm");
    let manifest = |file: &str| {
        format!(
            "{}[checks.liveness]\ncheck = \"{file}\"\n",
            command(&["sleep", "1"])
        )
    };
    let text = setup.service("text", &manifest("check.wasm"));
    std::fs::write(text.join("check.wasm"), "#!/bin/sh\n").expect("write");
    let core = setup.service("core", &manifest("check.wasm"));
    // The smallest valid core module: magic and version 1.
    std::fs::write(core.join("check.wasm"), b"\0asm\x01\0\0\0").expect("write");
    let world = setup.service("world", &manifest("check.wasm"));
    std::fs::copy(programs::WRONG_WORLD_LOADER, world.join("check.wasm")).expect("copy");
    let torn = setup.service("torn", &manifest("check.wasm"));
    let whole = std::fs::read(programs::OK).expect("read ok.wasm");
    std::fs::write(torn.join("check.wasm"), &whole[..whole.len() / 2]).expect("write");
    let loader = setup.service("loader", "");
    std::fs::remove_file(loader.join("service.toml")).expect("rm");
    std::fs::copy(programs::OK, loader.join("loader.wasm")).expect("copy");
    let good = setup.service("good", &manifest("check.wasm"));
    std::fs::copy(programs::OK, good.join("check.wasm")).expect("copy");

    let out = validate(&setup.checks);
    assert_problems(
        &out,
        &[
            "text/service.toml:checks.liveness.check: does not load as a check:",
            "core/service.toml:checks.liveness.check: does not load as a check:",
            "world/service.toml:checks.liveness.check: does not load as a check:",
            "torn/service.toml:checks.liveness.check: does not load as a check:",
            "loader/loader.wasm:-: does not load as a loader:",
        ],
    );
    let err = stderr(&out);
    for (service, why) in [
        ("text", "not a WebAssembly file"),
        ("core", "core WebAssembly module, not a component"),
        ("world", "loader"),
        ("torn", "invalid or truncated component"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("{service}/service.toml")))
            .unwrap_or_default();
        assert!(line.contains(why), "{service}: `{why}` not in {line:?}");
    }
    assert!(!err.contains("good/"), "{err}");
}

/// Any component that carries a schema (`#[derive(Config)]` in the SDK)
/// is checked like a builtin; `vigil inspect` prints that schema; and the
/// check itself parses the same settings at run time.
#[test]
fn a_components_own_schema_is_read_checked_and_printed() {
    let inspect = vigil_command()
        .args(["inspect", programs::CONFIG_SCHEMA])
        .output()
        .expect("run vigil inspect");
    assert_eq!(inspect.status.code(), Some(0), "{inspect:?}");
    let shown = stdout(&inspect);
    for line in [
        "config\n",
        "  address            host      default \"127.0.0.1\" Where the service listens.",
        "  listen-port        port      default \"7000\"",
        "  patience           duration  default \"1s\"       How long to wait for it.",
        "  retries            integer   optional           Attempts before giving up.",
        "  label              string    required           The service's name for itself.",
    ] {
        assert!(shown.contains(line), "missing {line:?} in:\n{shown}");
    }
    let json = vigil_command()
        .args(["inspect", "--json", programs::CONFIG_SCHEMA])
        .output()
        .expect("run vigil inspect --json");
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(report["config_schema"]["version"], 1, "{report}");
    assert_eq!(report["config_schema"]["keys"][3]["max"], 255, "{report}");

    let setup = Setup::new("validate-own-schema");
    let dir = setup.service(
        "own",
        &format!(
            r#"{}
[checks.liveness]
check = "probe.wasm"
[checks.liveness.config]
adress = "127.0.0.1"
retries = "300"
patience = "soon"
[grants]
hosts = ["tcp://127.0.0.1:7000"]
"#,
            command(&["sleep", "1"])
        ),
    );
    std::fs::copy(programs::CONFIG_SCHEMA, dir.join("probe.wasm")).expect("copy");
    assert_problems(
        &validate(&setup.checks),
        &[
            "own/service.toml:checks.liveness.config.adress: unknown key (fix: did you mean `checks.liveness.config.address`?)",
            "own/service.toml:checks.liveness.config.retries: 300 is out of range 0-255",
            "own/service.toml:checks.liveness.config.patience:",
            "own/service.toml:checks.liveness.config.label: missing: probe.wasm requires it",
        ],
    );

    // The destination comes from the kinds: `address` + `listen-port`.
    setup.service(
        "own",
        &format!(
            r#"{}
[checks.liveness]
check = "probe.wasm"
[checks.liveness.config]
label = "x"
listen-port = "7001"
"#,
            command(&["sleep", "1"])
        ),
    );
    assert_problems(
        &validate(&setup.checks),
        &[
            "own/service.toml:checks.liveness.config.listen-port: probe.wasm would be denied: tcp://127.0.0.1:7001 is not in [grants] hosts (fix: add \"tcp://127.0.0.1:7001\" to [grants] hosts)",
        ],
    );

    // At run time the component parses the same declaration.
    let run = vigil_command()
        .args([
            "check",
            programs::CONFIG_SCHEMA,
            "--config",
            "label=db",
            "--config",
            "retries=3",
        ])
        .output()
        .expect("run vigil check");
    assert!(
        stdout(&run).contains("address=127.0.0.1,port=7000,patience=1s,retries=Some(3),label=db"),
        "{run:?}"
    );
    let typo = vigil_command()
        .args(["check", programs::CONFIG_SCHEMA, "--config", "lable=db"])
        .output()
        .expect("run vigil check");
    assert_eq!(typo.status.code(), Some(1), "{typo:?}");
    assert!(
        stdout(&typo).contains(
            "unknown config key `lable` (known keys: address, listen-port, patience, retries, label)"
        ),
        "{typo:?}"
    );
}

/// A program that is not installed is a warning, not a refusal: the
/// manifest is right, the machine is not ready yet.
#[test]
fn a_missing_program_is_a_warning() {
    let setup = Setup::new("validate-missing-program");
    setup.service("app", &command(&["no-such-program-vigil-test", "--serve"]));
    setup.service("tool", &command(&["./bin/tool"]));
    let out = validate(&setup.checks);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("2 warnings:"), "{err}");
    assert!(
        err.contains("app/service.toml:command: `no-such-program-vigil-test` is not in PATH"),
        "{err}"
    );
    assert!(
        err.contains("tool/service.toml:command:")
            && err.contains("bin/tool` is not an executable file"),
        "{err}"
    );
    assert!(!err.contains("problem"), "{err}");
    assert!(stdout(&out).contains("2 services ok: app, tool"), "{out:?}");
}

/// `vigil validate DIR/SERVICE` validates that service alone (its `after`
/// still checked against its siblings).
#[test]
fn one_service_directory_is_validated_alone() {
    let setup = Setup::new("validate-one");
    setup.service("broken", "comand = [\"sleep\", \"1\"]\n");
    let web = setup.service(
        "web",
        &format!("{}after = [\"db\"]\n", command(&["sleep", "1"])),
    );
    let out = validate(&web);
    assert_problems(&out, &["web/service.toml:after: unknown service \"db\""]);
    assert!(!stderr(&out).contains("broken"), "{out:?}");

    setup.service("db", &command(&["sleep", "1"]));
    let out = validate(&web);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("1 service ok: web"), "{out:?}");
    // Its manifest names it too.
    let out = validate(&web.join("service.toml"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("1 service ok: web"), "{out:?}");
    // A directory with a component but no manifest is that service,
    // broken, not a checks directory of nothing.
    let bare = setup.checks.join("bare");
    std::fs::create_dir_all(&bare).expect("mkdir");
    std::fs::copy(programs::OK, bare.join("check.wasm")).expect("copy");
    assert_problems(&validate(&bare), &["bare/service.toml:-: missing"]);
    // The whole directory still reports the broken sibling.
    assert_problems(
        &validate(&setup.checks),
        &[
            "broken/service.toml:comand: unknown key",
            "broken/service.toml:command: no command",
            "bare/service.toml:-: missing",
        ],
    );
}

/// What is not a service directory (lost+found, dotfiles, a README) is
/// ignored with a note, not an error.
#[test]
fn entries_that_are_not_services_are_noted() {
    let setup = Setup::new("validate-entries");
    setup.service("web", &command(&["sleep", "1"]));
    std::fs::create_dir_all(setup.checks.join("lost+found")).expect("mkdir");
    std::fs::create_dir_all(setup.checks.join(".git")).expect("mkdir");
    std::fs::write(setup.checks.join("README.md"), "# services\n").expect("write");
    std::fs::write(setup.checks.join(".web.swp"), "x").expect("write");
    let out = validate(&setup.checks);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = stderr(&out);
    for entry in [
        "lost+found: not a service directory",
        ".git: hidden",
        "README.md: not a directory",
        ".web.swp: hidden",
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("note: ") && l.contains(entry) && l.ends_with("; ignored")),
            "missing {entry:?} in:\n{err}"
        );
    }
    assert!(stdout(&out).contains("1 service ok: web"), "{out:?}");
}

/// A component built by a toolchain that cannot emit the section (Python,
/// JavaScript) gets one from scripts/add-config-schema.py, as
/// docs/writing-checks.md says; validate and inspect then read it as they
/// read the SDK's.
#[test]
fn a_schema_added_after_the_build_is_read() {
    let setup = Setup::new("validate-added-schema");
    let dir = setup.service(
        "py",
        &format!(
            r#"{}
[checks.readiness]
check = "check.wasm"
[checks.readiness.config]
urll = "http://127.0.0.1:9/"
"#,
            command(&["sleep", "1"])
        ),
    );
    let wasm = dir.join("check.wasm");
    std::fs::copy(programs::OK, &wasm).expect("copy");
    let schema = setup.root.join("schema.json");
    std::fs::write(
        &schema,
        r#"{"version": 1, "keys": [{"name": "url", "kind": "url", "required": true, "doc": "What to GET."}]}"#,
    )
    .expect("write schema");
    let added = std::process::Command::new("python3")
        .arg(workspace().join("scripts/add-config-schema.py"))
        .arg(&wasm)
        .arg(&schema)
        .output()
        .expect("run add-config-schema.py");
    assert!(added.status.success(), "{added:?}");

    let inspect = vigil_command()
        .arg("inspect")
        .arg(&wasm)
        .output()
        .expect("run vigil inspect");
    assert!(
        stdout(&inspect).contains("  url                url       required           What to GET."),
        "{inspect:?}"
    );
    assert_problems(
        &validate(&setup.checks),
        &[
            "py/service.toml:checks.readiness.config.urll: unknown key (fix: did you mean `checks.readiness.config.url`?)",
            "py/service.toml:checks.readiness.config.url: missing: check.wasm requires it",
        ],
    );
    // The component still loads and runs: only a custom section was added.
    let run = vigil_command()
        .arg("check")
        .arg(&wasm)
        .output()
        .expect("run vigil check");
    assert_eq!(run.status.code(), Some(0), "{run:?}");
}

/// A loader's `[loader.config]` is checked against the schema the loader
/// declares, and the loader parses the same declaration when it spawns.
#[test]
fn loader_config_is_checked_against_the_loaders_schema() {
    use crate::supervisor_helpers::{SOON, cmdline, pid_of, wait_until};
    let setup = Setup::new("validate-loader-schema");
    let dir = setup.service("job", "[loader.config]\nprogramm = \"sleep\"\n");
    std::fs::copy(programs::LOADER_SETTINGS, dir.join("loader.wasm")).expect("copy loader");
    assert_problems(
        &validate(&setup.checks),
        &[
            "job/service.toml:loader.config.programm: unknown key (fix: did you mean `loader.config.program`?)",
            "job/service.toml:loader.config.program: missing: loader.wasm requires it",
        ],
    );

    setup.service(
        "job",
        "[loader.config]\nprogram = \"sleep\"\nargs = \"1000 7\"\n",
    );
    let out = validate(&setup.checks);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("1 service ok: job"), "{out:?}");
    let vigil = setup.run();
    let (_, spawned) = vigil.wait_kind(0, "job", "spawned");
    let pid = pid_of(&spawned);
    // Polled: the journal line may come before the child's exec.
    wait_until("the loader's command runs", SOON, || {
        cmdline(pid) == "sleep 1000 7"
    });
}
