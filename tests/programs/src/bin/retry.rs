//! Always "not yet".

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    Outcome::retry("not yet")
}

fn main() {}
