//! README "Big checks": `vigil compile` fills the component cache ahead
//! of time, `vigil run` compiles before it spawns anything, and compiling
//! never counts towards a check's deadline. The big component is the
//! Python example (18 MB, 12 s or more of Cranelift on these machines),
//! built by `make examples`; each test compiles it into a cache of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::helpers::*;
use crate::supervisor_helpers::{Setup, Vigil, is};

/// The Python example, the biggest component the repository builds.
fn python_check() -> PathBuf {
    let path = crate::languages::examples_dir().join("json_health.wasm");
    assert!(
        path.is_file(),
        "{} is missing: build the example checks with `make examples`",
        path.display()
    );
    path
}

/// `vigil ARGS` with its own component cache under `cache_home`.
fn vigil(cache_home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .env("XDG_CACHE_HOME", cache_home)
        .env_remove("VIGIL_LOG")
        .stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `vigil check` of the Python example against a healthy endpoint, with
/// a 1 s deadline for the check itself: `(exit code, JSON report)`.
fn check_python(cache_home: &Path, server: &HttpServer) -> (Option<i32>, Output) {
    let output = vigil(cache_home)
        .arg("check")
        .arg(python_check())
        .args(["--timeout", "1s", "--json", "--allow-host"])
        .arg(server.grant())
        .arg("--config")
        .arg(format!("url={}", server.url("/ok")))
        .output()
        .expect("run vigil check");
    (output.status.code(), output)
}

/// A compiled component's first check is on time: after `vigil compile`,
/// `vigil check` (as a Kubernetes exec probe with a 5 s deadline would
/// run it) answers well within a deadline that compiling alone exceeds.
/// Run twice, `vigil compile` says the component is cached.
#[test]
fn compile_then_the_first_check_is_on_time() {
    let cache = scratch("compile-first-check");
    let check = python_check();
    let compiled = vigil(&cache)
        .arg("compile")
        .arg(&check)
        .arg("builtin:tcp")
        .output()
        .expect("run vigil compile");
    let stdout = text(&compiled.stdout);
    assert_eq!(compiled.status.code(), Some(0), "{compiled:?}");
    let name = check.display().to_string();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("compiled") && l.contains(&name))
        .unwrap_or_else(|| panic!("a line for {name}: {stdout}"));
    assert!(line.contains(" MB ") && line.ends_with(" s"), "{line}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("compiled") && l.contains("builtin:tcp")),
        "{stdout}"
    );

    let server = HttpServer::start();
    let probe_deadline = Duration::from_secs(5);
    let started = Instant::now();
    let (code, output) = check_python(&cache, &server);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{output:?}");
    assert!(
        took < probe_deadline,
        "the first check after `vigil compile` took {took:?}: it compiled again"
    );

    let again = vigil(&cache)
        .arg("compile")
        .arg(&check)
        .output()
        .expect("run vigil compile");
    let stdout = text(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("cached") && l.contains(&name)),
        "{stdout}"
    );
}

/// A directory: every check its manifests name and every loose `.wasm`
/// file; anything that does not compile fails the command, named with the
/// reason, and the rest is still compiled.
#[test]
fn compile_a_directory_names_what_fails() {
    let root = scratch("compile-dir");
    let cache = root.join("cache");
    let checks = root.join("checks");
    let service = checks.join("web");
    std::fs::create_dir_all(&service).expect("service dir");
    std::fs::copy(programs::OK, service.join("alive.wasm")).expect("copy a check");
    std::fs::write(
        service.join("service.toml"),
        "command = [\"sleep\", \"60\"]\n[checks.liveness]\ncheck = \"alive.wasm\"\n\
         [checks.readiness]\ncheck = \"builtin:process\"\n",
    )
    .expect("manifest");
    std::fs::copy(programs::RETRY, checks.join("loose.wasm")).expect("copy a loose one");
    std::fs::write(checks.join("broken.wasm"), "not a component").expect("write");

    let output = vigil(&cache)
        .arg("compile")
        .arg(&checks)
        .output()
        .expect("run vigil compile");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let broken = checks.join("broken.wasm").display().to_string();
    assert!(
        stderr.contains(&format!("vigil compile: {broken}: not a WebAssembly file")),
        "{stderr}"
    );
    for name in [
        service.join("alive.wasm").display().to_string(),
        checks.join("loose.wasm").display().to_string(),
        "builtin:process".to_owned(),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("compiled") && l.contains(&name)),
            "{name} compiled: {stdout}"
        );
    }
    // Each component once, though the manifest and the walk both find it.
    assert_eq!(stdout.matches("alive.wasm").count(), 1, "{stdout}");
}

