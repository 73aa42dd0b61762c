//! A loader, for tests that load it where a check is expected.

use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

struct Minimal;

#[vigil_sdk::loader]
impl Loader for Minimal {
    fn spawn(_ctx: SpawnContext) -> Result<Command, String> {
        Ok(Command::new(["true"]))
    }

    fn decide(_event: Event, _history: History) -> Action {
        Action::None
    }
}

fn main() {}
