//! A loader that declares its `[loader.config]` with `#[derive(Config)]`:
//! `spawn` runs `program` with `args` split on spaces; `decide` does
//! nothing.

use vigil_sdk::Config;
use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

#[derive(Config)]
struct Settings {
    /// The program to run.
    program: String,
    /// Its arguments, separated by spaces.
    #[config(default = "")]
    args: String,
}

struct Runner;

#[vigil_sdk::loader]
impl Loader for Runner {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let settings: Settings = ctx
            .settings()
            .map_err(|why| why.reason().unwrap_or("bad settings").to_string())?;
        let mut argv = vec![settings.program.as_str()];
        argv.extend(settings.args.split_whitespace());
        Ok(Command::new(argv))
    }

    fn decide(_event: Event, _history: History) -> Action {
        Action::None
    }
}

fn main() {}
