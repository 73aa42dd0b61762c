//! Feeds a recording through the supervisor's own reducer
//! ([`ServiceState`]) on a virtual clock and writes down, at each point
//! where a policy decides, what the record says was done and what the
//! candidate did.
//!
//! The virtual clock is the recorded one shifted: while the candidate
//! decides as the record did, its child lives are the recorded lives at
//! the recorded times; when it picks another restart delay, every later
//! life moves by the difference (a restart after 15 s instead of 5 s puts
//! the next spawn, its checks and its exit 10 s later). Uptimes, exit
//! statuses and check results stay as recorded: the child's behaviour is
//! the record's, only the policy is the candidate's.
//!
//! Where the worlds part (the candidate restarts a child the record left
//! down, keeps one the record stopped, or stops one the record kept), the
//! record no longer says what would have happened: the replay notes the
//! divergence and waits for the next point both worlds share, an
//! operator's start of a service the candidate also has down or a new
//! vigil instance, to compare again.

use std::time::{Duration, Instant, SystemTime};

use super::record::{Rec, RecKind, Recording};
use super::report::{Decision, Report, Step, Summary};
use crate::config::Service;
use crate::journal::{self, Cause, Event as Journal};
use crate::supervisor::service::{
    Action, Effect, Event, LoaderEvent, ServiceState, Timer, TimerKind, Why,
};
use crate::supervisor::state::Status;
use crate::wasm::{ExitStatus, Phase, Verdict};

/// Most check results fed for one recorded check stop (see
/// [`Driver::failing_check`]).
pub const MAX_FAILURES_FED: u32 = 100;

/// Answers the reducer's questions to a loader (`Effect::Decide`): the
/// event, the history, and the virtual wall-clock time of the question.
/// `None` is the built-in policy (the reducer asks no questions then).
pub trait Decider {
    fn decide(
        &self,
        event: &LoaderEvent,
        history: &crate::supervisor::service::History,
        wall: SystemTime,
    ) -> impl std::future::Future<Output = Result<Action, String>>;
}

/// The built-in policy: never asked.
pub struct BuiltIn;

impl Decider for BuiltIn {
    async fn decide(
        &self,
        _: &LoaderEvent,
        _: &crate::supervisor::service::History,
        _: SystemTime,
    ) -> Result<Action, String> {
        Err("no loader".into())
    }
}

/// Whether the candidate's timeline still follows the record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Aligned,
    /// Parted; compare again at the next start both share.
    Diverged,
}

/// The candidate's side of the replay.
struct Driver<'a, D: Decider> {
    service: &'a Service,
    decider: &'a D,
    state: ServiceState,
    /// Virtual time zero, and the recorded time it stands for.
    origin: Instant,
    origin_wall: SystemTime,
    /// Candidate time minus recorded time, in ms.
    shift: i128,
    mode: Mode,
    /// The reducer asked for a spawn that has not been answered yet.
    awaiting_spawn: bool,
    /// A backoff timer set and not fired: the timer and when it fires.
    backoff: Option<(Timer, Instant)>,
    startup_timeout: Option<Timer>,
    /// What the reducer journaled while handling the current event.
    journaled: Vec<Journal>,
    /// The candidate stopped its child of its own accord (before the
    /// record's stop, if any): the stop's cause and reason.
    own_stop: Option<(Cause, String)>,
    /// The cause of the recorded stop of the current child.
    rec_stop: Option<Cause>,
    /// The record scheduled a restart not followed by its spawn yet.
    rec_restart_pending: bool,
    /// The oom flag for the next `GroupGone`.
    oom: bool,
    down_since: Option<Instant>,
    /// Downtime after the candidate's last restart decision is unknown
    /// once the worlds parted.
    downtime: Duration,
    downtime_known: bool,
    restarts: u32,
    gave_up_at: Option<SystemTime>,
    errors: Vec<String>,
}

