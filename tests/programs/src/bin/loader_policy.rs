//! A loader: `spawn` runs config `argv` split on spaces; `decide` restarts
//! an exited child after 10 ms per restart so far, restarts at once on a
//! check that failed with `error`, and otherwise does nothing.

use vigil_sdk::Outcome;
use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

struct Policy;

#[vigil_sdk::loader]
impl Loader for Policy {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let argv: Vec<&str> = ctx
            .config("argv")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command::new(argv))
    }

    fn decide(event: Event, history: History) -> Action {
        match event {
            Event::Exited(_) => Action::Restart(10 * u64::from(history.restarts)),
            Event::CheckFailed(failure) if matches!(failure.outcome, Outcome::Error(_)) => {
                Action::Restart(0)
            }
            _ => Action::None,
        }
    }
}

fn main() {}
