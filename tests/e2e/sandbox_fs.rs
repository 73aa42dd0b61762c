//! README "Checks are sandboxed", the `fs` and `process` capabilities under
//! attack: a check cannot race a path out of its grant, cannot use denials
//! as an oracle, never opens a FIFO or device, and sees the same process
//! tree through `tree` and `stat`. Real components, real files, real
//! processes.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{AT_FDCWD, OFlag, RenameFlags, renameat2};
use nix::sys::stat::{Mode, SFlag};
use vigil::wasm::{CheckReport, Sandbox, Verdict};

use crate::support::*;

/// Per check; the race checks make thousands of calls.
const LONG: Duration = Duration::from_secs(30);
/// Calls per race check.
const CALLS: u32 = 2_000;
/// The race tests go on until this many calls have been made (and both
/// sides of the swap were seen). The unfixed host leaked within a few
/// hundred.
const MIN_CALLS: u32 = 20_000;

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Exchanges two entries atomically (RENAME_EXCHANGE), over and over, on
/// its own thread until dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Swapper {
    fn start(a: PathBuf, b: PathBuf) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, swaps) = (stop.clone(), swaps.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    renameat2(AT_FDCWD, &a, AT_FDCWD, &b, RenameFlags::RENAME_EXCHANGE)
                        .expect("exchange");
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Swapper {
            stop,
            swaps,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The "ok=A denied=B other=C" tally of an fs_race report.
fn tally(report: &CheckReport) -> (u32, u32, u32) {
    let line = report
        .logs
        .iter()
        .find(|l| l.contains("ok="))
        .unwrap_or_else(|| panic!("no tally in {report:?}"));
    let field = |name: &str| -> u32 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    (field("ok="), field("denied="), field("other="))
}

/// With only `granted` granted, swaps `granted/NAME` and the symlink
/// `granted/swap` back and forth while the check does `op` on `path`:
/// no call may see `forbidden` (see [`hammer`]).
async fn race(op: &str, granted: &Path, name: &str, path: &Path, forbidden: &str) {
    let sandbox = sandbox(&[], &[granted.to_path_buf()], LONG);
    let swapper = Swapper::start(granted.join(name), granted.join("swap"));
    hammer(op, path, forbidden, &sandbox, &swapper).await;
}

/// Runs fs_race until at least MIN_CALLS calls were made and both sides
/// of the swap were seen (served from inside, and denied), failing on the
/// first call that saw the outside.
async fn hammer(op: &str, path: &Path, forbidden: &str, sandbox: &Sandbox, swapper: &Swapper) {
    let times = CALLS.to_string();
    let config = [
        ("op", op),
        ("path", utf8(path)),
        ("times", times.as_str()),
        ("forbidden", forbidden),
    ];
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut ok, mut denied, mut calls) = (0, 0, 0);
    while calls < MIN_CALLS || ok == 0 || denied == 0 {
        assert!(
            Instant::now() < deadline,
            "the race was not exercised: ok={ok} denied={denied} after {calls} calls, {} swaps",
            swapper.swaps.load(Ordering::Relaxed)
        );
        let report = run(programs::FS_RACE, &config, None, sandbox).await;
        assert_eq!(
            report.verdict,
            Verdict::Ok,
            "{op} saw the outside: {report:?}"
        );
        let (o, d, _) = tally(&report);
        ok += o;
        denied += d;
        calls += CALLS;
    }
}

/// A granted directory swapped, in a loop, with a symlink to a directory
/// outside the grant: thousands of reads through it never read the
/// outside file (the host used to resolve the path, then open it again by
/// name, and read the outside within a few hundred tries).
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_swapped_for_a_symlink_never_leaks_the_outside() {
    let root = scratch("swap-dir");
    let granted = root.join("granted");
    std::fs::create_dir_all(granted.join("dir")).expect("mkdir");
    std::fs::create_dir_all(root.join("outside/dir")).expect("mkdir");
    std::fs::write(granted.join("dir/file"), "inside").expect("write");
    std::fs::write(root.join("outside/dir/file"), "OUTSIDE-SECRET").expect("write");
    // Relative and climbing out: only the kernel's RESOLVE_BENEATH stops it.
    std::os::unix::fs::symlink("../outside/dir", granted.join("swap")).expect("symlink");
    race(
        "read",
        &granted,
        "dir",
        &granted.join("dir/file"),
        "OUTSIDE",
    )
    .await;
}

/// The same race on the last component, for stat: a granted file swapped
/// with a symlink to a file outside never shows the outside file's size.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_swapped_for_a_symlink_never_stats_the_outside() {
    let root = scratch("swap-file");
    let granted = root.join("granted");
    std::fs::create_dir_all(&granted).expect("mkdir");
    std::fs::write(granted.join("heartbeat"), "alive").expect("write");
    let outside = root.join("outside-secret");
    std::fs::write(&outside, vec![b'x'; 12_345]).expect("write");
    std::os::unix::fs::symlink(&outside, granted.join("swap")).expect("symlink");
    race(
        "stat",
        &granted,
        "heartbeat",
        &granted.join("heartbeat"),
        "12345",
    )
    .await;
}

