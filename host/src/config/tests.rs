//! Manifests on disk in, services or problems out.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::model::default_backoff;
use super::problems::fields_of;
use super::raw::{RawCheck, RawChecks};
use super::resolve::parse_signal;
use super::*;
use crate::test_support::TempDir;
use crate::units::{parse_duration, parse_size};
use crate::wasm::CheckSource;
use crate::wasm::grants::Scheme;

fn service(root: &Path, name: &str, manifest: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join(MANIFEST), manifest).expect("write manifest");
    d
}

fn problems(root: &Path) -> Vec<String> {
    match load_dir(root) {
        Ok(loaded) => loaded.warnings.iter().map(|p| p.to_string()).collect(),
        Err(r) => r.problems.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn scalars() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("3").is_err());
    assert!(parse_duration("3 parsecs").is_err());
    assert!(parse_duration("s").is_err());
    assert_eq!(parse_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
    assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
    assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
    assert!(parse_signal("SIGNOPE").is_err());
}

#[test]
fn minimal_manifest_gets_defaults() {
    let t = TempDir::new("cfg-min");
    service(&t.0, "web", "command = [\"sleep\", \"100\"]\n");
    let services = load_dir(&t.0).expect("valid").services;
    let s = &services[0];
    assert_eq!(s.name, "web");
    assert_eq!(
        s.command.as_deref(),
        Some(&["sleep".to_string(), "100".to_string()][..])
    );
    assert_eq!(s.stop_signal, Signal::SIGTERM);
    assert_eq!(s.stop_grace, Duration::from_secs(3));
    assert_eq!(s.restart, RestartPolicy::default());
    assert_eq!(s.restart.backoff, default_backoff());
    assert_eq!(s.grants.memory, 64 << 20);
    assert_eq!(s.cwd, s.dir);
    assert!(s.loader.is_none());
}

#[test]
fn full_manifest_resolves() {
    let t = TempDir::new("cfg-full");
    let d = service(
        &t.0,
        "api",
        r#"
shell = "exec sleep 100"
env = { MODE = "prod" }
inherit-env = ["PATH"]
cwd = "."
stop-signal = "SIGINT"
stop-grace = "500ms"
restart = "on-failure"
backoff = ["0s", "1s"]
stable-uptime = "2m"
give-up = { restarts = 5, window = "30s" }
success-codes = [0, 143]
after = ["db"]

[grants]
hosts = ["127.0.0.1:8080"]
paths = ["heartbeat"]
memory = "32MiB"

[checks.startup]
check = "builtin:tcp"
period = "200ms"
startup-timeout = "10s"
failure-threshold = 30
[checks.startup.config]
port = "8080"

[checks.liveness]
check = "live.wasm"
failure-threshold = 2
"#,
    );
    std::fs::write(d.join("live.wasm"), b"\0asm").expect("write wasm");
    service(&t.0, "db", "command = [\"sleep\", \"100\"]\n");
    let services = load_dir(&t.0).expect("valid").services;
    let api = services.iter().find(|s| s.name == "api").expect("api");
    assert_eq!(api.command.as_ref().map(|c| c[0].as_str()), Some("/bin/sh"));
    assert_eq!(api.env, vec![("MODE".into(), "prod".into())]);
    assert_eq!(api.stop_signal, Signal::SIGINT);
    assert_eq!(api.stop_grace, Duration::from_millis(500));
    assert_eq!(api.restart.mode, RestartMode::OnFailure);
    assert_eq!(
        api.restart.give_up,
        Some(GiveUp {
            restarts: 5,
            window: Duration::from_secs(30)
        })
    );
    assert_eq!(api.restart.success_codes, vec![0, 143]);
    assert_eq!(api.grants.paths(), [api.dir.join("heartbeat")]);
    assert_eq!(api.grants.memory, 32 << 20);
    // Resolved once, at load: the typed grants the sandbox enforces.
    let granted = api.grants.resolved();
    assert!(granted.allows_destination(Scheme::Tcp, "127.0.0.1", 8080));
    assert!(!granted.allows_destination(Scheme::Tcp, "127.0.0.1", 8081));
    let startup = api.checks.startup.as_ref().expect("startup");
    assert_eq!(startup.check, CheckSource::Builtin("tcp".into()));
    assert_eq!(startup.period, Duration::from_millis(200));
    assert_eq!(startup.startup_timeout, Duration::from_secs(10));
    assert_eq!(startup.startup_failures, Some(30));
    assert_eq!(startup.config, vec![("port".into(), "8080".into())]);
    let live = api.checks.liveness.as_ref().expect("liveness");
    assert_eq!(live.check, CheckSource::File(api.dir.join("live.wasm")));
    assert_eq!(live.failure_threshold, 2);
    assert_eq!(live.startup_failures, None, "startup only");
    assert_eq!(api.after, vec!["db".to_string()]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let t = TempDir::new("cfg-all");
    service(
        &t.0,
        "a",
        r#"
comand = ["sleep", "1"]
stop-grace = "3 parsecs"
restart = "allways"
backoff = ["1s", "soon"]
after = ["bb"]
[checks.liveness]
check = "../escape.wasm"
perod = "1s"
startup-timeout = "5s"
[grants]
memory = "lots"
"#,
    );
    service(&t.0, "b", "command = 42\nnotify = \"yes\"\n");
    service(
        &t.0,
        "c",
        "command = [\"no-such-program-xyz\"]\nstop-signal = \"SIGNOPE\"\n[checks.readiness]\ncheck = \"builtin:htp\"\n[grants]\nhosts = [\"ftp://x:99999\"]\n",
    );
    // A directory with a component but no manifest is a broken service;
    // one with nothing of Vigil's in it (lost+found) is not a service.
    std::fs::create_dir_all(t.0.join("empty")).expect("mkdir");
    std::fs::write(t.0.join("empty/check.wasm"), b"\0asm").expect("write");
    std::fs::create_dir_all(t.0.join("lost+found")).expect("mkdir");
    std::fs::write(t.0.join("README.md"), "notes").expect("write");
    let p = problems(&t.0);
    let has = |needle: &str| p.iter().any(|l| l.contains(needle));
    assert!(
        has("a/service.toml:comand: unknown key (fix: did you mean `command`?)"),
        "{p:#?}"
    );
    assert!(
        has(
            "a/service.toml:checks.liveness.perod: unknown key (fix: did you mean `checks.liveness.period`?)"
        ),
        "{p:#?}"
    );
    assert!(has("b/service.toml:command:"), "{p:#?}");
    assert!(has("b/service.toml:notify:"), "{p:#?}");
    assert!(
        has("c/service.toml:command: `no-such-program-xyz` is not in PATH"),
        "{p:#?}"
    );
    assert!(has("c/service.toml:stop-signal:"), "{p:#?}");
    assert!(has("c/service.toml:grants.hosts: host grant"), "{p:#?}");
    assert!(
        has(
            "c/service.toml:checks.readiness.check: unknown builtin `builtin:htp` (fix: did you mean \"builtin:http\"?)"
        ),
        "{p:#?}"
    );
    assert!(has("empty/service.toml:-: missing"), "{p:#?}");
    assert!(!has("lost+found") && !has("README"), "{p:#?}");
    // Problems of `a` beyond the unknown keys are reported too.
    assert!(has("a/service.toml:stop-grace:"), "{p:#?}");
    assert!(
        has(
            "a/service.toml:restart: unknown restart policy `allways` (fix: did you mean \"always\"?)"
        ),
        "{p:#?}"
    );
    assert!(has("a/service.toml:backoff[1]:"), "{p:#?}");
    assert!(
        has("a/service.toml:checks.liveness.check: `../escape.wasm` is outside"),
        "{p:#?}"
    );
    assert!(
        has("a/service.toml:checks.liveness.startup-timeout: only the startup check"),
        "{p:#?}"
    );
    assert!(has("a/service.toml:grants.memory:"), "{p:#?}");
    assert!(has("a/service.toml:command: no command"), "{p:#?}");
    // `bb` is a known directory? no: unknown, with a suggestion of `b`.
    assert!(
        has("a/service.toml:after: unknown service \"bb\" (fix: did you mean \"b\"?)"),
        "{p:#?}"
    );
}

#[test]
fn syntax_error_names_the_line() {
    let t = TempDir::new("cfg-syntax");
    service(&t.0, "x", "command = [\"sleep\"\n\nstop-grace = \n");
    let p = problems(&t.0);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("x/service.toml:-: line "), "{p:#?}");
}

#[test]
fn cycles_and_unknown_dependencies() {
    let t = TempDir::new("cfg-cycle");
    service(&t.0, "a", "command = [\"true\"]\nafter = [\"b\"]\n");
    service(&t.0, "b", "command = [\"true\"]\nafter = [\"c\"]\n");
    service(&t.0, "c", "command = [\"true\"]\nafter = [\"a\"]\n");
    service(
        &t.0,
        "d",
        "command = [\"true\"]\nafter = [\"zzz\", \"d\"]\n",
    );
    let p = problems(&t.0);
    let cycles: Vec<&String> = p
        .iter()
        .filter(|l| l.contains("dependency cycle"))
        .collect();
    assert_eq!(cycles.len(), 1, "{p:#?}");
    assert!(cycles[0].contains("a -> b -> c -> a"), "{p:#?}");
    assert!(
        p.iter()
            .any(|l| l.contains("d/service.toml:after: unknown service \"zzz\"")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|l| l.contains("d/service.toml:after: a service cannot wait for itself")),
        "{p:#?}"
    );
}

#[test]
fn loader_only_directory_is_a_service() {
    let t = TempDir::new("cfg-loader");
    let d = t.0.join("dyn");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join(LOADER), b"\0asm").expect("write");
    let services = load_dir(&t.0).expect("valid").services;
    assert_eq!(services[0].command, None);
    assert_eq!(
        services[0].loader.as_ref().map(|l| l.path.clone()),
        Some(services[0].dir.join(LOADER))
    );

    // [loader] without loader.wasm is a problem; with it, config is kept.
    service(
        &t.0,
        "other",
        "command = [\"true\"]\n[loader.config]\nmode = \"x\"\n",
    );
    let p = problems(&t.0);
    assert!(
        p.iter().any(|l| l
            .contains("other/service.toml:loader: `[loader]` is set but there is no loader.wasm")),
        "{p:#?}"
    );
    std::fs::write(
        t.0.join("other").join(MANIFEST),
        "[loader.config]\nmode = \"x\"\n",
    )
    .expect("write");
    std::fs::write(t.0.join("other").join(LOADER), b"\0asm").expect("write");
    let services = load_dir(&t.0).expect("valid").services;
    let other = services.iter().find(|s| s.name == "other").expect("other");
    assert_eq!(
        other.loader.as_ref().map(|l| l.config.clone()),
        Some(vec![("mode".into(), "x".into())])
    );
}

