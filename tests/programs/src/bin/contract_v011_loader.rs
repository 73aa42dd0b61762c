//! A loader built against the frozen `vigil:health@0.1.1` contract
//! (`wit-0.1.1/`, never edited), with wit-bindgen directly: never the SDK,
//! whose bindings would pull every import up to the current contract.
//! Proof that a component from before 0.1.2 still loads and runs.
//! `spawn` runs config `argv` split on spaces; `decide` restarts an exited
//! child after 7 ms and otherwise does nothing.

// The generated bindings are not ours to lint (the SDK allows the same).
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "loader",
    path: "../../wit-0.1.1",
});

use vigil::health::log;

struct Policy;

impl Guest for Policy {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        log::log(log::Level::Info, "0.1.1 loader spawning");
        let argv: Vec<String> = ctx
            .config
            .iter()
            .rev()
            .find(|(key, _)| key == "argv")
            .map(|(_, value)| value.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        if argv.is_empty() {
            return Err("config key `argv` is required".into());
        }
        Ok(Command {
            argv,
            env: Vec::new(),
            cwd: None,
        })
    }

    fn decide(event: Event, _history: History) -> Action {
        match event {
            Event::Exited(_) => Action::Restart(7),
            _ => Action::None,
        }
    }
}

export!(Policy);

fn main() {}
