//! Stopping a child: the stop signal to its whole process group, the grace
//! period, then SIGKILL to the group. The grace is the whole group's:
//! members left behind by a leader that already exited get the rest of it.
//!
//! The supervisor drives these steps through its reducer (signals, a
//! `StopGrace` timer, [`wait_group_gone`]); this module holds the
//! primitives, and the stop of a previous instance's leftovers.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::procfs;

/// How often group membership is polled while waiting for stragglers.
const POLL: Duration = Duration::from_millis(10);

/// Send `sig` to the process group `pgid`. A group that no longer exists
/// is not an error.
pub fn signal_group(pgid: Pid, sig: Signal) -> nix::Result<()> {
    match killpg(pgid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ask group `pgid` to stop: `sig`, then SIGCONT, as systemd does. A
/// process stopped by SIGSTOP (a hung service we are replacing, say) keeps
/// a SIGTERM pending until it runs again; without the SIGCONT every stop of
/// a stopped child would wait out the whole grace and end in SIGKILL.
pub fn request_stop(pgid: Pid, sig: Signal) -> nix::Result<()> {
    signal_group(pgid, sig)?;
    if !matches!(sig, Signal::SIGKILL | Signal::SIGCONT) {
        signal_group(pgid, Signal::SIGCONT)?;
    }
    Ok(())
}

/// True while any process (zombies included) is in group `pgid`.
pub fn group_alive(pgid: Pid) -> bool {
    // EPERM means it exists but is not ours to signal.
    matches!(killpg(pgid, None), Ok(()) | Err(Errno::EPERM))
}

/// SIGKILL whatever is left of group `pgid`; true when something was there.
pub fn kill_remnants(pgid: Pid) -> bool {
    killpg(pgid, Signal::SIGKILL).is_ok()
}

/// Wait until nothing (zombies included) is left of group `pgid`, polling,
/// or until `deadline`. True when the group is gone.
///
/// Members of our children's groups re-parent to Vigil (a subreaper) and
/// are reaped by the reaper, so a group of ours always empties once its
/// members die; a zombie still counts, so that its `orphan-reaped` comes
/// before anything that treats the group as gone.
pub async fn wait_group_gone(pgid: Pid, deadline: Option<tokio::time::Instant>) -> bool {
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True while anything of a service's child is left: a member of its
/// process group (zombies included), or a process in its cgroup (one that
/// called `setsid` or left the group is still there).
pub fn service_alive(pgid: Pid, cgroup: Option<&Cgroup>) -> bool {
    group_alive(pgid) || cgroup.is_some_and(Cgroup::populated)
}

/// Send `sig` to a service's child: its process group, and everything in
/// its cgroup that left the group (SIGKILL through `cgroup.kill` where the
/// kernel has it). Each process gets `sig` once.
pub fn signal_service(pgid: Pid, cgroup: Option<&Cgroup>, sig: Signal) -> nix::Result<()> {
    let sent = signal_group(pgid, sig);
    if let Some(cgroup) = cgroup {
        if sig == Signal::SIGKILL {
            cgroup.kill();
        } else {
            cgroup.signal_outside_group(sig, pgid.as_raw());
        }
    }
    sent
}

/// [`wait_group_gone`] for the group and the cgroup.
pub async fn wait_service_gone(
    pgid: Pid,
    cgroup: Option<&Cgroup>,
    deadline: Option<tokio::time::Instant>,
) -> bool {
    loop {
        if !service_alive(pgid, cgroup) {
            return true;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stop what a previous instance left in a service's cgroup (processes
/// that left its process group escape the journal's view): `sig` to
/// each, `grace`, then SIGKILL to the cgroup. Returns how many processes
/// were there.
pub async fn stop_foreign_cgroup(cgroup: &Cgroup, sig: Signal, grace: Duration) -> usize {
    let found = cgroup.signal(sig);
    if found == 0 {
        return 0;
    }
    cgroup.signal(Signal::SIGCONT);
    let deadline = Instant::now() + grace;
    while cgroup.populated() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if cgroup.populated() {
        cgroup.kill();
    }
    found
}

/// A child of a previous Vigil instance, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignGroup {
    /// Leader pid, which is also the process group id.
    pub pgid: i32,
    /// The leader's start time recorded at spawn.
    pub start_time: u64,
}

impl ForeignGroup {
    /// True when the group still belongs to that child.
    ///
    /// - Leader alive: its start time must be the recorded one (pid and
    ///   start time identify a process).
    /// - Leader gone, members left: only the pgid is left to go by, so the
    ///   rule leans on what the kernel guarantees. A pid is not handed out
    ///   again while it is some process's group or session id, and Vigil's
    ///   children lead their own session, which members cannot leave
    ///   without leaving the group. So while anything of our child's
    ///   session lives, its pgid cannot name anyone else's group; a group
    ///   of that id that is not ours can only exist after ours emptied
    ///   completely, the pid came round again (pids are handed out
    ///   cyclically) and its new owner became a group leader and died. We
    ///   take the group as ours only when every member is in session
    ///   `pgid` (a group made by a shell's job control is in its shell's
    ///   session: never ours) and none started before the recorded leader
    ///   (a descendant cannot predate it; this also rules out most groups
    ///   of an earlier boot, whose clock restarted).
    ///
    /// What remains possible: between a crash and the next start, the pid
    /// wraps round to the old leader's, its new owner calls `setsid`,
    /// forks and exits, and its children are still alive. We accept that
    /// risk against leaving our grandchildren running.
    pub fn is_ours(&self) -> bool {
        match procfs::stat(self.pgid) {
            Some(s) => s.start_time == self.start_time,
            None => {
                let members = procfs::group_members(self.pgid);
                !members.is_empty()
                    && members
                        .iter()
                        .all(|m| m.session == self.pgid && m.start_time >= self.start_time)
            }
        }
    }
}

/// Stop what is left of a previous instance's child: `sig`, `grace`,
/// SIGKILL. The processes are not our children, so membership is polled.
/// Returns false when the group was not ours (a reused pid) and was left
/// alone, or held nothing alive (only zombies nobody reaped).
pub async fn stop_foreign_group(group: &ForeignGroup, sig: Signal, grace: Duration) -> bool {
    if !group.is_ours() || !live_members(group.pgid) {
        return false;
    }
    let pgid = Pid::from_raw(group.pgid);
    let _ = request_stop(pgid, sig);
    let deadline = Instant::now() + grace;
    while live_members(group.pgid) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if live_members(group.pgid) {
        kill_remnants(pgid);
    }
    true
}

/// True while group `pgid` has a member that is not a zombie. (A zombie is
/// already dead and only waits to be reaped: it needs no SIGKILL.)
pub fn live_members(pgid: i32) -> bool {
    procfs::group_members(pgid).iter().any(|s| s.state != 'Z')
}
