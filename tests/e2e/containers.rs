//! Vigil as PID 1 in a real OCI runtime (docs/containers.md): podman
//! builds examples/container/Containerfile on a busybox base this test
//! assembles (no registry pull), and runs it with runc. Services reach
//! ready, a kill -9 of one restarts it, orphans are reaped, and `podman
//! stop` (SIGTERM) gives the ordered graceful shutdown and exit 0. tini and
//! dumb-init (Debian packages) run the same duties in the same image, side
//! by side, for the table in docs/containers.md.
//!
//! Podman keeps all its state under this test's scratch directory (its own
//! storage, run and tmp dirs; vfs storage; no network but loopback).
//! Skipped, saying why, only where podman cannot start a container at all
//! (not root, or no namespaces); a missing package fails with the setup
//! step that installs it.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::*;

/// A program the test needs, or a panic naming the setup step.
fn need(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} is missing: run `scripts/setup.sh containers`"
    );
    p
}

/// The vigil to put in the image: `$VIGIL_STATIC`, else `make static`'s
/// output next to the binary under test, else (with a note) the binary
/// under test plus the shared libraries it links.
fn vigil_binary() -> (PathBuf, bool) {
    if let Some(p) = std::env::var_os("VIGIL_STATIC").map(PathBuf::from) {
        return (p, true);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_vigil"));
    let target_dir = bin
        .parent()
        .and_then(Path::parent)
        .expect("binary under <target>/release");
    let musl = target_dir.join("x86_64-unknown-linux-musl/release/vigil");
    if musl.is_file() {
        return (musl, true);
    }
    eprintln!(
        "note: no static vigil (`make static`); the image gets {} and its libraries",
        bin.display()
    );
    (bin.to_path_buf(), false)
}

/// Copy `binary` to `rootfs/dest`, and, when it is dynamic, every library
/// `ldd` names to the same path inside `rootfs`.
fn install(rootfs: &Path, binary: &Path, dest: &str) {
    let to = rootfs.join(dest.trim_start_matches('/'));
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    fs::copy(binary, &to).unwrap_or_else(|e| panic!("copy {}: {e}", binary.display()));
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    if !out.status.success() {
        return; // "not a dynamic executable"
    }
    for line in text(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let Some(lib) = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(Path::new)
        else {
            continue;
        };
        let to = rootfs.join(lib.strip_prefix("/").expect("absolute"));
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::copy(lib, &to).unwrap_or_else(|e| panic!("copy {}: {e}", lib.display()));
    }
}

/// Podman with all its state in `root`, runc as the runtime (crun refuses
/// cgroup v1 hybrid hosts), cgroupfs, and no default ulimits (raising
/// RLIMIT_NPROC/NOFILE needs CAP_SYS_RESOURCE, which a container host may
/// not have).
struct Podman {
    root: PathBuf,
    /// podman refuses a run root longer than 50 characters: this one is
    /// under /tmp, removed on drop.
    runroot: PathBuf,
    conf: PathBuf,
    names: std::cell::RefCell<Vec<String>>,
}

impl Podman {
    fn new(root: &Path) -> Podman {
        need("/usr/bin/podman");
        need("/usr/sbin/runc");
        let conf = root.join("containers.conf");
        fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n[engine]\nevents_logger = \"file\"\n",
        )
        .expect("containers.conf");
        let tag = root.file_name().expect("name").to_string_lossy();
        let runroot =
            std::env::temp_dir().join(format!("vigil-{}", tag.trim_start_matches("e2e-")));
        let _ = fs::remove_dir_all(&runroot);
        Podman {
            root: root.to_path_buf(),
            runroot,
            conf,
            names: Default::default(),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--tmpdir")
            .arg(self.root.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        expect_code(&out, 0, &format!("podman {}", args.join(" ")));
        text(&out.stdout).trim().to_owned()
    }

    /// `podman run -d --name NAME ARGS...`; removed on drop.
    fn start(&self, name: &str, args: &[&str]) {
        self.names.borrow_mut().push(name.to_owned());
        let mut all = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--no-healthcheck",
            "--name",
            name,
        ];
        all.extend_from_slice(args);
        self.ok(&all);
    }

    /// The host pid of a container's PID 1.
    fn pid1(&self, name: &str) -> i32 {
        let pid = self.ok(&["inspect", "--format", "{{.State.Pid}}", name]);
        pid.parse().unwrap_or_else(|_| panic!("pid {pid:?}"))
    }

    /// `podman stop -t 30`, then the exit code `podman wait` reports.
    fn stop(&self, name: &str) -> i32 {
        self.ok(&["stop", "-t", "30", name]);
        self.wait(name)
    }

    fn wait(&self, name: &str) -> i32 {
        let code = self.ok(&["wait", name]);
        code.parse()
            .unwrap_or_else(|_| panic!("exit code {code:?}"))
    }

    fn logs(&self, name: &str) -> String {
        let out = self.run(&["logs", name]);
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for name in self.names.borrow().iter() {
            let _ = self.run(&["rm", "-f", "-t", "0", name]);
        }
        // vfs keeps a full copy of each layer and container: a few hundred
        // MB the next run does not need.
        let _ = fs::remove_dir_all(self.root.join("storage"));
        let _ = fs::remove_dir_all(&self.runroot);
    }
}

/// Whether podman can start any container here; the reason if not.
fn runtime_works(podman: &Podman, image: &str) -> Result<(), String> {
    let out = podman.run(&["run", "--rm", "--network", "none", image, "true"]);
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

/// Processes (host pids) whose parent is `parent` and whose command line
/// contains `needle`.
fn children_matching(parent: i32, needle: &str) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|s| s.ppid == parent && cmdline(s.pid).contains(needle))
        .map(|s| s.pid)
        .collect()
}