/// A `vigil compile` killed with SIGKILL midway (as soon as it starts
/// writing the artifact, or while compiling if that is missed) leaves
/// nothing a later load trusts or keeps: the next `vigil check` loads or
/// compiles again and answers, the compile not counted towards its 1 s
/// deadline, and no temporary file of the dead process remains.
#[test]
fn a_compile_killed_midway_leaves_nothing_half_written() {
    let cache = scratch("compile-killed");
    let components = cache.join("vigil").join("components");
    let mut child = vigil(&cache)
        .arg("compile")
        .arg(python_check())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vigil compile");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let temporaries = |dir: &Path| -> Vec<String> {
        let mut found = Vec::new();
        for dir in [dir.to_path_buf(), dir.join("files")] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains(".tmp.") {
                    found.push(name);
                }
            }
        }
        found
    };
    // Poll tightly: the artifact's write and fsync take tens of ms after
    // seconds of compiling.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut killed_while_writing = false;
    loop {
        let writing = temporaries(&components)
            .iter()
            .any(|name| name.contains(".cwasm.tmp."));
        if writing {
            kill(pid, Signal::SIGKILL).expect("kill vigil compile");
            killed_while_writing = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if !killed_while_writing {
        // Missed the window (or it ended): kill whatever is left.
        let _ = kill(pid, Signal::SIGKILL);
    }
    let _ = child.wait();
    eprintln!("killed while writing the artifact: {killed_while_writing}");

    let server = HttpServer::start();
    let (code, output) = check_python(&cache, &server);
    let report = text(&output.stdout);
    assert_eq!(code, Some(0), "{output:?}");
    assert!(report.contains(r#""outcome":"ok""#), "{report}");
    let left = temporaries(&components);
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// `vigil run` compiles every check before it spawns the service: a
/// startup check that takes seconds to compile on a cold cache still
/// passes within a 5 s startup timeout, on the first child. Compiled
/// inside the first check, it would run out the startup timeout and the
/// child would be stopped before it was ever ready.
#[test]
fn run_compiles_before_it_spawns() {
    let setup = Setup::new("compile-before-spawn");
    let server = HttpServer::start();
    let service = setup.service(
        "py",
        &format!(
            r#"command = ["sleep", "600"]
restart = "never"
[checks.startup]
check = "json_health.wasm"
period = "200ms"
timeout = "2s"
startup-timeout = "5s"
[checks.startup.config]
url = "{}"
[grants]
hosts = ["{}"]
"#,
            server.url("/ok"),
            server.grant()
        ),
    );
    std::fs::copy(python_check(), service.join("json_health.wasm")).expect("copy the check");
    let cache = setup.root.join("cache");
    let cache_env = cache.display().to_string();
    let vigil = Vigil::start_in_with(
        &setup.root,
        &setup.checks,
        &setup.state,
        &[],
        &[("XDG_CACHE_HOME", &cache_env)],
    );
    // Ready, or the first child's end: a failure shows at once.
    let settled = |e: &serde_json::Value| {
        ["ready", "exited", "killed", "restarting", "gave-up"]
            .iter()
            .any(|kind| is(e, "py", kind))
    };
    let (ready, event) = vigil.wait_event_from(0, settled, Duration::from_secs(600));
    assert_eq!(
        event["kind"],
        "ready",
        "the first child is ready on time\n{}",
        vigil.diagnostics()
    );
    let before: Vec<String> = vigil.journal()[..ready]
        .iter()
        .filter(|e| e["service"] == "py")
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        before.iter().filter(|k| *k == "spawned").count(),
        1,
        "one child, ready on time: {before:?}\n{}",
        vigil.diagnostics()
    );
    assert!(
        !before.iter().any(|k| k == "exited" || k == "killed"),
        "{before:?}\n{}",
        vigil.diagnostics()
    );
}

/// On a cold cache, `vigil check` compiles before the check's deadline
/// starts: a Rust component takes a few hundred milliseconds to compile,
/// ten times the 50 ms `--timeout`, and the check still answers `ok`.
/// Off a terminal it says nothing about compiling (a probe's output stays
/// as it was).
#[test]
fn a_cold_check_does_not_spend_its_timeout_compiling() {
    let cache = scratch("compile-cold-timeout");
    let output = vigil(&cache)
        .args(["check", programs::OK, "--timeout", "50ms", "--json"])
        .output()
        .expect("run vigil check");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(stdout.contains(r#""outcome":"ok""#), "{stdout}");
    assert!(!stderr.contains("compiling"), "{stderr}");
}

/// A hot reload compiles the checks it brings before it applies them: a
/// reload that changes a service's command (a restart) and its startup
/// check to a big one on a cold cache still has the new child ready
/// within a 5 s startup timeout.
#[test]
fn a_reload_compiles_before_it_applies() {
    let setup = Setup::new("compile-before-reload");
    let server = HttpServer::start();
    let manifest = |seconds: u32, check: &str, config: &str| {
        format!(
            r#"command = ["sleep", "{seconds}"]
restart = "never"
[grants]
hosts = ["{}"]
[checks.startup]
check = "{check}"
period = "200ms"
timeout = "2s"
startup-timeout = "5s"
{config}"#,
            server.grant()
        )
    };
    let service = setup.service("py", &manifest(600, "builtin:process", ""));
    std::fs::copy(python_check(), service.join("json_health.wasm")).expect("copy the check");
    let cache = setup.root.join("cache");
    let cache_env = cache.display().to_string();
    let vigil = Vigil::start_in_with(
        &setup.root,
        &setup.checks,
        &setup.state,
        &[],
        &[("XDG_CACHE_HOME", &cache_env)],
    );
    let (first_ready, _) = vigil.wait_kind(0, "py", "ready");

    let config = format!("[checks.startup.config]\nurl = \"{}\"\n", server.url("/ok"));
    crate::supervisor_helpers::atomic_save(&service, &manifest(601, "json_health.wasm", &config));
    let (spawned, new) = vigil.wait_event_from(
        first_ready,
        |e| is(e, "py", "spawned"),
        Duration::from_secs(600),
    );
    let new_pid = crate::supervisor_helpers::pid_of(&new);
    let settled = |e: &serde_json::Value| {
        is(e, "py", "ready")
            || is(e, "py", "gave-up")
            || (is(e, "py", "exited") && crate::supervisor_helpers::pid_of(e) == new_pid)
    };
    let (_, event) = vigil.wait_event_from(spawned, settled, Duration::from_secs(600));
    assert_eq!(
        event["kind"],
        "ready",
        "the new child is ready on time\n{}",
        vigil.diagnostics()
    );
}