/// Replay `recording` through `service` (the candidate's manifest: its
/// restart policy, checks and loader config) with `decider` answering
/// the loader's questions.
pub async fn replay<D: Decider>(
    recording: &Recording,
    service: &Service,
    decider: &D,
    candidate: String,
) -> Report {
    let recs = &recording.recs;
    let origin_wall = recs.first().map(|r| r.at).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut d = Driver {
        service,
        decider,
        state: ServiceState::new(service),
        origin: Instant::now(),
        origin_wall,
        shift: 0,
        mode: Mode::Aligned,
        awaiting_spawn: false,
        backoff: None,
        startup_timeout: None,
        journaled: Vec::new(),
        own_stop: None,
        rec_stop: None,
        rec_restart_pending: false,
        oom: false,
        down_since: None,
        downtime: Duration::ZERO,
        downtime_known: true,
        restarts: 0,
        gave_up_at: None,
        errors: Vec::new(),
    };
    let mut steps = Vec::new();
    let mut not_compared = Vec::new();
    if recording.unreadable > 0 {
        not_compared.push(format!(
            "{} journal line(s) of the service could not be read",
            recording.unreadable
        ));
    }
    for (i, rec) in recs.iter().enumerate() {
        d.step(rec, &recs[i + 1..], &mut steps, &mut not_compared)
            .await;
    }
    let end = recording.end.as_ref().map(|(at, _)| *at);
    if let Some(end) = end {
        d.close_downtime(d.virtual_now(end));
    }
    not_compared.append(&mut d.errors);
    not_compared.dedup();
    let recorded = recorded_summary(recs, end);
    let candidate_summary = Summary {
        restarts: d.restarts,
        gave_up_at: d.gave_up_at.map(journal::timestamp),
        downtime_ms: u64::try_from(d.downtime.as_millis()).unwrap_or(u64::MAX),
        downtime_known: d.downtime_known,
    };
    let differences = steps.iter().filter(|s: &&Step| !s.matches).count();
    Report {
        service: service.name.clone(),
        candidate,
        from: recs.first().map(|r| r.ts.clone()),
        to: recording.end.as_ref().map(|(_, ts)| ts.clone()),
        decisions: steps.len(),
        differences,
        matches: differences == 0,
        steps,
        recorded,
        candidate_summary,
        not_compared,
    }
}

