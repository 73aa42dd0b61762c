//! What the journal recorded about one service, read back into the
//! reducer's vocabulary: the lives of its children (spawn, check results,
//! stop, exit) and what the policy in force decided after each.
//!
//! Only what replay needs is kept; a line that cannot be understood (an
//! unknown signal name, a phase from a newer vigil) is counted, not fatal.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use crate::journal::{self, Cause, Event, Line};
use crate::wasm::{ExitStatus, Phase, Verdict};

/// One recorded line that matters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// When it was recorded.
    pub at: SystemTime,
    /// The line's own timestamp text (RFC 3339), for the report.
    pub ts: String,
    pub kind: RecKind,
}

/// What a recorded line says, in the reducer's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecKind {
    /// A vigil instance took the journal (`acquired`): the service's state
    /// starts afresh, as the reducer's does in a new process.
    Instance,
    /// A vigil instance shut down (`quit`).
    Quit,
    Spawned {
        pid: i32,
        start_time: Option<u64>,
    },
    SpawnError {
        error: String,
    },
    /// A check's outcome changed (the journal records transitions only).
    Check {
        phase: Phase,
        verdict: Verdict,
    },
    /// Vigil began to stop the child.
    Stopping {
        cause: Cause,
        reason: String,
    },
    /// The child (its whole group) is gone.
    Exited {
        status: ExitStatus,
        uptime: Duration,
        /// The stop's cause when Vigil stopped it; `None` when it ended on
        /// its own.
        cause: Option<Cause>,
    },
    /// The policy (or an operator's restart) scheduled a restart.
    Restarting {
        delay: Duration,
    },
    /// The policy gave up: the service is `failed`.
    GaveUp {
        reason: String,
    },
}

/// The service's recorded lines in order, those before `since` left out,
/// and how many of its lines could not be read into [`Rec`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    pub recs: Vec<Rec>,
    /// The last line of the window, of any service: where "down until the
    /// end" ends.
    pub end: Option<(SystemTime, String)>,
    pub unreadable: usize,
}

/// The lines about `service` (and the instances' `acquired` and `quit`)
/// at or after `since`.
pub fn read(lines: &[Line], service: &str, since: Option<SystemTime>) -> Recording {
    let mut recording = Recording::default();
    for line in lines {
        let Some(at) = journal::parse_timestamp(&line.ts) else {
            recording.unreadable += 1;
            continue;
        };
        if since.is_some_and(|since| at < since) {
            continue;
        }
        recording.end = Some((at, line.ts.clone()));
        let own = line.service.as_deref() == Some(service);
        let kind = match (&line.event, own) {
            (Event::Acquired { .. }, _) if line.service.is_none() => Some(RecKind::Instance),
            (Event::Quit { .. }, _) if line.service.is_none() => Some(RecKind::Quit),
            (_, false) => None,
            (event, true) => match rec_kind(event) {
                Ok(kind) => kind,
                Err(()) => {
                    recording.unreadable += 1;
                    None
                }
            },
        };
        if let Some(kind) = kind {
            recording.recs.push(Rec {
                at,
                ts: line.ts.clone(),
                kind,
            });
        }
    }
    recording
}

/// `Ok(None)`: a line replay has no use for; `Err`: one it cannot read.
fn rec_kind(event: &Event) -> Result<Option<RecKind>, ()> {
    Ok(Some(match event {
        Event::Spawned {
            pid, start_time, ..
        } => RecKind::Spawned {
            pid: *pid,
            start_time: *start_time,
        },
        Event::SpawnError { error, .. } => RecKind::SpawnError {
            error: error.clone(),
        },
        Event::Check {
            phase,
            outcome,
            reason,
        } => RecKind::Check {
            phase: Phase::ALL
                .into_iter()
                .find(|p| p.as_str() == phase)
                .ok_or(())?,
            verdict: verdict(outcome, reason.clone().unwrap_or_default())?,
        },
        Event::Stopping { cause, reason, .. } => RecKind::Stopping {
            cause: *cause,
            reason: reason.clone(),
        },
        Event::Exited {
            code,
            signal,
            uptime_ms,
            cause,
            ..
        } => RecKind::Exited {
            status: match (code, signal) {
                (Some(code), _) => ExitStatus::Code(*code),
                (None, Some(name)) => ExitStatus::Signal(signal_number(name).ok_or(())?),
                (None, None) => return Err(()),
            },
            uptime: Duration::from_millis(*uptime_ms),
            cause: *cause,
        },
        Event::Restarting { delay_ms, .. } => RecKind::Restarting {
            delay: Duration::from_millis(*delay_ms),
        },
        Event::GaveUp { reason } => RecKind::GaveUp {
            reason: reason.clone(),
        },
        _ => return Ok(None),
    }))
}

/// A check outcome as the journal spells it (`Verdict::kind`).
fn verdict(outcome: &str, reason: String) -> Result<Verdict, ()> {
    Ok(match outcome {
        "ok" => Verdict::Ok,
        "retry" => Verdict::Retry(reason),
        "error" => Verdict::Error(reason),
        "trapped" => Verdict::Trapped(reason),
        "timed-out" => Verdict::TimedOut(reason),
        _ => return Err(()),
    })
}

/// `SIGKILL` or `9`, as `exited` lines name signals.
fn signal_number(name: &str) -> Option<i32> {
    Signal::from_str(name)
        .map(|s| s as i32)
        .ok()
        .or_else(|| name.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, service: Option<&str>, event: Event) -> Line {
        Line {
            ts: ts.into(),
            service: service.map(str::to_string),
            event,
        }
    }

    #[test]
    fn keeps_the_services_lines_and_the_instances_in_the_window() {
        let lines = vec![
            line("2026-12-07T01:00:00.000Z", None, Event::Acquired { pid: 1 }),
            line(
                "2026-12-07T01:00:00.100Z",
                Some("web"),
                Event::Spawned {
                    pid: 10,
                    start_time: None,
                    restarts: 0,
                },
            ),
            line(
                "2026-12-07T01:00:00.200Z",
                Some("db"),
                Event::Spawned {
                    pid: 11,
                    start_time: None,
                    restarts: 0,
                },
            ),
            line(
                "2026-12-07T01:00:01.000Z",
                Some("web"),
                Event::Exited {
                    pid: Some(10),
                    code: None,
                    signal: Some("SIGSEGV".into()),
                    uptime_ms: 900,
                    cause: None,
                },
            ),
            line(
                "2026-12-07T01:00:01.000Z",
                Some("web"),
                Event::Exited {
                    pid: Some(10),
                    code: None,
                    signal: Some("SIGNOPE".into()),
                    uptime_ms: 900,
                    cause: None,
                },
            ),
            line(
                "2026-12-07T01:00:02.000Z",
                None,
                Event::Quit { clean: true },
            ),
        ];
        let all = read(&lines, "web", None);
        let kinds: Vec<_> = all.recs.iter().map(|r| &r.kind).collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(kinds[0], &RecKind::Instance);
        assert_eq!(
            kinds[2],
            &RecKind::Exited {
                status: ExitStatus::Signal(Signal::SIGSEGV as i32),
                uptime: Duration::from_millis(900),
                cause: None
            }
        );
        assert_eq!(kinds[3], &RecKind::Quit);
        assert_eq!(all.unreadable, 1);
        assert_eq!(
            all.end.map(|(_, ts)| ts).as_deref(),
            Some("2026-12-07T01:00:02.000Z")
        );

        let since = journal::parse_timestamp("2026-12-07T01:00:00.500Z");
        let later = read(&lines, "web", since);
        assert_eq!(later.recs.len(), 2);
    }
}
