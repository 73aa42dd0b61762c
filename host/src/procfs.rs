//! The one reader of `/proc/PID/stat`: the supervisor (start times, groups,
//! sessions), the notify socket (a sender's group) and the `process`
//! capability (a check's view of its target) all parse it here.
//!
//! The second field, the command name (`comm`), is chosen by the process
//! (`prctl(PR_SET_NAME)`, or the name of the file it executed) and is not
//! escaped by the kernel: it may hold spaces, parentheses, `") "`,
//! newlines and bytes that are not UTF-8. So the text is parsed as bytes,
//! and the fields are counted from the *last* `)` of the line, which is
//! always the one closing the command name: no later field can hold one.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The fields of `/proc/PID/stat` that Vigil uses (proc(5) numbers them
/// from 1: pid is field 1, comm 2, state 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: i32,
    /// Field 3: `R`, `S`, `D`, `Z`, `T`, ...
    pub state: char,
    /// Field 4; 0 for the roots of the process table.
    pub ppid: i32,
    /// Field 5: the process group.
    pub pgrp: i32,
    /// Field 6: the session.
    pub session: i32,
    /// Fields 14 + 15: user and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Field 20.
    pub threads: u32,
    /// Field 22: clock ticks after boot when the process started. With the
    /// pid it names one process: a reused pid has a later start time.
    pub start_time: u64,
    /// Field 24: resident set size, in pages.
    pub rss_pages: u64,
}

/// The last field [`Stat`] needs.
const LAST_FIELD: usize = 24;

/// The pid (field 1) and the fields from 3 on, whitespace-separated, of the
/// text of a stat file; `None` when it is not one.
fn split(text: &[u8]) -> Option<(i32, impl Iterator<Item = &[u8]>)> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = number(text[..open].trim_ascii())?;
    // The kernel writes `") "` after the name; anything else is not a stat
    // line (or one cut inside the name).
    let rest = text.get(close + 1..)?.strip_prefix(b" ")?;
    Some((
        pid,
        rest.split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty()),
    ))
}

fn number<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Parse the text of a stat file.
pub fn parse(text: &[u8]) -> Option<Stat> {
    let (pid, rest) = split(text)?;
    // fields[0] is field 3 of proc(5); field N is fields[N - 3].
    let fields: Vec<&[u8]> = rest.take(LAST_FIELD - 2).collect();
    let field = |n: usize| fields.get(n - 3).copied();
    let state = match field(3)? {
        [state] if state.is_ascii_alphabetic() => char::from(*state),
        _ => return None,
    };
    Some(Stat {
        pid,
        state,
        ppid: number(field(4)?)?,
        pgrp: number(field(5)?)?,
        session: number(field(6)?)?,
        cpu_ticks: number::<u64>(field(14)?)?.saturating_add(number(field(15)?)?),
        threads: number(field(20)?)?,
        start_time: number(field(22)?)?,
        rss_pages: number(field(24)?)?,
    })
}

/// `/proc/<pid>/stat`; `None` when the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    read(&Path::new("/proc").join(pid.to_string()).join("stat"))
}

