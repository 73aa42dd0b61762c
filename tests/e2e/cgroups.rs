//! Cgroups and limits (docs/cgroups.md): a service is its cgroup, so a
//! process that left its group with `setsid` is stopped with it (and the
//! next incarnation gets its port), found again after a vigil crash;
//! `memory-max` ends in an OOM kill journaled as `oom`, `pids-max` bounds
//! a fork loop, `limits` sets rlimits; status shows CPU and memory.
//!
//! These need a host where vigil may create cgroups (root here); elsewhere
//! they say so and pass.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::*;

/// Binds 127.0.0.1:PORT (without SO_REUSEPORT: a second live bind is
/// EADDRINUSE), appends `bound PID` or `in-use PID` to LOG, then holds the
/// port, ignoring SIGHUP, until killed.
const BINDER: &str = r#"
import os, signal, socket, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGHUP, signal.SIG_IGN)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", port))
    s.listen()
    word = "bound"
except OSError:
    word = "in-use"
with open(log, "a") as f:
    f.write(f"{word} {os.getpid()}\n")
if word == "bound":
    time.sleep(600)
"#;

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The lines of the binders' log: `(word, pid)`.
fn binds(log: &Path) -> Vec<(String, i32)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (w, p) = l.split_once(' ')?;
            Some((w.to_string(), p.parse().ok()?))
        })
        .collect()
}

/// Kills the binders left behind when a test fails half-way.
struct Reap(PathBuf);

