//! Scheduled jobs: `every = "10m"` runs a one-shot service at each due
//! time, with `overlap` deciding what a due time does while the previous
//! run is still going, and `timeout` bounding each run.

use std::time::Duration;

use super::model::{RestartMode, RestartPolicy};
use super::problems::Collector;
use super::resolve::duration_field;

/// What a due time does while the previous run still goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip this run (journaled as a warning).
    #[default]
    Skip,
    /// Run once the previous run ends (at most one run waits).
    Queue,
    /// Kill the previous run (its whole group) and start this one.
    Kill,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Kill => "kill",
        }
    }
}

/// A scheduled job's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    /// The period between due times, the first one period after load.
    pub every: Duration,
    pub overlap: Overlap,
    /// A run still going after this is stopped (stop-signal, then SIGKILL
    /// of the group after stop-grace).
    pub timeout: Option<Duration>,
}

/// The raw job keys.
pub(super) struct RawJob {
    pub every: Option<String>,
    pub overlap: Option<String>,
    pub timeout: Option<String>,
}

/// Resolve the job keys. A job is a one-shot: `restart = "never"` is
/// implied, and any other `restart` is a problem (`restart_written`: the
/// manifest set one).
pub(super) fn resolve_job(
    raw: RawJob,
    restart_written: Option<&str>,
    restart: &mut RestartPolicy,
    c: &mut Collector<'_>,
) -> Option<JobSpec> {
    let RawJob {
        every,
        overlap,
        timeout,
    } = raw;
    let Some(every_text) = every else {
        for (key, set) in [
            ("overlap", overlap.is_some()),
            ("timeout", timeout.is_some()),
        ] {
            if set {
                c.push(
                    key,
                    format!("`{key}` is for scheduled jobs"),
                    "add `every = \"10m\"`, or remove it",
                );
            }
        }
        return None;
    };
    let every = duration_field(c, "every", Some(&every_text), Duration::from_secs(60));
    if every.is_zero() {
        c.push("every", "a zero period", "give a period, e.g. \"10m\"");
    }
    let overlap = match overlap.as_deref() {
        None => Overlap::Skip,
        Some("skip") => Overlap::Skip,
        Some("queue") => Overlap::Queue,
        Some("kill") => Overlap::Kill,
        Some(other) => {
            c.push(
                "overlap",
                format!("unknown overlap `{other}`"),
                "use \"skip\", \"queue\" or \"kill\"",
            );
            Overlap::Skip
        }
    };
    let timeout = timeout
        .as_deref()
        .map(|t| duration_field(c, "timeout", Some(t), Duration::from_secs(60)));
    if let Some(r) = restart_written.filter(|r| *r != "never") {
        c.push(
            "restart",
            format!("a scheduled job does not restart (`restart = \"{r}\"`)"),
            "remove `restart` (a job is `restart = \"never\"`; its schedule runs it again)",
        );
    }
    restart.mode = RestartMode::Never;
    Some(JobSpec {
        every: if every.is_zero() {
            Duration::from_secs(60)
        } else {
            every
        },
        overlap,
        timeout,
    })
}

/// The first due time strictly after `now`, counting periods of `every`
/// from `origin` (so a late wake-up does not drift the schedule, and
/// missed due times collapse into one). All in one monotonic unit.
pub fn next_due(origin: Duration, every: Duration, now: Duration) -> Duration {
    if every.is_zero() || now < origin {
        return origin;
    }
    let periods = (now - origin).as_nanos() / every.as_nanos() + 1;
    let periods = u32::try_from(periods).unwrap_or(u32::MAX);
    origin + every.saturating_mul(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_counts_whole_periods_from_the_origin() {
        let s = Duration::from_secs;
        assert_eq!(next_due(s(100), s(10), s(50)), s(100));
        assert_eq!(next_due(s(100), s(10), s(100)), s(110));
        assert_eq!(next_due(s(100), s(10), s(105)), s(110));
        // Late by three periods: the next one, not three catch-ups.
        assert_eq!(next_due(s(100), s(10), s(139)), s(140));
    }
}
