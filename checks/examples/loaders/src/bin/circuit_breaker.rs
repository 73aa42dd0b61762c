// A restart policy: a circuit breaker. A service that keeps failing is
// not hammered with restarts: after `failures` failed exits within
// `window-ms` the circuit opens and the next restart waits `cool-down-ms`
// (the probe). A probe that fails quickly (its child exits within
// `window-ms` of a cool-down) opens it again; one that stays up closes
// it, and restarts go back to `delay-ms`.
//
// Everything it needs is in the history the host passes (the recent
// exits and how long ago each happened), so it keeps no state and
// replays exactly.
//
// `[loader.config]`:
// - `argv`: the command, split on spaces (required).
// - `failures` (default 5), `window-ms` (default 60000).
// - `cool-down-ms` (default 300000), `delay-ms` (default 1000).

use vigil_sdk::loader::{Action, Command, Event, ExitStatus, History, Loader, SpawnContext};

struct CircuitBreaker;

fn failed(status: &ExitStatus) -> bool {
    !matches!(status, ExitStatus::Code(0))
}

#[vigil_sdk::loader]
impl Loader for CircuitBreaker {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let argv: Vec<&str> = ctx.config("argv").unwrap_or("").split_whitespace().collect();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command::new(argv))
    }

    fn decide(event: Event, history: History) -> Action {
        let Event::Exited(exit) = event else {
            return Action::None;
        };
        let failures: usize = history.parse_or("failures", 5).unwrap_or(5);
        let window: u64 = history.parse_or("window-ms", 60_000).unwrap_or(60_000);
        let cool_down: u64 = history.parse_or("cool-down-ms", 300_000).unwrap_or(300_000);
        let delay: u64 = history.parse_or("delay-ms", 1000).unwrap_or(1000);
        if !failed(&exit.status) {
            return Action::Restart(delay);
        }
        // recent-exits is newest first and holds this exit (0 ms ago).
        let in_window = history
            .recent_exits
            .iter()
            .take_while(|(_, ago)| *ago <= window)
            .filter(|(e, _)| failed(&e.status))
            .count();
        if in_window >= failures {
            return Action::Restart(cool_down);
        }
        // The previous child was a probe (it started a cool-down after its
        // predecessor) and this one failed quickly: still broken.
        let probe_failed = history.recent_exits.get(1).is_some_and(|(_, ago)| {
            ago.saturating_sub(exit.uptime_ms) >= cool_down && exit.uptime_ms < window
        });
        if probe_failed {
            return Action::Restart(cool_down);
        }
        Action::Restart(delay)
    }
}

fn main() {}