impl Drop for Reap {
    fn drop(&mut self) {
        for (_, pid) in binds(&self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A service whose leader starts the binder in a session of its own
/// (`setsid -f`: forked, out of the leader's process group, re-parented to
/// vigil) and then sleeps.
fn escapee(setup: &Setup, port: u16) -> PathBuf {
    let script = setup.root.join("binder.py");
    std::fs::write(&script, BINDER).expect("write binder");
    let log = setup.root.join("binds.log");
    let sh = format!(
        "setsid -f python3 {} {port} {}; exec sleep 300",
        script.display(),
        log.display()
    );
    setup.service(
        "escapee",
        &format!("{}stop-grace = \"2s\"\n", command(&["sh", "-c", &sh])),
    );
    log
}

/// Without cgroups the binder outlives its service's restart and keeps the
/// port: the next incarnation's binder gets EADDRINUSE. With them, a
/// restart stops it (it is in the cgroup), the next one binds, and a stop
/// leaves nothing alive.
#[test]
fn a_setsid_escapee_is_stopped_with_its_service_and_frees_its_port() {
    if !root() {
        eprintln!("not root: vigil cannot create cgroups here, skipped");
        return;
    }
    let setup = Setup::new("cg-escapee");
    let port = closed_port();
    let log = escapee(&setup, port);
    let _reap = Reap(log.clone());
    let vigil = setup.run();
    wait_socket(&vigil);
    vigil.wait_until("the first binder holds the port", || binds(&log).len() == 1);
    let (word, first) = binds(&log)[0].clone();
    assert_eq!(word, "bound", "{:?}", binds(&log));
    let pgid = vigil.wait_spawned(0, "escapee").1;
    assert_ne!(
        procfs_pgrp(first),
        Some(pgid),
        "the binder left the service's process group"
    );

    expect_code(
        &cli(&vigil.state, &["restart", "escapee"]),
        0,
        "vigil restart",
    );
    vigil.wait_until("the second binder tried the port", || {
        binds(&log).len() == 2
    });
    let all = binds(&log);
    assert_eq!(
        all[1].0,
        "bound",
        "the next incarnation could not bind its port: {all:?}\n{}",
        vigil.diagnostics()
    );
    assert!(!alive(first), "the first binder is stopped");

    let status = status(&vigil.state);
    let cgroup = service(&status, "escapee")["cgroup"]
        .as_str()
        .unwrap_or_else(|| panic!("no cgroup in {status}"))
        .to_string();
    let instance = status["cgroups"].as_str().expect("the instance's cgroup");
    assert!(cgroup.starts_with(instance), "{cgroup} under {instance}");
    expect_code(&cli(&vigil.state, &["stop", "escapee"]), 0, "vigil stop");
    let second = all[1].1;
    vigil.wait_until("the second binder is stopped", || !alive(second));
    let procs = std::fs::read_to_string(Path::new(&cgroup).join("cgroup.procs"))
        .expect("read cgroup.procs");
    assert_eq!(procs.trim(), "", "nothing is left in {cgroup}");
}

fn procfs_pgrp(pid: i32) -> Option<i32> {
    vigil::procfs::stat(pid).map(|s| s.pgrp)
}

/// Vigil is SIGKILLed: its child dies of PDEATHSIG, the escapee does not
/// (it is nobody's child but init's now). The next vigil on the same state
/// finds it in the service's cgroup and stops it before starting anything.
#[test]
fn recovery_after_a_crash_stops_what_left_the_group_through_the_cgroup() {
    if !root() {
        eprintln!("not root: vigil cannot create cgroups here, skipped");
        return;
    }
    let setup = Setup::new("cg-recover");
    let port = closed_port();
    let log = escapee(&setup, port);
    let _reap = Reap(log.clone());
    let mut vigil = setup.run();
    vigil.wait_until("the binder holds the port", || binds(&log).len() == 1);
    let first = binds(&log)[0].1;
    vigil.kill();
    assert!(alive(first), "the escapee survives its vigil");

    let vigil = setup.run();
    vigil.wait_until("the escapee of the previous life is stopped", || {
        !alive(first)
    });
    vigil.wait_event(
        |e| {
            is(e, "escapee", "warning")
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("previous instance left in cgroup"))
        },
        SOON,
    );
    vigil.wait_until("the new incarnation binds the port", || {
        binds(&log).len() == 2
    });
    assert_eq!(binds(&log)[1].0, "bound", "{:?}", binds(&log));
}

/// A child over `memory-max` is killed by the kernel's OOM killer, and the
/// journal says so: `exited` with SIGKILL and cause `oom`.
#[test]
fn a_service_over_memory_max_is_journaled_as_an_oom_kill() {
    if !root() {
        eprintln!("not root: vigil cannot create cgroups here, skipped");
        return;
    }
    let setup = Setup::new("cg-oom");
    // 256 MiB of written bytes against a 32 MiB limit (no swap to go to:
    // either way the kernel kills it at the limit).
    setup.service(
        "hog",
        &format!(
            "{}memory-max = \"32MiB\"\nrestart = \"never\"\n",
            command(&["python3", "-c", "b = b'x' * (256 << 20)"])
        ),
    );
    let vigil = setup.run();
    let (_, exited) = vigil.wait_kind(0, "hog", "exited");
    assert_eq!(exited["signal"], "SIGKILL", "{exited}");
    assert_eq!(exited["cause"], "oom", "{}", vigil.diagnostics());
}

/// `pids-max` bounds a fork loop (20 tries at most: bounded either way),
/// and `limits.nofile` is the child's RLIMIT_NOFILE.
#[test]
fn pids_max_bounds_forks_and_limits_set_rlimits() {
    if !root() {
        eprintln!("not root: vigil cannot create cgroups here, skipped");
        return;
    }
    let setup = Setup::new("cg-pids");
    let count = setup.root.join("forks");
    let forker = format!(
        "import os, sys, time\n\
         n = 0\n\
         for _ in range(20):\n    \
             try:\n        pid = os.fork()\n    \
             except OSError:\n        break\n    \
             if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    \
             n += 1\n\
         open({:?}, 'w').write(str(n))\n\
         time.sleep(60)\n",
        count.display().to_string()
    );
    setup.service(
        "forker",
        &format!("{}pids-max = 6\n", command(&["python3", "-c", &forker])),
    );
    setup.service(
        "capped",
        &format!("{}cpu-max = \"50%\"\n", command(&["sleep", "300"])),
    );
    setup.service(
        "files",
        &format!(
            "{}limits = {{ nofile = 4242, core = 0 }}\nmemory-max = \"256MiB\"\n",
            command(&["sleep", "300"])
        ),
    );
    let vigil = setup.run();
    let forks: usize = vigil.wait_for("the fork loop ended", || {
        std::fs::read_to_string(&count).ok()?.trim().parse().ok()
    });
    // The python process and its children count: at most 5 children.
    assert!((1..=5).contains(&forks), "{forks} forks under pids-max = 6");

    let (_, pid) = vigil.wait_spawned(0, "files");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(line("Max open files"), "Max open files 4242 4242 files");
    assert_eq!(line("Max core file size"), "Max core file size 0 0 bytes");

    // cpu-max: the quota of its cpu cgroup (v1 here; v2's cpu.max on a
    // unified host), found from the child's own /proc/PID/cgroup.
    let (_, capped) = vigil.wait_spawned(0, "capped");
    let own = std::fs::read_to_string(format!("/proc/{capped}/cgroup")).expect("cgroup");
    let v1 = own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':').skip(1);
        let (controllers, path) = (f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "cpu")
            .then(|| Path::new("/sys/fs/cgroup/cpu").join(path.trim_start_matches('/')))
    });
    let v2 = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/')));
    match (v1, v2) {
        (Some(dir), _) if dir.join("cpu.cfs_quota_us").exists() => {
            let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).expect("quota");
            assert_eq!(quota.trim(), "50000", "{}", dir.display());
        }
        (_, Some(dir)) if dir.join("cpu.max").exists() => {
            let max = std::fs::read_to_string(dir.join("cpu.max")).expect("cpu.max");
            assert_eq!(max.trim(), "50000 100000", "{}", dir.display());
        }
        _ => eprintln!("no cpu controller file found for {own}: cpu-max not checked"),
    }

    // The children are in their cgroups, with usage to show.
    let status = status(&vigil.state);
    let files = service(&status, "files");
    assert!(files["cgroup"].is_string(), "{files}");
    assert!(files["memory_bytes"].as_u64().is_some(), "{files}");
    assert!(files["cpu_secs"].as_f64().is_some(), "{files}");
}