/// A process in state Z whose parent is `parent`.
fn zombies_of(parent: i32) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|s| s.ppid == parent && s.state == 'Z')
        .map(|s| s.pid)
        .collect()
}

/// What an orphan does: waits (polling) for `/shared/go`, then exits.
/// Started as `(sh -c ORPHAN &)`, so its parent shell is gone at once and
/// it re-parents to PID 1.
const ORPHAN: &str = "while [ ! -e /shared/go ]; do sleep 0.05; done";

/// Release the orphan of `init` (host pid) and tell whether PID 1 reaped
/// it: true once its pid is gone, false if it is still there (a zombie)
/// after the deadline.
fn orphan_reaped(init: i32, shared: &Path) -> bool {
    let mut orphan = Vec::new();
    wait_until("the orphan re-parents to PID 1", SOON, || {
        orphan = children_matching(init, "/shared/go");
        !orphan.is_empty()
    });
    fs::write(shared.join("go"), "").expect("go");
    let deadline = Instant::now() + SOON;
    loop {
        if orphan
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Image {
    podman: Podman,
    tag: String,
    root: PathBuf,
    /// The build context (vigil and checks/), for other bases.
    ctx: PathBuf,
    is_static: bool,
}

/// Assemble the busybox base (plus tini and dumb-init), then build the
/// example Containerfile on it with `services` as the checks directory.
/// None (after saying why) where the runtime cannot run containers.
fn build_image(name: &str, services: &[(&str, String)]) -> Option<Image> {
    let root = scratch(&format!("containers-{name}"));
    let podman = Podman::new(&root);
    let busybox = need("/bin/busybox");
    let tini = need("/usr/bin/tini-static");
    let dumb_init = need("/usr/bin/dumb-init");

    // Base: busybox-static and its applets, tini, dumb-init (dynamic: with
    // its libraries), and /shared for a volume.
    let base = root.join("base");
    let rootfs = base.join("rootfs");
    install(&rootfs, &busybox, "/bin/busybox");
    let out = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in text(&out.stdout).lines().filter(|a| *a != "busybox") {
        let _ = symlink("busybox", rootfs.join("bin").join(applet));
    }
    install(&rootfs, &tini, "/sbin/tini");
    install(&rootfs, &dumb_init, "/sbin/dumb-init");
    for dir in ["shared", "tmp", "proc", "dev", "sys"] {
        fs::create_dir_all(rootfs.join(dir)).expect("mkdir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::write(base.join("Containerfile"), "FROM scratch\nCOPY rootfs/ /\n").expect("Containerfile");
    // A dynamic vigil (no `make static` yet) needs its libraries in the
    // base; the Containerfile's COPY then puts the binary over this one.
    let (vigil, is_static) = vigil_binary();
    if !is_static {
        install(&rootfs, &vigil, "/usr/local/bin/vigil");
    }
    let base_tag = format!("localhost/vigil-e2e-base-{name}:{}", std::process::id());
    podman.ok(&["build", "-q", "-t", &base_tag, &base.display().to_string()]);
    if let Err(why) = runtime_works(&podman, &base_tag) {
        eprintln!("skipped: podman (runc) cannot start a container here: {why}");
        return None;
    }

    // The image: the example Containerfile, on that base.
    let ctx = root.join("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::copy(&vigil, ctx.join("vigil")).expect("copy vigil");
    for (service, manifest) in services {
        write_service(&ctx.join("checks"), service, manifest);
    }
    let tag = format!("localhost/vigil-e2e-{name}:{}", std::process::id());
    let containerfile = workspace().join("examples/container/Containerfile");
    podman.ok(&[
        "build",
        "-q",
        "--format",
        "docker",
        "--build-arg",
        &format!("BASE={base_tag}"),
        "-f",
        &containerfile.display().to_string(),
        "-t",
        &tag,
        &ctx.display().to_string(),
    ]);
    Some(Image {
        podman,
        tag,
        root,
        ctx,
        is_static,
    })
}

/// With a static vigil: the Containerfile with its default base,
/// `FROM scratch` (nothing in the image but vigil and the checks), runs
/// `vigil validate` on the checks directory there.
fn runs_from_scratch(image: &Image) {
    if !image.is_static {
        eprintln!("note: no static vigil (`make static`): FROM scratch not tried");
        return;
    }
    let tag = format!("{}-scratch", image.tag);
    let containerfile = workspace().join("examples/container/Containerfile");
    image.podman.ok(&[
        "build",
        "-q",
        "--format",
        "docker",
        "-f",
        &containerfile.display().to_string(),
        "-t",
        &tag,
        &image.ctx.display().to_string(),
    ]);
    let out = image.podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--no-healthcheck",
        "--entrypoint",
        r#"["/usr/local/bin/vigil", "validate", "/etc/vigil"]"#,
        &tag,
    ]);
    expect_code(&out, 0, "vigil validate in FROM scratch");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains(" ok: "), "{said}");
}

fn index_of(events: &[Value], from: usize, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().skip(from).position(pred).map(|i| i + from)
}

#[test]
fn vigil_as_pid_1_in_podman_supervises_reaps_and_stops_in_order() {
    let services = [
        ("db", command(&["sleep", "3001"])),
        (
            "web",
            format!("{}after = [\"db\"]\n", command(&["sleep", "3002"])),
        ),
        (
            "orphans",
            command(&[
                "sh",
                "-c",
                &format!("(sh -c '{ORPHAN}' &); exec sleep 3003"),
            ]),
        ),
    ];
    let Some(image) = build_image("vigil", &services) else {
        return;
    };
    runs_from_scratch(&image);
    let podman = &image.podman;
    let state = image.root.join("state");
    let shared = image.root.join("shared");
    fs::create_dir_all(&state).expect("state");
    fs::create_dir_all(&shared).expect("shared");
    let name = format!("vigil-e2e-{}", std::process::id());
    podman.start(
        &name,
        &[
            "-v",
            &format!("{}:/var/lib/vigil", state.display()),
            "-v",
            &format!("{}:/shared", shared.display()),
            &image.tag,
        ],
    );
    let journal_path = state.join("journal.jsonl");
    let journal = || read_journal(&journal_path);
    let diagnostics = || {
        format!(
            "--- journal ---\n{}--- podman logs ---\n{}",
            fs::read_to_string(&journal_path).unwrap_or_default(),
            podman.logs(&name)
        )
    };
    let has = |service: &str, kind: &str| {
        journal()
            .iter()
            .any(|e| e["service"] == service && e["kind"] == kind)
    };
    poll_until(
        "db, web and orphans are ready",
        SOON,
        || (has("db", "ready") && has("web", "ready") && has("orphans", "ready")).then_some(()),
        diagnostics,
    );
    // Vigil is PID 1 of the container.
    assert!(
        journal()
            .iter()
            .any(|e| e["kind"] == "acquired" && e["pid"] == 1),
        "{}",
        diagnostics()
    );
    let init = podman.pid1(&name);
    assert!(cmdline(init).contains("vigil"), "{}", cmdline(init));

    // Orphans: the released one is reaped, and journaled.
    assert!(
        orphan_reaped(init, &shared),
        "orphan not reaped\n{}",
        diagnostics()
    );
    poll_until(
        "orphan-reaped is journaled",
        SOON,
        || {
            journal()
                .iter()
                .any(|e| e["kind"] == "orphan-reaped")
                .then_some(())
        },
        diagnostics,
    );
    assert!(zombies_of(init).is_empty(), "{}", diagnostics());

    // kill -9 of db (from the host): vigil restarts it.
    let from = journal().len();
    let db = children_matching(init, "sleep 3001");
    assert_eq!(db.len(), 1, "db's host pid: {db:?}\n{}", diagnostics());
    kill(Pid::from_raw(db[0]), Signal::SIGKILL).expect("kill -9 db");
    poll_until(
        "db exits on SIGKILL and is spawned again",
        SOON,
        || {
            let events = journal();
            let exited = index_of(&events, from, |e| {
                e["service"] == "db" && e["kind"] == "exited" && e["signal"] == "SIGKILL"
            })?;
            index_of(&events, exited, |e| {
                e["service"] == "db" && e["kind"] == "spawned"
            })
        },
        diagnostics,
    );
    poll_until(
        "db is ready again",
        SOON,
        || (children_matching(init, "sleep 3001").len() == 1).then_some(()),
        diagnostics,
    );

    // podman stop: SIGTERM to PID 1, the graceful shutdown in reverse
    // dependency order, exit 0.
    let from = journal().len();
    let code = podman.stop(&name);
    assert_eq!(code, 0, "{}", diagnostics());
    let events = journal();
    let exited = |service: &str| {
        index_of(&events, from, |e| {
            e["service"] == service && e["kind"] == "exited" && e["signal"] == "SIGTERM"
        })
        .unwrap_or_else(|| panic!("{service} not stopped by SIGTERM\n{}", diagnostics()))
    };
    assert!(
        exited("web") < exited("db"),
        "web (after db) must stop first\n{}",
        diagnostics()
    );
    exited("orphans");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "quit" && e["clean"] == true),
        "{}",
        diagnostics()
    );
}

