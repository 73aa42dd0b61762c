//! `vigil:health/process`: stats of the target's own process tree, read
//! from /proc. A pid outside the tree is `denied`, so a check cannot probe
//! other services or the host. The /proc reads run on the blocking pool
//! under the call's deadline.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{HostError, blocking};
use crate::procfs::{self, Stat};
use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::process::{self, State, Stats};
use crate::wasm::store::HostState;

/// `/proc/<pid>/stat` of `pid`; `None` when it is gone (or not a pid).
fn read_stat(pid: u32) -> Option<Stat> {
    procfs::stat(i32::try_from(pid).ok()?)
}

/// A pid as the guest sees it: never negative (0 for none).
fn guest_pid(pid: i32) -> u32 {
    u32::try_from(pid).unwrap_or(0)
}

/// A process pinned by an open /proc/<pid> directory. Reads through it
/// answer for the process it was opened for, or fail once that process is
/// gone: never for a later process that got the same pid.
struct Pinned {
    dir: OwnedFd,
    stat: Stat,
}

impl Pinned {
    fn open(pid: u32) -> Option<Pinned> {
        let dir = nix::fcntl::open(
            format!("/proc/{pid}").as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let stat = procfs::stat_at(&dir)?;
        Some(Pinned { dir, stat })
    }
}

fn read_at(dir: impl AsFd, name: &str) -> Option<String> {
    let fd =
        nix::fcntl::openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    let mut text = String::new();
    File::from(fd).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Names in the directory `name` beneath `dir`. Listed through our own
/// descriptor's /proc/self/fd entry, which stays on the pinned directory.
fn entries_at(dir: impl AsFd, name: &str) -> Vec<String> {
    let path = format!("/proc/self/fd/{}/{name}", dir.as_fd().as_raw_fd());
    let Ok(listing) = std::fs::read_dir(path) else {
        return Vec::new();
    };
    listing
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

/// Direct children of the process `dir` is the /proc directory of: the
/// children of each of its threads.
fn children_at(dir: impl AsFd) -> Vec<u32> {
    let dir = dir.as_fd();
    let mut children: Vec<u32> = entries_at(dir, "task")
        .iter()
        .filter_map(|tid| read_at(dir, &format!("task/{tid}/children")))
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    children.sort_unstable();
    children.dedup();
    children
}

fn children_of(pid: u32) -> Vec<u32> {
    match nix::fcntl::open(
        format!("/proc/{pid}").as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => children_at(&dir),
        Err(_) => Vec::new(),
    }
}

fn sysconf(name: nix::unistd::SysconfVar, fallback: u64) -> u64 {
    nix::unistd::sysconf(name)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(fallback)
}

fn state_of(code: char) -> State {
    match code {
        'R' => State::Running,
        'S' | 'I' => State::Sleeping,
        'D' => State::DiskSleep,
        'T' => State::Stopped,
        't' => State::TracingStop,
        'Z' => State::Zombie,
        'X' | 'x' => State::Dead,
        _ => State::Other,
    }
}

/// Whether the process `stat` describes is `root` or descends from it,
/// walking parent pids until pid 0, so that any root (1 included) is
/// treated alike and `stat` agrees with `tree`. A parent never starts
/// after its child: a pid in the chain that is younger than its child was
/// reused by a newer process, and the walk stops there (not in the tree),
/// so pid reuse cannot graft a stranger onto the tree.
fn descends_from(root: u32, stat: Stat, lookup: impl Fn(u32) -> Option<Stat>) -> bool {
    let mut current = stat;
    // Bounded: a pathological /proc must not hang us.
    for _ in 0..4096 {
        if guest_pid(current.pid) == root {
            return true;
        }
        let parent = guest_pid(current.ppid);
        if parent == 0 || parent == guest_pid(current.pid) {
            return false;
        }
        match lookup(parent) {
            Some(up) if up.start_time <= current.start_time => current = up,
            _ => return false,
        }
    }
    false
}

impl HostState {
    fn target(&self) -> Result<u32, ErrorCode> {
        self.caps.target_pid.ok_or(ErrorCode::NotFound)
    }
}

/// Stats of a pinned process. A process that ended since it was pinned is
/// `not-found`.
fn stats_of(process: &Pinned) -> Result<Stats, ErrorCode> {
    let pid = guest_pid(process.stat.pid);
    let stat = procfs::stat_at(&process.dir).ok_or(ErrorCode::NotFound)?;
    let ticks_per_second = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100).max(1);
    let page_size = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let open_fds = entries_at(&process.dir, "fd").len() as u32;
    let children = children_at(&process.dir);
    let state = state_of(stat.state);
    Ok(Stats {
        pid,
        parent_pid: guest_pid(stat.ppid),
        alive: !matches!(state, State::Zombie | State::Dead),
        state,
        rss_bytes: stat.rss_pages * page_size,
        cpu_time_ms: stat.cpu_ticks * 1000 / ticks_per_second,
        threads: stat.threads,
        open_fds,
        children,
    })
}

/// `stat` of the process interface: `pid` must be `root` or descend from
/// it; a pid that does not exist is denied like one outside the tree, so
/// the answer tells nothing about processes outside it.
fn stat_in_tree(root: u32, pid: u32) -> Result<Stats, ErrorCode> {
    let denied = || {
        ErrorCode::Denied(format!(
            "pid {pid} is not in the process tree of the target (pid {root})"
        ))
    };
    let Some(process) = Pinned::open(pid) else {
        return Err(if pid == root {
            ErrorCode::NotFound
        } else {
            denied()
        });
    };
    if !descends_from(root, process.stat, read_stat) {
        return Err(denied());
    }
    stats_of(&process)
}

/// Every pid in the tree of `root`, `root` first, breadth first.
fn tree_of(root: u32) -> Result<Vec<u32>, ErrorCode> {
    if read_stat(root).is_none() {
        return Err(ErrorCode::NotFound);
    }
    let mut seen = HashSet::from([root]);
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() && tree.len() < 65_536 {
        for child in children_of(tree[next]) {
            if seen.insert(child) {
                tree.push(child);
            }
        }
        next += 1;
    }
    Ok(tree)
}

impl process::Host for HostState {
    async fn target_pid(&mut self) -> Result<u32, HostError> {
        Ok(self.target()?)
    }

    async fn stat(&mut self, pid: u32) -> Result<Stats, HostError> {
        let root = self.target()?;
        blocking(self.caps.call_timeout(None), move || {
            stat_in_tree(root, pid)
        })
        .await
    }

    async fn tree(&mut self) -> Result<Vec<u32>, HostError> {
        let root = self.target()?;
        blocking(self.caps.call_timeout(None), move || tree_of(root)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_in_our_tree_and_init_is_not() {
        let me = std::process::id();
        assert!(matches!(stat_in_tree(me, me), Ok(s) if s.pid == me));
        assert!(matches!(stat_in_tree(me, 1), Err(ErrorCode::Denied(_))));
        // A pid that does not exist is denied, like one outside the tree.
        assert!(matches!(stat_in_tree(me, 0), Err(ErrorCode::Denied(_))));
    }

    fn process(pid: i32, ppid: i32, start_time: u64) -> Stat {
        Stat {
            pid,
            state: 'S',
            ppid,
            pgrp: pid,
            session: pid,
            cpu_ticks: 0,
            threads: 1,
            start_time,
            rss_pages: 0,
        }
    }

    /// A process table: (pid, parent pid, start ticks).
    fn table(rows: &[(i32, i32, u64)]) -> impl Fn(u32) -> Option<Stat> + use<> {
        let rows: Vec<Stat> = rows.iter().map(|&(p, pp, t)| process(p, pp, t)).collect();
        move |pid| rows.iter().find(|row| guest_pid(row.pid) == pid).copied()
    }

    /// Pid 1 is a root like any other: its children and grandchildren are
    /// in its tree (the walk used to stop at a parent pid of 1).
    #[test]
    fn pid_1_is_a_root_like_any_other() {
        let lookup = table(&[(1, 0, 1), (7, 1, 5), (9, 7, 6), (2, 0, 1), (30, 2, 3)]);
        assert!(descends_from(1, process(9, 7, 6), &lookup));
        assert!(descends_from(1, process(7, 1, 5), &lookup));
        assert!(descends_from(1, process(1, 0, 1), &lookup));
        // Kernel threads hang off pid 2, not 1.
        assert!(!descends_from(1, process(30, 2, 3), &lookup));
        assert!(descends_from(7, process(9, 7, 6), &lookup));
        assert!(!descends_from(9, process(7, 1, 5), &lookup));
    }

    /// The parent pid of a process whose parent died and whose pid was then
    /// reused by a younger process in the tree does not make it a member.
    #[test]
    fn a_reused_parent_pid_does_not_graft_a_process_onto_the_tree() {
        // 50 started at tick 10 as the child of an old 40 (outside the
        // tree); 40 died and its pid went to a process under root 7,
        // started at tick 20.
        let lookup = table(&[(1, 0, 1), (7, 1, 5), (40, 7, 20), (50, 40, 10)]);
        assert!(!descends_from(7, process(50, 40, 10), &lookup));
        assert!(descends_from(7, process(40, 7, 20), &lookup));
    }

    /// The live process table agrees: the top of our own chain of parents
    /// is a root whose tree holds us, and `stat` says so too.
    #[test]
    fn tree_and_stat_agree_from_the_top_of_our_chain() {
        let me = std::process::id();
        let mut top = read_stat(me).expect("our stat");
        while let Some(up) = read_stat(guest_pid(top.ppid)) {
            top = up;
        }
        let top = guest_pid(top.pid);
        assert!(tree_of(top).expect("tree").contains(&me));
        let stat = stat_in_tree(top, me);
        assert!(matches!(&stat, Ok(s) if s.pid == me), "{stat:?}");
    }
}
