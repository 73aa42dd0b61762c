//! Scheduled jobs (`every = "..."`): one tokio task per job that starts
//! the service at each due time, applies `overlap` when the previous run
//! is still going, and stops a run past its `timeout`.
//!
//! The due times come from the pure [`next_due`] on tokio's clock; the
//! run itself is the service's ordinary one-shot life in its task (a
//! `start`, `spawned`, `exited` in the journal, `restart = "never"`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Supervisor;
use super::service::{Event, Why};
use super::task::Msg;
use crate::config::{Overlap, next_due};
use crate::journal::{Cause, Event as Journal};
use crate::sync::RwLockExt;

/// How long a started run may take to spawn before its timeout is not
/// armed (a spawn that slow has failed or waits for dependencies).
const SPAWN_WAIT: Duration = Duration::from_secs(60);

/// Whether `name` is still the service whose task `tx` reaches (not
/// removed, nor removed and added again with a scheduler of its own).
fn current(sup: &Supervisor, name: &str, tx: &mpsc::UnboundedSender<Msg>) -> bool {
    let services = sup.shared.services.read_unpoisoned();
    services.get(name).is_some_and(|h| h.tx.same_channel(tx))
}

/// The scheduler of job `name`, whose task `tx` reaches. Ends when the
/// service is removed or is no longer a job.
pub(super) async fn run(sup: Supervisor, name: String, tx: mpsc::UnboundedSender<Msg>) {
    let origin = Instant::now();
    let queued = Arc::new(AtomicBool::new(false));
    loop {
        let Some(job) = sup.service(&name).and_then(|s| s.job) else {
            return;
        };
        let due = origin + next_due(Duration::ZERO, job.every, origin.elapsed());
        let _ = tx.send(Msg::NextDue(due));
        tokio::time::sleep_until(due).await;
        if !current(&sup, &name, &tx) {
            return;
        }
        let Some(svc) = sup.service(&name) else {
            return;
        };
        let Some(job) = svc.job else {
            return;
        };
        let busy = sup
            .watcher(&name)
            .map(|rx| rx.borrow().clone())
            .and_then(|s| s.status.has_child().then_some(s.pid));
        match (busy, job.overlap) {
            (None, _) => start_run(&sup, &name, job.timeout),
            (Some(pid), Overlap::Skip) => {
                let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                sup.journal(
                    Some(&name),
                    &Journal::Warning {
                        message: format!(
                            "run skipped: the previous run{pid} is still going (overlap = \"skip\")"
                        ),
                    },
                );
            }
            (Some(_), Overlap::Kill) => {
                let why = Why::new(
                    Cause::Schedule,
                    "a new run is due and the previous one still goes (overlap = \"kill\")",
                );
                // A restart stops the run (its group) and starts the next.
                if sup.send(&name, Event::Restart(why)) {
                    arm_timeout(&sup, &name, job.timeout, None);
                }
            }
            (Some(_), Overlap::Queue) => {
                if !queued.swap(true, Ordering::SeqCst) {
                    let (sup, name, queued) = (sup.clone(), name.clone(), queued.clone());
                    tokio::spawn(async move {
                        let limit = job.every.saturating_mul(1000).max(SPAWN_WAIT);
                        sup.wait_for(&name, limit, |s| !s.status.has_child()).await;
                        queued.store(false, Ordering::SeqCst);
                        start_run(&sup, &name, job.timeout);
                    });
                }
            }
        }
    }
}

/// Start one run and arm its timeout.
fn start_run(sup: &Supervisor, name: &str, timeout: Option<Duration>) {
    let before = sup.watcher(name).and_then(|rx| rx.borrow().pid);
    if sup.send(name, Event::Start) {
        arm_timeout(sup, name, timeout, before);
    }
}

/// Stop the run that follows `before` (the pid running before it was
/// started, if any) once it has run for `timeout`.
fn arm_timeout(sup: &Supervisor, name: &str, timeout: Option<Duration>, before: Option<i32>) {
    let Some(timeout) = timeout else {
        return;
    };
    let (sup, name) = (sup.clone(), name.to_string());
    tokio::spawn(async move {
        let spawned = sup
            .wait_for(&name, SPAWN_WAIT, |s| s.pid.is_some() && s.pid != before)
            .await;
        let Some(pid) = spawned.and_then(|s| s.pid) else {
            return;
        };
        tokio::time::sleep(timeout).await;
        let still = sup
            .watcher(&name)
            .is_some_and(|rx| rx.borrow().pid == Some(pid));
        if still {
            let why = Why::new(
                Cause::Schedule,
                format!(
                    "the run timed out after {}",
                    crate::units::format_duration(timeout)
                ),
            );
            sup.send(&name, Event::Stop(why));
        }
    });
}