impl<D: Decider> Driver<'_, D> {
    /// The virtual instant of recorded time `at`, shifted.
    fn virtual_now(&self, at: SystemTime) -> Instant {
        let since = at
            .duration_since(self.origin_wall)
            .unwrap_or_default()
            .as_millis() as i128
            + self.shift;
        self.origin + Duration::from_millis(u64::try_from(since.max(0)).unwrap_or(u64::MAX))
    }

    /// The wall-clock time of virtual instant `now`.
    fn wall(&self, now: Instant) -> SystemTime {
        self.origin_wall + now.saturating_duration_since(self.origin)
    }

    fn stamp(&self, now: Instant) -> String {
        journal::timestamp(self.wall(now))
    }

    /// Feed one event and everything it leads to (loader answers, group
    /// ends, hooks), performing the effects a replay can perform.
    async fn feed(&mut self, now: Instant, event: Event) {
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            let effects = self.state.handle(now, event);
            let mut next = Vec::new();
            for effect in effects {
                match effect {
                    Effect::Spawn { .. } => self.awaiting_spawn = true,
                    Effect::WatchGroup { epoch, .. } => next.push(Event::GroupGone {
                        epoch,
                        oom: std::mem::take(&mut self.oom),
                    }),
                    Effect::Schedule { timer, after, .. } => match timer.kind {
                        TimerKind::Backoff => self.backoff = Some((timer, now + after)),
                        TimerKind::StartupTimeout => self.startup_timeout = Some(timer),
                        _ => {}
                    },
                    Effect::Decide {
                        epoch,
                        seq,
                        event,
                        history,
                    } => {
                        let action = self.decider.decide(&event, &history, self.wall(now)).await;
                        if let Err(e) = &action {
                            self.errors.push(format!("the loader failed: {e}"));
                        }
                        next.push(Event::Decision { epoch, seq, action });
                    }
                    Effect::RunHook { hook, epoch } => next.push(Event::Hook {
                        epoch,
                        hook,
                        result: Ok(()),
                    }),
                    Effect::Journal(j) => {
                        match &j {
                            Journal::Restarting { .. } => self.restarts += 1,
                            Journal::GaveUp { .. } => self.gave_up_at = Some(self.wall(now)),
                            Journal::Spawned { .. } => self.close_downtime(now),
                            _ => {}
                        }
                        self.journaled.push(j);
                    }
                    Effect::Status(_)
                    | Effect::Signal { .. }
                    | Effect::RunCheck { .. }
                    | Effect::SpawnSuccessor { .. }
                    | Effect::RunSuccessorCheck { .. }
                    // Replaces are not replayed (see "not compared").
                    | Effect::RunReplaceHook { .. }
                    | Effect::WatchReplaced { .. }
                    | Effect::DecideReplace { .. } => {}
                }
            }
            // In order: the first effect's answer first.
            next.reverse();
            queue.extend(next);
        }
    }

    fn close_downtime(&mut self, now: Instant) {
        if let Some(since) = self.down_since.take() {
            self.downtime += now.saturating_duration_since(since);
        }
    }

    fn alive(&self) -> bool {
        self.state.group().is_some()
    }

    fn is_down(&self) -> bool {
        matches!(
            self.state.status(),
            Status::Stopped | Status::Exited | Status::Failed
        )
    }

    /// The stop the candidate journaled while handling the last events.
    fn journaled_stop(&self) -> Option<(Cause, String)> {
        self.journaled.iter().find_map(|j| match j {
            Journal::Stopping { cause, reason, .. } => Some((*cause, reason.clone())),
            _ => None,
        })
    }

    /// What the candidate decided about a child that is gone, from what
    /// it journaled and where it ended.
    fn decision_after_exit(&self) -> Decision {
        for j in &self.journaled {
            match j {
                Journal::Restarting { delay_ms, .. } => {
                    return Decision::Restart {
                        delay_ms: *delay_ms,
                    };
                }
                Journal::GaveUp { reason } => {
                    return Decision::GiveUp {
                        reason: reason.clone(),
                    };
                }
                _ => {}
            }
        }
        match self.state.status() {
            Status::Backoff => Decision::Undecided,
            _ => Decision::StayDown,
        }
    }

    async fn step(
        &mut self,
        rec: &Rec,
        ahead: &[Rec],
        steps: &mut Vec<Step>,
        not_compared: &mut Vec<String>,
    ) {
        self.journaled.clear();
        match &rec.kind {
            RecKind::Instance => {
                // A new process: the reducer's state starts afresh, as does
                // the alignment.
                let now = self.virtual_now(rec.at);
                self.close_downtime(now);
                self.shift = 0;
                self.state = ServiceState::new(self.service);
                self.mode = Mode::Aligned;
                self.awaiting_spawn = false;
                self.backoff = None;
                self.own_stop = None;
                self.rec_stop = None;
                self.rec_restart_pending = false;
            }
            RecKind::Restarting { .. } => self.rec_restart_pending = true,
            RecKind::Quit => {
                let now = self.virtual_now(rec.at);
                self.close_downtime(now);
            }
            RecKind::Spawned { .. } | RecKind::SpawnError { .. } => {
                self.on_rec_spawn(rec, ahead, steps).await
            }
            RecKind::Check { phase, verdict }
                if self.mode == Mode::Aligned && self.alive() && self.own_stop.is_none() =>
            {
                let now = self.virtual_now(rec.at);
                let epoch = self.state.epoch();
                self.feed(
                    now,
                    Event::Check {
                        epoch,
                        phase: *phase,
                        outcome: verdict.clone(),
                    },
                )
                .await;
                self.note_own_stop(rec, ahead, steps);
            }
            RecKind::Stopping { cause, reason } if self.mode == Mode::Aligned => {
                self.on_rec_stopping(rec, ahead, *cause, reason, steps, not_compared)
                    .await
            }
            RecKind::Exited {
                status,
                uptime,
                cause,
            } if self.mode == Mode::Aligned => {
                self.on_rec_exited(rec, ahead, *status, *uptime, *cause, steps)
                    .await
            }
            _ => {}
        }
    }

    /// The candidate stopped its child while handling a recorded event:
    /// the record's own stop of this child, if one comes, is where the two
    /// are compared; a child the record kept running parts the worlds.
    fn note_own_stop(&mut self, rec: &Rec, ahead: &[Rec], steps: &mut Vec<Step>) {
        let Some(stop) = self.journaled_stop() else {
            return;
        };
        self.own_stop = Some(stop.clone());
        let recorded_stop = ahead.iter().find_map(|r| match &r.kind {
            RecKind::Stopping { .. } => Some(true),
            RecKind::Exited { .. } | RecKind::Instance | RecKind::Quit => Some(false),
            _ => None,
        });
        if recorded_stop != Some(true) {
            steps.push(Step {
                at: rec.ts.clone(),
                candidate_at: self.stamp(self.virtual_now(rec.at)),
                event: describe(&rec.kind),
                recorded: Decision::Keep,
                candidate: Decision::Stop {
                    cause: stop.0.to_string(),
                    reason: stop.1,
                },
                matches: false,
            });
            self.diverge();
        }
    }

    fn diverge(&mut self) {
        self.mode = Mode::Diverged;
        // What the candidate's child did from here is not recorded.
        if self.down_since.is_none() && !self.is_down() {
            self.downtime_known = false;
        }
    }

    async fn on_rec_spawn(&mut self, rec: &Rec, ahead: &[Rec], steps: &mut Vec<Step>) {
        // A spawn with no `restarting` since the last child's end begins
        // a new series (an operator's start, a new instance, a reload).
        let start = !std::mem::take(&mut self.rec_restart_pending);
        if self.mode == Mode::Diverged {
            // The worlds meet again at a start the candidate would also
            // see (an operator's, a reload's), once its child is down.
            if !(start && self.is_down()) {
                return;
            }
            self.shift = 0;
            self.mode = Mode::Aligned;
        }
        let mut now = self.virtual_now(rec.at);
        if !self.awaiting_spawn {
            if let Some((timer, due)) = self.backoff.take() {
                let due = due.max(self.state.started_at().unwrap_or(self.origin));
                self.feed(due, Event::Timer(timer)).await;
                // The spawn follows the timer as it followed the recorded
                // one; the shift already holds the difference in delays.
                now = now.max(due);
            } else if self.is_down() {
                self.feed(now, Event::Start).await;
            }
        }
        if !self.awaiting_spawn {
            // Waiting, or a child the candidate still has.
            return;
        }
        self.awaiting_spawn = false;
        self.own_stop = None;
        self.rec_stop = None;
        match &rec.kind {
            RecKind::Spawned { pid, start_time } => {
                self.feed(
                    now,
                    Event::Spawned {
                        pid: *pid,
                        start_time: *start_time,
                    },
                )
                .await;
                self.note_own_stop(rec, ahead, steps);
            }
            RecKind::SpawnError { error } => {
                self.feed(now, Event::SpawnFailed(error.clone())).await;
                if self.down_since.is_none() {
                    self.down_since = Some(now);
                }
                self.decided(rec, ahead, now, steps);
            }
            _ => {}
        }
    }

    async fn on_rec_stopping(
        &mut self,
        rec: &Rec,
        ahead: &[Rec],
        cause: Cause,
        reason: &str,
        steps: &mut Vec<Step>,
        not_compared: &mut Vec<String>,
    ) {
        if !self.alive() {
            return;
        }
        self.rec_stop = Some(cause);
        let now = self.virtual_now(rec.at);
        let recorded = Decision::Stop {
            cause: cause.to_string(),
            reason: reason.to_string(),
        };
        if self.own_stop.is_none() {
            match cause {
                Cause::Liveness | Cause::Watchdog => {
                    self.failing_check(now, Phase::Liveness, reason).await
                }
                Cause::Startup => self.failing_check(now, Phase::Startup, reason).await,
                Cause::StartupTimeout => {
                    if let Some(timer) = self.startup_timeout {
                        self.feed(now, Event::Timer(timer)).await;
                    }
                }
                Cause::Operator | Cause::Reload | Cause::Dependency | Cause::Scale => {
                    let why = Why::new(cause, reason);
                    let event = if restarts_after(ahead) {
                        Event::Restart(why)
                    } else {
                        Event::Stop(why)
                    };
                    self.feed(now, event).await;
                }
                Cause::Shutdown | Cause::Removed => {
                    self.feed(now, Event::Stop(Why::new(cause, reason))).await
                }
                // Its exit is the child's own: fed as such when it comes.
                Cause::LeaderExited | Cause::Oom => return,
                Cause::Loader | Cause::Hook | Cause::Schedule => {
                    not_compared.push(format!(
                        "a stop by {cause} ({reason}) is not replayed: the record's own {cause} decided it"
                    ));
                }
            }
            self.own_stop = self.journaled_stop();
        }
        let candidate = match &self.own_stop {
            Some((cause, reason)) => Decision::Stop {
                cause: cause.to_string(),
                reason: reason.clone(),
            },
            None => Decision::Keep,
        };
        let matches = recorded.same_as(&candidate);
        // Only a stop a policy decides is a decision worth a line.
        if !matches!(
            cause,
            Cause::Operator | Cause::Shutdown | Cause::Removed | Cause::Reload | Cause::Scale
        ) || !matches
        {
            steps.push(Step {
                at: rec.ts.clone(),
                candidate_at: self.stamp(now),
                event: describe(&rec.kind),
                recorded,
                candidate,
                matches,
            });
        }
        if !matches {
            self.diverge();
        }
    }

    /// The record stopped the child for a failing check of `phase`: the
    /// check is taken to keep failing as it last did (one result at a
    /// time, up to [`MAX_FAILURES_FED`]) until the candidate acts on it.
    /// The journal records outcome changes only, not every result, so a
    /// candidate with a higher threshold sees the failure go on; one that
    /// never acts keeps the child.
    async fn failing_check(&mut self, now: Instant, phase: Phase, reason: &str) {
        let verdict = Verdict::Retry(reason.to_string());
        for _ in 0..MAX_FAILURES_FED {
            let epoch = self.state.epoch();
            self.feed(
                now,
                Event::Check {
                    epoch,
                    phase,
                    outcome: verdict.clone(),
                },
            )
            .await;
            if self.journaled_stop().is_some()
                || !self.alive()
                || self.state.status() == Status::Failed
            {
                return;
            }
        }
    }

    async fn on_rec_exited(
        &mut self,
        rec: &Rec,
        ahead: &[Rec],
        status: ExitStatus,
        uptime: Duration,
        cause: Option<Cause>,
        steps: &mut Vec<Step>,
    ) {
        if !self.alive() {
            return;
        }
        let now = self.virtual_now(rec.at);
        self.oom = cause == Some(Cause::Oom);
        self.feed(now, Event::Exited { status, uptime }).await;
        // Downtime: every end but one asked for by an operator, a reload
        // or a shutdown (the candidate's stop, if it stopped it).
        let deliberate = matches!(
            self.own_stop.as_ref().map(|s| s.0),
            Some(Cause::Operator | Cause::Shutdown | Cause::Removed)
        );
        if !deliberate && self.down_since.is_none() {
            self.down_since = Some(now);
        }
        self.decided(rec, ahead, now, steps);
    }

    /// Compare what the record did after a child's end (`rec`: its exit
    /// or failed spawn) with what the candidate did, and follow: a
    /// different restart delay shifts the rest; any other difference
    /// parts the worlds.
    fn decided(&mut self, rec: &Rec, ahead: &[Rec], now: Instant, steps: &mut Vec<Step>) {
        let recorded = recorded_after(ahead);
        let candidate = self.decision_after_exit();
        let matches = recorded.same_as(&candidate);
        let deliberate = matches!(
            self.rec_stop,
            Some(Cause::Operator | Cause::Shutdown | Cause::Removed)
        );
        if !(deliberate && matches) {
            steps.push(Step {
                at: rec.ts.clone(),
                candidate_at: self.stamp(now),
                event: describe(&rec.kind),
                recorded: recorded.clone(),
                candidate: candidate.clone(),
                matches,
            });
        }
        match (&recorded, &candidate) {
            (Decision::Restart { delay_ms: r }, Decision::Restart { delay_ms: c }) => {
                self.shift += i128::from(*c) - i128::from(*r);
            }
            _ if matches => {}
            (_, Decision::Restart { delay_ms }) => {
                // Down only for its delay; what its next child did is not
                // recorded.
                if let Some(since) = self.down_since.take() {
                    self.downtime +=
                        (now + Duration::from_millis(*delay_ms)).saturating_duration_since(since);
                }
                self.downtime_known = false;
                self.mode = Mode::Diverged;
            }
            _ => self.mode = Mode::Diverged,
        }
        if deliberate {
            // An operator's stop is not downtime.
            self.down_since = None;
        }
    }
}

