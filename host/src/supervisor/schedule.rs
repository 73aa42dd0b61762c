//! Scheduled jobs (`every = "..."` or `schedule = "<cron>"`): one tokio
//! task per job that starts the service at each due time, applies
//! `overlap` when the previous run is still going, stops a run past its
//! `timeout`, and at Vigil's start makes up for due times missed while it
//! was down (`catch-up`).
//!
//! The due times come from pure functions ([`next_due`] for a period on
//! tokio's clock, [`Cron::next_after`](crate::config::Cron::next_after)
//! on the wall clock); the run itself is the service's ordinary one-shot
//! life in its task (a `spawned` then an `exited` in the journal with
//! `uptime_ms` the run's duration, `restart = "never"`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Supervisor;
use super::service::{Event, Why};
use super::task::Msg;
use crate::config::{JobSpec, Overlap, Service, When, next_due};
use crate::journal::{Cause, Event as Journal, timestamp};
use crate::sync::RwLockExt;

/// How long a started run may take to spawn before its timeout is not
/// armed (a spawn that slow has failed or waits for dependencies).
const SPAWN_WAIT: Duration = Duration::from_secs(60);

/// What status and `/metrics` show of a job, kept by its service task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobView {
    /// The schedule in words (`every 10m`, `0 3 * * * Europe/Paris`).
    pub schedule: String,
    /// The next due time, wall clock and monotonic.
    pub next_due: Option<(SystemTime, Instant)>,
    /// The last run that ended (in this instance).
    pub last_run: Option<LastRun>,
    /// When the last successful run ended.
    pub last_success: Option<SystemTime>,
}

/// How a job's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    pub code: Option<i32>,
    pub signal: Option<String>,
    /// Why it was stopped, when it was (`schedule` for a timeout).
    pub cause: Option<Cause>,
    /// From spawn to the end of its process group.
    pub duration: Duration,
    pub ended: SystemTime,
    /// Exited with one of its `success-codes`.
    pub ok: bool,
}

impl JobView {
    /// Note the end of a run, from the `exited` the reducer journals.
    pub(super) fn ended(&mut self, svc: &Service, event: &Journal, now: SystemTime) {
        let Journal::Exited {
            code,
            signal,
            uptime_ms,
            cause,
            ..
        } = event
        else {
            return;
        };
        let ok = signal.is_none() && code.is_some_and(|c| svc.restart.success_codes.contains(&c));
        if ok {
            self.last_success = Some(now);
        }
        self.last_run = Some(LastRun {
            code: *code,
            signal: signal.clone(),
            cause: *cause,
            duration: Duration::from_millis(*uptime_ms),
            ended: now,
            ok,
        });
    }
}

/// Whether `name` is still the service whose task `tx` reaches (not
/// removed, nor removed and added again with a scheduler of its own).
fn current(sup: &Supervisor, name: &str, tx: &mpsc::UnboundedSender<Msg>) -> bool {
    let services = sup.shared.services.read_unpoisoned();
    services.get(name).is_some_and(|h| h.tx.same_channel(tx))
}

/// `catch-up = true`: one run now when a due time passed between the
/// job's last run journaled by a previous instance and now. Taken once:
/// a job added by a later reload does not catch up again.
fn catch_up(sup: &Supervisor, name: &str, job: &JobSpec) {
    let last = sup
        .shared
        .last_runs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(name);
    let Some(last) = last.filter(|_| job.catch_up) else {
        return;
    };
    if let Some(missed) = job.missed(last, SystemTime::now()) {
        sup.journal(
            Some(name),
            &Journal::CatchUp {
                missed: timestamp(missed),
                last_run: timestamp(last),
            },
        );
        start_run(sup, name, job.timeout);
    }
}

/// The scheduler of job `name`, whose task `tx` reaches. Ends when the
/// service is removed or is no longer a job.
pub(super) async fn run(sup: Supervisor, name: String, tx: mpsc::UnboundedSender<Msg>) {
    let origin = Instant::now();
    let queued = Arc::new(AtomicBool::new(false));
    if let Some(job) = sup.service(&name).and_then(|s| s.job.clone()) {
        catch_up(&sup, &name, &job);
    }
    loop {
        // Taken before the job is read, so that a reload between the read
        // and the sleep is not missed (a `Notified` hears `notify_waiters`
        // from its creation on).
        let changed = sup.shared.jobs_changed.notified();
        let Some(job) = sup.service(&name).and_then(|s| s.job.clone()) else {
            return;
        };
        let (due, wall) = match &job.when {
            When::Every(every) => {
                let due = origin + next_due(Duration::ZERO, *every, origin.elapsed());
                let wall = SystemTime::now() + due.saturating_duration_since(Instant::now());
                (due, wall)
            }
            When::Cron(cron) => {
                let now = SystemTime::now();
                let Some(wall) = cron.next_after(now) else {
                    sup.journal(
                        Some(&name),
                        &Journal::Warning {
                            message: format!(
                                "schedule \"{}\" has no due time after now: the job never runs",
                                cron.text
                            ),
                        },
                    );
                    // Until a reload gives it another schedule.
                    changed.await;
                    if !current(&sup, &name, &tx) {
                        return;
                    }
                    continue;
                };
                let after = wall.duration_since(now).unwrap_or_default();
                (Instant::now() + after, wall)
            }
        };
        let _ = tx.send(Msg::NextDue(due, wall));
        let reloaded = tokio::select! {
            // A due time that has come wins over a reload at the same
            // moment (the recomputed one would be the next, skipping it).
            biased;
            () = tokio::time::sleep_until(due) => false,
            () = changed => true,
        };
        if !current(&sup, &name, &tx) {
            return;
        }
        // A reload: the job may have another schedule now (or none), and
        // its next due time with it.
        if reloaded {
            continue;
        }
        // Woken before the wall clock's due time (it was set back while
        // this slept): wait for it again.
        if matches!(job.when, When::Cron(_)) && SystemTime::now() < wall {
            continue;
        }
        let Some(svc) = sup.service(&name) else {
            return;
        };
        let Some(job) = svc.job.clone() else {
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
                    let limit = match &job.when {
                        When::Every(every) => every.saturating_mul(1000).max(SPAWN_WAIT),
                        When::Cron(_) => Duration::from_secs(86_400 * 365),
                    };
                    tokio::spawn(async move {
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
