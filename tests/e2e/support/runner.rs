//! Fixtures for the supervisor's end-to-end tests: a checks directory of
//! service manifests, the real `vigil run` on it (killed on drop, children
//! included), and the journal it writes, polled as JSON lines.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use vigil::procfs;

use super::{SOON, poll_until, scratch};

/// A checks directory and a state directory under one scratch root.
pub struct Setup {
    pub root: PathBuf,
    pub checks: PathBuf,
    pub state: PathBuf,
}

impl Setup {
    pub fn new(name: &str) -> Setup {
        let root = scratch(&format!("sup-{name}"));
        let checks = root.join("checks");
        let state = root.join("state");
        std::fs::create_dir_all(&checks).expect("checks dir");
        Setup {
            root,
            checks,
            state,
        }
    }

    /// Write `checks/<name>/service.toml`; returns the service directory.
    pub fn service(&self, name: &str, manifest: &str) -> PathBuf {
        write_service(&self.checks, name, manifest)
    }

    /// [`run_command`] on this setup.
    pub fn run_command(&self) -> Command {
        run_command(&self.checks, &self.state)
    }

    /// Start `vigil run --quiet` on this setup.
    pub fn run(&self) -> Vigil {
        Vigil::start(self)
    }
}

impl Drop for Setup {
    /// Scratch files go once the test passed (the [`Vigil`] guards, made
    /// after the setup, are dropped before it); a failed test keeps them.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Write `<checks>/<name>/service.toml` (creating the directory).
pub fn write_service(checks: &Path, name: &str, manifest: &str) -> PathBuf {
    let dir = checks.join(name);
    std::fs::create_dir_all(&dir).expect("service dir");
    std::fs::write(dir.join("service.toml"), manifest).expect("write service.toml");
    dir
}

/// Replace a manifest the way editors save: write a temporary file in the
/// same directory, then rename it over the original.
pub fn atomic_save(service_dir: &Path, manifest: &str) {
    let tmp = service_dir.join(".service.toml.swp");
    {
        let mut f = File::create(&tmp).expect("create temp manifest");
        f.write_all(manifest.as_bytes())
            .expect("write temp manifest");
        f.sync_all().expect("sync temp manifest");
    }
    std::fs::rename(&tmp, service_dir.join("service.toml")).expect("rename over service.toml");
}

/// A TOML string literal (basic string, escaped).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `command = [...]` for a manifest.
pub fn command(argv: &[&str]) -> String {
    let items: Vec<String> = argv.iter().map(|a| toml_str(a)).collect();
    format!("command = [{}]\n", items.join(", "))
}

/// `command = [...]` running `python3 -m http.server PORT` on loopback.
pub fn http_server_command(port: u16) -> String {
    command(&[
        "python3",
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
}

/// A readiness check on builtin:http (200 ms period, 3 s timeout) asking
/// `url`, and the grant for `origin` (the URL's scheme, host and port):
/// the rest of a manifest after its command.
pub fn http_readiness(url: &str, origin: &str) -> String {
    format!(
        r#"
[checks.readiness]
check = "builtin:http"
period = "200ms"
timeout = "3s"
[checks.readiness.config]
url = "{url}"

[grants]
hosts = ["{origin}"]
"#
    )
}

/// A manifest running `python3 -m http.server PORT` on loopback, ready
/// once it answers HTTP (readiness builtin:http, 200 ms period).
pub fn http_server_manifest(port: u16, extra: &str) -> String {
    let origin = format!("http://127.0.0.1:{port}");
    format!(
        "{}{extra}{}",
        http_server_command(port),
        http_readiness(&format!("{origin}/"), &origin)
    )
}

/// `vigil run --quiet` on a [`Setup`]. Dropping it stops vigil (SIGTERM,
/// then SIGKILL) and kills whatever its children left behind.
pub struct Vigil {
    child: Option<Child>,
    pub pid: i32,
    pub checks: PathBuf,
    pub state: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

/// The `vigil` binary under test.
pub fn vigil_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.env(
        "XDG_CACHE_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("supervisor-cache"),
    );
    cmd
}

/// `vigil run --checks CHECKS --state-dir STATE`, stdin on /dev/null, for
/// a caller that wants its own arguments, stdio or wait ([`Vigil`] is the
/// usual way: it also stops vigil and its children at the end).
pub fn run_command(checks: &Path, state: &Path) -> Command {
    let mut cmd = vigil_command();
    cmd.arg("run")
        .arg("--checks")
        .arg(checks)
        .arg("--state-dir")
        .arg(state)
        .stdin(Stdio::null());
    cmd
}

impl Vigil {
    pub fn start(setup: &Setup) -> Vigil {
        Vigil::start_in(&setup.root, &setup.checks, &setup.state)
    }

    /// Start on explicit directories; vigil's stderr goes to
    /// `<root>/vigil-<n>.stderr` (shown when a wait fails).
    pub fn start_in(root: &Path, checks: &Path, state: &Path) -> Vigil {
        Vigil::start_in_with(root, checks, state, &[], &[])
    }

    /// [`Vigil::start`] with extra environment variables.
    pub fn start_with_env(setup: &Setup, env: &[(&str, &str)]) -> Vigil {
        Vigil::start_in_with(&setup.root, &setup.checks, &setup.state, &[], env)
    }

    /// [`Vigil::start`] with more `vigil run` arguments (e.g. `--http`).
    pub fn start_with(setup: &Setup, extra: &[&str]) -> Vigil {
        Vigil::start_in_with(&setup.root, &setup.checks, &setup.state, extra, &[])
    }

    /// [`Vigil::start_in`] with more `vigil run` arguments and environment.
    pub fn start_in_with(
        root: &Path,
        checks: &Path,
        state: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Vigil {
        let mut n = 0;
        let stderr = loop {
            let p = root.join(format!("vigil-{n}.stderr"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let child = run_command(checks, state)
            .arg("--quiet")
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start vigil run");
        let pid = i32::try_from(child.id()).expect("pid fits");
        Vigil {
            child: Some(child),
            pid,
            checks: checks.to_path_buf(),
            state: state.to_path_buf(),
            stderr,
            status: None,
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state.join("journal.jsonl")
    }

    /// Every complete line of the journal so far, parsed.
    pub fn journal(&self) -> Vec<Value> {
        read_journal(&self.journal_path())
    }

    /// The journal lines about `service`.
    pub fn events(&self, service: &str) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|e| e["service"] == service)
            .collect()
    }

    /// The first journal line satisfying `pred`, polling until `timeout`.
    /// Panics with the journal and vigil's stderr when none comes.
    pub fn wait_event(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.wait_event_from(0, pred, timeout).1
    }

    /// Like [`Vigil::wait_event`], looking only at lines from index `from`
    /// on; returns the index too.
    pub fn wait_event_from(
        &self,
        from: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> (usize, Value) {
        poll_until(
            &format!("a matching journal event (from line {from})"),
            timeout,
            || {
                let journal = self.journal();
                let (i, e) = journal
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, e)| pred(e))?;
                Some((i, e.clone()))
            },
            || self.diagnostics(),
        )
    }

    /// Poll `cond` until it holds; after [`SOON`], panics naming `what`
    /// with the journal and vigil's stderr.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        self.wait_for(what, || cond().then_some(()))
    }

    /// Poll `probe` until it finds something; after [`SOON`], panics
    /// naming `what` with the journal and vigil's stderr.
    pub fn wait_for<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        poll_until(what, SOON, probe, || self.diagnostics())
    }

    /// Wait for `kind` about `service` (from line `from` on).
    pub fn wait_kind(&self, from: usize, service: &str, kind: &str) -> (usize, Value) {
        self.wait_event_from(from, |e| is(e, service, kind), SOON)
    }

    /// Wait for a `spawned` of `service` (from line `from` on): its line
    /// index and the child's pid.
    pub fn wait_spawned(&self, from: usize, service: &str) -> (usize, i32) {
        let (i, spawned) = self.wait_kind(from, service, "spawned");
        (i, pid_of(&spawned))
    }

    /// The journal and vigil's stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        let journal = std::fs::read_to_string(self.journal_path()).unwrap_or_default();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("--- journal ---\n{journal}--- vigil stderr ---\n{stderr}")
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).expect("signal vigil");
    }

    /// Vigil's exit status, waiting up to `timeout`; `None` if it is still
    /// running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait().expect("wait vigil") {
                self.status = Some(s);
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait for the exit (panics if vigil does not exit).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        match self.wait_exit(SOON) {
            Some(s) => s,
            None => panic!(
                "vigil did not exit within {SOON:?} of SIGTERM\n{}",
                self.diagnostics()
            ),
        }
    }

