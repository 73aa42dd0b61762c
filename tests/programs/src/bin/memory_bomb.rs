//! Allocates 1 MiB blocks until allocation fails (which aborts): the
//! memory cap must stop it, not the host.

use std::hint::black_box;

use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(_target: Target) -> Outcome {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(black_box(vec![1u8; 1 << 20]));
        black_box(&blocks);
    }
}

fn main() {}
