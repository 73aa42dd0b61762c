//! A hostile loader: `spawn` runs config `argv`; `decide` answers every
//! exit with the longest restart delay the contract can express
//! (`u64::MAX` ms), which would overflow any deadline computed from it.

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
        Ok(Command::new(argv))
    }

    fn decide(event: Event, _history: History) -> Action {
        match event {
            Event::Exited(_) => Action::Restart(u64::MAX),
            _ => Action::None,
        }
    }
}

fn main() {}
