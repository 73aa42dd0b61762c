//! Random event sequences through the reducer, its invariants checked after
//! every event.
//!
//! A small model of the shell and the processes (the [`World`]) answers
//! the reducer's effects the way the real ones may: spawns succeed or fail,
//! leaders crash or obey the stop signal or ignore it, group members
//! linger, checks and loaders answer late and out of order, time passes,
//! the operator starts, stops and restarts, manifests are reloaded. Between
//! those, the reducer must hold:
//!
//! - never two live children of one service: a spawn only once the
//!   previous child's whole group is gone, and one spawn at a time;
//! - never a spawn while stopping;
//! - every stop ends in `exited` (the child and its group gone, after a
//!   SIGKILL if the grace ran out), and an operator's stop ends at all;
//! - only the transitions of `state.rs`'s table, and no illegal one even
//!   attempted (the reducer logs those: any warning or error fails);
//! - the built-in policy's restart delay is the policy's backoff: never
//!   shorter, never skipped;
//! - hooks in their order: a spawn only after its pre-start hook said ok
//!   and never while a post-stop hook runs; a pre-stop hook only for a
//!   live leader, and no stop signal before it ended (only the grace's
//!   SIGKILL may cut it); a post-stop hook only once the group is gone,
//!   one at a time.
//! - two children only during a replace: besides the current child's
//!   group, only a replace's new child (until it is reaped) and the child
//!   a replace took over from (until its grace ends) may live; every
//!   replace ends with the old child signalled (SIGKILL after its grace)
//!   or the new one SIGKILLed, and the drain ends with nothing alive;
//! - a replace's hooks in their order: the new child's spawn only after
//!   its pre-start hook said ok, its post-start only for it; the old
//!   child's pre-stop only while its leader lives and no stop signal to
//!   it before that hook ended; its post-stop only once its group is gone.
//!
//! Deterministic: the seeds are fixed, so a failure is a failure every
//! time. It prints the seed and the whole sequence; replay one seed with
//! `VIGIL_PROP_SEED=N`, run more with `VIGIL_PROP_CASES=N`.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::{GiveUp, HookAction, HookSpec, Hooks, LoaderSpec, NotifySpec};
use crate::sync::LockExt;

/// Sequences per run; each is 20 to 200 world events long.
const CASES: u64 = 4_000;

#[test]
fn random_sequences_keep_the_invariants() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("VIGIL_PROP_SEED") {
        Some(seed) => vec![seed],
        None => (0..env("VIGIL_PROP_CASES").unwrap_or(CASES)).collect(),
    };
    // One subscriber for every sequence: the reducer logs what it refuses
    // (an illegal transition, an unexpected event) at warning level or
    // above, and any such line fails the sequence that wrote it.
    let logs = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .without_time()
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for seed in seeds {
        if let Err(failure) = run(seed, &logs) {
            panic!(
                "invariant broken, seed {seed} (replay: VIGIL_PROP_SEED={seed}):\n{}\n\
                 --- the sequence (world event => reducer effects) ---\n{}",
                failure.message,
                failure.log.join("\n")
            );
        }
    }
}

/// A broken invariant, and what led to it.
struct Failure {
    message: String,
    log: Vec<String>,
}

/// One sequence: random events, then a drain (an operator's stop, and the
/// world left to settle) that must end stopped with nothing alive.
fn run(seed: u64, logs: &Capture) -> Result<(), Failure> {
    logs.clear();
    let mut world = World::new(seed);
    let result = catch_unwind(AssertUnwindSafe(|| world.play())).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("panicked: {text}"))
    });
    let logged = logs.text();
    let result = result.and_then(|()| match logged.is_empty() {
        true => Ok(()),
        false => Err(format!("the reducer logged a warning or error:\n{logged}")),
    });
    result.map_err(|message| Failure {
        message,
        log: std::mem::take(&mut world.log),
    })
}

// -- the world: shell, processes, clock --------------------------------------

/// splitmix64: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
    fn ms(&mut self, choices: &[u64]) -> Duration {
        Duration::from_millis(self.pick(choices))
    }
}