/// The `stat` file beneath `dir`, an open `/proc/<pid>` directory: the
/// answer is for the process the directory was opened for, or `None` once
/// it is gone, never for a later process that got the same pid.
pub fn stat_at(dir: impl AsFd) -> Option<Stat> {
    let fd = nix::fcntl::openat(
        dir,
        "stat",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut text = Vec::with_capacity(512);
    File::from(fd).read_to_end(&mut text).ok()?;
    parse(&text)
}

fn read(path: &Path) -> Option<Stat> {
    parse(&std::fs::read(path).ok()?)
}

/// Start time of `pid` in clock ticks after boot, if it is alive.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// The process group of `pid` (field 5), in one read into a buffer on the
/// stack: the notify socket asks this for every datagram that is not from
/// a current child itself. The fields after the group may be cut off.
pub fn process_group(pid: i32) -> Option<i32> {
    let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
    // Up to the group: pid, a command name of at most 64 bytes, state and
    // parent; a read of a /proc file is not short while it fits.
    let mut buf = [0u8; 256];
    let n = file.read(&mut buf).ok()?;
    let (_, mut rest) = split(buf.get(..n)?)?;
    // state, ppid, pgrp
    number(rest.nth(2)?)
}

/// Every process (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| read(&e.path().join("stat")))
        .filter(|s| s.pgrp == pgid)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};

    use super::*;

    /// A stat line with `comm` and otherwise fixed fields: state S, ppid 7,
    /// pgrp 40, session 41, utime 15, stime 5, 3 threads, start 1234,
    /// rss 250.
    fn line(comm: &[u8]) -> Vec<u8> {
        let mut text = b"42 (".to_vec();
        text.extend_from_slice(comm);
        text.extend_from_slice(
            b") S 7 40 41 0 -1 4194560 100 0 0 0 15 5 0 0 20 0 3 0 1234 1000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
        );
        text
    }

    fn expected() -> Stat {
        Stat {
            pid: 42,
            state: 'S',
            ppid: 7,
            pgrp: 40,
            session: 41,
            cpu_ticks: 20,
            threads: 3,
            start_time: 1234,
            rss_pages: 250,
        }
    }

    /// Names a process can give itself, each built to fool a parser that
    /// splits at the first `)`, at whitespace, at lines or as UTF-8.
    #[test]
    fn hostile_command_names_do_not_shift_the_fields() {
        let hostile: [&[u8]; 10] = [
            b"sleep",
            b"",
            b"a b",
            b"a) R 1 1 1",
            b") Z 9 9 9 0",
            b"(((",
            b")))",
            b"x\n) T 3 3 3\n",
            b"\xff\xfe) S 1",
            b"a (b) c)) S",
        ];
        for comm in hostile {
            assert_eq!(
                parse(&line(comm)),
                Some(expected()),
                "comm {:?}",
                String::from_utf8_lossy(comm)
            );
            let mut buf = line(comm);
            buf.truncate(buf.len().min(60));
            let (pid, mut rest) = split(&buf).expect("a prefix splits");
            assert_eq!(pid, 42);
            assert_eq!(rest.nth(2), Some(&b"40"[..]), "group of {comm:?}");
        }
    }

    #[test]
    fn what_is_not_a_stat_line_is_none() {
        for text in [
            &b"garbage"[..],
            b"",
            b"42 (x)",
            b"42 (x) S 7",
            b"42 x) S 7 40 41",
            b"x (y) S 7 40 41 0 -1 4194560 100 0 0 0 15 5 0 0 20 0 3 0 1234 1000 250",
            // Not `") "` after the name: a line cut inside it.
            b"42 (a)b",
        ] {
            assert_eq!(parse(text), None, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn our_own_process_is_readable() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert_eq!(s.pid, me);
        assert_eq!(s.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(start_time(me), Some(s.start_time));
        assert_eq!(process_group(me), Some(s.pgrp));
        assert!(group_members(s.pgrp).iter().any(|m| m.pid == me));
        let dir = nix::fcntl::open(
            format!("/proc/{me}").as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open our /proc directory");
        assert_eq!(stat_at(&dir).map(|s| s.start_time), Some(s.start_time));
        assert_eq!(stat(i32::MAX), None);
        assert_eq!(process_group(i32::MAX), None);
    }

    /// A real process whose command name (the name of the file it
    /// executed) holds `") "`, a newline and bytes that are not UTF-8 is
    /// still seen, with its own group: a reader that wants UTF-8 text
    /// would lose it, and one that splits at the first `)` would read
    /// fields the process wrote itself.
    #[test]
    fn a_process_with_a_hostile_name_is_seen_as_it_is() {
        let dir = std::env::temp_dir().join(format!("vigil-procfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let name = OsStr::from_bytes(b"\xff) Z 1 1 1\n(");
        let link = dir.join(name);
        std::os::unix::fs::symlink("/bin/sleep", &link).expect("symlink");
        let mut child = Command::new(&link)
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep under a hostile name");
        let pid = child.id() as i32;
        // Until it has executed, the child has our name; then its own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let comm = loop {
            let comm = std::fs::read(format!("/proc/{pid}/comm")).expect("comm");
            if comm.starts_with(b"\xff") || std::time::Instant::now() > deadline {
                break comm;
            }
            std::thread::yield_now();
        };
        let seen = stat(pid);
        let group = process_group(pid);
        let members = group_members(nix::unistd::getpgrp().as_raw());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(comm.starts_with(b"\xff) Z 1 1 1\n("), "{comm:?}");
        let seen = seen.expect("the process is seen");
        assert_eq!(seen.pid, pid);
        assert_ne!(seen.state, 'Z');
        assert_eq!(seen.ppid, std::process::id() as i32);
        assert_eq!(seen.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(group, Some(seen.pgrp));
        assert!(members.iter().any(|m| m.pid == pid), "{members:?}");
    }
}
