//! Says everything through terminal control sequences: its reason, a log
//! line and its output retitle the window (OSC 0 + BEL), move the cursor
//! up and erase the line (CSI), return and back up over text (CR, BS),
//! use an 8-bit CSI (U+009B) and reverse or isolate text (bidi U+202E,
//! U+2066..U+2069), then answers `error`. The reason goes on to a second
//! line that starts with a fake `ok`. The same strings are in
//! tests/e2e/sandbox_escape.rs, which checks every human rendering of them.

use vigil_sdk::{Outcome, Target, check};

const HOSTILE: &str =
    "\x1b]0;pwned\x07\x1b[1A\x1b[2K\rok\x08\x08\u{9b}2K\u{202e}kcehc\u{2066}x\u{2069}\x7f";

#[check]
fn check(_target: Target) -> Outcome {
    vigil_sdk::info!("{HOSTILE}");
    println!("{HOSTILE}");
    println!("ok\x1b[1A");
    Outcome::error(format!("{HOSTILE}\nok"))
}

fn main() {}
