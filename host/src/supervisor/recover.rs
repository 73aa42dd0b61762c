//! Recovery: stopping what a previous instance left running.
//!
//! The journal only says what was spawned and never ended; which of those
//! still live, and stopping them, is decided here.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::stop::{self, ForeignGroup};
use crate::config::Service;
use crate::journal::{Event as Journal, Journal as JournalFile, PreviousChild};

/// The stop grace for a survivor whose service is no longer in the
/// manifests (the default `stop-grace` of a service).
pub const GONE_SERVICE_GRACE: Duration = Duration::from_secs(3);

/// The journaled children of previous instances that are still theirs:
/// the pid names the same process (leader alive with the recorded start
/// time) or the leader's group lives on (see [`ForeignGroup::is_ours`]).
/// A reused pid is never among them.
pub fn survivors(journal: &JournalFile) -> Vec<PreviousChild> {
    journal
        .previous_children()
        .into_iter()
        .filter(|child| group(child).is_ours())
        .collect()
}

fn group(child: &PreviousChild) -> ForeignGroup {
    ForeignGroup {
        pgid: child.pid,
        start_time: child.start_time,
    }
}

/// Stop children left alive by a previous instance ([`survivors`]) before
/// anything is spawned: the whole process group, with the stop signal and
/// grace of the service of that name in `services` (SIGTERM and `grace`
/// for a service that is gone), all groups at once. Each stopped one is
/// journaled `recovered`, so a later start does not find it again.
/// Returns how many were stopped.
pub async fn recover_previous(
    journal: &mut JournalFile,
    services: &[Service],
    grace: Duration,
) -> usize {
    let mut stops = tokio::task::JoinSet::new();
    for child in survivors(journal) {
        let (signal, grace) = services
            .iter()
            .find(|s| child.service.as_deref() == Some(s.name.as_str()))
            .map_or((Signal::SIGTERM, grace), |s| (s.stop_signal, s.stop_grace));
        stops.spawn(async move {
            let stopped = stop::stop_foreign_group(&group(&child), signal, grace).await;
            (child, stopped)
        });
    }
    let mut stopped = 0;
    while let Some(done) = stops.join_next().await {
        let Ok((child, true)) = done else { continue };
        stopped += 1;
        let event = Journal::Recovered {
            pid: child.pid,
            start_time: child.start_time,
        };
        if let Err(e) = journal.record(child.service.as_deref(), &event) {
            tracing::error!("{e}");
        }
    }
    if stopped > 0 {
        tracing::warn!("stopped {stopped} children left by a previous instance");
    }
    stopped
}

/// Stop what a previous instance left in its services' cgroups, after
/// [`recover_previous`]: processes that left their child's process group
/// (`setsid`, a daemon's double fork) are invisible to the journal, not to
/// the cgroup. Each service's stop signal and grace, all at once; each
/// cgroup that held processes is journaled as a warning. Returns how many
/// processes were found.
pub async fn recover_cgroups(
    journal: &mut JournalFile,
    services: &[Service],
    grace: Duration,
    tree: &crate::cgroup::Tree,
) -> usize {
    let mut stops = tokio::task::JoinSet::new();
    for (name, cgroup) in tree.existing() {
        let (signal, grace) = services
            .iter()
            .find(|s| s.name == name)
            .map_or((Signal::SIGTERM, grace), |s| (s.stop_signal, s.stop_grace));
        stops.spawn(async move {
            let found = stop::stop_foreign_cgroup(&cgroup, signal, grace).await;
            (name, cgroup, found)
        });
    }
    let mut total = 0;
    while let Some(done) = stops.join_next().await {
        let Ok((name, cgroup, found)) = done else {
            continue;
        };
        if found == 0 {
            continue;
        }
        total += found;
        let event = Journal::Warning {
            message: format!(
                "stopped {found} processes a previous instance left in cgroup {}",
                cgroup.path().display()
            ),
        };
        if let Err(e) = journal.record(Some(&name), &event) {
            tracing::error!("{e}");
        }
    }
    total
}