/// Without a grant, every path is the same bare denial naming the path as
/// given: nothing about vigil's binary, another process's cwd or open
/// files, or what exists, comes back.
#[tokio::test(flavor = "multi_thread")]
async fn denials_are_not_an_oracle() {
    let secret_cwd = scratch("oracle-secret-cwd");
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .current_dir(&secret_cwd)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sleep");
    let pid = sleeper.id();
    let unrelated = scratch("oracle-granted");
    let paths = [
        "/proc/self/exe".to_string(),
        "/proc/self/cwd".to_string(),
        format!("/proc/{pid}/cwd"),
        format!("/proc/{pid}/cwd/anything"),
        format!("/proc/{pid}/fd/0"),
        "/etc/hostname/..".to_string(),
        "/etc/hostname".to_string(),
        "/nonexistent-vigil/missing".to_string(),
        "/nonexistent-vigil/missing/..".to_string(),
        format!("{}/../oracle-elsewhere", unrelated.display()),
    ];
    let sandboxes = [
        sandbox(&[], &[], LONG),
        sandbox(&[], std::slice::from_ref(&unrelated), LONG),
    ];
    let mut answers = BTreeSet::new();
    for sandbox in &sandboxes {
        for program in [programs::FS_READ, programs::FS_STAT] {
            for path in &paths {
                let report = run(program, &[("path", path)], None, sandbox).await;
                let Verdict::Error(reason) = &report.verdict else {
                    panic!("{path}: expected a denial, got {report:?}");
                };
                assert!(!reason.contains("oracle-secret-cwd"), "{path}: {reason}");
                answers.insert(reason.replace(path.as_str(), "<path>"));
            }
        }
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(answers.len(), 1, "different answers: {answers:#?}");
    let answer = answers.first().expect("one");
    assert!(
        answer.contains("Denied")
            && answer.contains(
                "<path>: not in [grants] paths: add \\\"<path>\\\" (or a directory above it) to [grants] paths (or --allow-path <path> with vigil check)"
            ),
        "{answer}"
    );
}

/// The documented symlink rule: a symlink beneath the granted root is
/// followed while its target stays beneath the root; an absolute target
/// (even one pointing inside), a target climbing out, a loop and /proc's
/// magic links are denied.
#[tokio::test(flavor = "multi_thread")]
async fn symlinks_are_followed_only_while_they_stay_inside() {
    let root = scratch("symlinks");
    let granted = root.join("granted");
    let release = granted.join("releases/42");
    std::fs::create_dir_all(&release).expect("mkdir");
    std::fs::write(release.join("heartbeat"), "beat").expect("write");
    std::fs::write(root.join("secret"), "OUTSIDE-SECRET").expect("write");
    let link = |target: &Path, name: &Path| {
        std::os::unix::fs::symlink(target, name).expect("symlink");
    };
    link(Path::new("releases/42"), &granted.join("current"));
    link(Path::new("../../current"), &release.join("up"));
    link(&release, &granted.join("absolute"));
    link(Path::new("../secret"), &granted.join("out"));
    link(Path::new("loop"), &granted.join("loop"));
    let sandbox = sandbox(&[], std::slice::from_ref(&granted), LONG);

    for inside in ["current/heartbeat", "releases/42/up/heartbeat"] {
        let path = granted.join(inside);
        for program in [programs::FS_READ, programs::FS_STAT] {
            let report = run(program, &[("path", utf8(&path))], None, &sandbox).await;
            assert_eq!(report.verdict, Verdict::Ok, "{inside}: {report:?}");
        }
    }
    for denied in ["absolute/heartbeat", "out", "loop"] {
        let path = granted.join(denied);
        for program in [programs::FS_READ, programs::FS_STAT] {
            let report = run(program, &[("path", utf8(&path))], None, &sandbox).await;
            match &report.verdict {
                Verdict::Error(reason) => {
                    assert!(reason.contains("Denied"), "{denied}: {reason}");
                    assert!(!reason.contains("OUTSIDE"), "{denied}: {reason}");
                    assert!(!reason.contains("releases"), "{denied}: {reason}");
                }
                other => panic!("{denied}: expected denied, got {other:?}"),
            }
        }
    }

    // Relative paths start at the service directory; `..` is lexical and
    // cannot climb out, and the denial names the path as given.
    let based = sandbox.with_base_dir(granted.clone());
    let report = run(
        programs::FS_READ,
        &[("path", "current/heartbeat")],
        None,
        &based,
    )
    .await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    let report = run(programs::FS_READ, &[("path", "../secret")], None, &based).await;
    match &report.verdict {
        Verdict::Error(reason) => assert!(
            reason.contains("Denied")
                && reason.contains(
                    "\"../secret: not in [grants] paths: add \\\"../secret\\\" (or a directory above it) to [grants] paths (or --allow-path ../secret with vigil check)\""
                ),
            "{reason}"
        ),
        other => panic!("expected denied, got {other:?}"),
    }
}

/// Under a granted /proc, plain files and /proc/self are readable, but
/// the magic links (cwd, exe, fd/N) lead nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn magic_links_are_denied_even_under_a_granted_proc() {
    let secret_cwd = scratch("magic-secret-cwd");
    std::fs::write(secret_cwd.join("file"), "OUTSIDE-SECRET").expect("write");
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .current_dir(&secret_cwd)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sleep");
    let pid = sleeper.id();
    let sandbox = sandbox(&[], &[PathBuf::from("/proc")], LONG);
    let report = run(
        programs::FS_READ,
        &[("path", "/proc/self/stat")],
        None,
        &sandbox,
    )
    .await;
    assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
    for path in [
        format!("/proc/{pid}/cwd/file"),
        format!("/proc/{pid}/cwd"),
        format!("/proc/{pid}/fd/0"),
        "/proc/self/exe".to_string(),
    ] {
        for program in [programs::FS_READ, programs::FS_STAT] {
            let report = run(program, &[("path", &path)], None, &sandbox).await;
            match &report.verdict {
                Verdict::Error(reason) => {
                    assert!(reason.contains("Denied"), "{path}: {reason}");
                    assert!(!reason.contains("secret"), "{path}: {reason}");
                }
                other => panic!("{path}: expected denied, got {other:?}"),
            }
        }
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// Blocks in `open(O_WRONLY)` on a FIFO until some reader opens it, which
/// is how we notice that the host opened it.
struct FifoWitness {
    thread: JoinHandle<bool>,
    released: Arc<AtomicBool>,
    fifo: PathBuf,
}

impl FifoWitness {
    fn start(fifo: &Path) -> FifoWitness {
        let released = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let (fifo, released) = (fifo.to_path_buf(), released.clone());
            move || {
                tx.send(nix::unistd::gettid()).expect("send tid");
                let _writer: OwnedFd =
                    nix::fcntl::open(&fifo, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .expect("open fifo for writing");
                // Opened before the test released it: someone else read.
                released.load(Ordering::SeqCst)
            }
        });
        let tid = rx.recv().expect("tid");
        // The only place the witness can sleep is the open.
        wait_until(
            "the witness blocks opening the FIFO",
            Duration::from_secs(60),
            || {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(')')
                            .map(|(_, rest)| rest.trim_start().starts_with('S'))
                    })
                    .unwrap_or(false)
            },
        );
        FifoWitness {
            thread,
            released,
            fifo: fifo.to_path_buf(),
        }
    }

    /// Whether nobody opened the FIFO for reading before now.
    fn untouched(self) -> bool {
        self.released.store(true, Ordering::SeqCst);
        let reader = nix::fcntl::open(
            &self.fifo,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open fifo to release the witness");
        let untouched = self.thread.join().expect("witness");
        drop(reader);
        untouched
    }
}