/// Whether the record restarted the child after the stop being read (a
/// `restarting` before the next spawn).
fn restarts_after(ahead: &[Rec]) -> bool {
    matches!(recorded_after_stop(ahead), Decision::Restart { .. })
}

fn recorded_after_stop(ahead: &[Rec]) -> Decision {
    // Skip to the stop's exit, then read what followed it.
    let exit = ahead
        .iter()
        .position(|r| matches!(r.kind, RecKind::Exited { .. }));
    match exit {
        Some(i) => recorded_after(&ahead[i + 1..]),
        None => Decision::Undecided,
    }
}

/// What the record did after a child's end, from the lines that follow it.
fn recorded_after(ahead: &[Rec]) -> Decision {
    for r in ahead {
        match &r.kind {
            RecKind::Restarting { delay } => {
                return Decision::Restart {
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                };
            }
            RecKind::GaveUp { reason } => {
                return Decision::GiveUp {
                    reason: reason.clone(),
                };
            }
            RecKind::Check { .. } | RecKind::Stopping { .. } => {}
            _ => return Decision::StayDown,
        }
    }
    Decision::StayDown
}

/// The event a step is about, in words.
fn describe(kind: &RecKind) -> String {
    match kind {
        RecKind::Spawned { pid, .. } => format!("spawned pid {pid}"),
        RecKind::SpawnError { error } => format!("spawn failed: {error}"),
        RecKind::Check { phase, verdict } => match verdict.reason() {
            Some(reason) => format!("{phase} {}: {reason}", verdict.kind()),
            None => format!("{phase} {}", verdict.kind()),
        },
        RecKind::Stopping { cause, .. } => format!("stop ({cause})"),
        RecKind::Exited {
            status,
            uptime,
            cause,
        } => {
            let cause = cause
                .map(|c| format!(", stopped ({c})"))
                .unwrap_or_default();
            format!("exited ({status}) after {}{cause}", human(*uptime))
        }
        RecKind::Restarting { delay } => format!("restarting after {}", human(*delay)),
        RecKind::GaveUp { reason } => format!("gave up: {reason}"),
        RecKind::Instance => "vigil started".into(),
        RecKind::Quit => "vigil quit".into(),
    }
}