/// One row of the PID-1 comparison.
#[derive(Debug, PartialEq)]
struct Duties {
    reaps_orphans: bool,
    /// Exit code after SIGTERM (`podman stop`) with a long-running child.
    sigterm_exit: i32,
    /// Exit code when the child exits 3 on its own.
    child_exit_3: i32,
    /// Exit code when the child is killed by SIGKILL.
    child_killed: i32,
}

/// tini and dumb-init, each as the entrypoint of the same image, running
/// the same child: reaping, SIGTERM forwarding, exit code passing.
fn duties_of(podman: &Podman, image: &Image, init: &[&str], label: &str) -> Duties {
    let shared = image.root.join(format!("shared-{label}"));
    fs::create_dir_all(&shared).expect("shared");
    let entrypoint = serde_json::to_string(init).expect("json");
    let name = format!("{label}-e2e-{}", std::process::id());
    let child = format!("(sh -c '{ORPHAN}' &); exec sleep 3100");
    podman.start(
        &name,
        &[
            "-v",
            &format!("{}:/shared", shared.display()),
            "--entrypoint",
            &entrypoint,
            &image.tag,
            "sh",
            "-c",
            &child,
        ],
    );
    let pid1 = podman.pid1(&name);
    let reaps_orphans = orphan_reaped(pid1, &shared);
    let sigterm_exit = podman.stop(&name);

    let name = format!("{label}-exit-e2e-{}", std::process::id());
    podman.start(
        &name,
        &[
            "--entrypoint",
            &entrypoint,
            &image.tag,
            "sh",
            "-c",
            "exit 3",
        ],
    );
    let child_exit_3 = podman.wait(&name);

    let name = format!("{label}-kill-e2e-{}", std::process::id());
    podman.start(
        &name,
        &[
            "--entrypoint",
            &entrypoint,
            &image.tag,
            "sh",
            "-c",
            "kill -9 $$",
        ],
    );
    let child_killed = podman.wait(&name);
    Duties {
        reaps_orphans,
        sigterm_exit,
        child_exit_3,
        child_killed,
    }
}

