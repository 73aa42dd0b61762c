//! `vigil:health/process`: stats of the target's own process tree, read
//! from /proc. A pid outside the tree is `denied`, so a check cannot probe
//! other services or the host.

use crate::wasm::bindings::ErrorCode;
use crate::wasm::bindings::checker::vigil::health::process::{self, State, Stats};
use crate::wasm::store::HostState;

/// The fields of /proc/<pid>/stat a check may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub parent_pid: u32,
    pub state: char,
    pub cpu_ticks: u64,
    pub threads: u32,
    pub rss_pages: u64,
    pub start_ticks: u64,
}

/// Parses /proc/<pid>/stat. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 of proc(5).
    let field = |n: usize| fields.get(n - 3).copied();
    let number = |n: usize| field(n).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        state: field(3)?.chars().next()?,
        parent_pid: number(4)? as u32,
        cpu_ticks: number(14)? + number(15)?,
        threads: number(20)? as u32,
        start_ticks: number(22)?,
        rss_pages: number(24)?,
    })
}

/// Reads and parses /proc/<pid>/stat; `None` when the process is gone.
pub fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
                children.extend(
                    list.split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    children.sort_unstable();
    children.dedup();
    children
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

/// Whether `pid` is `root` or one of its descendants.
fn in_tree(root: u32, pid: u32) -> bool {
    let mut current = pid;
    // Bounded walk: a pid chain cannot be longer than pid_max, but a
    // pathological /proc must not hang us.
    for _ in 0..4096 {
        if current == root {
            return true;
        }
        match read_stat(current) {
            Some(stat) if stat.parent_pid > 1 && stat.parent_pid != current => {
                current = stat.parent_pid
            }
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

fn stats_of(pid: u32) -> Result<Stats, ErrorCode> {
    let stat = read_stat(pid).ok_or(ErrorCode::NotFound)?;
    let ticks_per_second = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100).max(1);
    let page_size = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u32)
        .unwrap_or(0);
    let state = state_of(stat.state);
    Ok(Stats {
        pid,
        parent_pid: stat.parent_pid,
        alive: !matches!(state, State::Zombie | State::Dead),
        state,
        rss_bytes: stat.rss_pages * page_size,
        cpu_time_ms: stat.cpu_ticks * 1000 / ticks_per_second,
        threads: stat.threads,
        open_fds,
        children: children_of(pid),
    })
}

impl process::Host for HostState {
    async fn target_pid(&mut self) -> Result<u32, ErrorCode> {
        self.target()
    }

    async fn stat(&mut self, pid: u32) -> Result<Stats, ErrorCode> {
        let root = self.target()?;
        if pid != root && !in_tree(root, pid) {
            return Err(ErrorCode::Denied(format!(
                "pid {pid} is not in the process tree of the target (pid {root})"
            )));
        }
        stats_of(pid)
    }

    async fn tree(&mut self) -> Result<Vec<u32>, ErrorCode> {
        let root = self.target()?;
        if read_stat(root).is_none() {
            return Err(ErrorCode::NotFound);
        }
        let mut tree = vec![root];
        let mut next = 0;
        while next < tree.len() && tree.len() < 65_536 {
            let children = children_of(tree[next]);
            tree.extend(children);
            next += 1;
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let text = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 15 5 0 0 20 0 3 0 1234 1000 250 18446744073709551615";
        let stat = parse_stat(42, text).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.parent_pid, 7);
        assert_eq!(stat.cpu_ticks, 20);
        assert_eq!(stat.threads, 3);
        assert_eq!(stat.start_ticks, 1234);
        assert_eq!(stat.rss_pages, 250);
    }

    #[test]
    fn our_own_process_is_in_our_tree_and_init_is_not() {
        let me = std::process::id();
        assert!(in_tree(me, me));
        assert!(!in_tree(me, 1));
    }
}
