//! Real protocol servers for the tests: redis-server and PostgreSQL from
//! Debian's packages (installed by scripts/setup.sh), on loopback ports,
//! with their files in fresh temporary directories. A missing binary fails
//! the test with the setup step that installs it: nothing is skipped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::closed_port;

/// `name` on PATH, or in one of `extra` directories.
fn find_binary(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A fresh directory under the system temp dir (not the target dir: the
/// PostgreSQL server runs as `nobody` when the tests run as root, and must
/// reach its files).
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vigil-e2e-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Waits until something accepts connections on `port`, or panics with
/// the server's log once `child` has exited or `limit` passed.
fn wait_for_port(child: &mut Child, port: u16, limit: Duration, log: &Path, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start on port {port} ({exited:?}); its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(pid, signal);
    }
}

// ---- Redis ---------------------------------------------------------------------

pub struct Redis {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Leave `dir` behind when dropped (see [`Redis::stop_keeping_files`]).
    keep_dir: bool,
}

impl Redis {
    pub fn binary() -> PathBuf {
        find_binary("redis-server", &[]).unwrap_or_else(|| {
            panic!(
                "redis-server is not installed: run scripts/setup.sh (or `make setup`), \
                 which runs `apt-get install redis-server`"
            )
        })
    }

    /// `redis-server` on a free loopback port with no persistence, plus
    /// `args` (`["--requirepass", "x"]`, ...); waits until it listens.
    pub fn start(args: &[&str]) -> Redis {
        Redis::start_in(temp_dir("redis"), args)
    }

    /// Like [`Redis::start`], with `dir` as its working directory (for
    /// an RDB file made earlier).
    pub fn start_in(dir: PathBuf, args: &[&str]) -> Redis {
        let port = closed_port();
        let log = dir.join("redis.log");
        let mut child = Command::new(Redis::binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        wait_for_port(
            &mut child,
            port,
            Duration::from_secs(10),
            &log,
            "redis-server",
        );
        Redis {
            child,
            port,
            dir,
            keep_dir: false,
        }
    }

    pub fn grant(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first reply line.
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("send to redis");
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") && stream.read(&mut byte).expect("read from redis") == 1 {
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).trim_end().to_string()
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        let _ = self.child.wait();
    }

    /// Stops the server and returns its directory (with its RDB file),
    /// which is then the caller's.
    pub fn stop_keeping_files(mut self) -> PathBuf {
        self.keep_dir = true;
        signal(&self.child, libc::SIGTERM);
        let _ = self.child.wait();
        self.dir.clone()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---- PostgreSQL -------------------------------------------------------------------

/// The role `initdb` creates; authentication is `trust`.
pub const PG_USER: &str = "vigil";

/// A PostgreSQL cluster made by `initdb` in a temp dir. The server runs
/// as `nobody` when the tests run as root (PostgreSQL refuses root).
pub struct Postgres {
    bin: PathBuf,
    pub base: PathBuf,
    pub data: PathBuf,
    owner: Option<(u32, u32)>,
    server: Option<Child>,
    pub port: u16,
}

impl Postgres {
    /// The directory holding `initdb` and `postgres`: on PATH, or Debian's
    /// /usr/lib/postgresql/<version>/bin (the newest).
    pub fn bin_dir() -> PathBuf {
        let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        debian.sort_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
        debian.reverse();
        let postgres = find_binary("postgres", &debian).unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (no `postgres` on PATH or in \
                 /usr/lib/postgresql/*/bin): run scripts/setup.sh (or `make setup`), which \
                 runs `apt-get install postgresql`"
            )
        });
        let dir = postgres.parent().expect("a directory").to_path_buf();
        assert!(
            dir.join("initdb").is_file(),
            "{} has no initdb: run scripts/setup.sh (apt-get install postgresql)",
            dir.display()
        );
        dir
    }

    /// `initdb` with `trust` authentication for [`PG_USER`].
    pub fn init() -> Postgres {
        let bin = Postgres::bin_dir();
        let base = temp_dir("postgres");
        let data = base.join("data");
        // SAFETY: geteuid has no preconditions.
        let owner = (unsafe { libc::geteuid() } == 0).then(nobody);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown temp dir");
        }
        let log = base.join("initdb.log");
        let output = Postgres::command(&bin, "initdb", owner, &base)
            .arg("-D")
            .arg(&data)
            .args(["-U", PG_USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C", "--no-instructions"])
            .output()
            .expect("run initdb");
        std::fs::write(&log, [&output.stdout[..], &output.stderr[..]].concat()).ok();
        assert!(
            output.status.success(),
            "initdb failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Postgres {
            bin,
            base,
            data,
            owner,
            server: None,
            port: closed_port(),
        }
    }

    fn command(bin: &Path, tool: &str, owner: Option<(u32, u32)>, cwd: &Path) -> Command {
        let mut cmd = Command::new(bin.join(tool));
        cmd.current_dir(cwd)
            .env_remove("PGDATA")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Starts the server (in the foreground, as our child) with extra
    /// `-c name=value` settings, and waits until it listens.
    pub fn start(&mut self, settings: &[&str]) {
        assert!(self.server.is_none(), "already running");
        let log_path = self.base.join(format!("server-{}.log", self.port));
        let log = std::fs::File::create(&log_path).expect("server log");
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid)).expect("chown log");
        }
        let mut cmd = Postgres::command(&self.bin, "postgres", self.owner, &self.base);
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.base.display()))
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"]);
        for setting in settings {
            cmd.args(["-c", setting]);
        }
        let mut child = cmd
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        wait_for_port(
            &mut child,
            self.port,
            Duration::from_secs(30),
            &log_path,
            "postgres",
        );
        self.server = Some(child);
    }

    /// Waits until a new session is accepted (the server may listen
    /// before it accepts), or panics after `limit`.
    pub fn wait_ready(&self, limit: Duration) {
        let last = std::cell::RefCell::new(String::new());
        crate::support::poll_until(
            "postgres accepts a session",
            limit,
            || match pg_session(self.port, PG_USER, "postgres") {
                Ok(_) => Some(()),
                Err(e) => {
                    *last.borrow_mut() = e;
                    None
                }
            },
            || format!("last error: {}", last.borrow()),
        );
    }

    /// Sends `sig` to the postmaster: SIGTERM is a smart shutdown (waits
    /// for sessions to end), SIGINT a fast one.
    pub fn signal(&self, sig: i32) {
        signal(self.server.as_ref().expect("running"), sig);
    }

    /// Fast shutdown; waits for the server to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            signal(&child, libc::SIGINT);
            let _ = child.wait();
        }
    }

    /// Turns the cluster into a standby (it starts in recovery).
    pub fn make_standby(&self) {
        let signal = self.data.join("standby.signal");
        std::fs::write(&signal, "").expect("standby.signal");
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&signal, Some(uid), Some(gid)).expect("chown");
        }
    }

    pub fn grant(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            signal(&child, libc::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The uid and gid of `nobody`, from /etc/passwd (65534 if absent).
fn nobody() -> (u32, u32) {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.first() == Some(&"nobody") && fields.len() > 3)
                    .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                    .flatten()
            })
        })
        .unwrap_or((65534, 65534))
}

/// Opens a session with a protocol 3.0 startup packet and reads until
/// ReadyForQuery; the stream stays open (a client the server must wait
/// for in a smart shutdown). Err carries the server's error message.
pub fn pg_session(port: u16, user: &str, database: &str) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for part in ["user", user, "database", database] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    stream.write_all(&packet).map_err(|e| e.to_string())?;
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        stream.read_exact(&mut body).map_err(|e| e.to_string())?;
        match header[0] {
            b'Z' => return Ok(stream),
            b'E' => return Err(String::from_utf8_lossy(&body).replace('\0', " ")),
            _ => {}
        }
    }
}

// ---- the vigil binary -----------------------------------------------------------

/// What `vigil check --json` said.
#[derive(Debug)]
pub struct Verdict {
    /// The exit code: 0 ok, 75 retry, 1 error, 2 usage.
    pub code: i32,
    /// "ok", "retry", "error", "trapped", "timed-out"
    pub outcome: String,
    pub reason: String,
    /// stdout and stderr, for failure messages.
    pub raw: String,
}

impl Verdict {
    /// Asserts the exit code and that the reason contains `needle`.
    #[track_caller]
    pub fn expect(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(
            self.reason.contains(needle),
            "the reason should contain {needle:?}: {self:#?}"
        );
        self
    }
}

/// The compiled-component cache shared by these tests' `vigil` runs, so a
/// Python or JavaScript component compiles once and stays cached between
/// runs of the suite.
pub fn cli_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-cli-cache")
}

/// Runs `vigil check CHECK --json ARGS...` and parses its report.
pub fn vigil_check(check: &str, args: &[&str]) -> Verdict {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .arg(check)
        .arg("--json")
        .args(args)
        .env("XDG_CACHE_HOME", cli_cache())
        .stdin(Stdio::null())
        .output()
        .expect("run vigil check");
    let raw = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let code = output.status.code().unwrap_or(-1);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    Verdict {
        code,
        outcome: json["outcome"].as_str().unwrap_or_default().to_string(),
        reason: json["reason"].as_str().unwrap_or_default().to_string(),
        raw,
    }
}
