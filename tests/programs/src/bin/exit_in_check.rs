//! Calls `exit(0)` (or config `code`) instead of answering: that is no
//! verdict, and must never count as `ok`.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let code: i32 = target.parse_or("code", 0)?;
    std::process::exit(code)
}

fn main() {}
