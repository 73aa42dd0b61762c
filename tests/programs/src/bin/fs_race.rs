//! Hammers one granted path while the test swaps what it names: config
//! `op` (`read` or `stat`) on `path`, `times` times. A result the grants
//! must never give counts as forbidden: a read whose content contains
//! `forbidden`, or a stat whose size is `forbidden`. Answers error
//! "forbidden N of M" if any was; otherwise ok, logging the tally
//! "ok=A denied=B other=C".

use vigil_sdk::{ErrorCode, Outcome, Target, check, fs};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let path = target.require("path")?;
    let forbidden = target.require("forbidden")?;
    let times: u32 = target.parse_required("times")?;
    let stat = match target.require("op")? {
        "read" => false,
        "stat" => true,
        other => return Err(Outcome::error(format!("unknown op `{other}`"))),
    };
    let (mut ok, mut denied, mut other, mut bad) = (0u32, 0u32, 0u32, 0u32);
    for _ in 0..times {
        let result = if stat {
            fs::stat(path).map(|meta| meta.size.to_string() == forbidden)
        } else {
            fs::read_to_string(path, 4096).map(|text| text.contains(forbidden))
        };
        match result {
            Ok(true) => bad += 1,
            Ok(false) => ok += 1,
            Err(ErrorCode::Denied(_)) => denied += 1,
            Err(_) => other += 1,
        }
    }
    if bad > 0 {
        return Ok(Outcome::error(format!("forbidden {bad} of {times}")));
    }
    vigil_sdk::info!("ok={ok} denied={denied} other={other}");
    Ok(Outcome::Ok)
}

fn main() {}
