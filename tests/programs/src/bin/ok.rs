//! Always healthy.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    Outcome::Ok
}

fn main() {}
