//! The built-in restart policy, as a pure function of the policy, its past and the exit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{RestartMode, RestartPolicy};

/// What the built-in policy remembers between the exits of one service. An
/// operator's start begins a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartBook {
    /// Which delay of the policy's backoff list comes next (the last one
    /// repeats).
    backoff_index: usize,
    /// When recent restarts were decided, oldest first; kept only with a
    /// give-up window, and only within it.
    restart_times: VecDeque<Instant>,
}

/// The built-in policy's answer to one exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Stay down (`exited`).
    Exited,
    /// Go to `failed` with this reason.
    GiveUp(String),
    /// Start again after this delay.
    Restart(Duration),
}

/// The built-in restart policy for a child that is gone: `failed` when its
/// exit counts as a failure (not a success code, a failed check, a failed
/// spawn), `uptime` how long it ran, `now` when it is decided.
///
/// Pure: the clock is passed in and the policy's memory is passed in and
/// handed back, so every rule (backoff, its reset after a stable uptime,
/// the give-up window) is tested without a service around it.
pub fn after_exit(
    policy: &RestartPolicy,
    book: &RestartBook,
    now: Instant,
    failed: bool,
    uptime: Duration,
) -> (Decision, RestartBook) {
    let mut book = book.clone();
    if uptime >= policy.stable_uptime {
        book.backoff_index = 0;
    }
    let restart = match policy.mode {
        RestartMode::Always => true,
        RestartMode::OnFailure => failed,
        RestartMode::Never => false,
    };
    if !restart {
        let decision = if failed && policy.mode == RestartMode::Never {
            Decision::GiveUp("failed and restart = \"never\"".into())
        } else {
            Decision::Exited
        };
        return (decision, book);
    }
    if let Some(g) = policy.give_up {
        book.restart_times.push_back(now);
        while book
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > g.window)
        {
            book.restart_times.pop_front();
        }
        if book.restart_times.len() > g.restarts as usize {
            let reason = format!("more than {} restarts within {:?}", g.restarts, g.window);
            return (Decision::GiveUp(reason), book);
        }
    }
    let last = policy.backoff.len().saturating_sub(1);
    let delay = policy
        .backoff
        .get(book.backoff_index.min(last))
        .copied()
        .unwrap_or_default();
    book.backoff_index = book.backoff_index.saturating_add(1);
    (Decision::Restart(delay), book)
}
