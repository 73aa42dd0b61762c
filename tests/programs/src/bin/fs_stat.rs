//! Stats config `path`: logs the kind and size and answers ok, or an error
//! with the error code's debug text.

use vigil_sdk::{Outcome, Target, check, fs};

#[check]
fn check(target: Target) -> Result<Outcome, Outcome> {
    let path = target.require("path")?;
    match fs::stat(path) {
        Ok(meta) => {
            vigil_sdk::info!("{path}: kind={:?} size={}", meta.kind, meta.size);
            Ok(Outcome::Ok)
        }
        Err(code) => Ok(Outcome::error(format!("{code:?}"))),
    }
}

fn main() {}
