//! The epoch timer behind CPU deadlines, and the guard every guest call holds.
//!
//! While a guest call runs, something must advance the engine's epoch
//! every [`EPOCH_TICK`]: a guest spinning in a loop only stops (to yield,
//! or to be interrupted at its deadline) when it sees the epoch move, and
//! the thread running it is busy running it. Two ways:
//!
//! - **A thread** ([`Ticker::Thread`]), for the supervisor: it sleeps
//!   while no call runs, so an idle supervisor pays no wake-ups.
//! - **A signal** ([`Ticker::Alarm`]), for a one-shot process (`vigil
//!   check`, `vigil-probe`): a POSIX timer armed only while a call runs
//!   sends `SIGALRM`, whose handler advances the epoch (an atomic add,
//!   which wasmtime documents as signal-safe). A second thread costs an
//!   exec probe 0.15-0.2 ms of its ~1.7 ms (starting it, and making
//!   musl's allocator lock on every call after), a tenth of the whole
//!   budget; a check that finishes within a tick never gets a signal.
//!   The handler is installed with `SA_RESTART`, and only while a call
//!   runs longer than a tick can a signal interrupt anything. One engine
//!   per process can own the signal; another one-shot engine in the same
//!   process (tests) gets a thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal};
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

use super::engine::EPOCH_TICK;
use crate::sync::LockExt;

/// Counts the calls in flight and keeps the epoch advancing while any is.
pub(super) struct EpochTimer {
    active: AtomicUsize,
    ticker: Ticker,
}

enum Ticker {
    /// Started by the first call, not with the engine (`vigil validate`
    /// never calls); `None` inside when it could not be started (logged).
    Thread {
        engine: wasmtime::EngineWeak,
        thread: OnceLock<Option<std::thread::Thread>>,
    },
    /// This process's `SIGALRM` timer ([`ALARM`]), armed while a call
    /// runs.
    Alarm,
}

/// The engine the `SIGALRM` handler advances: set once, before the
/// handler is installed, and never changed, so the handler only reads.
static ALARMED_ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
/// The timer sending it. Its lock also orders arming and disarming with
/// the count of calls they follow.
static ALARM: OnceLock<Mutex<AlarmTimer>> = OnceLock::new();

/// A POSIX timer: a kernel timer id.
struct AlarmTimer(Timer);

// SAFETY: `Timer` holds a `timer_t`, the id of a per-process kernel timer,
// not memory it points into: any thread may set it (`timer_settime` is a
// syscall on the id), and the mutex around it serializes them.
unsafe impl Send for AlarmTimer {}

extern "C" fn advance_epoch(_: libc::c_int) {
    // Async-signal-safe: an atomic load of an initialized `OnceLock` and
    // `increment_epoch`, one atomic add.
    if let Some(engine) = ALARMED_ENGINE.get() {
        engine.increment_epoch();
    }
}

impl EpochTimer {
    /// The timer of a long-lived engine: a thread.
    pub(super) fn thread(engine: &wasmtime::Engine) -> Arc<EpochTimer> {
        Arc::new(EpochTimer {
            active: AtomicUsize::new(0),
            ticker: Ticker::Thread {
                engine: engine.weak(),
                thread: OnceLock::new(),
            },
        })
    }

    /// The timer of a one-shot engine: the signal when this process's is
    /// free and can be set up, else a thread.
    pub(super) fn one_shot(engine: &wasmtime::Engine) -> Arc<EpochTimer> {
        if claim_alarm(engine) {
            return Arc::new(EpochTimer {
                active: AtomicUsize::new(0),
                ticker: Ticker::Alarm,
            });
        }
        Self::thread(engine)
    }

    /// Counts a call in; the first of a run of calls starts the ticking.
    pub(super) fn call_started(self: &Arc<Self>) {
        if self.active.fetch_add(1, Ordering::AcqRel) != 0 {
            return;
        }
        match &self.ticker {
            Ticker::Thread { thread, .. } => {
                if let Some(thread) = thread.get_or_init(|| self.spawn()) {
                    thread.unpark();
                }
            }
            Ticker::Alarm => set_alarm(&self.active),
        }
    }

    /// Counts a call out; the last one stops the signal (a thread notices
    /// by itself and parks).
    fn call_ended(&self) {
        if self.active.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if let Ticker::Alarm = self.ticker {
            set_alarm(&self.active);
        }
    }

    fn spawn(self: &Arc<Self>) -> Option<std::thread::Thread> {
        let Ticker::Thread { engine, .. } = &self.ticker else {
            return None;
        };
        let weak = engine.clone();
        let shared = self.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    if shared.active.load(Ordering::Acquire) == 0 {
                        drop(engine);
                        // Unparked by the next call; the timeout only notices
                        // a dropped engine. A wake-up between the load and the
                        // park is kept as a token, so none is lost.
                        std::thread::park_timeout(Duration::from_secs(1));
                        continue;
                    }
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            });
        match spawned {
            Ok(handle) => Some(handle.thread().clone()),
            Err(err) => {
                tracing::error!(
                    "cannot start the epoch timer thread: {err}; CPU deadlines will not fire"
                );
                None
            }
        }
    }
}

/// Makes `engine` the one `SIGALRM` advances, if no engine is yet and the
/// signal is this process's to take (nobody handles it): installs the
/// handler and creates the timer, disarmed.
fn claim_alarm(engine: &wasmtime::Engine) -> bool {
    // The first engine to set it owns the signal; any later one, or one
    // racing it, gets a thread.
    if ALARMED_ENGINE.set(engine.clone()).is_err() {
        return false;
    }
    let timer = Timer::new(
        ClockId::CLOCK_MONOTONIC,
        SigEvent::new(SigevNotify::SigevSignal {
            signal: Signal::SIGALRM,
            si_value: 0,
        }),
    );
    let Ok(timer) = timer else {
        return false;
    };
    if ALARM.set(Mutex::new(AlarmTimer(timer))).is_err() {
        return false;
    }
    let action = SigAction::new(
        SigHandler::Handler(advance_epoch),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: `advance_epoch` is async-signal-safe (see there) and reads
    // only `ALARMED_ENGINE`, set above and never changed; nothing else in
    // vigil handles SIGALRM. If someone did (the previous action is not
    // the default), theirs is put back and the engine gets a thread.
    match unsafe { nix::sys::signal::sigaction(Signal::SIGALRM, &action) } {
        Ok(previous) if previous.handler() == SigHandler::SigDfl => true,
        Ok(previous) => {
            // SAFETY: restores the action that was there a moment ago.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGALRM, &previous) };
            false
        }
        Err(_) => false,
    }
}

/// Arms the alarm to tick while calls are `active`, else disarms it. The
/// count is read under the timer's lock, so of a call ending and one
/// starting at once, the later decision is the one that stays.
fn set_alarm(active: &AtomicUsize) {
    let Some(alarm) = ALARM.get() else {
        return;
    };
    let mut alarm = alarm.lock_unpoisoned();
    let expiration = if active.load(Ordering::Acquire) > 0 {
        Expiration::Interval(EPOCH_TICK.into())
    } else {
        // A zero expiry disarms.
        Expiration::OneShot(Duration::ZERO.into())
    };
    if let Err(err) = alarm.0.set(expiration, TimerSetTimeFlags::empty()) {
        tracing::error!("cannot set the epoch timer: {err}; CPU deadlines may not fire");
    }
}

/// Held for the length of one guest call: a slot of the concurrency bound,
/// and the epoch timer kept running.
pub(crate) struct CallGuard<'a> {
    pub(super) timer: &'a EpochTimer,
    pub(super) _permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.timer.call_ended();
    }
}