/// A service definition drawn at random: policy, checks, notify, loader.
fn random_service(rng: &mut Rng, after: &[String]) -> Service {
    let mut svc = service();
    svc.after = after.to_vec();
    if rng.chance(50) {
        svc.requires = after.to_vec();
    }
    svc.stop_signal = rng.pick(&[Signal::SIGTERM, Signal::SIGINT]);
    svc.stop_grace = rng.ms(&[100, 1_000, 3_000]);
    let backoff = (0..1 + rng.below(4))
        .map(|_| rng.ms(&[0, 1_000, 5_000, 15_000, 60_000]))
        .collect();
    svc.restart = RestartPolicy {
        mode: rng.pick(&[
            RestartMode::Always,
            RestartMode::OnFailure,
            RestartMode::Never,
        ]),
        backoff,
        stable_uptime: rng.ms(&[5_000, 60_000]),
        give_up: rng.chance(30).then(|| GiveUp {
            restarts: 1 + rng.below(3) as u32,
            window: rng.ms(&[10_000, 60_000]),
        }),
        success_codes: rng.pick(&[vec![0], vec![0, 143]]),
    };
    let random_check = |rng: &mut Rng| {
        rng.chance(50).then(|| {
            let mut spec = check(
                rng.pick(&[100, 1_000, 5_000]),
                1 + rng.below(3) as u32,
                1 + rng.below(2) as u32,
            );
            spec.initial_delay = rng.ms(&[0, 0, 500]);
            spec.startup_timeout = rng.ms(&[1_000, 5_000, 30_000]);
            spec
        })
    };
    svc.checks = Checks {
        startup: random_check(rng),
        readiness: random_check(rng),
        liveness: random_check(rng),
    };
    svc.notify = rng.chance(30).then(|| NotifySpec {
        watchdog: rng.chance(50).then(|| rng.ms(&[500, 2_000])),
        timeout: rng.ms(&[1_000, 10_000]),
    });
    svc.loader = rng.chance(35).then(|| LoaderSpec {
        path: "/srv/svc/loader.wasm".into(),
        config: vec![],
        embedded: false,
    });
    let hook = |rng: &mut Rng| {
        rng.chance(30).then(|| HookSpec {
            action: HookAction::Command(vec!["true".into()]),
            timeout: rng.ms(&[500, 5_000]),
        })
    };
    svc.hooks = Hooks {
        pre_start: hook(rng),
        post_start: hook(rng),
        pre_stop: hook(rng),
        post_stop: hook(rng),
    };
    svc
}

/// A leader process as the reaper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leader {
    Alive,
    /// Dead, not reaped yet: the `Exited` event is still to come.
    Dead(ExitStatus),
    Reaped,
}

/// A child's process group: its leader and the members it started.
#[derive(Debug)]
struct Group {
    pgid: i32,
    leader: Leader,
    /// `true` while alive, `false` once a zombie (not reaped yet).
    members: Vec<bool>,
    spawned_at: Instant,
    /// Obeys the stop signal (else only SIGKILL ends it).
    obeys: bool,
    /// The reducer asked about this group after its leader's exit.
    watched: Option<u64>,
}

impl Group {
    fn alive(&self) -> bool {
        self.leader == Leader::Alive || self.members.iter().any(|live| *live)
    }
    /// Nothing left, not even a zombie: the shell reports `GroupGone`.
    fn empty(&self) -> bool {
        self.leader == Leader::Reaped && self.members.is_empty()
    }
}

/// What the reducer's backoff must be, followed from outside: the index of
/// the next delay in the policy's list.
#[derive(Debug, Default)]
struct BackoffModel {
    index: usize,
    /// The current child life is being stopped for an operator's restart
    /// (its restart is immediate and not the policy's).
    operator_restart: bool,
    /// The uptime of the current life's leader at its exit (zero for a
    /// failed spawn): the policy resets the backoff after a stable one.
    uptime: Duration,
    /// A loader decides restarts (now or earlier in the sequence): its
    /// delays are its own, so the policy's are not followed.
    loader_seen: bool,
}