#[test]
fn relative_command_checks_executable_bit() {
    let t = TempDir::new("cfg-exec");
    let d = service(&t.0, "s", "command = [\"./run.sh\"]\n");
    std::fs::write(d.join("run.sh"), "#!/bin/sh\n").expect("write");
    assert!(
        problems(&t.0)
            .iter()
            .any(|l| l.contains("is not an executable file"))
    );
    std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    assert!(problems(&t.0).is_empty());
}

#[test]
fn fields_probe_sees_the_derive() {
    assert!(fields_of::<RawService>().contains(&"stop-grace"));
    assert!(fields_of::<RawCheck>().contains(&"initial-delay"));
    assert_eq!(
        fields_of::<RawChecks>(),
        &["startup", "readiness", "liveness"]
    );
}

#[test]
fn notify_fields_need_notify_and_valid_durations() {
    let t = TempDir::new("cfg-notify");
    service(
        &t.0,
        "n",
        "command = [\"sleep\", \"1\"]\nnotify = true\nwatchdog-sec = \"5s\"\n",
    );
    let services = load_dir(&t.0).expect("valid").services;
    assert_eq!(
        services[0].notify,
        Some(NotifySpec {
            watchdog: Some(Duration::from_secs(5)),
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        })
    );

    let t = TempDir::new("cfg-notify-bad");
    service(
        &t.0,
        "a",
        "command = [\"sleep\", \"1\"]\nwatchdog-sec = \"5s\"\nnotify-timeout = \"9s\"\n",
    );
    service(
        &t.0,
        "b",
        "command = [\"sleep\", \"1\"]\nnotify = true\nwatchdog-sec = \"soon\"\n",
    );
    let p = problems(&t.0);
    let has = |needle: &str| p.iter().any(|l| l.contains(needle));
    assert!(has("a/service.toml:watchdog-sec: only used by"), "{p:#?}");
    assert!(has("a/service.toml:notify-timeout: only used by"), "{p:#?}");
    assert!(has("add `notify = true`"), "{p:#?}");
    assert!(has("b/service.toml:watchdog-sec:"), "{p:#?}");
}
