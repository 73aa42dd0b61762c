//! A loader that hands the host more than it should take: `spawn` returns
//! a command with config `args` arguments of `arg-bytes` bytes each and
//! `vars` environment variables (or declines with a reason of
//! `decline-bytes` bytes); `decide` stops with a reason of `stop-bytes`
//! bytes.

use vigil_sdk::loader::{Action, Command, Event, History, Loader, SpawnContext};

struct Oversized;

#[vigil_sdk::loader]
impl Loader for Oversized {
    fn spawn(ctx: SpawnContext) -> Result<Command, String> {
        let number = |key: &str| -> Result<usize, String> {
            ctx.parse_or(key, 0usize).map_err(|err| format!("{err:?}"))
        };
        let decline = number("decline-bytes")?;
        if decline > 0 {
            return Err("d".repeat(decline));
        }
        let arg = "a".repeat(number("arg-bytes")?);
        let mut command = Command::new(std::iter::repeat_n(arg, number("args")?));
        // Empty names: the most entries for the guest's memory.
        command.env = vec![(String::new(), String::new()); number("vars")?];
        Ok(command)
    }

    fn decide(_event: Event, history: History) -> Action {
        let bytes = history.parse_or("stop-bytes", 10usize).unwrap_or(10);
        Action::Stop("s".repeat(bytes))
    }
}

fn main() {}
