//! Panics: a trap whose message is on the guest's stderr.

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    panic!("boom from guest");
}

fn main() {}