    /// SIGKILL vigil itself and reap it.
    pub fn kill(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        self.wait_exit(SOON).expect("a SIGKILLed vigil exits");
    }

    /// Kill every child group the journal says was spawned and is still
    /// the same process (pid + start time), and anything left in it.
    pub fn kill_children(&self) {
        kill_journaled_children(&self.journal());
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.is_some() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
                let _ = self.wait_exit(Duration::from_secs(10));
            }
        }
        self.kill_children();
    }
}

/// Kill the groups of `spawned` children in `journal` that are still alive.
pub fn kill_journaled_children(journal: &[Value]) {
    for e in journal.iter().filter(|e| e["kind"] == "spawned") {
        let (Some(pid), Some(start)) = (e["pid"].as_i64(), e["start_time"].as_u64()) else {
            continue;
        };
        let pid = pid as i32;
        let ours = match procfs::stat(pid) {
            Some(s) => s.start_time == start,
            None => !procfs::group_members(pid).is_empty(),
        };
        if ours {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Parse the complete lines of a journal file (a line still being written
/// is left for the next read).
pub fn read_journal(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}

/// True when `e` is a `kind` event about `service`.
pub fn is(e: &Value, service: &str, kind: &str) -> bool {
    e["service"] == service && e["kind"] == kind
}

/// The `kind`s of `events`, in order (for messages and sequence asserts).
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The pid of a `spawned` or `exited` event.
pub fn pid_of(e: &Value) -> i32 {
    e["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {e}")) as i32
}

/// `/proc` state of `pid` (`R`, `S`, `Z`, ...), or "gone".
pub fn proc_state(pid: i32) -> String {
    procfs::stat(pid)
        .map(|s| format!("in state {}", s.state))
        .unwrap_or_else(|| "gone".into())
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    procfs::stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Every process of the system, as vigil's /proc reader sees it.
pub fn all_processes() -> Vec<procfs::Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(procfs::stat)
        .collect()
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Milliseconds between the `ts` of two journal lines (RFC 3339, UTC, ms).
pub fn ms_between(a: &Value, b: &Value) -> i64 {
    ts_ms(b) - ts_ms(a)
}

fn ts_ms(e: &Value) -> i64 {
    // "2025-01-02T03:04:05.678Z": only the time of day matters here (tests
    // are short), plus the day to survive midnight.
    let ts = e["ts"].as_str().unwrap_or_else(|| panic!("no ts in {e}"));
    let day: i64 = ts[8..10].parse().expect("day");
    let h: i64 = ts[11..13].parse().expect("hour");
    let m: i64 = ts[14..16].parse().expect("minute");
    let s: f64 = ts[17..ts.len() - 1].parse().expect("seconds");
    ((day * 24 + h) * 60 + m) * 60_000 + (s * 1000.0).round() as i64
}
