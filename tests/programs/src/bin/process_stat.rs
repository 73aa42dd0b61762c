//! Stats config `pid` (default: the target's pid): logs the stats and
//! answers ok, or an error with the error code's debug text.

use vigil_sdk::{Outcome, Target, check, process};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let pid = match target.parse::<u32>("pid")? {
        Some(pid) => pid,
        None => target.pid.ok_or_else(|| Outcome::error("no pid"))?,
    };
    match process::stat(pid) {
        Ok(stats) => {
            vigil_sdk::info!("{stats:?}");
            Ok(Outcome::Ok)
        }
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn main() {}
