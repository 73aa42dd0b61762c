//! Spins forever: only the epoch deadline stops it. It says so first, so
//! tests see a timed-out check's output kept with its reason.

use std::hint::black_box;

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    eprintln!("spinning: waiting for a lock that never comes");
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn main() {}
