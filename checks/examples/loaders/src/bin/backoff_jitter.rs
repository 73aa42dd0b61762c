// A restart policy: exponential backoff with full jitter (AWS's
// "Exponential Backoff And Jitter"): the n-th quick restart in a row
// waits a uniformly random time in `[0, min(cap, base * 2^n)]`, so a
// fleet of crashing services does not restart in lockstep.
//
// Deterministic: the "random" part is a hash (FNV-1a) of the service
// name, its restart count and the exit being decided (status and uptime),
// never a clock or an entropy source. The same history gives the same
// delay, so `vigil replay` of a journal this loader wrote reproduces it
// exactly, and two services (or two restarts) still spread apart.
//
// `[loader.config]`:
// - `argv`: the command, split on spaces (required).
// - `base-ms` (default 1000), `cap-ms` (default 60000): the backoff.
// - `stable-ms` (default 60000): an exit after this much uptime is not
//   "quick", and resets the backoff.
// - `failures` (default 3): consecutive liveness failures that restart
//   (after the same jittered delay); `error` restarts at once.

use vigil_sdk::{Outcome, Phase};
use vigil_sdk::loader::{Action, Command, Event, ExitStatus, History, Loader, SpawnContext};

struct BackoffJitter;

/// FNV-1a, 64 bits: small, stable across builds and platforms.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The jittered delay for the exit `(status, uptime_ms)` of `history`.
fn delay(history: &History, status: Option<&ExitStatus>, uptime_ms: u64) -> Action {
    let base: u64 = history.parse_or("base-ms", 1000).unwrap_or(1000);
    let cap: u64 = history.parse_or("cap-ms", 60_000).unwrap_or(60_000);
    let stable: u64 = history.parse_or("stable-ms", 60_000).unwrap_or(60_000);
    // Quick exits in a row, newest first (the one being decided included).
    let quick = history
        .recent_exits
        .iter()
        .take_while(|(exit, _)| exit.uptime_ms < stable)
        .count() as u32;
    let attempt = quick.saturating_sub(1).min(32);
    let ceiling = base.saturating_mul(1u64 << attempt).min(cap);
    let mut seed = fnv1a(history.service.as_bytes(), 0xcbf2_9ce4_8422_2325);
    seed = fnv1a(&history.restarts.to_le_bytes(), seed);
    seed = fnv1a(&uptime_ms.to_le_bytes(), seed);
    let code = match status {
        Some(ExitStatus::Code(c)) => i64::from(*c),
        Some(ExitStatus::Signal(s)) => 1000 + i64::from(*s),
        None => -1,
    };
    seed = fnv1a(&code.to_le_bytes(), seed);
    Action::Restart(seed % (ceiling + 1))
}

#[vigil_sdk::loader]
impl Loader for BackoffJitter {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let argv: Vec<&str> = ctx.config("argv").unwrap_or("").split_whitespace().collect();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command::new(argv))
    }

    fn decide(event: Event, history: History) -> Action {
        match event {
            Event::Exited(exit) => delay(&history, Some(&exit.status), exit.uptime_ms),
            Event::CheckFailed(failure) if failure.phase == Phase::Liveness => {
                let needed: u32 = history.parse_or("failures", 3).unwrap_or(3);
                match failure.outcome {
                    Outcome::Error(_) => Action::Restart(0),
                    _ if failure.consecutive >= needed => delay(&history, None, history.uptime_ms),
                    _ => Action::None,
                }
            }
            _ => Action::None,
        }
    }
}

fn main() {}