/// The shell, the processes and the clock around one reducer.
struct World {
    rng: Rng,
    svc: Service,
    s: ServiceState,
    now: Instant,
    /// When the sequence began, for the log.
    origin: Instant,
    /// The status as the reducer's `Status` effects told it.
    status: Status,
    spawn_pending: bool,
    groups: Vec<Group>,
    next_pid: i32,
    timers: Vec<(Instant, Timer)>,
    checks: Vec<(Phase, u64)>,
    decisions: Vec<(u64, u64)>,
    /// Hooks asked for and not answered yet.
    hooks: Vec<(HookKind, u64)>,
    /// A pre-stop hook runs for the current stop: no stop signal until it
    /// ends (or the grace's SIGKILL cuts it).
    pre_stop_open: bool,
    /// Answers the shell gives at once (`GroupGone`, a zero-delay timer):
    /// handled before anything else happens.
    queue: VecDeque<Event>,
    /// Effects of a reload's update, performed before the next event.
    deferred: Vec<Effect>,
    /// Since the status became `stopping`: the child's `exited` or a
    /// spawn error was journaled.
    stop_ended: bool,
    /// What the journal last said of readiness (`ready` / `unready`).
    journaled_ready: bool,
    /// A `stopping` or `killed` was journaled for the current child: a
    /// signal to it must come after one (every stop says why first).
    said_why: bool,
    backoff: BackoffModel,
    /// How busy the operator is: the percentage of events that are a
    /// start, stop or restart (a calm sequence is mostly a crash loop or a
    /// long life with its checks).
    operator: u64,
    /// The chance, in percent, that a reload is drawn when one can happen.
    reloads: u64,
    /// A replace's spawn in flight (its number).
    successor_spawn: Option<u64>,
    /// Checks of a replace's new child, not answered yet: (seq, phase).
    successor_checks: Vec<(u64, Phase)>,
    /// A replace's hooks, not answered yet: (seq, hook).
    replace_hooks: Vec<(u64, HookKind)>,
    /// The replaced children's groups whose end the reducer waits for.
    old_watch: Vec<(i32, u64)>,
    /// The replaced child's group while its pre-stop hook runs.
    old_pre_stop: Option<i32>,
    /// Questions to the loader's `decide-replace`, not answered yet.
    replace_questions: Vec<u64>,
    log: Vec<String>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let after: Vec<String> = if rng.chance(25) {
            vec!["db".into()]
        } else {
            vec![]
        };
        let svc = random_service(&mut rng, &after);
        let backoff = BackoffModel {
            loader_seen: svc.loader.is_some(),
            ..BackoffModel::default()
        };
        let operator = rng.pick(&[1, 3, 10]);
        let reloads = rng.pick(&[0, 50, 100]);
        let log = vec![format!("service: {svc:?}")];
        let now = Instant::now();
        World {
            s: ServiceState::new(&svc),
            svc,
            rng,
            now,
            origin: now,
            status: Status::Stopped,
            spawn_pending: false,
            groups: vec![],
            next_pid: 100,
            timers: vec![],
            checks: vec![],
            decisions: vec![],
            hooks: vec![],
            pre_stop_open: false,
            queue: VecDeque::new(),
            deferred: Vec::new(),
            stop_ended: false,
            journaled_ready: false,
            said_why: false,
            backoff,
            operator,
            reloads,
            successor_spawn: None,
            successor_checks: Vec::new(),
            replace_hooks: Vec::new(),
            old_watch: Vec::new(),
            old_pre_stop: None,
            replace_questions: Vec::new(),
            log,
        }
    }

    fn play(&mut self) -> Result<(), String> {
        self.deliver(Event::Start)?;
        let steps = 20 + self.rng.below(180);
        for _ in 0..steps {
            self.world_event()?;
        }
        self.drain()
    }

    /// One thing happens in the world (operator, processes, checks,
    /// loader, clock), then whatever the shell answers at once.
    fn world_event(&mut self) -> Result<(), String> {
        let event = loop {
            let event = self.random_event();
            for effect in std::mem::take(&mut self.deferred) {
                self.perform(&Event::Start, effect)?;
            }
            if let Some(event) = event {
                break event;
            }
        };
        // A required dependency going away: the shell says "not ready",
        // then "gone".
        let gone = event == Event::Dependencies(false)
            && !self.svc.requires.is_empty()
            && self.rng.chance(50);
        self.deliver(event)?;
        if gone {
            self.deliver(Event::DependencyGone("db".into()))?;
        }
        Ok(())
    }

    /// A random event the world can produce now; `None` if the one drawn
    /// cannot happen (say, a crash with no child).
    fn random_event(&mut self) -> Option<Event> {
        let leader = self.groups.iter().position(|g| g.leader == Leader::Alive);
        if self.rng.chance(self.operator) {
            return Some(match self.rng.below(7) {
                0..=1 => Event::Start,
                2..=3 => Event::Stop(Why::operator("vigil stop")),
                4 => Event::Restart(Why::operator("vigil restart")),
                _ => Event::Replace(Why::operator("vigil replace")),
            });
        }
        if let Some(seq) = self.s.successor_seq()
            && self.rng.chance(15)
        {
            // The new child of a replace: its check answers, its READY=1.
            if self.svc.notify.is_some() && self.s.successor_pid().is_some() && self.rng.chance(40)
            {
                return Some(Event::Replacement(ReplaceEvent::Ready { seq }));
            }
            if !self.successor_checks.is_empty() {
                let i = self.rng.below(self.successor_checks.len() as u64) as usize;
                let (seq, phase) = self.successor_checks.remove(i);
                let outcome = match self.rng.below(10) {
                    0..=5 => Verdict::Ok,
                    6..=7 => Verdict::Retry("not yet".into()),
                    8 => Verdict::Error("broken".into()),
                    _ => Verdict::timed_out(None),
                };
                return Some(Event::Replacement(ReplaceEvent::Check {
                    seq,
                    phase,
                    outcome,
                }));
            }
        }
        match self.rng.below(100) {
            0..=2 => (!self.svc.after.is_empty()).then(|| Event::Dependencies(self.rng.chance(60))),
            3 => {
                if self.rng.chance(self.reloads) {
                    self.reload();
                }
                None
            }
            4..=23 => self.progress(false),
            24..=31 => {
                // The leader exits by itself: a crash, a clean exit, or a
                // daemonizing parent leaving its group behind.
                let i = leader?;
                let status = self.rng.pick(&[
                    ExitStatus::Code(0),
                    ExitStatus::Code(1),
                    ExitStatus::Code(143),
                    ExitStatus::Signal(9),
                    ExitStatus::Signal(11),
                ]);
                self.groups[i].leader = Leader::Dead(status);
                self.reap(i)
            }
            32..=35 => {
                // A member ends by itself.
                let g = self.rng.below(self.groups.len() as u64) as usize;
                let group = self.groups.get_mut(g)?;
                let m = group.members.iter().position(|live| *live)?;
                group.members[m] = false;
                None
            }
            36..=45 => {
                // Time passes, up to the next timer.
                let step = self.rng.ms(&[10, 100, 1_000, 5_000, 30_000, 90_000]);
                let next = self.timers.iter().map(|(at, _)| *at).min();
                self.now = match next {
                    Some(at) if at < self.now + step => at.max(self.now),
                    _ => self.now + step,
                };
                None
            }
            46..=55 => self.answer_check(),
            56..=60 => self.answer_hook(),
            61..=70 => self.answer_decision(),
            71..=78 => {
                // A notify message, from the current child only (the
                // shell checks the sender).
                self.svc.notify?;
                let pgid = self.groups.get(leader?)?.pgid;
                (self.s.pid() == Some(pgid)).then_some(())?;
                let message = match self.rng.below(10) {
                    0..=4 => Notify::Ready,
                    5..=8 => Notify::Watchdog,
                    _ => Notify::WatchdogTrigger,
                };
                Some(Event::Notify(message))
            }
            _ => self.fire_timer(),
        }
    }

    /// What the shell and the processes do without anyone asking: answer
    /// a spawn (at once when `eager`, else maybe later), reap a dead leader
    /// or a zombie member, report an empty group.
    fn progress(&mut self, eager: bool) -> Option<Event> {
        if let Some(i) = self
            .old_watch
            .iter()
            .position(|(pgid, _)| !self.groups.iter().any(|g| g.pgid == *pgid && g.alive()))
        {
            let (_, seq) = self.old_watch.remove(i);
            return Some(Event::Replacement(ReplaceEvent::OldGroupGone { seq }));
        }
        if let Some(seq) = self.successor_spawn
            && (eager || self.rng.chance(50))
        {
            self.successor_spawn = None;
            if self.rng.chance(10) {
                return Some(Event::Replacement(ReplaceEvent::SpawnFailed {
                    seq,
                    error: "no such file".into(),
                }));
            }
            let pid = self.next_pid;
            self.next_pid += 1;
            self.groups.push(Group {
                pgid: pid,
                leader: Leader::Alive,
                members: vec![true; self.rng.below(2) as usize],
                spawned_at: self.now,
                obeys: self.rng.chance(70),
                watched: None,
            });
            return Some(Event::Replacement(ReplaceEvent::Spawned {
                seq,
                pid,
                start_time: Some(1),
            }));
        }
        if self.spawn_pending && (eager || self.rng.chance(50)) {
            self.spawn_pending = false;
            if self.rng.chance(15) {
                self.backoff.uptime = Duration::ZERO;
                return Some(Event::SpawnFailed("no such file".into()));
            }
            let pid = self.next_pid;
            self.next_pid += 1;
            let members = match self.rng.below(10) {
                0..=6 => 0,
                7..=8 => 1,
                _ => 2,
            };
            self.groups.push(Group {
                pgid: pid,
                leader: Leader::Alive,
                members: vec![true; members],
                spawned_at: self.now,
                obeys: self.rng.chance(70),
                watched: None,
            });
            return Some(Event::Spawned {
                pid,
                start_time: Some(1),
            });
        }
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| matches!(g.leader, Leader::Dead(_)))
        {
            return self.reap(i);
        }
        // A replace's child, old or new: the reducer does not watch its
        // group, the reaper just takes what is left.
        let current = self.s.group();
        for group in &mut self.groups {
            if group.watched.is_none() && Some(group.pgid) != current {
                group.members.retain(|live| *live);
            }
        }
        self.groups
            .retain(|g| !(g.watched.is_none() && g.empty() && Some(g.pgid) != current));
        for i in 0..self.groups.len() {
            // The reaper takes the zombies.
            let group = &mut self.groups[i];
            group.members.retain(|live| *live);
            if let Some(epoch) = group.watched
                && group.empty()
            {
                self.groups.remove(i);
                return Some(Event::GroupGone { epoch, oom: false });
            }
        }
        None
    }

    /// Whether a group of the service's own life is left (watched or
    /// alive), besides a replace's old child in its grace and a failed
    /// replace's new child (an unwatched dead group is one of theirs,
    /// reaped).
    fn child_groups(&self) -> bool {
        let old = self.s.predecessor_group();
        let successor = self.s.successor_pid();
        self.groups.iter().any(|g| {
            (g.watched.is_some() || g.alive()) && Some(g.pgid) != old && Some(g.pgid) != successor
        })
    }

    /// The reaper delivers the exit of group `i`'s dead leader.
    fn reap(&mut self, i: usize) -> Option<Event> {
        let group = &mut self.groups[i];
        let Leader::Dead(status) = group.leader else {
            return None;
        };
        group.leader = Leader::Reaped;
        let uptime = self.now.saturating_duration_since(group.spawned_at);
        // Told apart by pid, as the shell does.
        let pid = Some(group.pgid);
        if pid == self.s.successor_pid()
            && let Some(seq) = self.s.successor_seq()
        {
            return Some(Event::Replacement(ReplaceEvent::Exited { seq, status }));
        }
        if pid == self.s.predecessor_pid() && pid != self.s.pid() {
            return Some(Event::Replacement(ReplaceEvent::OldExited {
                status,
                uptime,
            }));
        }
        self.backoff.uptime = uptime;
        Some(Event::Exited { status, uptime })
    }

    fn answer_check(&mut self) -> Option<Event> {
        if self.checks.is_empty() {
            return None;
        }
        let i = self.rng.below(self.checks.len() as u64) as usize;
        let (phase, epoch) = self.checks.remove(i);
        let outcome = match self.rng.below(10) {
            0..=4 => Verdict::Ok,
            5..=6 => Verdict::Retry("not yet".into()),
            7 => Verdict::Error("broken".into()),
            8 => Verdict::Trapped("unreachable".into()),
            _ => Verdict::timed_out(None),
        };
        Some(Event::Check {
            epoch,
            phase,
            outcome,
        })
    }

    /// A hook ends, any open one: ok mostly, else failed.
    fn answer_hook(&mut self) -> Option<Event> {
        if !self.replace_hooks.is_empty() && (self.hooks.is_empty() || self.rng.chance(50)) {
            let i = self.rng.below(self.replace_hooks.len() as u64) as usize;
            let (seq, hook) = self.replace_hooks.remove(i);
            let result = match self.rng.chance(75) {
                true => Ok(()),
                false => Err("exit code 1".into()),
            };
            if hook == HookKind::PreStop {
                self.old_pre_stop = None;
            }
            return Some(Event::Replacement(ReplaceEvent::Hook { seq, hook, result }));
        }
        if self.hooks.is_empty() {
            return None;
        }
        let i = self.rng.below(self.hooks.len() as u64) as usize;
        let (hook, epoch) = self.hooks.remove(i);
        let result = match self.rng.chance(75) {
            true => Ok(()),
            false => Err("exit code 1".into()),
        };
        if hook == HookKind::PreStart && result.is_err() {
            // A failed start, as a failed spawn: no uptime.
            self.backoff.uptime = Duration::ZERO;
        }
        Some(Event::Hook {
            epoch,
            hook,
            result,
        })
    }

    /// A loader's answer, to any open question: answers can overtake each
    /// other.
    fn answer_decision(&mut self) -> Option<Event> {
        if !self.replace_questions.is_empty() && (self.decisions.is_empty() || self.rng.chance(50))
        {
            let i = self.rng.below(self.replace_questions.len() as u64) as usize;
            let question = self.replace_questions.remove(i);
            let answer = match self.rng.below(10) {
                0..=4 => Ok(Some(ReplaceAnswer::Proceed)),
                5 => Ok(None),
                6..=7 => Ok(Some(ReplaceAnswer::Restart)),
                8 => Ok(Some(ReplaceAnswer::Refuse("not now".into()))),
                _ => Err("loader trapped".into()),
            };
            return Some(Event::Replacement(ReplaceEvent::Decided {
                question,
                answer,
            }));
        }
        if self.decisions.is_empty() {
            return None;
        }
        let i = self.rng.below(self.decisions.len() as u64) as usize;
        let (epoch, seq) = self.decisions.remove(i);
        let action = match self.rng.below(12) {
            0..=3 => Ok(Action::None),
            4..=6 => Ok(Action::Restart(self.rng.ms(&[0, 250, 7_000]))),
            7 => Ok(Action::Stop("the loader says so".into())),
            8 => Ok(Action::Kill(9)),
            9 => Ok(Action::Kill(15)),
            10 => Ok(Action::Kill(999)),
            _ => Err("loader trapped".into()),
        };
        Some(Event::Decision { epoch, seq, action })
    }

    /// The earliest timer fires (the clock moves to it).
    fn fire_timer(&mut self) -> Option<Event> {
        let i = (0..self.timers.len()).min_by_key(|i| self.timers[*i].0)?;
        let (at, timer) = self.timers.remove(i);
        self.now = self.now.max(at);
        Some(Event::Timer(timer))
    }

    /// A changed manifest, as the shell applies it: swapped in, and a
    /// restart when the child must change (loader or notify socket),
    /// unless an operator stopped the service.
    fn reload(&mut self) {
        let new = random_service(&mut self.rng, &self.svc.after);
        let restart = self.svc.needs_restart_for(&new);
        self.log.push(format!("reload: {new:?}"));
        self.backoff.loader_seen |= new.loader.is_some();
        self.deferred = self.s.update(self.now, &new);
        self.svc = new;
        if restart && self.s.status() != Status::Stopped {
            self.queue
                .push_back(Event::Restart(Why::new(Cause::Reload, "command changed")));
        }
    }

    /// Hand `event` to the reducer, then the shell's immediate answers.
    fn deliver(&mut self, event: Event) -> Result<(), String> {
        self.queue.push_front(event);
        while let Some(event) = self.queue.pop_front() {
            self.handle(event)?;
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        let before = self.status;
        // A replace with no child serving is a restart.
        let serving = matches!(before, Status::Running | Status::Ready) && self.s.pid().is_some();
        let event_for_model = match &event {
            Event::Replace(why) if !serving => Event::Restart(why.clone()),
            other => other.clone(),
        };
        match event_for_model {
            Event::Start | Event::Restart(_) if before.is_down() => self.backoff.index = 0,
            Event::Restart(_) if before.has_child() => self.backoff.operator_restart = true,
            Event::Stop(_) if before.has_child() => self.backoff.operator_restart = false,
            // A start asked while it stops: queued behind the stop, at once
            // (the generator never stops for shutdown, which ignores it).
            Event::Start if before == Status::Stopping => {
                self.backoff.index = 0;
                self.backoff.operator_restart = true;
            }
            // Stopped for its dependency, started again at once when it is
            // back: a restart asked for, like the operator's.
            Event::DependencyGone(_) if before.has_child() && before != Status::Stopping => {
                self.backoff.operator_restart = true
            }
            _ => {}
        }
        if let Event::Hook {
            hook: HookKind::PreStop,
            epoch,
            ..
        } = &event
            && *epoch == self.s.epoch()
        {
            self.pre_stop_open = false;
        }
        let line = format!("{:>8?} {event:?}", self.now.duration_since(self.origin));
        let effects = self.s.handle(self.now, event.clone());
        let mut shown = vec![];
        for effect in &effects {
            shown.push(brief(effect));
        }
        self.log
            .push(format!("{line}\n           => [{}]", shown.join(", ")));
        for effect in effects {
            self.perform(&event, effect)?;
        }
        if self.s.status() != self.status {
            return Err(format!(
                "status() is {} but its effects said {}",
                self.s.status(),
                self.status
            ));
        }
        if self.journaled_ready != (self.status == Status::Ready) {
            return Err(format!(
                "{} but the journal last said {}",
                self.status,
                if self.journaled_ready {
                    "ready"
                } else {
                    "unready"
                }
            ));
        }
        // Two children only during a replace.
        let allowed = [
            self.s.group(),
            self.s.successor_pid(),
            self.s.predecessor_group(),
        ];
        if let Some(stray) = self
            .groups
            .iter()
            .find(|g| g.alive() && !allowed.contains(&Some(g.pgid)))
        {
            return Err(format!(
                "a live group that is neither the child nor a replace's: {stray:?}"
            ));
        }
        if self.s.successor_pid().is_some() && self.s.predecessor_pid().is_some() {
            return Err("a new replace while the old child of the last one lives".into());
        }
        if !self.status.has_child() && (self.s.pid().is_some() || self.s.group().is_some()) {
            return Err(format!(
                "{} with a child: pid {:?}, group {:?}",
                self.status,
                self.s.pid(),
                self.s.group()
            ));
        }
        Ok(())
    }

    fn perform(&mut self, event: &Event, effect: Effect) -> Result<(), String> {
        match effect {
            Effect::Status(to) => {
                if !can_transition(self.status, to) {
                    return Err(format!("illegal transition {} -> {to}", self.status));
                }
                if self.status == Status::Stopping && !self.stop_ended {
                    return Err(format!(
                        "left stopping for {to} without the child's exit journaled"
                    ));
                }
                let old = self.s.predecessor_group();
                let successor = self.s.successor_pid();
                let others = self
                    .groups
                    .iter()
                    .any(|g| g.alive() && Some(g.pgid) != old && Some(g.pgid) != successor);
                if !to.has_child() && (self.spawn_pending || others) {
                    return Err(format!("{to} while a child lives: {:?}", self.groups));
                }
                if to == Status::Stopping {
                    // A stop before the spawn (during the pre-start hook,
                    // or while the last post-stop runs) has no child to end.
                    // (A replace's reaped or dying child is not this
                    // stop's to end.)
                    self.stop_ended = !self.spawn_pending && !self.child_groups();
                }
                self.status = to;
            }
            Effect::Spawn { .. } => {
                if self.status != Status::Starting {
                    return Err(format!("spawn while {}", self.status));
                }
                if self.spawn_pending {
                    return Err("a second spawn while one is in flight".into());
                }
                // A replace's old child may still be in its grace; a new
                // child of a failed replace is being killed.
                let old = self.s.predecessor_group();
                let successor = self.s.successor_pid();
                if self
                    .groups
                    .iter()
                    // (an unwatched dead group is a replace's, reaped)
                    .any(|g| {
                        (g.watched.is_some() || g.alive())
                            && Some(g.pgid) != old
                            && Some(g.pgid) != successor
                    })
                {
                    return Err(format!(
                        "spawn beside the previous child's group: {:?}",
                        self.groups
                    ));
                }
                let pre_start_ok = matches!(
                    event,
                    Event::Hook {
                        hook: HookKind::PreStart,
                        result: Ok(()),
                        ..
                    }
                );
                if self.svc.hooks.pre_start.is_some() && !pre_start_ok {
                    return Err(format!(
                        "spawn without its pre-start hook's ok (on {event:?})"
                    ));
                }
                if self.hooks.iter().any(|(h, _)| *h == HookKind::PostStop) {
                    return Err("spawn while the last post-stop hook runs".into());
                }
                self.spawn_pending = true;
                self.said_why = false;
                // A former life's pre-stop hook may still run: not this one's.
                self.pre_stop_open = false;
                self.backoff.operator_restart = false;
            }
            Effect::Signal { pgid, signal } => {
                // The replaced child's `stopping` came at the switch; the
                // current child may have been respawned since.
                let replaced = Some(pgid) == self.s.predecessor_group();
                if !self.said_why && !replaced {
                    return Err(format!(
                        "{signal} to {pgid} with no stopping or killed first"
                    ));
                }
                if Some(pgid) == self.old_pre_stop
                    && !matches!(signal, Signal::SIGKILL | Signal::SIGCONT)
                {
                    return Err(format!(
                        "{signal} to the replaced child {pgid} while its pre-stop hook runs"
                    ));
                }
                // The current stop's pre-stop hook holds the current
                // child's signal, not the replaced child's (its own hook
                // ended).
                let current = Some(pgid) != self.s.predecessor_group();
                match signal {
                    Signal::SIGKILL => self.pre_stop_open = false,
                    Signal::SIGCONT => {}
                    _ if self.pre_stop_open && current => {
                        return Err(format!("{signal} to {pgid} while its pre-stop hook runs"));
                    }
                    _ => {}
                }
                self.signal(pgid, signal)
            }
            Effect::WatchGroup { pgid, epoch } => {
                match self.groups.iter().position(|g| g.pgid == pgid) {
                    Some(i) if !self.groups[i].empty() => {
                        let live = self.groups[i].members.iter().any(|live| *live);
                        self.groups[i].watched = Some(epoch);
                        self.queue.push_back(Event::GroupLingers { epoch, live });
                    }
                    Some(i) => {
                        self.groups.remove(i);
                        self.queue.push_back(Event::GroupGone { epoch, oom: false });
                    }
                    None => self.queue.push_back(Event::GroupGone { epoch, oom: false }),
                }
            }
            Effect::Schedule {
                timer,
                after,
                spread,
                ..
            } => {
                if timer.kind == TimerKind::Backoff {
                    self.check_backoff(event, after)?;
                }
                let extra = Duration::from_millis(self.rng.below(spread.as_millis() as u64 + 1));
                let at = self.now + after + extra;
                if at == self.now {
                    self.queue.push_back(Event::Timer(timer));
                } else {
                    self.timers.push((at, timer));
                }
            }
            Effect::RunCheck { phase, epoch, .. } => self.checks.push((phase, epoch)),
            Effect::RunHook { hook, epoch } => {
                match hook {
                    HookKind::PreStop => {
                        let leader = self.groups.iter().any(|g| g.leader != Leader::Reaped);
                        if !leader || self.status != Status::Stopping {
                            return Err(format!(
                                "pre-stop hook while {} without a live leader",
                                self.status
                            ));
                        }
                        self.pre_stop_open = true;
                    }
                    HookKind::PostStop => {
                        if self.groups.iter().any(Group::alive) {
                            return Err(format!(
                                "post-stop hook while the group lives: {:?}",
                                self.groups
                            ));
                        }
                        if self.hooks.iter().any(|(h, _)| *h == HookKind::PostStop) {
                            return Err("a second post-stop hook while one runs".into());
                        }
                    }
                    HookKind::PreStart => {
                        // As for a spawn: a replace's old child may still
                        // be in its grace, a failed replace's new child
                        // still dying (an unwatched dead group is one of
                        // theirs, reaped).
                        if self.spawn_pending || self.child_groups() {
                            return Err(format!(
                                "pre-start hook beside a child: {:?}",
                                self.groups
                            ));
                        }
                    }
                    HookKind::PostStart => {}
                }
                self.hooks.push((hook, epoch));
            }
            Effect::SpawnSuccessor { seq, .. } => {
                if !matches!(self.status, Status::Running | Status::Ready) {
                    return Err(format!("a replace's spawn while {}", self.status));
                }
                let pre_start_ok = matches!(
                    event,
                    Event::Replacement(ReplaceEvent::Hook {
                        hook: HookKind::PreStart,
                        result: Ok(()),
                        ..
                    })
                );
                if self.svc.hooks.pre_start.is_some() && !pre_start_ok {
                    return Err(format!(
                        "a replace's spawn without its pre-start hook's ok (on {event:?})"
                    ));
                }
                if self.successor_spawn.is_some() {
                    return Err("a second replace's spawn in flight".into());
                }
                self.successor_spawn = Some(seq);
            }
            Effect::RunSuccessorCheck {
                seq, phase, pid, ..
            } => {
                if Some(pid) != self.s.successor_pid() {
                    return Err(format!("a replace's check of {pid}, not its new child"));
                }
                self.successor_checks.push((seq, phase));
            }
            Effect::RunReplaceHook { hook, seq, pid } => {
                match hook {
                    HookKind::PreStart => {
                        if pid.is_some() || self.s.successor_pid().is_some() {
                            return Err(format!(
                                "a replace's pre-start hook beside its child {pid:?}"
                            ));
                        }
                    }
                    HookKind::PostStart => {
                        if pid.is_none() || pid != self.s.successor_pid() {
                            return Err(format!(
                                "a replace's post-start hook for {pid:?}, not its new child"
                            ));
                        }
                    }
                    HookKind::PreStop => {
                        let live = self
                            .groups
                            .iter()
                            .any(|g| Some(g.pgid) == pid && g.leader != Leader::Reaped);
                        if pid.is_none() || pid != self.s.predecessor_pid() || !live {
                            return Err(format!(
                                "a replace's pre-stop hook for {pid:?}, not a live old child"
                            ));
                        }
                        self.old_pre_stop = pid;
                    }
                    HookKind::PostStop => {
                        if !matches!(event, Event::Replacement(ReplaceEvent::OldGroupGone { .. })) {
                            return Err(format!(
                                "a replace's post-stop hook before its group is gone (on {event:?})"
                            ));
                        }
                    }
                }
                self.replace_hooks.push((seq, hook));
            }
            Effect::WatchReplaced { pgid, seq } => {
                if self.old_watch.iter().any(|(g, _)| *g == pgid) {
                    return Err(format!("group {pgid} watched twice"));
                }
                self.old_watch.push((pgid, seq));
            }
            Effect::Decide { epoch, seq, .. } => self.decisions.push((epoch, seq)),
            Effect::DecideReplace { question, .. } => {
                if self.svc.loader.is_none() {
                    return Err("decide-replace asked of a service without a loader".into());
                }
                self.replace_questions.push(question);
            }
            Effect::Journal(Journal::Exited { .. } | Journal::SpawnError { .. }) => {
                self.stop_ended = true;
            }
            Effect::Journal(
                Journal::Stopping { .. } | Journal::Killed { .. } | Journal::ReplaceFailed { .. },
            ) => {
                self.said_why = true;
            }
            Effect::Journal(Journal::Ready) => {
                if self.journaled_ready {
                    return Err("ready twice".into());
                }
                self.journaled_ready = true;
            }
            Effect::Journal(Journal::Unready { .. }) => {
                if !self.journaled_ready {
                    return Err("unready without ready".into());
                }
                self.journaled_ready = false;
            }
            Effect::Journal(_) => {}
        }
        Ok(())
    }

    /// A signal to a process group: SIGKILL ends everything in it; the
    /// stop signal (or a loader's) ends the processes that obey it.
    fn signal(&mut self, pgid: i32, signal: Signal) {
        let Some(group) = self.groups.iter_mut().find(|g| g.pgid == pgid) else {
            return; // ESRCH
        };
        let ends = match signal {
            Signal::SIGKILL => true,
            Signal::SIGCONT => false,
            _ => group.obeys,
        };
        if !ends {
            return;
        }
        if group.leader == Leader::Alive {
            let status = match signal {
                // A program that handles the stop signal exits cleanly.
                Signal::SIGTERM if self.rng.chance(50) => ExitStatus::Code(0),
                other => ExitStatus::Signal(other as i32),
            };
            group.leader = Leader::Dead(status);
        }
        for live in &mut group.members {
            *live = false;
        }
    }

    /// The restart delay the built-in policy must give, followed from
    /// outside (see [`BackoffModel`]); other restarts are the operator's
    /// (at once) or a loader's.
    fn check_backoff(&mut self, event: &Event, delay: Duration) -> Result<(), String> {
        let model = &mut self.backoff;
        if model.loader_seen {
            return Ok(());
        }
        if model.operator_restart {
            model.operator_restart = false;
            return match delay.is_zero() {
                true => Ok(()),
                false => Err(format!("an operator's restart waits {delay:?}")),
            };
        }
        let policy = &self.svc.restart;
        if model.uptime >= policy.stable_uptime {
            model.index = 0;
        }
        let last = policy.backoff.len().saturating_sub(1);
        let expected = policy.backoff[model.index.min(last)];
        model.index += 1;
        if delay < expected {
            return Err(format!(
                "restart after {delay:?}, shorter than the policy's {expected:?} \
                 (on {event:?})"
            ));
        }
        if delay != expected {
            return Err(format!(
                "restart after {delay:?}, not the policy's {expected:?} (on {event:?})"
            ));
        }
        Ok(())
    }

    /// The operator stops the service and the world is left to settle:
    /// the stop must end (the child and its group gone, `stopped`), and
    /// hold (nothing starts again, whatever else is still due).
    fn drain(&mut self) -> Result<(), String> {
        self.log
            .push("--- drain: the operator stops the service ---".into());
        self.deliver(Event::Stop(Why::operator("vigil stop")))?;
        for _ in 0..1_000 {
            let settled = self.status == Status::Stopped
                && self.groups.is_empty()
                && !self.spawn_pending
                && self.successor_spawn.is_none();
            let event = self
                .progress(true)
                .or_else(|| self.answer_check())
                .or_else(|| self.answer_decision())
                .or_else(|| self.answer_hook())
                .or_else(|| self.fire_timer());
            // Looking for an event may have let the reaper take a
            // replace's dead group.
            let settled = settled || (self.status == Status::Stopped && self.groups.is_empty());
            match event {
                Some(event) => self.deliver(event)?,
                None if settled && !self.spawn_pending && self.successor_spawn.is_none() => {
                    return Ok(());
                }
                None => {
                    return Err(format!(
                        "the stop never ends: {} with nothing left to happen; groups {:?}",
                        self.status, self.groups
                    ));
                }
            }
            if settled && self.status != Status::Stopped {
                return Err(format!("{} after the operator's stop", self.status));
            }
        }
        Err(format!(
            "the stop does not end after 1,000 events: {}, groups {:?}",
            self.status, self.groups
        ))
    }
}

/// An effect for the log, without the loader's history.
fn brief(effect: &Effect) -> String {
    match effect {
        Effect::Decide {
            epoch, seq, event, ..
        } => format!("Decide {{ epoch: {epoch}, seq: {seq}, event: {event:?} }}"),
        Effect::Status(s) => format!("Status({s})"),
        other => format!("{other:?}"),
    }
}

/// What the reducer logs at warning level and above, during one sequence.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn clear(&self) {
        self.0.lock_unpoisoned().clear();
    }
    fn text(&self) -> String {
        let bytes = self.0.lock_unpoisoned();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock_unpoisoned().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}
