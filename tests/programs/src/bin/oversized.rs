//! Hands the host more than it should keep: a `retry` whose reason is
//! config `reason-bytes` bytes long (after logging one line of config
//! `log-bytes` bytes, when given). The host must cut both.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let log_bytes: usize = target.parse_or("log-bytes", 0)?;
    if log_bytes > 0 {
        vigil_sdk::log::info(&"L".repeat(log_bytes));
    }
    let reason_bytes: usize = target.parse_or("reason-bytes", 0)?;
    // Multi-byte characters, so that a cut must find a boundary.
    let reason: String = "é".repeat(reason_bytes / 2);
    Ok(Outcome::retry(reason))
}

fn main() {}
