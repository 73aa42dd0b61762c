//! Logs 10,000 lines, then answers ok: the host must bound what it keeps.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    for i in 0..10_000 {
        vigil_sdk::info!("log line {i} of 10000");
    }
    Outcome::Ok
}

fn main() {}
