//! What every end-to-end test needs, in one place: scratch directories,
//! waiting with a deadline, the `vigil` binary (run as a supervisor, a
//! CLI client or a one-shot check), the in-process engine, and loopback
//! servers.
//!
//! - [`runner`]: a checks directory, `vigil run` on it (stopped on drop,
//!   children included) and its journal.
//! - [`control`]: the CLI clients of a running vigil.
//! - [`wasm`]: the shared engine, sandboxes and one-call checks.
//! - [`loopback`]: HTTP and TCP servers on 127.0.0.1.
//!
//! Waiting is always for something that must happen (a journal event, a
//! status, a file), polled with a generous deadline: never a fixed sleep.

#![allow(dead_code)]

mod control;
mod loopback;
mod runner;
mod wasm;

pub use control::*;
pub use loopback::*;
pub use runner::*;
pub use wasm::*;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

#[macro_use]
pub mod programs {
    include!(concat!(env!("OUT_DIR"), "/test_programs.rs"));
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Generous deadline for anything that should happen "soon": the suite runs
/// many vigils and hostile checks in parallel on a couple of cores.
pub const SOON: Duration = Duration::from_secs(30);

/// A scratch directory under the target dir, fresh for each name.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Poll `probe` every 20 ms until it returns something; once `timeout`
/// has passed, panic naming `what`, with whatever `context` says then
/// (vigil's journal and stderr, a server's log, ...).
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `cond` until it holds or `timeout` passes; panics with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    poll_until(what, timeout, || cond().then_some(()), String::new)
}

/// A command's output as text (lossily decoded).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panic with both streams (escaped: they may hold what a hostile check
/// said) unless the command exited with `code`.
pub fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout).escape_debug(),
        text(&out.stderr).escape_debug()
    );
}

/// True when this machine lets us make a pid namespace (`unshare --pid
/// --fork --mount-proc`); the tests that need one skip themselves (and say
/// so) where it does not, as in an unprivileged container.
pub fn can_unshare_pid() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
}
