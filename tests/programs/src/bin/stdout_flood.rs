//! Writes 100 MiB, alternating stdout and stderr in 64 KiB blocks, then
//! answers ok. Write errors are ignored: the host may stop taking output.

use std::io::Write;

use vigil_sdk::{Outcome, Target, check};

const TOTAL: usize = 100 << 20;
const BLOCK: usize = 64 << 10;

#[check]
fn check(_target: Target) -> Outcome {
    let block = vec![b'x'; BLOCK];
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    for _ in 0..TOTAL / (2 * BLOCK) {
        let _ = stdout.write_all(&block);
        let _ = stderr.write_all(&block);
    }
    let _ = stdout.flush();
    Outcome::Ok
}

fn main() {}