/// A FIFO or a device in a granted directory is stat-able but never
/// opened: a read is `invalid` at once (no hang, no open).
#[tokio::test(flavor = "multi_thread")]
async fn fifos_and_devices_are_never_opened() {
    let granted = scratch("special-files");
    let fifo = granted.join("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let sandbox = sandbox(&[], std::slice::from_ref(&granted), LONG);
    let witness = FifoWitness::start(&fifo);

    let mut special = vec![fifo.clone()];
    let null = granted.join("null");
    match nix::sys::stat::mknod(
        &null,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    ) {
        Ok(()) => special.push(null),
        Err(err) => eprintln!("no character device part: mknod: {err}"),
    }
    for path in &special {
        let report = run(programs::FS_READ, &[("path", utf8(path))], None, &sandbox).await;
        match &report.verdict {
            Verdict::Error(reason) => assert!(
                reason.contains("Invalid") && reason.contains("not a regular file"),
                "{path:?}: {reason}"
            ),
            other => panic!("{path:?}: expected invalid, got {other:?}"),
        }
        let report = run(programs::FS_STAT, &[("path", utf8(path))], None, &sandbox).await;
        assert_eq!(report.verdict, Verdict::Ok, "{report:?}");
        assert!(
            report.logs.iter().any(|l| l.contains("kind=Kind::Other")),
            "{report:?}"
        );
    }
    assert!(witness.untouched(), "the host opened the FIFO");
}

/// `vigil check --pid 1`: every pid `tree` lists, `stat` answers (the walk
/// up the tree used to stop below pid 1, denying its children). Run in a
/// fresh pid namespace, so pid 1 is a shell with two children and vigil.
#[test]
fn with_pid_1_as_target_tree_and_stat_agree() {
    if !can_unshare_pid() {
        eprintln!("skipped: `unshare --pid --fork --mount-proc` is not permitted here");
        return;
    }
    let script = r#"sleep 1000 & a=$!; sleep 1000 & b=$!; "$0" check "$1" --pid 1; rc=$?; kill $a $b; exit $rc"#;
    let output = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            script,
        ])
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(programs::PROCESS_TREE)
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-fs-cache"),
        )
        .output()
        .expect("run unshare");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
