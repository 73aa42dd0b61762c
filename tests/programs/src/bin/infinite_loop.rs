//! Spins forever: only the epoch deadline stops it.

use std::hint::black_box;

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn main() {}