#[test]
fn tini_and_dumb_init_beside_vigil_in_the_same_runtime() {
    let Some(image) = build_image(
        "inits",
        &[
            ("idle", command(&["sleep", "3200"])),
            (
                "three",
                format!("{}restart = \"never\"\n", command(&["sh", "-c", "exit 3"])),
            ),
        ],
    ) else {
        return;
    };
    let podman = &image.podman;
    let tini = duties_of(podman, &image, &["/sbin/tini", "--"], "tini");
    let dumb_init = duties_of(podman, &image, &["/sbin/dumb-init"], "dumb-init");
    eprintln!("tini: {tini:?}\ndumb-init: {dumb_init:?}");
    // Both reap, forward SIGTERM to the child (which dies of it: 128 + 15)
    // and pass the child's end on as theirs (docs/containers.md).
    let forwarding = Duties {
        reaps_orphans: true,
        sigterm_exit: 143,
        child_exit_3: 3,
        child_killed: 137,
    };
    assert_eq!(tini, forwarding);
    assert_eq!(dumb_init, forwarding);

    // Vigil in the same image: a service that exits 3 is a matter for its
    // restart policy, not the container's exit code (vigil keeps running),
    // and SIGTERM is a graceful shutdown: exit 0.
    let state = image.root.join("state-inits");
    fs::create_dir_all(&state).expect("state");
    let name = format!("vigil-inits-e2e-{}", std::process::id());
    podman.start(
        &name,
        &[
            "-v",
            &format!("{}:/var/lib/vigil", state.display()),
            &image.tag,
        ],
    );
    let journal_path = state.join("journal.jsonl");
    poll_until(
        "three exits 3 and is journaled",
        SOON,
        || {
            read_journal(&journal_path)
                .iter()
                .any(|e| e["service"] == "three" && e["kind"] == "exited" && e["code"] == 3)
                .then_some(())
        },
        || podman.logs(&name),
    );
    assert_eq!(
        podman.ok(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true"
    );
    assert_eq!(podman.stop(&name), 0, "{}", podman.logs(&name));
}

/// The tools virtualenv's Python (scripts/setup.sh), which has PyYAML and
/// python-hcl2.
fn tools_python() -> PathBuf {
    std::env::var_os("VIGIL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/vigil/tools")
        })
        .join("python/bin/python")
}