/// Where vigil may not create cgroups (here: turned off), it says so once
/// in the journal, and `vigil validate` warns that the limits are not
/// enforced; services run on process groups.
#[test]
fn without_cgroups_vigil_says_so_and_validate_warns_about_limits() {
    let setup = Setup::new("cg-off");
    setup.service(
        "limited",
        &format!("{}memory-max = \"64MiB\"\n", command(&["sleep", "300"])),
    );
    let out = vigil_command()
        .env("VIGIL_CGROUPS", "off")
        .arg("validate")
        .arg(&setup.checks)
        .output()
        .expect("vigil validate");
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        said.contains("memory-max") && said.contains("not enforced"),
        "{said}"
    );

    let vigil = Vigil::start_with_env(&setup, &[("VIGIL_CGROUPS", "off")]);
    vigil.wait_spawned(0, "limited");
    let warnings: Vec<_> = vigil
        .journal()
        .into_iter()
        .filter(|e| {
            e["kind"] == "warning"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("cgroups unavailable"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{}", vigil.diagnostics());
    let status = status(&vigil.state);
    assert!(service(&status, "limited")["cgroup"].is_null(), "{status}");
    assert!(status["cgroups"].is_null(), "{status}");
}

/// Reads the pid a script wrote into `path`, once it is there.
fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the `cgroup.procs` in `dir` lists `pid`.
fn lists(dir: &Path, pid: i32) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim() == pid.to_string())
}

/// A command hook runs in a cgroup of its own beside the service's
/// (docs/hooks.md): its pid is in `<instance>/<service>.<run>.hook`'s
/// `cgroup.procs` and not in the service's, so a running hook is never the
/// service's populated state and a stop's `cgroup.kill` of the service
/// cannot reach it. When the hook ends, what it left behind (a `setsid`
/// escapee, out of its process group) is killed and its cgroup removed.
#[test]
fn a_command_hook_runs_in_a_cgroup_of_its_own_beside_the_services() {
    if !root() {
        eprintln!("not root: vigil cannot create cgroups here, skipped");
        return;
    }
    let setup = Setup::new("cg-hook");
    let hook_pid = setup.root.join("hook.pid");
    let escapee_pid = setup.root.join("escapee.pid");
    let go = setup.root.join("go");
    let script = format!(
        "setsid -f sh -c 'echo $$ > {esc}; exec sleep 300'; echo $$ > {pid}; \
         while [ ! -e {go} ]; do sleep 0.05; done",
        esc = escapee_pid.display(),
        pid = hook_pid.display(),
        go = go.display()
    );
    setup.service(
        "web",
        &format!(
            "{}\n[hooks.post-start]\ncommand = [\"sh\", \"-c\", {}]\ntimeout = \"2m\"\n",
            command(&["sleep", "300"]),
            toml_str(&script)
        ),
    );
    let vigil = setup.run();
    wait_socket(&vigil);
    vigil.wait_until("the hook and its escapee run", || {
        read_pid(&hook_pid).is_some() && read_pid(&escapee_pid).is_some()
    });
    let (hook, escapee) = (
        read_pid(&hook_pid).expect("hook pid"),
        read_pid(&escapee_pid).expect("escapee pid"),
    );
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
    let _kill = Kill(escapee);

    let status = status(&vigil.state);
    let instance = PathBuf::from(status["cgroups"].as_str().expect("the instance's cgroup"));
    let own = PathBuf::from(
        service(&status, "web")["cgroup"]
            .as_str()
            .unwrap_or_else(|| panic!("no cgroup in {status}")),
    );
    let hook_dirs: Vec<PathBuf> = std::fs::read_dir(&instance)
        .expect("read the instance's cgroup")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "hook"))
        .collect();
    let dir = hook_dirs
        .iter()
        .find(|d| lists(d, hook))
        .unwrap_or_else(|| {
            panic!(
                "hook {hook} is in none of {hook_dirs:?}\n{}",
                vigil.diagnostics()
            )
        });
    let name = dir.file_name().expect("name").to_string_lossy().to_string();
    assert!(name.starts_with("web.post-start-"), "{name}");
    assert!(lists(dir, escapee), "the escapee is in the hook's cgroup");
    assert!(
        !lists(&own, hook),
        "the hook is not in the service's cgroup"
    );
    let child = vigil.wait_spawned(0, "web").1;
    assert!(lists(&own, child), "the child is in {}", own.display());

    std::fs::write(&go, "").expect("let the hook end");
    vigil.wait_until(
        "the hook's escapee is killed and its cgroup removed",
        || !alive(escapee) && !dir.exists(),
    );
    assert!(alive(child), "the service lives on");
}
