//! Always definitively failed.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    Outcome::error("broken on purpose")
}

fn main() {}
