//! Recurses without bound: wasmtime's stack limit must trap it.

use std::hint::black_box;

use vigil_sdk::{Outcome, Target, check};

#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == u64::MAX {
        return depth;
    }
    // Not a tail call, and opaque to the optimizer, so every level keeps
    // a frame.
    black_box(descend(black_box(depth + 1))).wrapping_mul(31) ^ depth
}

#[check]
fn check(_target: Target) -> Outcome {
    let depth = descend(0);
    Outcome::retry(format!("came back from depth {depth}"))
}

fn main() {}