/// Parse a YAML or HCL file of examples/deploy into JSON (python-hcl2
/// keeps HCL strings quoted: `"\"web\""`).
fn parse_example(rel: &str) -> Value {
    let path = workspace().join("examples/deploy").join(rel);
    let script = r#"
import json, sys
path = sys.argv[1]
with open(path) as f:
    if path.endswith(".hcl"):
        import hcl2
        doc = hcl2.load(f)
    else:
        import yaml
        doc = yaml.safe_load(f)
print(json.dumps(doc))
"#;
    let out = Command::new(tools_python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run the tools python (scripts/setup.sh)");
    expect_code(&out, 0, &format!("parse {rel}"));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A `vigil check` (or `vigil-probe`) command line from an example parses
/// and loads (a usage or load error is exit 2): whatever listens on its
/// port (usually nothing), it answers ok (0), retry (75) or error (1).
fn check_command_parses(argv: &[String], what: &str) {
    let mut cmd = if argv.first().is_some_and(|a| a.ends_with("/vigil-probe")) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-probe"));
        cmd.env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("supervisor-cache"),
        );
        cmd
    } else {
        assert!(
            argv.first().is_some_and(|a| a.ends_with("/vigil")) && argv[1] == "check",
            "{what}: {argv:?}"
        );
        vigil_command()
    };
    let out = cmd.args(&argv[1..]).output().expect("vigil check");
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1 | 75)),
        "{what}: {argv:?} exit {code:?}: {}",
        text(&out.stderr)
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").trim_matches('"').to_owned())
        .collect()
}

