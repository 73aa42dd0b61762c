//! Lists the target's tree and stats every pid in it. A pid that `tree`
//! lists and `stat` denies is an inconsistency, unless it is gone from a
//! second listing (it exited in between). Answers error "inconsistent:
//! PIDS" or ok, logging "tree=N".

use vigil_sdk::{ErrorCode, Outcome, Target, check, process};

#[check]
fn check(_target: Target) -> Result<Outcome, Outcome> {
    let tree = process::tree().map_err(|code| Outcome::error(format!("tree: {code:?}")))?;
    let denied: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|&pid| matches!(process::stat(pid), Err(ErrorCode::Denied(_))))
        .collect();
    let again = process::tree().map_err(|code| Outcome::error(format!("tree: {code:?}")))?;
    let inconsistent: Vec<String> = denied
        .into_iter()
        .filter(|pid| again.contains(pid))
        .map(|pid| pid.to_string())
        .collect();
    if !inconsistent.is_empty() {
        return Ok(Outcome::error(format!(
            "inconsistent: {}",
            inconsistent.join(" ")
        )));
    }
    vigil_sdk::info!("tree={}", tree.len());
    Ok(Outcome::Ok)
}

fn main() {}