/// `312ms`, `1.5s`, `2m5s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        format!("{}s", (s * 1000.0).round() / 1000.0)
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// The record's own numbers: restarts, when it gave up, downtime.
fn recorded_summary(recs: &[Rec], end: Option<SystemTime>) -> Summary {
    let mut restarts = 0;
    let mut gave_up_at = None;
    let mut downtime = Duration::ZERO;
    let mut down_since: Option<SystemTime> = None;
    let close = |since: &mut Option<SystemTime>, at: SystemTime, total: &mut Duration| {
        if let Some(s) = since.take() {
            *total += at.duration_since(s).unwrap_or_default();
        }
    };
    for rec in recs {
        match &rec.kind {
            RecKind::Restarting { .. } => restarts += 1,
            RecKind::GaveUp { .. } => gave_up_at = Some(rec.ts.clone()),
            RecKind::Exited { cause, .. } => {
                let deliberate = matches!(
                    cause,
                    Some(Cause::Operator | Cause::Shutdown | Cause::Removed)
                );
                if !deliberate && down_since.is_none() {
                    down_since = Some(rec.at);
                }
            }
            RecKind::SpawnError { .. } if down_since.is_none() => down_since = Some(rec.at),
            RecKind::Spawned { .. } | RecKind::Instance | RecKind::Quit => {
                close(&mut down_since, rec.at, &mut downtime)
            }
            _ => {}
        }
    }
    if let Some(end) = end {
        close(&mut down_since, end, &mut downtime);
    }
    Summary {
        restarts,
        gave_up_at,
        downtime_ms: u64::try_from(downtime.as_millis()).unwrap_or(u64::MAX),
        downtime_known: true,
    }
}