#[test]
fn deploy_examples_parse_and_their_probes_are_valid_vigil_commands() {
    // Kubernetes: /readyz readiness, a gRPC probe naming a service, and an
    // exec probe running `vigil check`.
    let pod = parse_example("kubernetes/pod.yaml");
    assert_eq!(pod["kind"], "Pod");
    let containers = pod["spec"]["containers"].as_array().expect("containers");
    let web = &containers[0];
    assert_eq!(web["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(web["livenessProbe"]["grpc"]["service"], "web");
    let exec = strings(&containers[1]["livenessProbe"]["exec"]["command"]);
    check_command_parses(&exec, "kubernetes exec probe");

    // Compose: a HEALTHCHECK with `vigil check`, exit codes mapped to 0/1.
    let compose = parse_example("compose/compose.yaml");
    let test = strings(&compose["services"]["app"]["healthcheck"]["test"]);
    assert_eq!(test[0], "CMD-SHELL");
    let shell = test[1].strip_suffix(" || exit 1").expect("|| exit 1");
    let argv: Vec<String> = shell.split_whitespace().map(str::to_owned).collect();
    check_command_parses(&argv, "compose healthcheck");

    // Nomad: Consul checks on vigil's /readyz and gRPC endpoints, and a
    // script check running `vigil check`.
    let job = parse_example("nomad/vigil.nomad.hcl");
    let job = &job["job"][0]["\"web\""];
    let group = &job["group"][0]["\"web\""];
    let task = &group["task"][0]["\"web\""];
    let checks: Vec<&Value> = task["service"]
        .as_array()
        .expect("services")
        .iter()
        .flat_map(|s| s["check"].as_array().expect("checks"))
        .collect();
    let kind = |c: &Value| {
        c["type"]
            .as_str()
            .unwrap_or("")
            .trim_matches('"')
            .to_owned()
    };
    assert!(
        checks
            .iter()
            .any(|c| kind(c) == "http" && c["path"] == "\"/readyz\"")
    );
    assert!(
        checks
            .iter()
            .any(|c| kind(c) == "grpc" && c["grpc_service"] == "\"web\"")
    );
    let script = checks
        .iter()
        .find(|c| kind(c) == "script")
        .expect("script check");
    let mut argv = vec![
        script["command"]
            .as_str()
            .expect("command")
            .trim_matches('"')
            .to_owned(),
    ];
    argv.extend(strings(&script["args"]));
    check_command_parses(&argv, "nomad script check");

    // The Containerfile's checks directory is valid.
    let out = vigil_command()
        .arg("validate")
        .arg(workspace().join("examples/container/checks"))
        .output()
        .expect("vigil validate");
    expect_code(&out, 0, "vigil validate examples/container/checks");

    // systemd: `systemd-analyze verify` on the unit, with ExecStart pointing
    // at the binary under test (verify wants the executable to exist).
    if let Ok(analyze) = which("systemd-analyze") {
        let unit = fs::read_to_string(workspace().join("examples/deploy/systemd/vigil.service"))
            .expect("unit");
        let dir = scratch("systemd-unit");
        let path = dir.join("vigil.service");
        fs::write(
            &path,
            unit.replace("/usr/local/bin/vigil", env!("CARGO_BIN_EXE_vigil")),
        )
        .expect("unit copy");
        let out = Command::new(analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        expect_code(&out, 0, "systemd-analyze verify vigil.service");
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    } else {
        eprintln!("note: no systemd-analyze here; the unit is not verified");
    }
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
