// A restart policy: a failed liveness check restarts the service, except
// during a daily maintenance window (UTC) given in config, when the
// service is expected to be slow or down (backups, migrations) and
// restarting it would only get in the way. A crash (an exit) restarts at
// any time.
//
// The time comes from the component's wall clock (`wasi:clocks`): the
// host's clock under `vigil run`, and the recorded time of each event
// under `vigil replay`, which freezes the clock there. So a replay of
// last night's journal sees last night's window.
//
// `[loader.config]`:
// - `argv`: the command, split on spaces (required).
// - `window`: `HH:MM-HH:MM`, UTC; may wrap midnight (`23:30-01:00`).
//   Without it, there is no window.
// - `failures` (default 3): consecutive liveness failures that restart;
//   `error` restarts at once.
// - `delay-ms` (default 1000): the restart delay.

use std::time::{SystemTime, UNIX_EPOCH};

use vigil_sdk::{Outcome, Phase};
use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

struct MaintenanceWindow;

/// `HH:MM` as minutes since midnight.
fn minutes(text: &str) -> Option<u64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Whether minute-of-day `now` is in `HH:MM-HH:MM` (end excluded).
fn in_window(window: &str, now: u64) -> Option<bool> {
    let (from, to) = window.split_once('-')?;
    let (from, to) = (minutes(from)?, minutes(to)?);
    Some(if from <= to {
        (from..to).contains(&now)
    } else {
        now >= from || now < to
    })
}

#[vigil_sdk::loader]
impl Loader for MaintenanceWindow {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let argv: Vec<&str> = ctx.config("argv").unwrap_or("").split_whitespace().collect();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command::new(argv))
    }

    fn decide(event: Event, history: History) -> Action {
        let delay: u64 = history.parse_or("delay-ms", 1000).unwrap_or(1000);
        match event {
            Event::Exited(_) => Action::Restart(delay),
            Event::CheckFailed(failure) if failure.phase == Phase::Liveness => {
                let needed: u32 = history.parse_or("failures", 3).unwrap_or(3);
                let due = matches!(failure.outcome, Outcome::Error(_))
                    || failure.consecutive >= needed;
                if !due {
                    return Action::None;
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() / 60 % (24 * 60))
                    .unwrap_or_default();
                match history.config("window").and_then(|w| in_window(w, now)) {
                    Some(true) => Action::None,
                    _ => Action::Restart(delay),
                }
            }
            _ => Action::None,
        }
    }
}

fn main() {}
