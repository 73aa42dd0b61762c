//! The loader a service binary carries (tests/embedded-service): `spawn`
//! runs the binary it came from (the host passes its path as config
//! `program`) with the argument `serve`; `decide` restarts an exited child
//! after 50 ms and otherwise does nothing.

use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

struct Policy;

#[vigil_sdk::loader]
impl Loader for Policy {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        match ctx.config("program") {
            Some(program) => Ok(Command::new(vec![program, "serve"])),
            None => Err("no `program` in the loader's config".into()),
        }
    }

    fn decide(event: Event, _history: History) -> Action {
        match event {
            Event::Exited(_) => Action::Restart(50),
            _ => Action::None,
        }
    }
}

fn main() {}
