//! Reads the judged service's recent output (`output` capability) and
//! checks it against the host's bounds (at most 1000 lines, 256 KiB of
//! text, 4 KiB a line): `ok` when they hold and every condition below
//! does, else `retry` with what it read; a failed read is an `error`
//! naming the code. Config: `since` = `start` (default: the current
//! child's lines) or `all`; `want`: a line must contain it; `forbid`: no
//! line may contain it; `want-evicted` = `true`: the host must have dropped
//! old lines (the service printed more than it keeps).

use vigil_sdk::output::Query;
use vigil_sdk::{Outcome, Target, check};

#[check]
fn check(target: Target) -> Outcome {
    let query = match target.config("since") {
        Some("all") => Query::all(),
        _ => Query::since_start(&target),
    };
    let read = match query.fetch() {
        Ok(read) => read,
        Err(code) => return Outcome::error(format!("read failed: {}", code.message())),
    };
    let bytes: usize = read.lines.iter().map(|l| l.text.len()).sum();
    let longest = read.lines.iter().map(|l| l.text.len()).max().unwrap_or(0);
    let has = |needle: &str| read.lines.iter().any(|l| l.text.contains(needle));
    let good = read.lines.len() <= 1000
        && bytes <= 256 << 10
        && longest <= 4 << 10
        && target.config("want").is_none_or(has)
        && !target.config("forbid").is_some_and(has)
        && (target.config("want-evicted") != Some("true") || read.evicted > 0);
    if good {
        return Outcome::Ok;
    }
    let last = read.lines.last().map_or("", |l| l.text.as_str());
    let mut end = last.len().min(100);
    while !last.is_char_boundary(end) {
        end -= 1;
    }
    Outcome::retry(format!(
        "lines={} bytes={bytes} longest={longest} omitted={} evicted={} last={:?}",
        read.lines.len(),
        read.omitted,
        read.evicted,
        &last[..end]
    ))
}

fn main() {}
